//! The console's state (`Model`), everything that can happen to it (`Msg`, a closed enum) and the one
//! function that decides what happens (`update`). `update` never blocks and never draws: work for
//! the box comes out of it as [`Effect`]s, which the run loop hands to a worker thread, and the
//! answers come back in as `Msg::Loaded` and `Msg::Acted`.

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind};

use crate::data::{
    Action, AuditFilter, AuditRow, Dashboard, Data, Deliveries, Done, DoorResult, EventChanges,
    EventDetail, EventFields, EventRow, EventState, Failure, Message, Millis, Origin, Query, Seat,
    SeatState,
};
use crate::keys::{self, Command, Key, Screen};
use crate::traffic;

/// How the console was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Hide every action but the door's check-in.
    pub read_only: bool,
    /// Colours on (text always says the state too; colour only repeats it).
    pub color: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            read_only: false,
            color: true,
        }
    }
}

/// Everything that can happen to the console.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Key(KeyEvent),
    Resize(u16, u16),
    /// Once a second, with the wall clock.
    Tick {
        now: Millis,
    },
    Loaded(Query, Result<Data, Failure>),
    Acted(Action, Result<Done, Failure>),
    /// Stop: SIGTERM, or the box shutting down.
    Quit,
}

/// Work `update` asks the run loop to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Load(Query),
    Act(Action),
    Quit,
}

/// Samples of the box's counters, turned into per-minute rates and sparklines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    samples: VecDeque<Sample>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at: Millis,
    registrations: Option<u64>,
    checked_in: Option<u64>,
}

/// Which counter a rate is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Registrations,
    CheckedIn,
}

/// How much history the sparklines keep, and the width of one bar.
pub const RATE_WINDOW_MS: Millis = 15 * 60_000;
pub const SPARK_BUCKET_MS: Millis = 10_000;

impl Rates {
    pub fn push(&mut self, d: &Dashboard) {
        if self.samples.back().is_some_and(|s| s.at >= d.at) {
            return;
        }
        self.samples.push_back(Sample {
            at: d.at,
            registrations: d.registrations_total,
            checked_in: d.checked_in_total,
        });
        while self
            .samples
            .front()
            .is_some_and(|s| s.at < d.at - RATE_WINDOW_MS)
        {
            self.samples.pop_front();
        }
    }

    fn pick(s: &Sample, c: Counter) -> Option<u64> {
        match c {
            Counter::Registrations => s.registrations,
            Counter::CheckedIn => s.checked_in,
        }
    }

    /// The counter's value at `t`: the latest sample taken at or before it.
    fn value_at(&self, c: Counter, t: Millis) -> Option<u64> {
        let i = self.samples.partition_point(|s| s.at <= t);
        i.checked_sub(1)
            .and_then(|i| self.samples.get(i))
            .and_then(|s| Self::pick(s, c))
    }

    /// Per minute over the last minute (or over what has been sampled, once that is a second or
    /// more). A counter that went down (reverts, a cancelled event) counts as zero, not negative.
    pub fn per_minute(&self, c: Counter) -> Option<f64> {
        let last = self.samples.back()?;
        let now = Self::pick(last, c)?;
        let from = last.at - 60_000;
        let i = self.samples.partition_point(|s| s.at < from);
        let first = self.samples.get(i)?;
        let span = last.at - first.at;
        if span < 1_000 {
            return None;
        }
        let then = Self::pick(first, c)?;
        Some(now.saturating_sub(then) as f64 * 60_000.0 / span as f64)
    }

    /// `n` bars, oldest first, each the counter's growth over [`SPARK_BUCKET_MS`] scaled to per
    /// minute; bars before the first sample are zero.
    pub fn spark(&self, c: Counter, n: usize) -> Vec<u64> {
        let Some(last) = self.samples.back() else {
            return vec![0; n];
        };
        let per_minute = (60_000 / SPARK_BUCKET_MS) as u64;
        let mut bars: Vec<u64> = (0..n)
            .map(|k| {
                let end = last.at - SPARK_BUCKET_MS * k as i64;
                let start = end - SPARK_BUCKET_MS;
                match (self.value_at(c, start), self.value_at(c, end)) {
                    (Some(a), Some(b)) => b.saturating_sub(a) * per_minute,
                    _ => 0,
                }
            })
            .collect();
        bars.reverse();
        bars
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// One of the two lists of an event's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DetailList {
    #[default]
    Seated,
    Waitlist,
}

/// A scan at the door and what the box said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub code: String,
    pub at: Millis,
    pub result: Result<DoorResult, Failure>,
}

/// The door: one input line and the last results.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Door {
    pub input: String,
    /// Scans waiting for the box's answer.
    pub waiting: usize,
    /// Newest first.
    pub scans: VecDeque<Scan>,
}

/// Longest ticket input kept: a code is 28 characters, 34 with its dashes.
const DOOR_INPUT_MAX: usize = 64;
const DOOR_HISTORY: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Ok,
    Error,
    Info,
}

/// The footer message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub text: String,
    pub tone: Tone,
}

