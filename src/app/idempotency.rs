//! `Idempotency-Key` (DESIGN.md section 3): the first response of a creating write is stored for 24
//! hours per (token, key), in the same transaction as the write itself, so a retry after a crash either
//! finds both or neither. A retry replays it byte for byte; the same key with a different request is
//! refused; a retry while the first is still running is refused (the in-flight set below).
//!
//! A stored response may carry an attendee's name, email or phone, so it is stored with the id of
//! the attendee it is about. Erasing that attendee blanks it in the same transaction: the key then
//! answers `Erased` (the API's 410 `attendee_erased`) instead of replaying personal data, and a
//! retry cannot run the write again (a second walk-up sale, say).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::{App, CheckIn, Error, Result, WalkUpSale};
use crate::domain::{Attendee, AttendeeId, Registration};
use crate::store::idempotency::{self, StoredResponse};

/// A response as it goes on the wire; what `render` produces and a replay returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// The identity of one idempotent request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdemKey {
    pub token_seq: i64,
    pub key: String,
    /// A hash of what the request asks for (method, path, body): a different request under the same
    /// key is a client bug, answered 422.
    pub fingerprint: String,
}

/// How to begin an idempotent request.
#[derive(Debug)]
pub enum IdemStart {
    /// First time: run it; the guard marks it in flight until dropped.
    Fresh(IdemGuard),
    /// Seen before with the same request: send this.
    Replay(Replay),
    /// Seen before with a different request.
    Mismatch,
    /// Seen before, but the attendee the response was about has since been erased.
    Erased,
}

/// Marks a key in flight; dropping it (after the write has committed and been answered) frees it.
#[derive(Debug)]
pub struct IdemGuard {
    inflight: Arc<Mutex<HashSet<(i64, String)>>>,
    pub(super) key: IdemKey,
}

impl Drop for IdemGuard {
    fn drop(&mut self) {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(self.key.token_seq, self.key.key.clone()));
    }
}

/// What a use case needs to store its first response: the key, how the API renders the outcome,
/// and which attendee that outcome is about.
pub struct Idem<T> {
    pub guard: IdemGuard,
    pub render: fn(&Result<T>) -> Replay,
    pub about: fn(&T) -> Option<AttendeeId>,
}

/// The attendee a creating write's answer is about, whose erasure must blank it (see the module).
pub trait AboutAttendee {
    fn about_attendee(&self) -> Option<AttendeeId>;
}

impl AboutAttendee for Attendee {
    fn about_attendee(&self) -> Option<AttendeeId> {
        Some(self.id)
    }
}

impl AboutAttendee for Registration {
    fn about_attendee(&self) -> Option<AttendeeId> {
        Some(self.attendee_id)
    }
}

impl AboutAttendee for CheckIn {
    fn about_attendee(&self) -> Option<AttendeeId> {
        Some(self.attendee.id)
    }
}

impl AboutAttendee for WalkUpSale {
    fn about_attendee(&self) -> Option<AttendeeId> {
        Some(self.attendee.id)
    }
}

impl App {
    /// Looks the key up. A stored answer is replayed without taking the in-flight mark, so replays never
    /// block each other. Otherwise the mark is taken and the store is read again: the first request
    /// releases its mark only after its commit, so a retry sees either the mark or the stored answer.
    pub fn idem_begin(&self, key: IdemKey) -> Result<IdemStart> {
        if let Some(done) = self.idem_lookup(&key)? {
            return Ok(done);
        }
        {
            let mut set = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            if !set.insert((key.token_seq, key.key.clone())) {
                return Err(Error::conflict(
                    super::Conflict::IdempotencyKeyInFlight,
                    "a request with this Idempotency-Key is still being processed; retry shortly",
                ));
            }
        }
        let guard = IdemGuard {
            inflight: self.inflight.clone(),
            key,
        };
        match self.idem_lookup(&guard.key)? {
            Some(done) => Ok(done),
            None => Ok(IdemStart::Fresh(guard)),
        }
    }

    /// What the key already answered, without marking it in flight: `None` when it is unused (or
    /// only in flight). Never `Fresh`.
    pub fn idem_stored(&self, key: &IdemKey) -> Result<Option<IdemStart>> {
        self.idem_lookup(key)
    }

    fn idem_lookup(&self, key: &IdemKey) -> Result<Option<IdemStart>> {
        let not_before = self.now().millis() - self.opts.idempotency_ttl_ms;
        let stored = self
            .store
            .read(|c| idempotency::get(c, key.token_seq, &key.key, not_before))?;
        Ok(stored.map(|s| {
            if s.fingerprint == idempotency::ERASED {
                IdemStart::Erased
            } else if s.fingerprint == key.fingerprint {
                IdemStart::Replay(Replay {
                    status: s.status,
                    content_type: s.content_type,
                    body: s.body,
                })
            } else {
                IdemStart::Mismatch
            }
        }))
    }
}

/// Stores `result` rendered, when it is final (not a transient failure).
pub(super) fn store_first_response<T>(
    tx: &crate::store::Tx<'_>,
    key: &IdemKey,
    render: fn(&Result<T>) -> Replay,
    about: fn(&T) -> Option<AttendeeId>,
    result: &Result<T>,
    now: i64,
) -> Result<()> {
    if let Err(e) = result {
        if !e.is_final() {
            return Ok(());
        }
    }
    let r = render(result);
    let stored = StoredResponse {
        fingerprint: key.fingerprint.clone(),
        status: r.status,
        content_type: r.content_type,
        body: r.body,
    };
    let about = result.as_ref().ok().and_then(about).map(|a| a.to_string());
    idempotency::put(tx, key.token_seq, &key.key, &stored, about.as_deref(), now)?;
    Ok(())
}
