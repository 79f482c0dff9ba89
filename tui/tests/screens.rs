//! Every screen rendered into ratatui's `TestBackend` at 80x24 and 120x40 and snapshotted (insta).
//! The data and the clock are fixed (see `fixtures`), so the snapshots are the same on every run.

mod fixtures;

use crossterm::event::KeyCode;
use fixtures::*;
use ratatui::style::{Color, Modifier};
use tui::{update, DoorResult, Failure, Model, Msg, Options};

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn snap(name: &str, m: &Model) {
    for (w, h) in SIZES {
        let t = render(m, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), t.backend());
    }
}

fn opts() -> Options {
    Options::default()
}

#[test]
fn dashboard() {
    snap("dashboard", &model(opts()));
}

/// Nothing answered for the last 10 s: 0 requests/s, no percentiles, no cache lookups; never a
/// number made up from older traffic.
#[test]
fn dashboard_idle() {
    let mut m = model(opts());
    let frozen = traffic(NOW);
    for s in 1..=11 {
        let at = NOW + s * 1_000;
        let mut d = fixtures::dashboard(at, 400, 7);
        d.traffic = Some(frozen.clone());
        update(&mut m, Msg::Tick { now: at });
        update(
            &mut m,
            Msg::Loaded(tui::Query::Dashboard, Ok(tui::Data::Dashboard(d))),
        );
    }
    snap("dashboard_idle", &m);
}

#[test]
fn dashboard_before_the_first_answer() {
    snap("dashboard_loading", &Model::new(origin(), opts()));
}

#[test]
fn events() {
    snap("events", &on_events(opts()));
}

#[test]
fn events_filtered() {
    let mut m = on_events(opts());
    update(&mut m, key('/'));
    typed(&mut m, "gala");
    snap("events_filtering", &m);
}

#[test]
fn event_detail() {
    snap("detail", &on_detail(opts()));
}

#[test]
fn event_detail_after_a_walk_up() {
    let mut m = on_detail(opts());
    update(&mut m, key('w'));
    typed(&mut m, "Walk In");
    let fx = update(&mut m, code(KeyCode::Enter));
    let Some(tui::Effect::Act(a)) = fx.first().cloned() else {
        panic!("{fx:?}")
    };
    update(
        &mut m,
        Msg::Acted(
            a,
            Ok(tui::Done::Sold {
                name: "Walk In".into(),
                ticket_code: "WXYZ-2345-ABCD-EFGH-IJKL-MNOP-QRST".into(),
            }),
        ),
    );
    snap("detail_sold", &m);
    assert!(text(&m, 120, 40).contains("last walk-up: ticket WXYZ"));
    // Another event's page does not show this event's sale.
    let mut other = detail();
    other.event.id = "e-jazz".into();
    other.event.name = "Jazz Night".into();
    m.detail_id = Some("e-jazz".into());
    update(
        &mut m,
        Msg::Loaded(
            tui::Query::EventDetail {
                id: "e-jazz".into(),
            },
            Ok(tui::Data::EventDetail(other)),
        ),
    );
    let page = text(&m, 120, 40);
    assert!(page.contains("Jazz Night"), "{page}");
    assert!(!page.contains("last walk-up"), "{page}");
}

#[test]
fn walk_up_form() {
    let mut m = on_detail(opts());
    update(&mut m, key('w'));
    typed(&mut m, "Walk In");
    snap("form_walk_up", &m);
}

#[test]
fn event_form_with_an_error() {
    let mut m = on_events(opts());
    update(&mut m, key('e'));
    for _ in 0..3 {
        update(&mut m, code(KeyCode::Tab));
    }
    typed(&mut m, "x");
    update(&mut m, code(KeyCode::Enter));
    snap("form_edit_error", &m);
}

#[test]
fn cancel_registration_confirmation() {
    let mut m = on_detail(opts());
    update(&mut m, key('x'));
    snap("confirm_cancel_registration", &m);
}

#[test]
fn cancel_event_typed_confirmation() {
    let mut m = on_events(opts());
    update(&mut m, key('j'));
    update(&mut m, key('X'));
    typed(&mut m, "New Year");
    update(&mut m, code(KeyCode::Enter));
    snap("confirm_cancel_event", &m);
}

#[test]
fn door_ready() {
    let mut m = on_door(opts());
    typed(&mut m, "ABCD-EF");
    snap("door_ready", &m);
}

#[test]
fn door_admitted() {
    let mut m = on_door(opts());
    scan(
        &mut m,
        "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ01",
        DoorResult::Admitted {
            name: "Ada Lovelace".into(),
            event: "Jazz Night".into(),
            checked_in: 4,
            confirmed: 16,
        },
    );
    snap("door_admitted", &m);
}

