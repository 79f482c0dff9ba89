//! The night itself: check-in at the door (I7), walk-up sales at the counter, and the waitlist offers
//! of events promoted with the `offer` policy (accept, decline, expiry). Same rules as the rest of
//! `App`: every change is one closure on the writer, with its domain events and audit row.

use std::collections::HashMap;

use serde::Serialize;

use super::{
    cancel_one, emit, internal, promote, random_bytes, record_audit, reload_registration, Actor,
    App, Conflict, Error, Idem, Result,
};
use crate::domain::{
    walk_up, Attendee, AttendeeId, DomainEventType, Event, EventId, EventStatus, NewAttendee,
    RegStatus, Registration, RegistrationId, TicketCode, Timestamp, WalkUp,
};
use crate::store::{attendees, events, registrations, Tx};

/// What the door sees for an admitted ticket.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckIn {
    pub registration: Registration,
    pub attendee: Person,
    pub event: EventAtDoor,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Person {
    pub id: AttendeeId,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventAtDoor {
    pub id: EventId,
    pub name: String,
    pub confirmed: i64,
    pub checked_in: i64,
}

/// A counter sale: the attendee made on the spot and their confirmed registration.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WalkUpSale {
    pub registration: Registration,
    pub attendee: Attendee,
}

/// How answering an offer ended, decided inside the transaction.
enum Answer {
    Done(Registration),
    /// The offer had run out before the answer came; the expiry has been applied.
    Expired(Timestamp),
}

fn event_of(tx: &Tx<'_>, event_seq: i64) -> Result<Event> {
    events::get_by_seq(tx, event_seq)?
        .ok_or_else(|| internal("the event of a registration vanished"))
}

/// Ends an offer that ran out: the registration is cancelled and the seat passes on (I4).
fn expire(tx: &Tx<'_>, seq: i64, event: &mut Event, now: i64) -> Result<()> {
    cancel_one(tx, seq, now)?;
    event.offered -= 1;
    promote(tx, event, now)
}