/// A confirmation: it names what will happen and to how many; `expect` is a name to type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub title: String,
    pub lines: Vec<String>,
    pub action: Action,
    pub expect: Option<String>,
    pub typed: String,
    pub mismatch: bool,
    /// Said in the footer when the box accepts it.
    pub success: String,
    /// The form this confirms, if any: it comes back with the box's reason when the box refuses.
    pub form: Option<Box<Form>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormKind {
    CreateEvent,
    EditEvent {
        id: String,
        /// What the form showed when it opened: a save sends only what differs from it.
        shown: EventFields,
    },
    Capacity {
        id: String,
        name: String,
    },
    WalkUp {
        event_id: String,
        event_name: String,
        override_waitlist: bool,
        waiting: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub label: &'static str,
    pub value: String,
    pub hint: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub kind: FormKind,
    pub title: String,
    pub fields: Vec<Field>,
    pub focus: usize,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    Help,
    Palette { input: String, selected: usize },
    Confirm(Confirm),
    Form(Form),
}

/// Which loads are on their way, so a slow box is not asked again every tick.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InFlight {
    pub dashboard: bool,
    pub screen: Option<Query>,
}

/// What an action in flight was, to word its outcome and to reopen its form if it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub action: Action,
    pub success: String,
    pub form: Option<Form>,
}

/// A walk-up just sold at this console, for the page of the event it was sold for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSale {
    pub event_id: String,
    pub ticket_code: String,
    pub name: String,
}

/// The whole state of the console.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub opts: Options,
    pub origin: Origin,
    pub screen: Screen,
    pub now: Millis,
    pub size: (u16, u16),
    pub dashboard: Option<Dashboard>,
    pub rates: Rates,
    /// Requests, latency and cache figures of the last seconds.
    pub traffic: traffic::Window,
    pub events: Option<Vec<EventRow>>,
    pub events_sel: usize,
    pub events_filter: String,
    pub detail_id: Option<String>,
    pub detail: Option<EventDetail>,
    pub detail_focus: DetailList,
    pub seated_sel: usize,
    pub waitlist_sel: usize,
    pub detail_filter: String,
    /// The last walk-up sold here: its ticket, shown on its own event's page only.
    pub last_sale: Option<LastSale>,
    pub door: Door,
    pub deliveries: Option<Deliveries>,
    pub deliveries_sel: usize,
    pub deliveries_filter: String,
    pub audit: Option<Vec<AuditRow>>,
    pub audit_sel: usize,
    pub audit_filter: String,
    pub editing_filter: bool,
    pub overlay: Option<Overlay>,
    pub status: Option<Status>,
    /// The last load failed: the box may be unreachable. Cleared by the next good load.
    pub load_error: Option<Failure>,
    pub in_flight: InFlight,
    pub pending: Vec<Pending>,
    pub quit: bool,
}

/// Rows a page-up/page-down moves.
const PAGE: usize = 10;

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(needle)
}

impl Model {
    pub fn new(origin: Origin, opts: Options) -> Self {
        Self {
            opts,
            origin,
            screen: Screen::Dashboard,
            now: 0,
            size: (80, 24),
            dashboard: None,
            rates: Rates::default(),
            traffic: traffic::Window::default(),
            events: None,
            events_sel: 0,
            events_filter: String::new(),
            detail_id: None,
            detail: None,
            detail_focus: DetailList::Seated,
            seated_sel: 0,
            waitlist_sel: 0,
            detail_filter: String::new(),
            last_sale: None,
            door: Door::default(),
            deliveries: None,
            deliveries_sel: 0,
            deliveries_filter: String::new(),
            audit: None,
            audit_sel: 0,
            audit_filter: String::new(),
            editing_filter: false,
            overlay: None,
            status: None,
            load_error: None,
            in_flight: InFlight::default(),
            pending: Vec::new(),
            quit: false,
        }
    }

    /// The filter text of the current screen.
    pub fn filter(&self) -> &str {
        match self.screen {
            Screen::Events => &self.events_filter,
            Screen::Detail => &self.detail_filter,
            Screen::Deliveries => &self.deliveries_filter,
            Screen::Audit => &self.audit_filter,
            Screen::Dashboard | Screen::Door => "",
        }
    }

    fn filter_mut(&mut self) -> Option<&mut String> {
        match self.screen {
            Screen::Events => Some(&mut self.events_filter),
            Screen::Detail => Some(&mut self.detail_filter),
            Screen::Deliveries => Some(&mut self.deliveries_filter),
            Screen::Audit => Some(&mut self.audit_filter),
            Screen::Dashboard | Screen::Door => None,
        }
    }

    /// Events that pass the filter (name, venue or status).
    pub fn visible_events(&self) -> Vec<&EventRow> {
        let f = self.events_filter.to_lowercase();
        self.events
            .iter()
            .flatten()
            .filter(|e| {
                f.is_empty()
                    || contains_ci(&e.name, &f)
                    || contains_ci(&e.venue, &f)
                    || e.status.label().contains(&f)
            })
            .collect()
    }

    fn seat_matches(s: &Seat, f: &str) -> bool {
        f.is_empty()
            || contains_ci(&s.attendee, f)
            || s.ticket_code.as_deref().is_some_and(|c| contains_ci(c, f))
    }

    pub fn visible_seated(&self) -> Vec<&Seat> {
        let f = self.detail_filter.to_lowercase();
        self.detail
            .iter()
            .flat_map(|d| d.seated.iter())
            .filter(|s| Self::seat_matches(s, &f))
            .collect()
    }

