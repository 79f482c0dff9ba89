//! Property test: random sequences of register / cancel / capacity changes / waitlist open and close,
//! and, for events promoted by offer, accept / decline / the clock running offers out, against a
//! simple in-memory model of one event. After every step the real state must equal the model and
//! invariants I1-I4 must hold (offers count as occupied seats). Runs on the real App over a real
//! SQLite file, with a manual clock.

use std::collections::VecDeque;
use std::sync::Arc;

use boxoffice::app::{
    Actor, App, AppOptions, Conflict, Error, ManualClock, PageRequest, Visibility,
};
use boxoffice::domain::{
    AttendeeId, Capacity, EventId, EventPatch, NewAttendee, NewEvent, RegStatus, RegistrationId,
    Timestamp,
};
use proptest::prelude::*;

const PEOPLE: usize = 5;
const OFFER_MINUTES: i64 = 10;
const OFFER_MS: i64 = OFFER_MINUTES * 60_000;

#[derive(Debug, Clone)]
enum Op {
    Register(usize),
    Cancel(usize),
    SetCapacity(i64),
    Waitlist(bool),
    Accept(usize),
    Decline(usize),
    /// Minutes pass on the clock (offers may lapse before the sweep notices).
    Advance(i64),
    /// The expiry sweep runs.
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..PEOPLE).prop_map(Op::Register),
        3 => (0..PEOPLE).prop_map(Op::Cancel),
        1 => (0i64..8).prop_map(Op::SetCapacity),
        1 => any::<bool>().prop_map(Op::Waitlist),
        2 => (0..PEOPLE).prop_map(Op::Accept),
        1 => (0..PEOPLE).prop_map(Op::Decline),
        2 => (1i64..15).prop_map(Op::Advance),
        1 => Just(Op::Sweep),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Seat {
    Confirmed,
    Offered(i64),
}

/// The model: who holds a seat (or an offer of one), who waits in which order.
#[derive(Debug)]
struct Model {
    offer_policy: bool,
    capacity: i64,
    open: bool,
    now: i64,
    seats: Vec<(usize, Seat)>,
    waiting: VecDeque<usize>,
}

impl Model {
    fn held(&self) -> i64 {
        self.seats.len() as i64
    }

    fn promote(&mut self) {
        while self.open && self.held() < self.capacity {
            let Some(p) = self.waiting.pop_front() else {
                break;
            };
            let seat = if self.offer_policy {
                Seat::Offered(self.now + OFFER_MS)
            } else {
                Seat::Confirmed
            };
            self.seats.push((p, seat));
        }
    }

    /// Answers to offers are mostly given by people who hold one: the `n`-th holder if there is any,
    /// else person `n` (whose answer then meets "no open offer").
    fn offer_holder(&self, n: usize) -> usize {
        let holders: Vec<usize> = self
            .seats
            .iter()
            .filter(|(_, s)| matches!(s, Seat::Offered(_)))
            .map(|(p, _)| *p)
            .collect();
        if holders.is_empty() || n.is_multiple_of(4) {
            n
        } else {
            holders[n % holders.len()]
        }
    }

    fn seat(&self, p: usize) -> Option<Seat> {
        self.seats.iter().find(|(q, _)| *q == p).map(|(_, s)| *s)
    }

    fn leave(&mut self, p: usize) {
        self.seats.retain(|(q, _)| *q != p);
        self.waiting.retain(|&q| q != p);
    }

    /// Expires due offers one by one, earliest first, each freed seat passing on at once.
    fn expire(&mut self) {
        loop {
            let due = self
                .seats
                .iter()
                .filter_map(|(p, s)| match s {
                    Seat::Offered(at) if *at <= self.now => Some((*at, *p)),
                    _ => None,
                })
                .min();
            let Some((_, p)) = due else { break };
            self.leave(p);
            self.promote();
        }
    }
}

struct Real {
    _dir: tempfile::TempDir,
    app: App,
    clock: Arc<ManualClock>,
    event: EventId,
    people: Vec<AttendeeId>,
    /// Each person's latest registration.
    regs: Vec<Option<RegistrationId>>,
}

const START: &str = "2030-01-01T00:00:00Z";