/// The check-in command, run by the writer with the commit time.
fn check_in_command(
    actor: &Actor,
    code: &str,
) -> impl FnOnce(&Tx<'_>, i64) -> Result<CheckIn> + Send + 'static {
    let code = TicketCode::normalize(code);
    let actor = actor.clone();
    move |tx, now| {
        let code = code.ok_or(Error::NotFound("ticket"))?;
        let row = registrations::get_by_ticket(tx, &code)?.ok_or(Error::NotFound("ticket"))?;
        let status = events::status(tx, row.event_seq)?
            .ok_or_else(|| internal("the event of a registration vanished"))?;
        if status != EventStatus::Published {
            return Err(Error::conflict(
                Conflict::EventNotOpen,
                format!("the event is {}; nobody is admitted", status.as_str()),
            ));
        }
        match row.reg.status {
            RegStatus::Confirmed => {}
            RegStatus::Cancelled => {
                return Err(Error::conflict(
                    Conflict::RegistrationCancelled,
                    "this ticket was cancelled",
                ))
            }
            RegStatus::Waitlisted | RegStatus::Offered => {
                return Err(internal("a ticket code on a registration without a seat"))
            }
        }
        if let Some(at) = row.reg.checked_in_at {
            return Err(Error::Conflict {
                kind: Conflict::AlreadyCheckedIn,
                detail: format!("this ticket was checked in at {at}"),
                checked_in_at: Some(at),
            });
        }
        registrations::set_checked_in(tx, row.reg.seq, Some(now), now)?;
        // The counter moves in place: the door's hot path never loads the whole event.
        let event = events::add_checked_in(tx, row.event_seq, 1)?;
        // What the row now holds, without reading it again: the door's hot path.
        let mut reg = row.reg;
        reg.checked_in_at = Some(Timestamp::from_millis(now));
        reg.updated_at = Timestamp::from_millis(now);
        emit(tx, DomainEventType::AttendeeCheckedIn, reg.id, &reg, now)?;
        record_audit(tx, &actor, "checkin", Some(&reg.id.to_string()), None, now)?;
        Ok(CheckIn {
            attendee: Person {
                id: reg.attendee_id,
                name: row.attendee_name,
            },
            registration: reg,
            event: EventAtDoor {
                id: event.id,
                name: event.name,
                confirmed: event.confirmed,
                checked_in: event.checked_in,
            },
        })
    }
}

impl App {
    /// Admits a ticket at the door: only a confirmed registration of a published event, only once (I7).
    /// The code is compared without regard to case or separators.
    pub fn check_in(
        &self,
        actor: &Actor,
        code: &str,
        idem: Option<Idem<CheckIn>>,
    ) -> Result<CheckIn> {
        self.write_idempotent(idem, check_in_command(actor, code))
    }

    /// `check_in` for async callers without an `Idempotency-Key`: waits for the writer on a future,
    /// without a thread of the blocking pool.
    pub async fn check_in_async(&self, actor: &Actor, code: &str) -> Result<CheckIn> {
        self.write_async(check_in_command(actor, code)).await
    }

    /// Undoes a mistaken check-in, so the ticket can be scanned again.
    pub fn revert_check_in(&self, actor: &Actor, id: RegistrationId) -> Result<Registration> {
        let actor = actor.clone();
        self.write_idempotent(None, move |tx, now| {
            let row = registrations::get(tx, id)?.ok_or(Error::NotFound("registration"))?;
            if row.reg.status == RegStatus::Cancelled {
                return Err(Error::conflict(
                    Conflict::RegistrationCancelled,
                    "this registration was cancelled",
                ));
            }
            if row.reg.checked_in_at.is_none() {
                return Err(Error::conflict(
                    Conflict::NotCheckedIn,
                    "this registration is not checked in",
                ));
            }
            registrations::set_checked_in(tx, row.reg.seq, None, now)?;
            events::add_checked_in(tx, row.event_seq, -1)?;
            let reg = reload_registration(tx, row.reg.seq)?;
            emit(
                tx,
                DomainEventType::AttendeeCheckinReverted,
                reg.id,
                &reg,
                now,
            )?;
            record_audit(
                tx,
                &actor,
                "checkin.revert",
                Some(&reg.id.to_string()),
                None,
                now,
            )?;
            Ok(reg)
        })
    }

    /// Sells a seat at the counter to someone without an email: the attendee and a confirmed
    /// registration in one transaction. It never jumps the waitlist unless the operator overrides,
    /// and an override is written to the audit log with how many were waiting.
    pub fn walk_up(
        &self,
        actor: &Actor,
        event_id: EventId,
        person: NewAttendee,
        override_waitlist: bool,
        idem: Option<Idem<WalkUpSale>>,
    ) -> Result<WalkUpSale> {
        let actor = actor.clone();
        self.write_idempotent(idem, move |tx, now| {
            let code = TicketCode::from_time_and_random(now, random_bytes());
            let attendee_id = AttendeeId::from_time_and_random(now, random_bytes());
            let reg_id = RegistrationId::from_time_and_random(now, random_bytes());
            let mut event = events::get(tx, event_id)?.ok_or(Error::NotFound("event"))?;
            if !event.status.accepts_registrations() {
                return Err(Error::conflict(
                    Conflict::EventNotOpen,
                    format!("the event is {}, not on sale", event.status.as_str()),
                ));
            }
            let occupancy = event.occupancy();
            match walk_up(occupancy, override_waitlist) {
                WalkUp::Sell => {}
                WalkUp::WaitlistFirst => {
                    return Err(Error::conflict(
                        Conflict::WaitlistFirst,
                        format!(
                            "{} people are on the waitlist; sell only with override_waitlist, which is audited",
                            occupancy.waitlisted
                        ),
                    ))
                }
                WalkUp::SoldOut if occupancy.waitlisted > 0 => {
                    return Err(Error::conflict(
                        Conflict::SoldOut,
                        format!(
                            "every seat is taken ({} on the waitlist)",
                            occupancy.waitlisted
                        ),
                    ))
                }
                WalkUp::SoldOut => {
                    return Err(Error::conflict(Conflict::SoldOut, "every seat is taken"))
                }
            }
            let jumped = occupancy.waitlisted > 0;
            let attendee = attendees::insert(tx, attendee_id, &person, now)?;
            let new = registrations::NewRegistration {
                id: reg_id,
                event_seq: event.seq,
                attendee_seq: attendee.seq,
                status: RegStatus::Confirmed,
                ticket_code: Some(&code),
                seated_by_override: jumped,
                now,
            };
            let seq = registrations::insert(tx, &new)?;
            event.confirmed += 1;
            events::save_counts(tx, &event)?;
            let reg = reload_registration(tx, seq)?;
            emit(tx, DomainEventType::RegistrationConfirmed, reg.id, &reg, now)?;
            let target = reg.id.to_string();
            if jumped {
                let detail = format!("seated ahead of {} waiting", occupancy.waitlisted);
                record_audit(tx, &actor, "walkup.override_waitlist", Some(&target), Some(&detail), now)?;
            } else {
                record_audit(tx, &actor, "walkup", Some(&target), None, now)?;
            }
            Ok(WalkUpSale { registration: reg, attendee })
        })
    }

    /// Accepts an open offer: the held seat becomes a confirmed one with a ticket. Accepting twice is
    /// answered with the confirmed registration; an offer that ran out is expired and refused.
    pub fn accept_offer(&self, id: RegistrationId) -> Result<Registration> {
        let answer = self.write_idempotent(None, move |tx, now| {
            let code = TicketCode::from_time_and_random(now, random_bytes());
            let row = registrations::get(tx, id)?.ok_or(Error::NotFound("registration"))?;
            match row.reg.status {
                RegStatus::Confirmed => Ok(Answer::Done(row.reg)),
                RegStatus::Waitlisted | RegStatus::Cancelled => Err(Error::conflict(
                    Conflict::NoOffer,
                    format!(
                        "the registration is {}, with no open offer",
                        row.reg.status.as_str()
                    ),
                )),
                RegStatus::Offered => {
                    let mut event = event_of(tx, row.event_seq)?;
                    let expires = row
                        .reg
                        .offer_expires_at
                        .ok_or_else(|| internal("an offer without expiry"))?;
                    if expires.millis() <= now {
                        expire(tx, row.reg.seq, &mut event, now)?;
                        events::save_counts(tx, &event)?;
                        return Ok(Answer::Expired(expires));
                    }
                    registrations::accept(tx, row.reg.seq, &code, now)?;
                    event.offered -= 1;
                    event.confirmed += 1;
                    event.promotions += 1;
                    events::save_counts(tx, &event)?;
                    let reg = reload_registration(tx, row.reg.seq)?;
                    emit(
                        tx,
                        DomainEventType::RegistrationConfirmed,
                        reg.id,
                        &reg,
                        now,
                    )?;
                    Ok(Answer::Done(reg))
                }
            }
        })?;
        match answer {
            Answer::Done(reg) => Ok(reg),
            Answer::Expired(at) => {
                self.offers_changed.notify_one();
                Err(Error::conflict(
                    Conflict::OfferExpired,
                    format!("the offer ran out at {at}"),
                ))
            }
        }
    }

    /// Declines an open offer: the registration is cancelled and the seat passes to the next in line
    /// in the same transaction. Declining again changes nothing.
    pub fn decline_offer(&self, id: RegistrationId) -> Result<Registration> {
        let reg = self.write_idempotent(None, move |tx, now| {
            let row = registrations::get(tx, id)?.ok_or(Error::NotFound("registration"))?;
            match row.reg.status {
                RegStatus::Cancelled => Ok(row.reg),
                RegStatus::Confirmed | RegStatus::Waitlisted => Err(Error::conflict(
                    Conflict::NoOffer,
                    format!(
                        "the registration is {}, with no open offer",
                        row.reg.status.as_str()
                    ),
                )),
                RegStatus::Offered => {
                    let mut event = event_of(tx, row.event_seq)?;
                    // Declining and running out end the same way: the seat passes on.
                    expire(tx, row.reg.seq, &mut event, now)?;
                    events::save_counts(tx, &event)?;
                    reload_registration(tx, row.reg.seq)
                }
            }
        })?;
        self.offers_changed.notify_one();
        Ok(reg)
    }

    /// Expires every offer that ran out by the app's clock, passing each seat on. Returns how many.
    /// Reads only the expired range of the `registrations_offers` index, never the whole table.
    pub fn expire_offers(&self) -> Result<usize> {
        let n = self.write_idempotent(None, move |tx, now| {
            let due = registrations::expired_offers(tx, now, 1000)?;
            let mut touched: HashMap<i64, Event> = HashMap::new();
            for seq in &due {
                let row = registrations::get_by_seq(tx, *seq)?
                    .ok_or_else(|| internal("offer vanished"))?;
                let event = match touched.entry(row.event_seq) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(event_of(tx, row.event_seq)?)
                    }
                };
                expire(tx, *seq, event, now)?;
            }
            for event in touched.values() {
                events::save_counts(tx, event)?;
            }
            Ok(due.len())
        })?;
        if n > 0 {
            self.offers_changed.notify_one();
        }
        Ok(n)
    }

    /// When the next open offer runs out, if any.
    pub fn next_offer_expiry(&self) -> Result<Option<Timestamp>> {
        Ok(self
            .store
            .read(registrations::next_offer_expiry)?
            .map(Timestamp::from_millis))
    }

    /// Woken whenever offers may have been made or ended, so the expiry timer can re-arm.
    pub fn offers_changed(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.offers_changed.clone()
    }
}