    pub fn visible_waitlist(&self) -> Vec<&Seat> {
        let f = self.detail_filter.to_lowercase();
        self.detail
            .iter()
            .flat_map(|d| d.waitlist.iter())
            .filter(|s| Self::seat_matches(s, &f))
            .collect()
    }

    /// Dead messages, then pending ones, that pass the filter (type, aggregate or error).
    pub fn visible_messages(&self) -> Vec<&Message> {
        let f = self.deliveries_filter.to_lowercase();
        self.deliveries
            .iter()
            .flat_map(|d| d.dead.iter().chain(d.pending.iter()))
            .filter(|m| {
                f.is_empty()
                    || contains_ci(&m.kind, &f)
                    || contains_ci(&m.aggregate_id, &f)
                    || m.last_error.as_deref().is_some_and(|e| contains_ci(e, &f))
                    || m.state.contains(&f)
            })
            .collect()
    }

    /// The audit filter as the box takes it: `actor:NAME` and `action:NAME` words go to the box,
    /// the rest is matched here against every column.
    pub fn audit_query(&self) -> (AuditFilter, String) {
        let mut filter = AuditFilter::default();
        let mut rest = Vec::new();
        for word in self.audit_filter.split_whitespace() {
            if let Some(a) = word.strip_prefix("actor:").filter(|a| !a.is_empty()) {
                filter.actor = Some(a.to_string());
            } else if let Some(a) = word.strip_prefix("action:").filter(|a| !a.is_empty()) {
                filter.action = Some(a.to_string());
            } else {
                rest.push(word.to_lowercase());
            }
        }
        (filter, rest.join(" "))
    }

    pub fn visible_audit(&self) -> Vec<&AuditRow> {
        let (_, text) = self.audit_query();
        self.audit
            .iter()
            .flatten()
            .filter(|a| {
                text.is_empty()
                    || contains_ci(&a.actor, &text)
                    || contains_ci(&a.action, &text)
                    || a.target.as_deref().is_some_and(|t| contains_ci(t, &text))
                    || a.detail.as_deref().is_some_and(|t| contains_ci(t, &text))
            })
            .collect()
    }

    /// The event the events list or the event page is about.
    pub fn current_event(&self) -> Option<&EventRow> {
        match self.screen {
            Screen::Events => self.visible_events().get(self.events_sel).copied(),
            Screen::Detail => self.detail.as_ref().map(|d| &d.event),
            _ => None,
        }
    }

    fn selected_seat(&self) -> Option<&Seat> {
        match self.detail_focus {
            DetailList::Seated => self.visible_seated().get(self.seated_sel).copied(),
            DetailList::Waitlist => self.visible_waitlist().get(self.waitlist_sel).copied(),
        }
    }

    /// What the current screen shows, if it loads anything besides the dashboard figures.
    pub fn screen_query(&self) -> Option<Query> {
        match self.screen {
            Screen::Dashboard | Screen::Door => None,
            Screen::Events => Some(Query::Events),
            Screen::Detail => self.detail_id.clone().map(|id| Query::EventDetail { id }),
            Screen::Deliveries => Some(Query::Deliveries),
            Screen::Audit => Some(Query::Audit(self.audit_query().0)),
        }
    }

    /// The length of the current list and its selection.
    fn list(&mut self) -> Option<(usize, &mut usize)> {
        let len = match self.screen {
            Screen::Events => self.visible_events().len(),
            Screen::Detail => match self.detail_focus {
                DetailList::Seated => self.visible_seated().len(),
                DetailList::Waitlist => self.visible_waitlist().len(),
            },
            Screen::Deliveries => self.visible_messages().len(),
            Screen::Audit => self.visible_audit().len(),
            Screen::Dashboard | Screen::Door => return None,
        };
        let sel = match self.screen {
            Screen::Events => &mut self.events_sel,
            Screen::Detail => match self.detail_focus {
                DetailList::Seated => &mut self.seated_sel,
                DetailList::Waitlist => &mut self.waitlist_sel,
            },
            Screen::Deliveries => &mut self.deliveries_sel,
            Screen::Audit => &mut self.audit_sel,
            Screen::Dashboard | Screen::Door => return None,
        };
        Some((len, sel))
    }

    /// The ids of the rows selected in each list (events, seated, waitlist, messages, audit).
    fn selected_ids(&self) -> [Option<String>; 5] {
        [
            self.visible_events()
                .get(self.events_sel)
                .map(|e| e.id.clone()),
            self.visible_seated()
                .get(self.seated_sel)
                .map(|s| s.id.clone()),
            self.visible_waitlist()
                .get(self.waitlist_sel)
                .map(|s| s.id.clone()),
            self.visible_messages()
                .get(self.deliveries_sel)
                .map(|m| m.id.clone()),
            self.visible_audit()
                .get(self.audit_sel)
                .map(|a| a.seq.to_string()),
        ]
    }

