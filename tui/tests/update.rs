//! `update` without a terminal: navigation, filters, confirmations, the door input, read-only.

mod fixtures;

use crossterm::event::KeyCode;
use fixtures::*;
use tui::keys::Screen;
use tui::model::{Counter, Overlay};
use tui::{
    update, Action, AuditFilter, Data, Done, DoorResult, Effect, EventChanges, EventState, Failure,
    Msg, Options, Query,
};

fn opts() -> Options {
    Options::default()
}

#[test]
fn number_keys_tab_and_esc_move_between_screens() {
    let mut m = model(opts());
    assert_eq!(m.screen, Screen::Dashboard);
    let fx = update(&mut m, key('2'));
    assert_eq!(m.screen, Screen::Events);
    assert!(fx.contains(&Effect::Load(Query::Events)), "{fx:?}");
    update(&mut m, code(KeyCode::Tab));
    assert_eq!(m.screen, Screen::Door);
    update(&mut m, code(KeyCode::BackTab));
    update(&mut m, code(KeyCode::BackTab));
    assert_eq!(m.screen, Screen::Dashboard);
    update(&mut m, code(KeyCode::BackTab));
    assert_eq!(m.screen, Screen::Audit, "shift-tab wraps around");
    update(&mut m, code(KeyCode::Esc));
    assert_eq!(m.screen, Screen::Dashboard, "esc goes back");
}

#[test]
fn vim_keys_and_arrows_move_the_selection_within_the_list() {
    let mut m = on_events(opts());
    assert_eq!(m.events_sel, 0);
    update(&mut m, key('j'));
    update(&mut m, code(KeyCode::Down));
    assert_eq!(m.events_sel, 2);
    update(&mut m, key('k'));
    assert_eq!(m.events_sel, 1);
    update(&mut m, key('G'));
    assert_eq!(m.events_sel, 3);
    update(&mut m, key('j'));
    assert_eq!(m.events_sel, 3, "stops at the last row");
    update(&mut m, key('g'));
    update(&mut m, code(KeyCode::Up));
    assert_eq!(m.events_sel, 0, "stops at the first row");
}

#[test]
fn enter_opens_the_selected_event_and_esc_returns_to_the_list() {
    let mut m = on_events(opts());
    update(&mut m, key('j'));
    let fx = update(&mut m, code(KeyCode::Enter));
    assert_eq!(m.screen, Screen::Detail);
    assert_eq!(m.detail_id.as_deref(), Some("e-gala"));
    assert!(fx.contains(&Effect::Load(Query::EventDetail {
        id: "e-gala".into()
    })));
    update(&mut m, code(KeyCode::Esc));
    assert_eq!(m.screen, Screen::Events);
    assert_eq!(m.events_sel, 1, "the list keeps its place");
}

#[test]
fn the_selection_stays_on_its_event_when_rows_arrive_above_it() {
    let mut m = on_events(opts());
    update(&mut m, key('j'));
    assert_eq!(m.visible_events()[m.events_sel].id, "e-gala");
    // Another desk creates an event that sorts first; the reload must not move the selection (and
    // the next `e` or `c`) onto a different event.
    let mut rows = events();
    let mut early = rows[0].clone();
    early.id = "e-early".into();
    early.name = "Early Bird".into();
    rows.insert(0, early);
    update(
        &mut m,
        Msg::Loaded(Query::Events, Ok(Data::Events(rows.clone()))),
    );
    assert_eq!(m.visible_events()[m.events_sel].id, "e-gala");
    // A row that is gone leaves the selection in place, inside the list.
    rows.retain(|e| e.id != "e-gala");
    update(&mut m, Msg::Loaded(Query::Events, Ok(Data::Events(rows))));
    assert!(m.events_sel < m.visible_events().len());
}

#[test]
fn a_page_for_another_event_arriving_late_is_dropped() {
    let mut m = on_detail(opts());
    let mut other = detail();
    other.event.id = "e-jazz".into();
    other.event.name = "Jazz Night".into();
    update(
        &mut m,
        Msg::Loaded(
            Query::EventDetail {
                id: "e-jazz".into(),
            },
            Ok(Data::EventDetail(other)),
        ),
    );
    assert_eq!(
        m.detail.as_ref().map(|d| d.event.name.as_str()),
        Some("New Year's Gala")
    );
}

