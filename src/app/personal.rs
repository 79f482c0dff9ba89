//! Personal data (DESIGN.md section 7): what the box holds about one attendee, and erasing it.
//!
//! Where an attendee's personal data (name, email, phone) is stored, and what erasure does there:
//! - `attendees`: replaced by the tombstone (`[erased]`, no email, no phone), `erased_at` set; the row
//!   and its id stay, so registrations, counts and history keep pointing at something.
//! - `idempotency`: stored first responses about them (an attendee, a sale, a scan, a walk-up) are
//!   blanked, body and request fingerprint; the key then answers 410 `attendee_erased`.
//! - `outbox` payloads carry registrations and events, which name an attendee by id only, never by
//!   name, email or phone; there is nothing to scrub, and erasure adds `attendee.erased`.
//! - `audit` rows name an attendee by id only (the attendee, or one of their registrations, as the
//!   target); details never hold personal data. The export finds them through the target index.
//!
//! SQLite keeps the bytes of a changed or deleted row in free space until something overwrites
//! them; the write connection runs with `secure_delete` (see `store::configure`) so the erased
//! values are zeroed in the file itself, not merely unlinked.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    cancel_one, emit, internal, promote, record_audit, ticket, Actor, App, AuditEntry, Error,
    Result, Ticket,
};
use crate::domain::{
    Attendee, AttendeeId, DomainEventType, Event, EventStatus, RegStatus, Registration, Timestamp,
};
use crate::store::{attendees, audit, events, idempotency, outbox, registrations};

/// Everything the box stores about one attendee, as one document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttendeeExport {
    pub exported_at: Timestamp,
    pub attendee: Attendee,
    /// Every registration, in join order, with its event, ticket code and check-in time.
    pub registrations: Vec<Ticket>,
    /// Audit rows whose target is the attendee or one of their registrations, oldest first.
    pub audit: Vec<AuditEntry>,
    /// Domain events about the attendee or their registrations still in the outbox (delivered
    /// messages are pruned after `outbox.retention_hours`), oldest first.
    pub outbox: Vec<ExportedMessage>,
    /// First responses stored for `Idempotency-Key` retries that are about the attendee (24 hours).
    pub stored_responses: Vec<StoredResponse>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExportedMessage {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub aggregate_id: String,
    pub state: String,
    pub created_at: Timestamp,
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredResponse {
    /// The name of the token that sent the request.
    pub token: String,
    pub idempotency_key: String,
    pub status: u16,
    pub created_at: Timestamp,
    /// The response body as JSON (`null` once blanked by an erasure).
    pub body: serde_json::Value,
}

/// What an erasure did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Erasure {
    /// The attendee as now stored: the tombstone.
    pub attendee: Attendee,
    /// Registrations this erasure cancelled (none when the attendee was erased before).
    pub cancelled: Vec<Registration>,
}

/// The payload of `attendee.erased`: ids only.
#[derive(Serialize)]
struct ErasedEvent {
    id: AttendeeId,
    erased_at: Timestamp,
    cancelled_registrations: Vec<String>,
}

impl App {
    /// Everything stored about an attendee, read in one snapshot; the export itself is audited.
    pub fn export_attendee(&self, actor: &Actor, id: AttendeeId) -> Result<AttendeeExport> {
        let now = self.now();
        // `read` is one read transaction: the parts agree with each other.
        let export = self.store.read(|snapshot| {
            let attendee = attendees::get(snapshot, id)?.ok_or(Error::NotFound("attendee"))?;
            let regs = registrations::list_for_attendee(snapshot, attendee.seq, 0, usize::MAX)?;
            let mut targets = vec![attendee.id.to_string()];
            targets.extend(regs.iter().map(|r| r.id.to_string()));
            let mut tickets = Vec::with_capacity(regs.len());
            for r in regs {
                tickets.push(ticket(snapshot, r)?);
            }
            let audit = audit::for_targets(snapshot, &targets)?
                .into_iter()
                .map(AuditEntry::from)
                .collect();
            let mut messages = Vec::new();
            for t in &targets {
                messages.extend(outbox::for_aggregate(snapshot, t)?);
            }
            messages.sort_by_key(|m| m.seq);
            let outbox = messages
                .into_iter()
                .map(|m| ExportedMessage {
                    data: serde_json::from_str(&m.payload).unwrap_or(serde_json::Value::Null),
                    id: m.id,
                    kind: m.kind,
                    aggregate_id: m.aggregate_id,
                    state: m.state,
                    created_at: Timestamp::from_millis(m.created_at),
                })
                .collect();
            let stored_responses = idempotency::for_attendee(snapshot, &attendee.id.to_string())?
                .into_iter()
                .map(|s| StoredResponse {
                    token: s.token_name,
                    idempotency_key: s.key,
                    status: s.status,
                    created_at: Timestamp::from_millis(s.created_at),
                    body: serde_json::from_slice(&s.body).unwrap_or(serde_json::Value::Null),
                })
                .collect();
            Ok::<_, Error>(AttendeeExport {
                exported_at: now,
                attendee,
                registrations: tickets,
                audit,
                outbox,
                stored_responses,
            })
        })?;
        // Nobody's data leaves the box without a row saying who took it.
        let actor = actor.clone();
        let target = id.to_string();
        self.write_idempotent(None, move |tx, now| {
            record_audit(tx, &actor, "attendee.export", Some(&target), None, now)
        })?;
        Ok(export)
    }

