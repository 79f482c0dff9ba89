//! Reading the audit log: who did what, when, from where (DESIGN.md section 6). Every admin and
//! operator action writes its row in the same transaction as the change (see `record_audit`); this
//! is the read side, for `GET /api/v1/admin/audit` and the console's Audit screen.
//!
//! What is audited: every action of an operator or admin token, of the console and of the command
//! line (`cli`): events, capacity, staff cancellations, check-ins and their reverts, walk-ups,
//! tokens, webhooks, outbox retries, exports and erasures. What is not: sales. Creating an attendee,
//! registering, accepting or declining an offer, and a kiosk's cancellation are the attendee's own
//! doing through a kiosk or the web shop, whichever token carries them; the registration rows and
//! their domain events in the outbox are their record. (A rush of sales writes no audit rows.)

use serde::Serialize;

use super::{decode_cursor, encode_cursor, page, App, Error, Page, PageRequest, Result};
use crate::domain::Timestamp;
use crate::store::audit;

/// Which audit rows to list: an exact actor, an action (`event.capacity`) or every action of a
/// noun (`event`), an exact target, and a time window, bounds included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// Longest text filter accepted (names, actions and ids are short).
const FILTER_MAX: usize = 200;

/// A text filter: empty means "any"; over-long ones are refused.
fn text(field: &'static str, v: Option<&str>) -> Result<Option<String>> {
    // The bound applies to the text as sent, as the API document's `maxLength` says.
    if v.is_some_and(|v| v.chars().count() > FILTER_MAX) {
        return Err(Error::invalid(
            field,
            format!("must be at most {FILTER_MAX} characters"),
        ));
    }
    Ok(v.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string))
}

/// A time filter: absent means "any"; present, it must be a date-time (an empty value is refused, as
/// the API document's `format: date-time` says).
fn time(field: &'static str, v: Option<&str>) -> Result<Option<Timestamp>> {
    match v {
        None => Ok(None),
        Some(v) => Timestamp::parse(v).map(Some).ok_or_else(|| {
            Error::invalid(
                field,
                "must be an RFC 3339 date-time, like 2026-11-22T20:00:00Z",
            )
        }),
    }
}

impl AuditFilter {
    /// Empty values mean "any"; over-long ones are refused.
    pub fn parse(actor: Option<&str>, action: Option<&str>) -> Result<Self> {
        Ok(Self {
            actor: text("actor", actor)?,
            action: text("action", action)?,
            ..Self::default()
        })
    }

    /// Adds the target and the time window (RFC 3339); `since` after `until` is refused.
    pub fn with(
        mut self,
        target: Option<&str>,
        since: Option<&str>,
        until: Option<&str>,
    ) -> Result<Self> {
        self.target = text("target", target)?;
        self.since = time("since", since)?;
        self.until = time("until", until)?;
        if let (Some(s), Some(u)) = (self.since, self.until) {
            if s > u {
                return Err(Error::invalid("since", "must not be after until"));
            }
        }
        Ok(self)
    }
}

/// One audit row in its API shape.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Increases with every row: of two rows at the same time, the later has the larger.
    pub seq: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub remote_addr: Option<String>,
    pub request_id: Option<String>,
}

impl From<audit::Row> for AuditEntry {
    fn from(r: audit::Row) -> Self {
        Self {
            seq: r.seq,
            at: Timestamp::from_millis(r.at),
            actor: r.actor,
            action: r.action,
            target: r.target,
            detail: r.detail,
            remote_addr: r.remote_addr,
            request_id: r.request_id,
        }
    }
}

impl App {
    /// The audit log, newest first (by time, then by order of commit), keyset-paginated.
    pub fn audit_page(&self, filter: &AuditFilter, req: &PageRequest) -> Result<Page<AuditEntry>> {
        let after = match &req.after {
            Some(c) => {
                let [at, seq] = decode_cursor::<2>(c)?;
                Some(audit::Cursor { at, seq })
            }
            None => None,
        };
        // An action with a dot names one action; without, it is a noun and takes all of its
        // actions (`checkin` matches `checkin` and `checkin.revert`). Actions have at most two parts.
        let action = filter.action.as_deref().map(|a| {
            if a.contains('.') {
                audit::ActionMatch::Exact(a)
            } else {
                audit::ActionMatch::Noun(a)
            }
        });
        let f = audit::Filter {
            actor: filter.actor.as_deref(),
            action,
            target: filter.target.as_deref(),
            since: filter.since.map(Timestamp::millis),
            until: filter.until.map(Timestamp::millis),
        };
        let rows = self
            .store
            .read(|c| audit::list(c, &f, after, req.limit + 1))?;
        let items = rows.into_iter().map(AuditEntry::from).collect();
        Ok(page(items, req.limit, |e: &AuditEntry| {
            encode_cursor(&[e.at.millis(), e.seq])
        }))
    }
}