#[test]
fn slash_filters_the_list_enter_keeps_it_esc_clears_it() {
    let mut m = on_events(opts());
    update(&mut m, key('/'));
    assert!(m.editing_filter);
    typed(&mut m, "gala");
    let names: Vec<_> = m.visible_events().iter().map(|e| e.name.clone()).collect();
    assert_eq!(names, ["New Year's Gala"]);
    update(&mut m, code(KeyCode::Enter));
    assert!(!m.editing_filter);
    assert_eq!(m.visible_events().len(), 1, "the filter stays after enter");
    // Keys act again once the filter is kept: enter opens the one match.
    update(&mut m, code(KeyCode::Enter));
    assert_eq!(m.detail_id.as_deref(), Some("e-gala"));
    update(&mut m, code(KeyCode::Esc));
    update(&mut m, key('/'));
    update(&mut m, code(KeyCode::Esc));
    assert_eq!(
        m.visible_events().len(),
        4,
        "esc while filtering clears the filter"
    );
    // Status words match too.
    update(&mut m, key('/'));
    typed(&mut m, "draft");
    assert_eq!(m.visible_events().len(), 1);
    assert_eq!(m.visible_events()[0].status, EventState::Draft);
    // q is text in a filter; ctrl-c still quits.
    typed(&mut m, "q");
    assert!(!m.quit);
    assert_eq!(update(&mut m, ctrl('c')), [Effect::Quit]);
}

#[test]
fn the_audit_filter_sends_actor_and_action_to_the_box() {
    let mut m = on_audit(opts());
    update(&mut m, key('/'));
    typed(&mut m, "actor:admin action:event publish");
    let fx = update(&mut m, code(KeyCode::Enter));
    let want = AuditFilter {
        actor: Some("admin".into()),
        action: Some("event".into()),
    };
    assert!(
        fx.contains(&Effect::Load(Query::Audit(want.clone()))),
        "{fx:?}"
    );
    // The answer for the new filter replaces the rows; words without a prefix filter here.
    let rows: Vec<_> = audit().into_iter().filter(|a| a.actor == "admin").collect();
    update(
        &mut m,
        Msg::Loaded(Query::Audit(want), Ok(Data::Audit(rows))),
    );
    let shown: Vec<_> = m.visible_audit().iter().map(|a| a.action.clone()).collect();
    assert_eq!(shown, ["event.publish"]);
}

#[test]
fn cancelling_an_event_needs_its_name_typed_exactly() {
    let mut m = on_events(opts());
    update(&mut m, key('j'));
    assert!(update(&mut m, key('X')).is_empty());
    let Some(Overlay::Confirm(c)) = &m.overlay else {
        panic!("no confirmation: {:?}", m.overlay)
    };
    assert_eq!(c.lines[0], "Cancel 24 registrations of New Year's Gala?");
    assert_eq!(c.expect.as_deref(), Some("New Year's Gala"));
    typed(&mut m, "y");
    assert!(
        update(&mut m, code(KeyCode::Enter)).is_empty(),
        "a wrong name cancels nothing"
    );
    let Some(Overlay::Confirm(c)) = &m.overlay else {
        panic!("the confirmation closed")
    };
    assert!(c.mismatch);
    update(&mut m, code(KeyCode::Backspace));
    typed(&mut m, "New Year's Gala");
    let fx = update(&mut m, code(KeyCode::Enter));
    assert_eq!(
        fx,
        [Effect::Act(Action::CancelEvent {
            id: "e-gala".into()
        })]
    );
    assert!(m.overlay.is_none());
    // The answer is reported and everything shown is asked for again.
    let fx = update(
        &mut m,
        Msg::Acted(
            Action::CancelEvent {
                id: "e-gala".into(),
            },
            Ok(Done::Event(events()[1].clone())),
        ),
    );
    assert_eq!(
        m.status.as_ref().map(|s| s.text.as_str()),
        Some("New Year's Gala cancelled with 24 registrations")
    );
    assert!(fx.contains(&Effect::Load(Query::Events)));
}

#[test]
fn esc_leaves_a_typed_confirmation_without_changing_anything() {
    let mut m = on_events(opts());
    update(&mut m, key('X'));
    typed(&mut m, "Jazz Night");
    assert!(update(&mut m, code(KeyCode::Esc)).is_empty());
    assert!(m.overlay.is_none());
    assert_eq!(m.screen, Screen::Events);
}