/// Longest the expiry timer sleeps without looking: a safety net against wall-clock jumps.
const OFFER_TIMER_MAX_SLEEP_MS: i64 = 60_000;

/// The offer-expiry timer of a serving box. It expires what is due at once (so offers that ran out
/// while the box was down end right after a restart), then sleeps until the next expiry, read from
/// the `registrations_offers` index, or until a write changes the offers.
pub fn spawn_offer_timer(app: std::sync::Arc<App>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let changed = app.offers_changed();
        loop {
            let a = app.clone();
            let next = tokio::task::spawn_blocking(move || {
                a.expire_offers()?;
                a.next_offer_expiry()
            })
            .await;
            let wait_ms = match next {
                Ok(Ok(Some(at))) => {
                    (at.millis() - app.now().millis()).clamp(0, OFFER_TIMER_MAX_SLEEP_MS)
                }
                Ok(Ok(None)) => OFFER_TIMER_MAX_SLEEP_MS,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "expiring offers failed; retrying shortly");
                    1_000
                }
                Err(e) => {
                    tracing::error!(error = %e, "the offer timer's task failed");
                    1_000
                }
            };
            let wait = std::time::Duration::from_millis(u64::try_from(wait_ms).unwrap_or(1_000));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = changed.notified() => {}
            }
        }
    })
}