    /// Moves each selection to the row it held before a reload, wherever that row now is; a row
    /// that is gone leaves the selection where it was (then clamped).
    fn reselect(&mut self, held: [Option<String>; 5]) {
        fn find<'a, T: 'a>(
            rows: Vec<&'a T>,
            id: &Option<String>,
            key: impl Fn(&T) -> String,
        ) -> Option<usize> {
            let id = id.as_ref()?;
            rows.iter().position(|r| key(r) == *id)
        }
        let [event, seat, waiting, message, audit] = held;
        if let Some(i) = find(self.visible_events(), &event, |e| e.id.clone()) {
            self.events_sel = i;
        }
        if let Some(i) = find(self.visible_seated(), &seat, |s| s.id.clone()) {
            self.seated_sel = i;
        }
        if let Some(i) = find(self.visible_waitlist(), &waiting, |s| s.id.clone()) {
            self.waitlist_sel = i;
        }
        if let Some(i) = find(self.visible_messages(), &message, |m| m.id.clone()) {
            self.deliveries_sel = i;
        }
        if let Some(i) = find(self.visible_audit(), &audit, |a| a.seq.to_string()) {
            self.audit_sel = i;
        }
    }

    /// Keeps every selection inside its list after the list changed.
    fn clamp_selections(&mut self) {
        let clamp = |sel: &mut usize, len: usize| *sel = (*sel).min(len.saturating_sub(1));
        let n = self.visible_events().len();
        clamp(&mut self.events_sel, n);
        let n = self.visible_seated().len();
        clamp(&mut self.seated_sel, n);
        let n = self.visible_waitlist().len();
        clamp(&mut self.waitlist_sel, n);
        let n = self.visible_messages().len();
        clamp(&mut self.deliveries_sel, n);
        let n = self.visible_audit().len();
        clamp(&mut self.audit_sel, n);
    }

    fn say(&mut self, tone: Tone, text: impl Into<String>) {
        self.status = Some(Status {
            text: text.into(),
            tone,
        });
    }
}

/// The one place the console's behaviour lives.
pub fn update(m: &mut Model, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Quit => {
            m.quit = true;
            vec![Effect::Quit]
        }
        Msg::Resize(w, h) => {
            m.size = (w, h);
            vec![]
        }
        Msg::Tick { now } => {
            m.now = now;
            refresh(m, false)
        }
        Msg::Loaded(query, result) => {
            loaded(m, query, result);
            vec![]
        }
        Msg::Acted(action, result) => acted(m, action, result),
        Msg::Key(ev) => {
            if ev.kind == KeyEventKind::Release {
                return vec![];
            }
            key(m, ev)
        }
    }
}

/// Asks for the dashboard figures (always: the rates need every sample) and the current screen's
/// data, unless the same is already on its way (`force` asks again anyway, after a change).
fn refresh(m: &mut Model, force: bool) -> Vec<Effect> {
    let mut out = Vec::new();
    if force || !m.in_flight.dashboard {
        m.in_flight.dashboard = true;
        out.push(Effect::Load(Query::Dashboard));
    }
    if let Some(q) = m.screen_query() {
        if force || m.in_flight.screen.as_ref() != Some(&q) {
            m.in_flight.screen = Some(q.clone());
            out.push(Effect::Load(q));
        }
    }
    out
}

fn loaded(m: &mut Model, query: Query, result: Result<Data, Failure>) {
    if query == Query::Dashboard {
        m.in_flight.dashboard = false;
    } else if m.in_flight.screen.as_ref() == Some(&query) {
        m.in_flight.screen = None;
    }
    let data = match result {
        Ok(d) => d,
        Err(f) => {
            m.load_error = Some(f);
            return;
        }
    };
    m.load_error = None;
    // The rows selected before the reload, by identity: rows added or gone above them must not move
    // the selection (and the action of the next key) onto someone else.
    let held = m.selected_ids();
    match data {
        Data::Dashboard(d) => {
            m.rates.push(&d);
            m.traffic.push(d.at, d.traffic.as_ref());
            m.dashboard = Some(d);
        }
        Data::Events(e) => m.events = Some(e),
        // A page that arrives after the operator moved to another event is dropped.
        Data::EventDetail(d) => {
            if m.detail_id.as_deref() == Some(d.event.id.as_str()) {
                m.detail = Some(d);
            }
        }
        Data::Deliveries(d) => m.deliveries = Some(d),
        // Rows for a filter the operator has since changed are dropped.
        Data::Audit(a) => {
            if query == Query::Audit(m.audit_query().0) {
                m.audit = Some(a);
            }
        }
    }
    m.reselect(held);
    m.clamp_selections();
}

fn acted(m: &mut Model, action: Action, result: Result<Done, Failure>) -> Vec<Effect> {
    let pending = m
        .pending
        .iter()
        .position(|p| p.action == action)
        .map(|i| m.pending.remove(i));
    match (&action, result) {
        (Action::CheckIn { code }, result) => {
            m.door.waiting = m.door.waiting.saturating_sub(1);
            let result = match result {
                Ok(Done::Door(r)) => Ok(r),
                Ok(other) => Err(Failure::new("unexpected", format!("{other:?}"))),
                Err(f) => Err(f),
            };
            m.door.scans.push_front(Scan {
                code: code.clone(),
                at: m.now,
                result,
            });
            m.door.scans.truncate(DOOR_HISTORY);
        }
        (_, Ok(done)) => {
            let text = match done {
                Done::Sold { name, ticket_code } => {
                    let text = format!("Sold: ticket {ticket_code} ({name})");
                    if let Action::WalkUp { event_id, .. } = &action {
                        m.last_sale = Some(LastSale {
                            event_id: event_id.clone(),
                            ticket_code,
                            name,
                        });
                    }
                    text
                }
                Done::Retried { count } => {
                    format!("{count} message(s) sent back to pending")
                }
                _ => pending
                    .as_ref()
                    .map(|p| p.success.clone())
                    .unwrap_or_else(|| "Done".to_string()),
            };
            m.say(Tone::Ok, text);
        }
        (_, Err(f)) => {
            m.say(Tone::Error, f.message.clone());
            // A refused form comes back with what was typed and why, so nothing is typed twice.
            if let Some(mut form) = pending.and_then(|p| p.form) {
                form.error = Some(f.message);
                m.overlay = Some(Overlay::Form(form));
            }
        }
    }
    refresh(m, true)
}

