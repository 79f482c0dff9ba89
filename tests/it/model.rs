//! Property test: random sequences of register / cancel / capacity changes against a simple in-memory
//! model of one event, checking I1-I4 (and every status and position) after every step. Runs on the
//! real App over a real SQLite file.

use std::collections::VecDeque;

use boxoffice::app::{Actor, App, AppOptions, Error, PageRequest};
use boxoffice::domain::{
    AttendeeId, Capacity, EventId, EventPatch, NewAttendee, NewEvent, RegStatus, RegistrationId,
};
use proptest::prelude::*;

const PEOPLE: usize = 10;

#[derive(Debug, Clone)]
enum Op {
    Register(usize),
    Cancel(usize),
    SetCapacity(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..PEOPLE).prop_map(Op::Register),
        3 => (0..PEOPLE).prop_map(Op::Cancel),
        1 => (0i64..8).prop_map(Op::SetCapacity),
    ]
}

/// The model: who holds a seat, who waits in which order.
#[derive(Debug, Default)]
struct Model {
    capacity: i64,
    confirmed: Vec<usize>,
    waiting: VecDeque<usize>,
}

impl Model {
    fn promote(&mut self) {
        while (self.confirmed.len() as i64) < self.capacity {
            match self.waiting.pop_front() {
                Some(p) => self.confirmed.push(p),
                None => break,
            }
        }
    }

    fn active(&self, p: usize) -> bool {
        self.confirmed.contains(&p) || self.waiting.contains(&p)
    }
}

struct Real {
    _dir: tempfile::TempDir,
    app: App,
    event: EventId,
    people: Vec<AttendeeId>,
    /// The active registration of each person, if any.
    regs: Vec<Option<RegistrationId>>,
}

fn setup(capacity: i64) -> Real {
    let dir = tempfile::tempdir().expect("dir");
    let app = App::open(&dir.path().join("m.db"), AppOptions::default()).expect("open");
    let actor = Actor::local("model");
    let new = NewEvent::parse(
        "M",
        "V",
        None,
        "2030-01-01T00:00:00Z",
        None,
        capacity,
        Some(true),
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
            .expect("attendee");
            app.create_attendee(a, None).expect("create attendee").id
        })
        .collect();
    Real {
        _dir: dir,
        app,
        event,
        people,
        regs: vec![None; PEOPLE],
    }
}

fn apply(m: &mut Model, r: &mut Real, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Register(p) => {
            let got = r.app.register(r.event, r.people[p], None);
            if m.active(p) {
                prop_assert!(
                    matches!(got, Err(Error::Conflict { .. })),
                    "double registration accepted: {got:?}"
                );
            } else {
                let reg = got.map_err(|e| TestCaseError::fail(format!("register failed: {e}")))?;
                if (m.confirmed.len() as i64) < m.capacity && m.waiting.is_empty() {
                    prop_assert_eq!(reg.status, RegStatus::Confirmed);
                    m.confirmed.push(p);
                } else {
                    prop_assert_eq!(reg.status, RegStatus::Waitlisted);
                    m.waiting.push_back(p);
                    prop_assert_eq!(reg.position, Some(m.waiting.len() as i64));
                }
                r.regs[p] = Some(reg.id);
            }
        }
        Op::Cancel(p) => {
            let Some(id) = r.regs[p] else { return Ok(()) };
            let reg = r
                .app
                .cancel_registration(id)
                .map_err(|e| TestCaseError::fail(format!("cancel: {e}")))?;
            prop_assert_eq!(reg.status, RegStatus::Cancelled);
            m.confirmed.retain(|&q| q != p);
            m.waiting.retain(|&q| q != p);
            m.promote();
            r.regs[p] = None;
        }
        Op::SetCapacity(c) => {
            let patch = EventPatch {
                capacity: Some(Capacity::parse(c).expect("capacity")),
                ..Default::default()
            };
            let got = r.app.update_event(&Actor::local("model"), r.event, patch);
            if c < m.confirmed.len() as i64 {
                prop_assert!(
                    matches!(got, Err(Error::Conflict { .. })),
                    "capacity below confirmed accepted"
                );
            } else {
                got.map_err(|e| TestCaseError::fail(format!("capacity: {e}")))?;
                m.capacity = c;
                m.promote();
            }
        }
    }
    Ok(())
}

/// The real state equals the model, and the invariants hold over the whole file.
fn compare(m: &Model, r: &Real) -> Result<(), TestCaseError> {
    let e = r
        .app
        .get_event(r.event, boxoffice::app::Visibility::Staff)
        .expect("event");
    prop_assert_eq!(e.capacity.get(), m.capacity);
    prop_assert_eq!(e.confirmed, m.confirmed.len() as i64);
    prop_assert_eq!(e.waitlisted, m.waiting.len() as i64);
    prop_assert!(e.confirmed <= e.capacity.get(), "I1");
    for p in 0..PEOPLE {
        let Some(id) = r.regs[p] else { continue };
        let reg = r.app.get_registration(id).expect("registration");
        if m.confirmed.contains(&p) {
            prop_assert_eq!(reg.status, RegStatus::Confirmed);
            prop_assert!(reg.ticket_code.is_some());
        } else {
            let pos = m
                .waiting
                .iter()
                .position(|&q| q == p)
                .expect("active in the model") as i64
                + 1;
            prop_assert_eq!(reg.status, RegStatus::Waitlisted);
            prop_assert_eq!(reg.position, Some(pos), "I3: position follows join order");
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
    if e.confirmed < e.capacity.get() {
        prop_assert_eq!(e.waitlisted, 0, "I4: no idle seat while people wait");
    }
    let report = r.app.check().expect("check");
    prop_assert!(report.ok(), "check: {:?}", report.violations);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn seat_invariants_hold_after_every_step(capacity in 0i64..5, ops in proptest::collection::vec(op(), 1..40)) {
        let mut real = setup(capacity);
        let mut model = Model { capacity, ..Model::default() };
        for op in &ops {
            apply(&mut model, &mut real, op)?;
            compare(&model, &real)?;
        }
    }
}