fn setup(capacity: i64, offer_policy: bool) -> Real {
    let dir = tempfile::tempdir().expect("dir");
    let clock = Arc::new(ManualClock::new(Timestamp::parse(START).expect("time")));
    let app = App::open_with_clock(
        &dir.path().join("m.db"),
        AppOptions::default(),
        clock.clone(),
    )
    .expect("open");
    let actor = Actor::local("model");
    let policy = if offer_policy { "offer" } else { "direct" };
    let new = NewEvent::parse(
        "M",
        "V",
        None,
        START,
        None,
        capacity,
        Some(true),
        Some(policy),
        Some(OFFER_MINUTES),
    )
    .expect("event");
    let event = app.create_event(&actor, new).expect("create").id;
    app.publish_event(&actor, event).expect("publish");
    let people = (0..PEOPLE)
        .map(|i| {
            let a = NewAttendee::parse(
                &format!("P{i}"),
                Some(&format!("p{i}@example.org")),
                None,
                true,
            )
            .expect("a");
            app.create_attendee(a, None).expect("create attendee").id
        })
        .collect();
    Real {
        _dir: dir,
        app,
        clock,
        event,
        people,
        regs: vec![None; PEOPLE],
    }
}

fn conflict(
    got: &Result<impl std::fmt::Debug, Error>,
    kind: Conflict,
) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(got, Err(Error::Conflict { kind: k, .. }) if *k == kind),
        "expected {kind:?}, got {got:?}"
    );
    Ok(())
}

fn ok<T>(got: Result<T, Error>, what: &str) -> Result<T, TestCaseError> {
    got.map_err(|e| TestCaseError::fail(format!("{what}: {e:?}")))
}

fn apply(m: &mut Model, r: &mut Real, op: &Op) -> Result<(), TestCaseError> {
    let actor = Actor::local("model");
    match *op {
        Op::Register(p) => {
            let got = r.app.register(r.event, r.people[p], None);
            if m.seat(p).is_some() || m.waiting.contains(&p) {
                conflict(&got, Conflict::AlreadyRegistered)?;
            } else if m.held() < m.capacity && m.waiting.is_empty() {
                let reg = ok(got, "register")?;
                prop_assert_eq!(reg.status, RegStatus::Confirmed);
                m.seats.push((p, Seat::Confirmed));
                r.regs[p] = Some(reg.id);
            } else if m.open {
                let reg = ok(got, "register")?;
                prop_assert_eq!(reg.status, RegStatus::Waitlisted);
                m.waiting.push_back(p);
                prop_assert_eq!(reg.position, Some(m.waiting.len() as i64));
                r.regs[p] = Some(reg.id);
            } else {
                conflict(&got, Conflict::SoldOut)?;
            }
        }
        Op::Cancel(p) => {
            let Some(id) = r.regs[p] else { return Ok(()) };
            let reg = ok(
                r.app
                    .cancel_registration(&boxoffice::app::Actor::local("model"), id),
                "cancel",
            )?;
            prop_assert_eq!(reg.status, RegStatus::Cancelled);
            m.leave(p);
            m.promote();
        }
        Op::SetCapacity(c) => {
            let patch = EventPatch {
                capacity: Some(Capacity::parse(c).expect("capacity")),
                ..Default::default()
            };
            let got = r.app.update_event(&actor, r.event, patch);
            if c < m.held() {
                conflict(&got, Conflict::CapacityBelowConfirmed)?;
            } else {
                ok(got, "capacity")?;
                m.capacity = c;
                m.promote();
            }
        }
        Op::Waitlist(open) => {
            let patch = EventPatch {
                waitlist_enabled: Some(open),
                ..Default::default()
            };
            ok(r.app.update_event(&actor, r.event, patch), "waitlist")?;
            m.open = open;
            m.promote();
        }
        Op::Accept(p) => {
            let p = m.offer_holder(p);
            let Some(id) = r.regs[p] else { return Ok(()) };
            let got = r.app.accept_offer(id);
            match m.seat(p) {
                Some(Seat::Confirmed) => {
                    prop_assert_eq!(ok(got, "accept")?.status, RegStatus::Confirmed)
                }
                Some(Seat::Offered(at)) if at <= m.now => {
                    conflict(&got, Conflict::OfferExpired)?;
                    m.leave(p);
                    m.promote();
                }
                Some(Seat::Offered(_)) => {
                    let reg = ok(got, "accept")?;
                    prop_assert_eq!(reg.status, RegStatus::Confirmed);
                    prop_assert!(reg.ticket_code.is_some());
                    m.seats.retain(|(q, _)| *q != p);
                    m.seats.push((p, Seat::Confirmed));
                }
                None => conflict(&got, Conflict::NoOffer)?,
            }
        }
        Op::Decline(p) => {
            let p = m.offer_holder(p);
            let Some(id) = r.regs[p] else { return Ok(()) };
            let got = r.app.decline_offer(id);
            match m.seat(p) {
                Some(Seat::Offered(_)) => {
                    prop_assert_eq!(ok(got, "decline")?.status, RegStatus::Cancelled);
                    m.leave(p);
                    m.promote();
                }
                Some(Seat::Confirmed) => conflict(&got, Conflict::NoOffer)?,
                None if m.waiting.contains(&p) => conflict(&got, Conflict::NoOffer)?,
                None => prop_assert_eq!(ok(got, "decline")?.status, RegStatus::Cancelled),
            }
        }
        Op::Advance(minutes) => {
            r.clock.advance_millis(minutes * 60_000);
            m.now += minutes * 60_000;
        }
        Op::Sweep => {
            ok(r.app.expire_offers(), "expire")?;
            m.expire();
        }
    }
    Ok(())
}

