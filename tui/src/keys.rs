//! The key map: one table that `update` looks keys up in, and that the help screen and the command
//! palette are built from, so what they show is always what the keys do. Bindings that change the
//! box are marked `changes`; a read-only console drops them from all three.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The console's screens. `Detail` is one event, reached from `Events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Screen {
    Dashboard,
    Events,
    Detail,
    Door,
    Deliveries,
    Audit,
}

impl Screen {
    /// The tabs of the header, in number-key order.
    pub const TABS: [Screen; 5] = [
        Screen::Dashboard,
        Screen::Events,
        Screen::Door,
        Screen::Deliveries,
        Screen::Audit,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Self::Dashboard => "Dashboard",
            Self::Events => "Events",
            Self::Detail => "Event",
            Self::Door => "Door",
            Self::Deliveries => "Deliveries",
            Self::Audit => "Audit",
        }
    }

    /// The tab a screen belongs to: an event's page is under Events.
    pub fn tab(self) -> Screen {
        match self {
            Self::Detail => Self::Events,
            other => other,
        }
    }

    pub fn has_list(self) -> bool {
        matches!(
            self,
            Self::Events | Self::Detail | Self::Deliveries | Self::Audit
        )
    }
}

/// What a key asks for. `update` gives each its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Quit,
    Help,
    Palette,
    Filter,
    Back,
    NextScreen,
    PrevScreen,
    Go(Screen),
    Up,
    Down,
    Top,
    Bottom,
    PageUp,
    PageDown,
    Open,
    Refresh,
    NewEvent,
    EditEvent,
    SetCapacity,
    Publish,
    CancelEvent,
    SwitchList,
    CancelRegistration,
    WalkUp,
    WalkUpOverride,
    Retry,
    RetryAll,
}

impl Command {
    /// One or two words for the footer's hints.
    pub fn hint(self) -> &'static str {
        match self {
            Self::Quit => "quit",
            Self::Help => "help",
            Self::Palette => "commands",
            Self::Filter => "filter",
            Self::Back => "back",
            Self::NextScreen | Self::PrevScreen | Self::Go(_) => "screens",
            Self::Up | Self::Down | Self::Top | Self::Bottom | Self::PageUp | Self::PageDown => {
                "move"
            }
            Self::Open => "open",
            Self::Refresh => "refresh",
            Self::NewEvent => "new",
            Self::EditEvent => "edit",
            Self::SetCapacity => "capacity",
            Self::Publish => "publish",
            Self::CancelEvent => "cancel event",
            Self::SwitchList => "switch list",
            Self::CancelRegistration => "cancel reg.",
            Self::WalkUp => "walk-up",
            Self::WalkUpOverride => "jump queue",
            Self::Retry => "retry",
            Self::RetryAll => "retry all",
        }
    }
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Everywhere,
    /// Screens with a list to move in and filter.
    Lists,
    On(Screen),
    /// The events list and one event's page.
    EventScreens,
}

impl Scope {
    pub fn covers(self, screen: Screen) -> bool {
        match self {
            Self::Everywhere => true,
            Self::Lists => screen.has_list(),
            Self::On(s) => s == screen,
            Self::EventScreens => matches!(screen, Screen::Events | Screen::Detail),
        }
    }
}

/// A key: its code and whether Control is held. Shift is part of the character (`G`, `?`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn k(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: false,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

impl Key {
    pub fn of(ev: &KeyEvent) -> Key {
        Key {
            code: ev.code,
            ctrl: ev.modifiers.contains(KeyModifiers::CONTROL),
        }
    }