#[test]
fn door_refusals() {
    let mut m = on_door(opts());
    scan(
        &mut m,
        "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ01",
        DoorResult::Admitted {
            name: "Ada Lovelace".into(),
            event: "Jazz Night".into(),
            checked_in: 4,
            confirmed: 16,
        },
    );
    scan(&mut m, "NOPE", DoorResult::Unknown);
    scan(
        &mut m,
        "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ09",
        DoorResult::Cancelled,
    );
    scan(
        &mut m,
        "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ01",
        DoorResult::AlreadyCheckedIn {
            at: Some(NOW - 120_000),
        },
    );
    snap("door_already_checked_in", &m);
}

#[test]
fn door_without_an_answer() {
    let mut m = on_door(opts());
    typed(&mut m, "ABCD");
    update(&mut m, code(KeyCode::Enter));
    update(
        &mut m,
        Msg::Acted(
            tui::Action::CheckIn {
                code: "ABCD".into(),
            },
            Err(Failure::new(
                "unreachable",
                "http://10.0.0.2:8080: connection refused",
            )),
        ),
    );
    snap("door_no_answer", &m);
}

#[test]
fn deliveries() {
    snap("deliveries", &on_deliveries(opts()));
}

#[test]
fn audit() {
    snap("audit", &on_audit(opts()));
}

#[test]
fn help() {
    let mut m = on_detail(opts());
    update(&mut m, key('?'));
    snap("help_detail", &m);
}

#[test]
fn help_read_only() {
    let mut m = on_events(Options {
        read_only: true,
        color: true,
    });
    update(&mut m, key('?'));
    snap("help_events_read_only", &m);
}

#[test]
fn palette() {
    let mut m = on_events(opts());
    update(&mut m, key(':'));
    typed(&mut m, "ev");
    snap("palette", &m);
}

#[test]
fn box_unreachable() {
    let mut m = model(opts());
    update(&mut m, Msg::Tick { now: NOW + 1_000 });
    update(
        &mut m,
        Msg::Loaded(
            tui::Query::Dashboard,
            Err(Failure::new(
                "unreachable",
                "http://10.0.0.2:8080: connection refused",
            )),
        ),
    );
    snap("dashboard_unreachable", &m);
}

/// A refusal is an answer: a console whose token lacks the role says so, not "no answer".
#[test]
fn box_refuses_a_screen() {
    let mut m = model(opts());
    update(&mut m, Msg::Tick { now: NOW + 1_000 });
    update(
        &mut m,
        Msg::Loaded(
            tui::Query::Dashboard,
            Err(Failure::new(
                "forbidden",
                "this route needs the admin role; the token is operator",
            )),
        ),
    );
    let page = text(&m, 120, 40);
    assert!(
        page.contains("✗ the box refused: this route needs the admin role"),
        "{page}"
    );
    assert!(!page.contains("no answer"), "{page}");
}

#[test]
fn terminal_too_small() {
    let m = model(opts());
    insta::assert_snapshot!("too_small_60x15", render(&m, 60, 15).backend());
}

/// NO_COLOR: not one cell carries a colour, and the states are still there in words.
#[test]
fn no_color_draws_no_colour_and_keeps_every_state_in_words() {
    let mut door = on_door(Options {
        read_only: false,
        color: false,
    });
    scan(
        &mut door,
        "ABCD",
        DoorResult::AlreadyCheckedIn { at: Some(NOW) },
    );
    let screens = [
        model(Options {
            read_only: false,
            color: false,
        }),
        on_events(Options {
            read_only: false,
            color: false,
        }),
        on_deliveries(Options {
            read_only: false,
            color: false,
        }),
        door,
    ];
    for m in &screens {
        for (w, h) in SIZES {
            let t = render(m, w, h);
            for cell in t.backend().buffer().content() {
                assert_eq!(
                    (cell.fg, cell.bg),
                    (Color::Reset, Color::Reset),
                    "a coloured cell: {cell:?}"
                );
            }
        }
    }
    assert!(text(&screens[1], 120, 40).contains("cancelled"));
    assert!(text(&screens[2], 120, 40).contains("dead"));
    assert!(text(&screens[3], 120, 40).contains("ALREADY CHECKED IN"));
    // With colour on, the banner is coloured and says the same words.
    let mut coloured = on_door(opts());
    scan(
        &mut coloured,
        "ABCD",
        DoorResult::AlreadyCheckedIn { at: Some(NOW) },
    );
    let t = render(&coloured, 120, 40);
    assert!(t
        .backend()
        .buffer()
        .content()
        .iter()
        .any(|c| c.bg == Color::Red));
    assert!(text(&coloured, 120, 40).contains("ALREADY CHECKED IN"));
}

/// The selected row is marked by a symbol and reverse video, not by colour.
#[test]
fn the_selection_is_marked_without_colour() {
    let m = on_events(Options {
        read_only: false,
        color: false,
    });
    let screen = text(&m, 80, 24);
    assert!(screen.contains("▶ Jazz Night"), "{screen}");
    let t = render(&m, 80, 24);
    let reversed = t
        .backend()
        .buffer()
        .content()
        .iter()
        .any(|c| c.modifier.contains(Modifier::REVERSED));
    assert!(reversed);
}