#[test]
fn cancelling_a_registration_names_the_person_and_only_y_confirms() {
    let mut m = on_detail(opts());
    update(&mut m, key('j'));
    update(&mut m, key('x'));
    let Some(Overlay::Confirm(c)) = &m.overlay else {
        panic!("no confirmation")
    };
    assert_eq!(
        c.lines[0],
        "Cancel 1 registration of New Year's Gala: Grace Hopper (confirmed)?"
    );
    assert_eq!(c.lines[1], "The seat goes to the head of the waitlist.");
    // Enter, n, or any other key is "no".
    assert!(update(&mut m, code(KeyCode::Enter)).is_empty());
    assert!(m.overlay.is_none());
    update(&mut m, key('x'));
    let fx = update(&mut m, key('y'));
    assert_eq!(
        fx,
        [Effect::Act(Action::CancelRegistration { id: "r-2".into() })]
    );
}

#[test]
fn h_and_l_switch_between_seated_and_waitlist() {
    let mut m = on_detail(opts());
    update(&mut m, key('l'));
    update(&mut m, key('j'));
    update(&mut m, key('x'));
    let Some(Overlay::Confirm(c)) = &m.overlay else {
        panic!("no confirmation")
    };
    assert_eq!(c.action, Action::CancelRegistration { id: "r-2".into() });
    assert!(
        c.lines[0].contains("Frances Allen (waiting)"),
        "{:?}",
        c.lines
    );
}

#[test]
fn the_door_input_takes_every_typed_character_and_enter_scans() {
    let mut m = on_door(opts());
    // Letters that are keys elsewhere (q quits, 2 switches screens) are part of a code here.
    typed(&mut m, "q2ab-cd");
    assert_eq!(m.door.input, "q2ab-cd");
    assert_eq!(m.screen, Screen::Door);
    assert!(!m.quit);
    update(&mut m, code(KeyCode::Backspace));
    update(&mut m, code(KeyCode::Esc));
    assert_eq!(m.door.input, "", "esc clears the input first");
    assert_eq!(m.screen, Screen::Door);
    // On an empty input too: the door stays, so a scan that follows is read whole as a code.
    update(&mut m, code(KeyCode::Esc));
    assert_eq!(m.screen, Screen::Door, "esc never leaves the door");
    typed(&mut m, "KOWN-5X3W");
    assert_eq!(
        (m.screen, m.door.input.as_str()),
        (Screen::Door, "KOWN-5X3W")
    );
    update(&mut m, code(KeyCode::Esc));
    typed(&mut m, " ABCD-EFGH ");
    let fx = update(&mut m, code(KeyCode::Enter));
    assert_eq!(
        fx,
        [Effect::Act(Action::CheckIn {
            code: "ABCD-EFGH".into()
        })]
    );
    assert_eq!(m.door.input, "", "ready for the next scan at once");
    assert_eq!(m.door.waiting, 1);
    update(
        &mut m,
        Msg::Acted(
            Action::CheckIn {
                code: "ABCD-EFGH".into(),
            },
            Ok(Done::Door(DoorResult::Admitted {
                name: "Ada".into(),
                event: "Jazz".into(),
                checked_in: 4,
                confirmed: 16,
            })),
        ),
    );
    assert_eq!(m.door.waiting, 0);
    assert!(matches!(
        m.door.scans.front().map(|s| &s.result),
        Some(Ok(DoorResult::Admitted { .. }))
    ));
    // An empty enter scans nothing; ctrl-c still quits.
    assert!(update(&mut m, code(KeyCode::Enter)).is_empty());
    assert_eq!(update(&mut m, ctrl('c')), [Effect::Quit]);
}

#[test]
fn a_second_scan_shows_already_checked_in_newest_first() {
    let mut m = on_door(opts());
    scan(
        &mut m,
        "ABCD",
        DoorResult::Admitted {
            name: "Ada".into(),
            event: "Jazz".into(),
            checked_in: 4,
            confirmed: 16,
        },
    );
    scan(
        &mut m,
        "ABCD",
        DoorResult::AlreadyCheckedIn { at: Some(NOW) },
    );
    assert_eq!(m.door.scans.len(), 2);
    assert_eq!(
        m.door.scans[0].result,
        Ok(DoorResult::AlreadyCheckedIn { at: Some(NOW) })
    );
}

