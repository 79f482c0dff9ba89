//! Reading the audit log: who did what, when, from where (DESIGN.md section 6). Every admin
//! action writes its row in its own transaction (see `record_audit`); this is the read side, for
//! `GET /api/v1/admin/audit` and the console's Audit screen.

use serde::Serialize;

use super::{decode_cursor, encode_cursor, page, App, Error, Page, PageRequest, Result};
use crate::domain::Timestamp;
use crate::store::audit;

/// Which audit rows to list: an exact actor, an action or its dotted prefix (`event` matches
/// `event.cancel`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
}

/// Longest actor or action filter accepted (names and actions are short).
const FILTER_MAX: usize = 200;

impl AuditFilter {
    /// Empty values mean "any"; over-long ones are refused.
    pub fn parse(actor: Option<&str>, action: Option<&str>) -> Result<Self> {
        let clean = |field: &'static str, v: Option<&str>| -> Result<Option<String>> {
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
        };
        Ok(Self {
            actor: clean("actor", actor)?,
            action: clean("action", action)?,
        })
    }
}

/// One audit row in its API shape.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Increases with every row: the newest row has the largest.
    pub seq: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub remote_addr: Option<String>,
    pub request_id: Option<String>,
}

impl App {
    /// The audit log, newest first, keyset-paginated.
    pub fn audit_page(&self, filter: &AuditFilter, req: &PageRequest) -> Result<Page<AuditEntry>> {
        let before = match &req.after {
            Some(c) => Some(decode_cursor::<1>(c)?[0]),
            None => None,
        };
        let f = audit::Filter {
            actor: filter.actor.as_deref(),
            action: filter.action.as_deref(),
        };
        let rows = self
            .store
            .read(|c| audit::list(c, &f, before, req.limit + 1))?;
        let items = rows
            .into_iter()
            .map(|r| AuditEntry {
                seq: r.seq,
                at: Timestamp::from_millis(r.at),
                actor: r.actor,
                action: r.action,
                target: r.target,
                detail: r.detail,
                remote_addr: r.remote_addr,
                request_id: r.request_id,
            })
            .collect();
        Ok(page(items, req.limit, |e: &AuditEntry| {
            encode_cursor(&[e.seq])
        }))
    }
}