fn dispatch(m: &mut Model, action: Action, success: String, form: Option<Form>) -> Vec<Effect> {
    m.pending.push(Pending {
        action: action.clone(),
        success,
        form,
    });
    vec![Effect::Act(action)]
}

fn key(m: &mut Model, ev: KeyEvent) -> Vec<Effect> {
    // A message stays until the next key, like a shell's last output.
    m.status = None;
    if let Some(overlay) = m.overlay.take() {
        return overlay_key(m, overlay, ev);
    }
    if m.editing_filter {
        return filter_key(m, ev);
    }
    if m.screen == Screen::Door {
        if let Some(c) = Key::typed_char(&ev) {
            if m.door.input.chars().count() < DOOR_INPUT_MAX {
                m.door.input.push(c);
            }
            return vec![];
        }
        match ev.code {
            KeyCode::Backspace => {
                m.door.input.pop();
                return vec![];
            }
            KeyCode::Enter => return scan(m),
            // Esc only clears, even an empty input: had it left the door, the next scan's
            // characters would have been read as keys (digits switching screens, letters opening
            // dialogs) and the code cut short. Tab leaves.
            KeyCode::Esc => {
                m.door.input.clear();
                return vec![];
            }
            _ => {}
        }
    }
    match keys::lookup(m.screen, m.opts.read_only, &ev) {
        Some(b) => command(m, b.command),
        None => {
            if m.opts.read_only && keys::refused_in_read_only(m.screen, &ev).is_some() {
                m.say(Tone::Info, "read-only console: actions are off");
            }
            vec![]
        }
    }
}

fn scan(m: &mut Model) -> Vec<Effect> {
    let code = m.door.input.trim().to_string();
    m.door.input.clear();
    if code.is_empty() {
        return vec![];
    }
    m.door.waiting += 1;
    vec![Effect::Act(Action::CheckIn { code })]
}

fn filter_key(m: &mut Model, ev: KeyEvent) -> Vec<Effect> {
    let audit = m.screen == Screen::Audit;
    // ctrl-c quits here too, as everywhere (`q` is text in a filter).
    if ev.code == KeyCode::Char('c')
        && ev
            .modifiers
            .contains(crossterm::event::KeyModifiers::CONTROL)
    {
        return command(m, Command::Quit);
    }
    match ev.code {
        KeyCode::Enter => {
            m.editing_filter = false;
            // The audit filter may name an actor or action for the box: ask it again.
            return if audit { refresh(m, true) } else { vec![] };
        }
        KeyCode::Esc => {
            m.editing_filter = false;
            if let Some(f) = m.filter_mut() {
                f.clear();
            }
            m.clamp_selections();
            return if audit { refresh(m, true) } else { vec![] };
        }
        KeyCode::Backspace => {
            if let Some(f) = m.filter_mut() {
                f.pop();
            }
        }
        _ => {
            if let Some(c) = Key::typed_char(&ev) {
                if let Some(f) = m.filter_mut() {
                    if f.chars().count() < 60 {
                        f.push(c);
                    }
                }
            }
        }
    }
    if let Some((_, sel)) = m.list() {
        *sel = 0;
    }
    vec![]
}

fn go(m: &mut Model, screen: Screen) -> Vec<Effect> {
    if m.screen == screen {
        return vec![];
    }
    m.screen = screen;
    m.editing_filter = false;
    refresh(m, false)
}

fn next_tab(m: &Model, step: isize) -> Screen {
    let tabs = Screen::TABS;
    let i = tabs.iter().position(|s| *s == m.screen.tab()).unwrap_or(0) as isize;
    let n = tabs.len() as isize;
    tabs[((i + step).rem_euclid(n)) as usize]
}