#[test]
fn a_refused_form_comes_back_with_what_was_typed_and_why() {
    let mut m = on_events(opts());
    update(&mut m, key('n'));
    typed(&mut m, "Late Show");
    update(&mut m, code(KeyCode::Tab));
    typed(&mut m, "Studio");
    update(&mut m, code(KeyCode::Tab));
    typed(&mut m, "tomorrow");
    update(&mut m, code(KeyCode::Tab));
    typed(&mut m, "lots");
    assert!(
        update(&mut m, code(KeyCode::Enter)).is_empty(),
        "capacity is checked before sending"
    );
    let Some(Overlay::Form(f)) = &m.overlay else {
        panic!("form closed")
    };
    assert_eq!(f.error.as_deref(), Some("capacity must be a whole number"));
    for _ in 0..4 {
        update(&mut m, code(KeyCode::Backspace));
    }
    typed(&mut m, "120");
    let fx = update(&mut m, code(KeyCode::Enter));
    let Some(Effect::Act(action)) = fx.first().cloned() else {
        panic!("{fx:?}")
    };
    assert!(m.overlay.is_none());
    update(
        &mut m,
        Msg::Acted(
            action,
            Err(Failure::new(
                "validation_failed",
                "starts_at: must be an RFC 3339 date-time",
            )),
        ),
    );
    let Some(Overlay::Form(f)) = &m.overlay else {
        panic!("form not back")
    };
    assert_eq!(f.fields[0].value, "Late Show");
    assert_eq!(
        f.error.as_deref(),
        Some("starts_at: must be an RFC 3339 date-time")
    );
}

#[test]
fn an_edit_sends_only_the_fields_it_changed() {
    let mut m = on_events(opts());
    // Jazz Night (capacity 40). Another desk may change its seats while this form is open: a save
    // that did not touch them must not put the old figure back.
    update(&mut m, key('e'));
    update(&mut m, code(KeyCode::Tab));
    typed(&mut m, " Annex");
    let fx = update(&mut m, code(KeyCode::Enter));
    assert_eq!(
        fx,
        [Effect::Act(Action::EditEvent {
            id: "e-jazz".into(),
            changes: EventChanges {
                venue: Some(format!("{} Annex", events()[0].venue)),
                ..EventChanges::default()
            },
        })]
    );
    // Saved unchanged: nothing is sent.
    update(&mut m, key('e'));
    assert!(update(&mut m, code(KeyCode::Enter)).is_empty());
    assert!(m.overlay.is_none());
    // The capacity, when it is what changed, goes alone.
    update(&mut m, key('e'));
    for _ in 0..3 {
        update(&mut m, code(KeyCode::Tab));
    }
    update(&mut m, code(KeyCode::Backspace));
    typed(&mut m, "5");
    let fx = update(&mut m, code(KeyCode::Enter));
    assert_eq!(
        fx,
        [Effect::Act(Action::EditEvent {
            id: "e-jazz".into(),
            changes: EventChanges {
                capacity: Some(45),
                ..EventChanges::default()
            },
        })]
    );
}

#[test]
fn a_refused_sale_ahead_of_the_waitlist_comes_back_with_the_name_typed() {
    let mut m = on_detail(opts());
    update(&mut m, key('W'));
    typed(&mut m, "Override Person");
    assert!(update(&mut m, code(KeyCode::Enter)).is_empty());
    assert!(
        matches!(m.overlay, Some(Overlay::Confirm(_))),
        "its own confirmation"
    );
    let fx = update(&mut m, key('y'));
    let Some(Effect::Act(action)) = fx.first().cloned() else {
        panic!("{fx:?}")
    };
    update(
        &mut m,
        Msg::Acted(action, Err(Failure::new("sold_out", "every seat is taken"))),
    );
    let Some(Overlay::Form(f)) = &m.overlay else {
        panic!("the form is not back: {:?}", m.overlay)
    };
    assert_eq!(f.fields[0].value, "Override Person");
    assert_eq!(f.error.as_deref(), Some("every seat is taken"));
}

#[test]
fn read_only_hides_actions_but_keeps_the_door() {
    let ro = Options {
        read_only: true,
        color: true,
    };
    let mut m = on_events(ro);
    assert!(update(&mut m, key('n')).is_empty());
    assert!(m.overlay.is_none());
    assert_eq!(
        m.status.as_ref().map(|s| s.text.as_str()),
        Some("read-only console: actions are off")
    );
    assert!(update(&mut m, key('X')).is_empty());
    assert!(m.overlay.is_none());
    assert!(
        tui::keys::live(Screen::Events, true).all(|b| !b.changes),
        "help lists no action"
    );
    assert!(tui::model::palette_entries(&m, "")
        .iter()
        .all(|b| !b.changes));
    let mut m = on_door(ro);
    typed(&mut m, "ABCD");
    assert_eq!(
        update(&mut m, code(KeyCode::Enter)),
        [Effect::Act(Action::CheckIn {
            code: "ABCD".into()
        })]
    );
}