    /// Erases an attendee (DESIGN.md section 7) in one transaction: the tombstone replaces name,
    /// email and phone; their active registrations are cancelled, each freed seat going to the
    /// head of the waitlist (I4); stored responses about them are blanked; `attendee.erased` and a
    /// `registration.cancelled` per cancellation go to the outbox; one audit row.
    ///
    /// History stays: a registration already checked in is kept as it is (the visit happened and
    /// the door's counts include it), and so are those of completed events. Erasing an erased
    /// attendee changes nothing and answers the tombstone with nothing cancelled.
    pub fn erase_attendee(&self, actor: &Actor, id: AttendeeId) -> Result<Erasure> {
        let actor = actor.clone();
        let r = self.write_idempotent(None, move |tx, now| {
            let attendee = attendees::get(tx, id)?.ok_or(Error::NotFound("attendee"))?;
            if attendee.erased_at.is_some() {
                return Ok(Erasure {
                    attendee,
                    cancelled: vec![],
                });
            }
            let mut touched: BTreeMap<i64, Event> = BTreeMap::new();
            let mut cancelled = Vec::new();
            let mut kept = 0;
            for row in registrations::active_of_attendee(tx, attendee.seq)? {
                let event = match touched.entry(row.event_seq) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(v) => v.insert(
                        events::get_by_seq(tx, row.event_seq)?
                            .ok_or_else(|| internal("the event of a registration vanished"))?,
                    ),
                };
                if row.reg.checked_in_at.is_some() || event.status == EventStatus::Completed {
                    kept += 1;
                    continue;
                }
                let reg = cancel_one(tx, row.reg.seq, now)?;
                match row.reg.status {
                    RegStatus::Confirmed => event.confirmed -= 1,
                    RegStatus::Offered => event.offered -= 1,
                    RegStatus::Waitlisted => event.waitlisted -= 1,
                    RegStatus::Cancelled => {}
                }
                cancelled.push(reg);
            }
            // Every seat freed goes to the head of its waitlist in this transaction (I4).
            for event in touched.values_mut() {
                promote(tx, event, now)?;
                events::save_counts(tx, event)?;
            }
            attendees::erase(tx, attendee.seq, now)?;
            let blanked = idempotency::erase_attendee(tx, &attendee.id.to_string())?;
            let attendee = attendees::get(tx, id)?.ok_or_else(|| internal("attendee vanished"))?;
            let erased_at = attendee
                .erased_at
                .ok_or_else(|| internal("erasure did not stick"))?;
            emit(
                tx,
                DomainEventType::AttendeeErased,
                attendee.id,
                &ErasedEvent {
                    id: attendee.id,
                    erased_at,
                    cancelled_registrations: cancelled.iter().map(|r| r.id.to_string()).collect(),
                },
                now,
            )?;
            let detail = format!(
                "{} registrations cancelled, {kept} kept as history, {blanked} stored responses blanked",
                cancelled.len()
            );
            record_audit(
                tx,
                &actor,
                "attendee.erase",
                Some(&attendee.id.to_string()),
                Some(&detail),
                now,
            )?;
            Ok(Erasure {
                attendee,
                cancelled,
            })
        });
        self.after_seat_change(r)
    }
}