fn command(m: &mut Model, c: Command) -> Vec<Effect> {
    match c {
        Command::Quit => {
            m.quit = true;
            vec![Effect::Quit]
        }
        Command::Help => {
            m.overlay = Some(Overlay::Help);
            vec![]
        }
        Command::Palette => {
            m.overlay = Some(Overlay::Palette {
                input: String::new(),
                selected: 0,
            });
            vec![]
        }
        Command::Filter => {
            if m.screen.has_list() {
                m.editing_filter = true;
            }
            vec![]
        }
        Command::Back => {
            if let Some(f) = m.filter_mut().filter(|f| !f.is_empty()) {
                f.clear();
                m.clamp_selections();
                if m.screen == Screen::Audit {
                    return refresh(m, true);
                }
                return vec![];
            }
            match m.screen {
                Screen::Detail => go(m, Screen::Events),
                Screen::Dashboard => vec![],
                _ => go(m, Screen::Dashboard),
            }
        }
        Command::NextScreen => {
            let s = next_tab(m, 1);
            go(m, s)
        }
        Command::PrevScreen => {
            let s = next_tab(m, -1);
            go(m, s)
        }
        Command::Go(s) => go(m, s),
        Command::Up
        | Command::Down
        | Command::Top
        | Command::Bottom
        | Command::PageUp
        | Command::PageDown => {
            if let Some((len, sel)) = m.list() {
                let last = len.saturating_sub(1);
                *sel = match c {
                    Command::Up => sel.saturating_sub(1),
                    Command::Down => (*sel + 1).min(last),
                    Command::Top => 0,
                    Command::Bottom => last,
                    Command::PageUp => sel.saturating_sub(PAGE),
                    _ => (*sel + PAGE).min(last),
                };
            }
            vec![]
        }
        Command::Open => {
            let Some(e) = m.current_event().cloned() else {
                return vec![];
            };
            if m.detail_id.as_deref() != Some(e.id.as_str()) {
                m.detail = None;
                m.seated_sel = 0;
                m.waitlist_sel = 0;
                m.detail_filter.clear();
                m.detail_focus = DetailList::Seated;
            }
            m.detail_id = Some(e.id);
            go(m, Screen::Detail)
        }
        Command::Refresh => refresh(m, true),
        Command::SwitchList => {
            m.detail_focus = match m.detail_focus {
                DetailList::Seated => DetailList::Waitlist,
                DetailList::Waitlist => DetailList::Seated,
            };
            vec![]
        }
        _ if m.opts.read_only => vec![],
        Command::NewEvent => {
            m.overlay = Some(Overlay::Form(event_form(FormKind::CreateEvent, None)));
            vec![]
        }
        Command::EditEvent => {
            if let Some(e) = m.current_event().cloned() {
                let form = event_form(FormKind::CreateEvent, Some(&e));
                let shown = |i: usize| form.fields[i].value.trim().to_string();
                let kind = FormKind::EditEvent {
                    id: e.id.clone(),
                    shown: EventFields {
                        name: shown(0),
                        venue: shown(1),
                        starts_at: shown(2),
                        capacity: e.capacity,
                    },
                };
                m.overlay = Some(Overlay::Form(Form { kind, ..form }));
            }
            vec![]
        }
        Command::SetCapacity => {
            if let Some(e) = m.current_event().cloned() {
                m.overlay = Some(Overlay::Form(Form {
                    title: format!("Capacity of {}", e.name),
                    kind: FormKind::Capacity {
                        id: e.id.clone(),
                        name: e.name.clone(),
                    },
                    fields: vec![Field {
                        label: "capacity",
                        value: e.capacity.to_string(),
                        hint: "seats; not below the confirmed count",
                    }],
                    focus: 0,
                    error: None,
                }));
            }
            vec![]
        }
        Command::Publish => {
            let Some(e) = m.current_event().cloned() else {
                return vec![];
            };
            if e.status != EventState::Draft {
                m.say(
                    Tone::Info,
                    format!("{} is {}, not a draft", e.name, e.status.label()),
                );
                return vec![];
            }
            m.overlay = Some(Overlay::Confirm(Confirm {
                title: "Publish".into(),
                lines: vec![
                    format!("Publish {}?", e.name),
                    format!(
                        "{} seats go on sale at once; it cannot go back to draft.",
                        e.capacity
                    ),
                ],
                action: Action::Publish { id: e.id.clone() },
                expect: None,
                typed: String::new(),
                mismatch: false,
                success: format!("{} is on sale", e.name),
                form: None,
            }));
            vec![]
        }
        Command::CancelEvent => {
            let Some(e) = m.current_event().cloned() else {
                return vec![];
            };
            if matches!(e.status, EventState::Cancelled | EventState::Completed) {
                m.say(Tone::Info, format!("{} is {}", e.name, e.status.label()));
                return vec![];
            }
            m.overlay = Some(Overlay::Confirm(Confirm {
                title: "Cancel event".into(),
                lines: vec![
                    format!("Cancel {} registrations of {}?", e.active(), e.name),
                    format!(
                        "{} confirmed, {} offered, {} waiting. This cannot be undone.",
                        e.confirmed, e.offered, e.waitlisted
                    ),
                    "Type the event's name to confirm:".into(),
                ],
                action: Action::CancelEvent { id: e.id.clone() },
                expect: Some(e.name.clone()),
                typed: String::new(),
                mismatch: false,
                success: format!("{} cancelled with {} registrations", e.name, e.active()),
                form: None,
            }));
            vec![]
        }
        Command::CancelRegistration => {
            if m.screen != Screen::Detail {
                return vec![];
            }
            let Some(seat) = m.selected_seat().cloned() else {
                m.say(Tone::Info, "no registration selected");
                return vec![];
            };
            let Some(event) = m.detail.as_ref().map(|d| d.event.clone()) else {
                return vec![];
            };
            let mut lines = vec![format!(
                "Cancel 1 registration of {}: {} ({})?",
                event.name,
                seat.attendee,
                seat.status.label()
            )];
            if seat.status != SeatState::Waitlisted
                && event.waitlisted > 0
                && event.waitlist_enabled
            {
                lines.push("The seat goes to the head of the waitlist.".into());
            }
            m.overlay = Some(Overlay::Confirm(Confirm {
                title: "Cancel registration".into(),
                lines,
                action: Action::CancelRegistration {
                    id: seat.id.clone(),
                },
                expect: None,
                typed: String::new(),
                mismatch: false,
                success: format!("Cancelled the registration of {}", seat.attendee),
                form: None,
            }));
            vec![]
        }
        Command::WalkUp | Command::WalkUpOverride => {
            if m.screen != Screen::Detail {
                return vec![];
            }
            let Some(e) = m.detail.as_ref().map(|d| d.event.clone()) else {
                return vec![];
            };
            let override_waitlist = c == Command::WalkUpOverride;
            let title = if override_waitlist {
                format!("Walk-up for {} AHEAD of {} waiting", e.name, e.waitlisted)
            } else {
                format!("Walk-up sale for {}", e.name)
            };
            m.overlay = Some(Overlay::Form(Form {
                title,
                kind: FormKind::WalkUp {
                    event_id: e.id.clone(),
                    event_name: e.name.clone(),
                    override_waitlist,
                    waiting: e.waitlisted,
                },
                fields: vec![Field {
                    label: "name",
                    value: String::new(),
                    hint: "optional; blank sells to \"Walk-up guest\"",
                }],
                focus: 0,
                error: None,
            }));
            vec![]
        }
        Command::Retry => {
            let Some(msg) = m
                .visible_messages()
                .get(m.deliveries_sel)
                .map(|msg| (*msg).clone())
            else {
                return vec![];
            };
            if msg.state != "dead" {
                m.say(
                    Tone::Info,
                    "only dead messages are retried; pending ones retry on their own",
                );
                return vec![];
            }
            dispatch(
                m,
                Action::Retry { id: msg.id.clone() },
                format!("{} sent back to pending", msg.kind),
                None,
            )
        }
        Command::RetryAll => {
            let dead = m.deliveries.as_ref().map(|d| d.figures.dead).unwrap_or(0);
            if dead == 0 {
                m.say(Tone::Info, "no dead messages");
                return vec![];
            }
            m.overlay = Some(Overlay::Confirm(Confirm {
                title: "Retry all".into(),
                lines: vec![format!("Send {dead} dead messages back to pending?")],
                action: Action::RetryAllDead,
                expect: None,
                typed: String::new(),
                mismatch: false,
                success: format!("{dead} messages sent back to pending"),
                form: None,
            }));
            vec![]
        }
    }
}