/// The real state equals the model, and the invariants hold over the whole file.
fn compare(m: &Model, r: &Real) -> Result<(), TestCaseError> {
    let e = r.app.get_event(r.event, Visibility::Staff).expect("event");
    let offered = m
        .seats
        .iter()
        .filter(|(_, s)| matches!(s, Seat::Offered(_)))
        .count() as i64;
    prop_assert_eq!(e.capacity.get(), m.capacity);
    prop_assert_eq!(e.confirmed, m.held() - offered);
    prop_assert_eq!(e.offered, offered);
    prop_assert_eq!(e.waitlisted, m.waiting.len() as i64);
    prop_assert!(e.confirmed + e.offered <= e.capacity.get(), "I1");
    for p in 0..PEOPLE {
        let Some(id) = r.regs[p] else { continue };
        let reg = r.app.get_registration(id).expect("registration");
        match (m.seat(p), m.waiting.iter().position(|&q| q == p)) {
            (Some(Seat::Confirmed), _) => {
                prop_assert_eq!(reg.status, RegStatus::Confirmed);
                prop_assert!(reg.ticket_code.is_some());
            }
            (Some(Seat::Offered(at)), _) => {
                prop_assert_eq!(reg.status, RegStatus::Offered);
                prop_assert_eq!(
                    reg.offer_expires_at.map(|t| t.millis() - START_MS),
                    Some(at)
                );
            }
            (None, Some(i)) => {
                prop_assert_eq!(reg.status, RegStatus::Waitlisted);
                prop_assert_eq!(
                    reg.position,
                    Some(i as i64 + 1),
                    "I3: position follows join order"
                );
            }
            (None, None) => prop_assert_eq!(reg.status, RegStatus::Cancelled),
        }
        // The position route answers from the read cache (the registration's keys and the event's
        // waitlist order the writer keeps up to date) or from the file: either way the same.
        let view = r.app.position(id).expect("position");
        prop_assert_eq!(view.status, reg.status.as_str());
        prop_assert_eq!(view.position, reg.position);
        prop_assert_eq!(view.waitlist_length, m.waiting.len() as i64);
        if let Some(cached) = r.app.position_cached(id) {
            prop_assert_eq!(cached.status, reg.status.as_str());
            prop_assert_eq!(cached.position, reg.position, "the cached position");
            prop_assert_eq!(cached.waitlist_length, m.waiting.len() as i64);
        }
    }
    let list = r
        .app
        .waitlist(
            r.event,
            &PageRequest {
                after: None,
                limit: 500,
            },
        )
        .expect("waitlist");
    let positions: Vec<i64> = list.items.iter().filter_map(|x| x.position).collect();
    prop_assert_eq!(
        positions,
        (1..=m.waiting.len() as i64).collect::<Vec<_>>(),
        "I3: 1..n without gaps"
    );
    if e.waitlist_enabled && e.confirmed + e.offered < e.capacity.get() {
        prop_assert_eq!(e.waitlisted, 0, "I4: no idle seat while people wait");
    }
    let report = r.app.check().expect("check");
    prop_assert!(report.ok(), "check: {:?}", report.violations);
    Ok(())
}

const START_MS: i64 = 1_893_456_000_000;

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn seat_invariants_hold_after_every_step(
        capacity in 0i64..5,
        offer_policy in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        prop_assert_eq!(Timestamp::parse(START).map(|t| t.millis()), Some(START_MS));
        let mut real = setup(capacity, offer_policy);
        let mut model = Model { offer_policy, capacity, open: true, now: 0, seats: vec![], waiting: VecDeque::new() };
        for op in &ops {
            apply(&mut model, &mut real, op)?;
            compare(&model, &real)?;
        }
    }
}

#[test]
fn an_answer_to_a_lapsed_offer_before_the_sweep_is_refused() {
    let mut real = setup(1, true);
    let mut model = Model {
        offer_policy: true,
        capacity: 1,
        open: true,
        now: 0,
        seats: vec![],
        waiting: VecDeque::new(),
    };
    for op in [
        Op::Register(0),
        Op::Register(1),
        Op::Cancel(0),
        Op::Advance(11),
        Op::Accept(1),
    ] {
        apply(&mut model, &mut real, &op).expect("step");
        compare(&model, &real).expect("compare");
    }
}