#[test]
fn the_palette_runs_what_it_matches() {
    let mut m = on_events(opts());
    update(&mut m, key(':'));
    typed(&mut m, "door");
    let fx = update(&mut m, code(KeyCode::Enter));
    assert_eq!(m.screen, Screen::Door);
    assert!(fx.is_empty() || fx.iter().all(|e| matches!(e, Effect::Load(_))));
    update(&mut m, ctrl('p'));
    typed(&mut m, "quit");
    assert_eq!(update(&mut m, code(KeyCode::Enter)), [Effect::Quit]);
}

#[test]
fn question_mark_opens_help_and_any_key_closes_it() {
    let mut m = on_events(opts());
    update(&mut m, key('?'));
    assert_eq!(m.overlay, Some(Overlay::Help));
    assert!(
        update(&mut m, key('q')).is_empty(),
        "q closes help, it does not quit"
    );
    assert!(m.overlay.is_none());
    assert!(!m.quit);
    assert_eq!(update(&mut m, key('q')), [Effect::Quit]);
}

#[test]
fn ticks_ask_again_only_when_the_last_answer_came() {
    let mut m = model(opts());
    let fx = update(&mut m, key('2'));
    assert_eq!(
        fx,
        [Effect::Load(Query::Dashboard), Effect::Load(Query::Events)]
    );
    assert!(
        update(&mut m, Msg::Tick { now: NOW + 1_000 }).is_empty(),
        "a slow box is not asked twice"
    );
    update(
        &mut m,
        Msg::Loaded(
            Query::Dashboard,
            Ok(Data::Dashboard(dashboard(NOW + 1_000, 300, 9))),
        ),
    );
    let fx = update(&mut m, Msg::Tick { now: NOW + 2_000 });
    assert_eq!(
        fx,
        [Effect::Load(Query::Dashboard)],
        "the events are still on their way"
    );
    update(
        &mut m,
        Msg::Loaded(Query::Events, Ok(Data::Events(events()))),
    );
    update(
        &mut m,
        Msg::Loaded(
            Query::Dashboard,
            Ok(Data::Dashboard(dashboard(NOW + 2_000, 300, 9))),
        ),
    );
    let fx = update(&mut m, Msg::Tick { now: NOW + 3_000 });
    assert_eq!(
        fx,
        [Effect::Load(Query::Dashboard), Effect::Load(Query::Events)]
    );
}

#[test]
fn a_failed_load_keeps_the_last_figures_and_says_so() {
    let mut m = model(opts());
    let before = m.dashboard.clone();
    update(&mut m, Msg::Tick { now: NOW + 1_000 });
    update(
        &mut m,
        Msg::Loaded(
            Query::Dashboard,
            Err(Failure::new("unreachable", "connection refused")),
        ),
    );
    assert_eq!(m.dashboard, before);
    assert_eq!(
        m.load_error.as_ref().map(|f| f.message.as_str()),
        Some("connection refused")
    );
    update(
        &mut m,
        Msg::Loaded(
            Query::Dashboard,
            Ok(Data::Dashboard(dashboard(NOW + 2_000, 300, 9))),
        ),
    );
    assert_eq!(m.load_error, None);
}

#[test]
fn rates_are_per_minute_over_the_last_minute_and_never_negative() {
    let mut m = tui::Model::new(origin(), opts());
    for (i, (regs, ins)) in [(100u64, 10u64), (130, 12), (160, 11)]
        .into_iter()
        .enumerate()
    {
        let at = NOW + i as i64 * 30_000;
        update(
            &mut m,
            Msg::Loaded(
                Query::Dashboard,
                Ok(Data::Dashboard(dashboard(at, regs, ins))),
            ),
        );
    }
    assert_eq!(m.rates.per_minute(Counter::Registrations), Some(60.0));
    assert_eq!(m.rates.per_minute(Counter::CheckedIn), Some(1.0));
    // 10-second bars, oldest first: a sample's growth lands in the bar it was seen in, scaled to a
    // minute; the revert (12 -> 11) shows as 0, not as a negative bar.
    assert_eq!(
        m.rates.spark(Counter::Registrations, 6),
        [0, 0, 180, 0, 0, 180]
    );
    assert_eq!(m.rates.spark(Counter::CheckedIn, 6), [0, 0, 12, 0, 0, 0]);
}

#[test]
fn resize_is_remembered_for_the_next_frame() {
    let mut m = model(opts());
    update(&mut m, Msg::Resize(132, 50));
    assert_eq!(m.size, (132, 50));
}

#[test]
fn quit_message_ends_the_console() {
    let mut m = model(opts());
    assert_eq!(update(&mut m, Msg::Quit), [Effect::Quit]);
    assert!(m.quit);
}