fn event_form(kind: FormKind, e: Option<&EventRow>) -> Form {
    let title = match e {
        Some(e) => format!("Edit {}", e.name),
        None => "New event (created as a draft)".to_string(),
    };
    let value = |f: fn(&EventRow) -> String| e.map(f).unwrap_or_default();
    Form {
        kind,
        title,
        fields: vec![
            Field {
                label: "name",
                value: value(|e| e.name.clone()),
                hint: "",
            },
            Field {
                label: "venue",
                value: value(|e| e.venue.clone()),
                hint: "",
            },
            Field {
                label: "starts at",
                value: value(|e| crate::format::rfc3339(e.starts_at)),
                hint: "UTC, e.g. 2026-12-31T20:00:00Z",
            },
            Field {
                label: "capacity",
                value: value(|e| e.capacity.to_string()),
                hint: "seats",
            },
        ],
        focus: 0,
        error: None,
    }
}

fn overlay_key(m: &mut Model, overlay: Overlay, ev: KeyEvent) -> Vec<Effect> {
    if Key::of(&ev)
        == (Key {
            code: KeyCode::Char('c'),
            ctrl: true,
        })
    {
        m.quit = true;
        return vec![Effect::Quit];
    }
    match overlay {
        // Any key closes help.
        Overlay::Help => vec![],
        Overlay::Palette { input, selected } => palette_key(m, input, selected, ev),
        Overlay::Confirm(c) => confirm_key(m, c, ev),
        Overlay::Form(f) => form_key(m, f, ev),
    }
}

/// The palette's entries for the current screen and filter text: the live key map, minus moving.
pub fn palette_entries(m: &Model, input: &str) -> Vec<&'static keys::Binding> {
    let needle = input.to_lowercase();
    keys::live(m.screen, m.opts.read_only)
        .filter(|b| {
            !matches!(
                b.command,
                Command::Up
                    | Command::Down
                    | Command::Top
                    | Command::Bottom
                    | Command::PageUp
                    | Command::PageDown
                    | Command::Palette
            )
        })
        .filter(|b| needle.is_empty() || b.help.contains(&needle) || b.label == needle)
        .collect()
}

fn palette_key(m: &mut Model, mut input: String, mut selected: usize, ev: KeyEvent) -> Vec<Effect> {
    match ev.code {
        KeyCode::Esc => return vec![],
        KeyCode::Enter => {
            let entries = palette_entries(m, &input);
            return match entries.get(selected) {
                Some(b) => command(m, b.command),
                None => vec![],
            };
        }
        KeyCode::Up => selected = selected.saturating_sub(1),
        KeyCode::Down | KeyCode::Tab => {
            let n = palette_entries(m, &input).len();
            selected = (selected + 1).min(n.saturating_sub(1));
        }
        KeyCode::Backspace => {
            input.pop();
            selected = 0;
        }
        _ => {
            if let Some(c) = Key::typed_char(&ev) {
                input.push(c);
                selected = 0;
            }
        }
    }
    m.overlay = Some(Overlay::Palette { input, selected });
    vec![]
}