    /// A character typed as text (no Control or Alt): the door and form inputs take these.
    pub fn typed_char(ev: &KeyEvent) -> Option<char> {
        match ev.code {
            KeyCode::Char(c)
                if !ev
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
            {
                Some(c)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [Key],
    /// How the keys are written in help and the footer.
    pub label: &'static str,
    pub scope: Scope,
    pub command: Command,
    pub help: &'static str,
    /// Changes the box: hidden and refused in a read-only console.
    pub changes: bool,
}

const fn bind(
    keys: &'static [Key],
    label: &'static str,
    scope: Scope,
    command: Command,
    help: &'static str,
) -> Binding {
    Binding {
        keys,
        label,
        scope,
        command,
        help,
        changes: false,
    }
}

const fn act(
    keys: &'static [Key],
    label: &'static str,
    scope: Scope,
    command: Command,
    help: &'static str,
) -> Binding {
    Binding {
        keys,
        label,
        scope,
        command,
        help,
        changes: true,
    }
}

use Scope::{EventScreens, Everywhere, Lists, On};

/// Every binding, screen actions first so help lists what matters on this screen at the top.
#[rustfmt::skip]
pub const BINDINGS: &[Binding] = &[
    act(&[k('n')], "n", On(Screen::Events), Command::NewEvent, "new event"),
    bind(&[code(KeyCode::Enter)], "enter", On(Screen::Events), Command::Open, "open the event"),
    act(&[k('e')], "e", EventScreens, Command::EditEvent, "edit the event"),
    act(&[k('c')], "c", EventScreens, Command::SetCapacity, "change capacity"),
    act(&[k('p')], "p", EventScreens, Command::Publish, "publish (open sales)"),
    act(&[k('X')], "X", EventScreens, Command::CancelEvent, "cancel event (type its name)"),
    act(&[k('w')], "w", On(Screen::Detail), Command::WalkUp, "walk-up sale"),
    act(&[k('W')], "W", On(Screen::Detail), Command::WalkUpOverride, "walk-up ahead of waitlist"),
    act(&[k('x')], "x", On(Screen::Detail), Command::CancelRegistration, "cancel the registration"),
    bind(&[k('h'), k('l'), code(KeyCode::Left), code(KeyCode::Right)], "h/l", On(Screen::Detail), Command::SwitchList, "seated <-> waitlist"),
    act(&[k('r')], "r", On(Screen::Deliveries), Command::Retry, "retry the selected dead message"),
    act(&[k('R')], "R", On(Screen::Deliveries), Command::RetryAll, "retry all dead messages"),
    bind(&[k('j'), code(KeyCode::Down)], "j/down", Lists, Command::Down, "move down"),
    bind(&[k('k'), code(KeyCode::Up)], "k/up", Lists, Command::Up, "move up"),
    bind(&[k('g'), code(KeyCode::Home)], "g/home", Lists, Command::Top, "first row"),
    bind(&[k('G'), code(KeyCode::End)], "G/end", Lists, Command::Bottom, "last row"),
    bind(&[ctrl('d'), code(KeyCode::PageDown)], "ctrl-d/pgdn", Lists, Command::PageDown, "page down"),
    bind(&[ctrl('u'), code(KeyCode::PageUp)], "ctrl-u/pgup", Lists, Command::PageUp, "page up"),
    bind(&[k('/')], "/", Lists, Command::Filter, "filter the list"),
    bind(&[k('1')], "1", Everywhere, Command::Go(Screen::Dashboard), "dashboard"),
    bind(&[k('2')], "2", Everywhere, Command::Go(Screen::Events), "events"),
    bind(&[k('3')], "3", Everywhere, Command::Go(Screen::Door), "door (check-in)"),
    bind(&[k('4')], "4", Everywhere, Command::Go(Screen::Deliveries), "deliveries (outbox)"),
    bind(&[k('5')], "5", Everywhere, Command::Go(Screen::Audit), "audit log"),
    bind(&[code(KeyCode::Tab)], "tab", Everywhere, Command::NextScreen, "next screen"),
    bind(&[code(KeyCode::BackTab)], "shift-tab", Everywhere, Command::PrevScreen, "previous screen"),
    bind(&[code(KeyCode::Esc)], "esc", Everywhere, Command::Back, "back / clear"),
    bind(&[ctrl('r'), code(KeyCode::F(5))], "ctrl-r", Everywhere, Command::Refresh, "refresh now"),
    bind(&[k(':'), ctrl('p')], ":", Everywhere, Command::Palette, "command palette"),
    bind(&[k('?'), code(KeyCode::F(1))], "?/F1", Everywhere, Command::Help, "help"),
    bind(&[k('q'), ctrl('c')], "q/ctrl-c", Everywhere, Command::Quit, "quit"),
];

/// The bindings live on `screen`: in scope, and without actions when read-only.
pub fn live(screen: Screen, read_only: bool) -> impl Iterator<Item = &'static Binding> {
    BINDINGS
        .iter()
        .filter(move |b| b.scope.covers(screen) && !(read_only && b.changes))
}

/// The binding of a key on a screen, if any. On the Door screen typed characters belong to the
/// ticket input, so only non-character keys (and Control chords) reach the key map there.
pub fn lookup(screen: Screen, read_only: bool, ev: &KeyEvent) -> Option<&'static Binding> {
    let key = Key::of(ev);
    if screen == Screen::Door && Key::typed_char(ev).is_some() {
        return None;
    }
    live(screen, read_only).find(|b| b.keys.contains(&key))
}

/// An action binding that a read-only console refuses (to say so rather than ignore the key).
pub fn refused_in_read_only(screen: Screen, ev: &KeyEvent) -> Option<&'static Binding> {
    let key = Key::of(ev);
    BINDINGS
        .iter()
        .find(|b| b.changes && b.scope.covers(screen) && b.keys.contains(&key))
}