fn confirm_key(m: &mut Model, mut c: Confirm, ev: KeyEvent) -> Vec<Effect> {
    match &c.expect {
        None => match ev.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => {
                let (action, success, form) = (c.action, c.success, c.form);
                dispatch(m, action, success, form.map(|f| *f))
            }
            // Anything else is "no": a stray key never confirms.
            _ => {
                m.say(Tone::Info, "nothing changed");
                vec![]
            }
        },
        Some(expect) => match ev.code {
            KeyCode::Esc => {
                m.say(Tone::Info, "nothing changed");
                vec![]
            }
            KeyCode::Enter => {
                if c.typed == *expect {
                    let (action, success, form) = (c.action, c.success, c.form);
                    dispatch(m, action, success, form.map(|f| *f))
                } else {
                    c.mismatch = true;
                    m.overlay = Some(Overlay::Confirm(c));
                    vec![]
                }
            }
            KeyCode::Backspace => {
                c.typed.pop();
                c.mismatch = false;
                m.overlay = Some(Overlay::Confirm(c));
                vec![]
            }
            _ => {
                if let Some(ch) = Key::typed_char(&ev) {
                    if c.typed.chars().count() < 200 {
                        c.typed.push(ch);
                    }
                    c.mismatch = false;
                }
                m.overlay = Some(Overlay::Confirm(c));
                vec![]
            }
        },
    }
}

fn form_key(m: &mut Model, mut f: Form, ev: KeyEvent) -> Vec<Effect> {
    let n = f.fields.len();
    match ev.code {
        KeyCode::Esc => {
            m.say(Tone::Info, "nothing changed");
            return vec![];
        }
        KeyCode::Tab | KeyCode::Down => f.focus = (f.focus + 1) % n,
        KeyCode::BackTab | KeyCode::Up => f.focus = (f.focus + n - 1) % n,
        KeyCode::Backspace => {
            if let Some(field) = f.fields.get_mut(f.focus) {
                field.value.pop();
            }
        }
        KeyCode::Enter => return submit(m, f),
        _ => {
            if let Some(c) = Key::typed_char(&ev) {
                if let Some(field) = f.fields.get_mut(f.focus) {
                    if field.value.chars().count() < 200 {
                        field.value.push(c);
                    }
                }
            }
        }
    }
    m.overlay = Some(Overlay::Form(f));
    vec![]
}

fn submit(m: &mut Model, mut f: Form) -> Vec<Effect> {
    let value = |i: usize| {
        f.fields
            .get(i)
            .map(|x| x.value.trim().to_string())
            .unwrap_or_default()
    };
    let capacity_at = |i: usize| {
        value(i)
            .parse::<i64>()
            .map_err(|_| "capacity must be a whole number".to_string())
    };
    let built: Result<(Action, String), String> = match &f.kind {
        FormKind::CreateEvent | FormKind::EditEvent { .. } => capacity_at(3).map(|capacity| {
            let fields = EventFields {
                name: value(0),
                venue: value(1),
                starts_at: value(2),
                capacity,
            };
            match &f.kind {
                FormKind::EditEvent { id, shown } => {
                    let changed = |now: &String, then: &String| (now != then).then(|| now.clone());
                    let changes = EventChanges {
                        name: changed(&fields.name, &shown.name),
                        venue: changed(&fields.venue, &shown.venue),
                        starts_at: changed(&fields.starts_at, &shown.starts_at),
                        capacity: (fields.capacity != shown.capacity).then_some(fields.capacity),
                    };
                    (
                        Action::EditEvent {
                            id: id.clone(),
                            changes,
                        },
                        format!("Saved {}", value(0)),
                    )
                }
                _ => (
                    Action::CreateEvent(fields),
                    format!("Created {} (draft)", value(0)),
                ),
            }
        }),
        FormKind::Capacity { id, name } => capacity_at(0).map(|capacity| {
            (
                Action::SetCapacity {
                    id: id.clone(),
                    capacity,
                },
                format!("{name} now has {capacity} seats"),
            )
        }),
        FormKind::WalkUp {
            event_id,
            event_name,
            override_waitlist,
            waiting,
        } => {
            let name = Some(value(0)).filter(|n| !n.is_empty());
            let action = Action::WalkUp {
                event_id: event_id.clone(),
                name: name.clone(),
                override_waitlist: *override_waitlist,
            };
            if *override_waitlist {
                // Jumping the queue is the one sanctioned exception to first come, first served:
                // it gets its own confirmation, naming how many it passes.
                m.overlay = Some(Overlay::Confirm(Confirm {
                    title: "Sell ahead of the waitlist".into(),
                    lines: vec![
                        format!("Sell a seat of {event_name} ahead of {waiting} people waiting?"),
                        "The override is written to the audit log.".into(),
                    ],
                    action,
                    expect: None,
                    typed: String::new(),
                    mismatch: false,
                    success: "Sold".into(),
                    form: Some(Box::new(f.clone())),
                }));
                return vec![];
            }
            Ok((action, format!("Sold a seat of {event_name}")))
        }
    };
    match built {
        Ok((Action::EditEvent { changes, .. }, _)) if changes.is_empty() => {
            m.say(Tone::Info, "nothing changed");
            vec![]
        }
        Ok((action, success)) => {
            f.error = None;
            dispatch(m, action, success, Some(f))
        }
        Err(e) => {
            f.error = Some(e);
            m.overlay = Some(Overlay::Form(f));
            vec![]
        }
    }
}
