//! Drawing: a pure function of the [`Model`]. Nothing here changes state or talks to the box.
//!
//! Every state is written out in words or symbols (`on sale`, `✓ ADMITTED`, `dead`); colour, when on,
//! only repeats what the text says, so `NO_COLOR` and colour-blind operators lose nothing.

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Sparkline, Table, TableState, Wrap};
use ratatui::Frame;

use crate::data::{DoorResult, EventRow, EventState, SeatState};
use crate::format::{self, bar, fit, or_na};
use crate::keys::{self, Command, Scope, Screen};
use crate::model::{
    Confirm, Counter, DetailList, Form, Model, Overlay, Scan, Tone, SPARK_BUCKET_MS,
};
use crate::traffic::{Figures, Recent};

/// Below this the console shows a message instead of clipped tables.
pub const MIN_WIDTH: u16 = 70;
pub const MIN_HEIGHT: u16 = 20;

/// Styles, with or without colour. Without it, only modifiers (bold, reversed) remain.
#[derive(Clone, Copy)]
struct Theme {
    color: bool,
}

impl Theme {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }
    fn ok(self) -> Style {
        self.fg(Color::Green)
    }
    fn bad(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    fn warn(self) -> Style {
        self.fg(Color::Yellow)
    }
    fn dim(self) -> Style {
        self.fg(Color::DarkGray)
    }
    fn bold(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    fn accent(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    /// The door's result banner: a full block of colour when colour is on, bold text always.
    fn banner(self, good: bool) -> Style {
        let s = Style::new().add_modifier(Modifier::BOLD);
        if !self.color {
            return s;
        }
        if good {
            s.bg(Color::Green).fg(Color::Black)
        } else {
            s.bg(Color::Red).fg(Color::White)
        }
    }
}

/// Draws the whole console.
pub fn view(m: &Model, f: &mut Frame) {
    let area = f.area();
    let t = Theme {
        color: m.opts.color,
    };
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(f, area, t);
        return;
    }
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    header(m, f, head, t);
    footer(m, f, foot, t);
    let body = match &m.load_error {
        Some(e) => {
            let [warn, rest] =
                Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(body);
            // Silence and a refusal are told apart: a 403 is an answer, and the fix is a token
            // of another role, not the network.
            let said = match e.code.as_str() {
                // Nothing came back, or nothing the box would send (a proxy's page, say).
                "unreachable" | "bad_answer" => {
                    format!(
                        "✗ no answer from the box: {} (showing the last figures)",
                        e.message
                    )
                }
                "internal" | "storage_unavailable" | "outcome_unknown" => {
                    format!("✗ the box failed: {} (showing the last figures)", e.message)
                }
                _ => format!(
                    "✗ the box refused: {} (showing the last figures)",
                    e.message
                ),
            };
            f.render_widget(
                Paragraph::new(Line::styled(fit(&said, warn.width as usize), t.bad())),
                warn,
            );
            rest
        }
        None => body,
    };
    match m.screen {
        Screen::Dashboard => dashboard(m, f, body, t),
        Screen::Events => events(m, f, body, t),
        Screen::Detail => detail(m, f, body, t),
        Screen::Door => door(m, f, body, t),
        Screen::Deliveries => deliveries(m, f, body, t),
        Screen::Audit => audit(m, f, body, t),
    }
    match &m.overlay {
        None => {}
        Some(Overlay::Help) => help(m, f, area, t),
        Some(Overlay::Palette { input, selected }) => palette(m, f, area, t, input, *selected),
        Some(Overlay::Confirm(c)) => confirm(f, area, t, c),
        Some(Overlay::Form(form)) => form_popup(f, area, t, form),
    }
}

fn too_small(f: &mut Frame, area: Rect, t: Theme) {
    let text = Text::from(vec![
        Line::styled("Terminal too small", t.bad()),
        Line::raw(format!("{}x{}", area.width, area.height)),
        Line::raw(format!(
            "The console needs at least {MIN_WIDTH}x{MIN_HEIGHT}."
        )),
        Line::raw("Enlarge the window, or press q to quit."),
    ]);
    f.render_widget(
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true }),
        area,
    );
}

fn header(m: &Model, f: &mut Frame, area: Rect, t: Theme) {
    let mut spans = Vec::new();
    for (i, s) in Screen::TABS.iter().enumerate() {
        let label = format!("{} {}", i + 1, s.title());
        if m.screen.tab() == *s {
            spans.push(Span::styled(
                format!("[{label}]"),
                t.selected().add_modifier(Modifier::BOLD),
            ));
        } else {
            spans.push(Span::raw(format!(" {label} ")));
        }
        spans.push(Span::raw(" "));
    }
    let used: usize = spans.iter().map(|s| s.width()).sum();
    let mut right = format!("{} @ {}", m.origin.actor, m.origin.place);
    if m.opts.read_only {
        right = format!("READ-ONLY  {right}");
    }
    let room = (area.width as usize).saturating_sub(used + 1);
    let right = fit(&right, room);
    let pad = room.saturating_sub(right.chars().count());
    spans.push(Span::raw(" ".repeat(pad)));
    spans.push(Span::styled(
        right,
        if m.opts.read_only { t.warn() } else { t.dim() },
    ));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn footer(m: &Model, f: &mut Frame, area: Rect, t: Theme) {
    let width = area.width as usize;
    let line = if m.editing_filter {
        Line::from(vec![
            Span::styled(format!("/{}", m.filter()), t.accent()),
            Span::raw("▏"),
            Span::styled("  enter keeps · esc clears", t.dim()),
        ])
    } else if let Some(s) = &m.status {
        let (mark, style) = match s.tone {
            Tone::Ok => ("✓", t.ok()),
            Tone::Error => ("✗", t.bad()),
            Tone::Info => ("·", Style::new()),
        };
        Line::styled(fit(&format!("{mark} {}", s.text), width), style)
    } else {
        hints(m, width, t)
    };
    f.render_widget(Paragraph::new(line), area);
}

/// The footer's key hints: this screen's own keys first, then help and quit, as many as fit.
fn hints(m: &Model, width: usize, t: Theme) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    if !m.filter().is_empty() {
        let s = format!("filter: {}  ", m.filter());
        used += s.chars().count();
        spans.push(Span::styled(s, t.accent()));
    }
    // At the door every typed character belongs to the ticket input: only keys that type nothing
    // reach the key map there, and the hints say so.
    if m.screen == Screen::Door {
        for (k, what) in [
            ("enter", "check in"),
            ("esc", "clear"),
            ("tab", "screens"),
            ("F1", "help"),
            ("ctrl-c", "quit"),
            ("ctrl-p", "commands"),
        ] {
            let len = k.chars().count() + what.chars().count() + 3;
            if used + len > width {
                break;
            }
            used += len;
            spans.push(Span::styled(k.to_string(), t.accent()));
            spans.push(Span::raw(format!(" {what}  ")));
        }
        return Line::from(spans);
    }
    let own = keys::live(m.screen, m.opts.read_only)
        .filter(|b| matches!(b.scope, Scope::On(_) | Scope::EventScreens));
    let common = keys::live(m.screen, m.opts.read_only).filter(|b| {
        matches!(
            b.command,
            Command::Filter | Command::Palette | Command::Help | Command::Quit
        )
    });
    for b in own.chain(common) {
        // `?/F1` shows as `?`; a key that is itself `/` stays whole.
        let label = match b.label.split_once('/') {
            Some((first, _)) if !first.is_empty() => first,
            _ => b.label,
        };
        let item = format!("{label} {}", b.command.hint());
        let len = item.chars().count() + 2;
        if used + len > width {
            break;
        }
        used += len;
        spans.push(Span::styled(label.to_string(), t.accent()));
        spans.push(Span::raw(format!(" {}  ", b.command.hint())));
    }
    Line::from(spans)
}

fn titled(title: impl Into<Line<'static>>) -> Block<'static> {
    Block::bordered().title(title)
}

fn label_value(label: &str, value: String, width: usize) -> Line<'static> {
    Line::from(vec![
        Span::raw(format!("{label:<width$}")),
        Span::styled(value, Style::new().add_modifier(Modifier::BOLD)),
    ])
}

fn dashboard(m: &Model, f: &mut Frame, area: Rect, t: Theme) {
    let spark_h = if area.height >= 30 { 8 } else { 5 };
    let [figures, sparks, table] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Length(spark_h),
        Constraint::Fill(1),
    ])
    .areas(area);
    let d = m.dashboard.as_ref();
    let [req, outbox, boxed] = Layout::horizontal([
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
    ])
    .areas(figures);

    // "n/a": the box gives no counters; "…": a second sample is on its way. The values get 14
    // cells at 80 columns, what the longest latency line needs ("250/500/999 ms").
    let recent = m.traffic.recent();
    let figure = |known: &dyn Fn(&Figures) -> String| match &recent {
        Recent::Missing => "n/a".to_string(),
        Recent::Gathering => "…".to_string(),
        Recent::Known(f) => known(f),
    };
    let requests = vec![
        label_value(
            "requests/s ",
            figure(&|f| format::per_second(f.requests_per_s)),
            11,
        ),
        label_value(
            "p50/95/99  ",
            figure(&|f| f.latency.map(format::latency).unwrap_or("idle".into())),
            11,
        ),
        label_value(
            "cache hits ",
            figure(&|f| {
                f.cache_hit_rate
                    .map(format::percent)
                    .unwrap_or("no lookups".into())
            }),
            11,
        ),
    ];
    let title = match &recent {
        Recent::Known(f) => format!(" Requests, last {} s ", (f.span_ms + 500) / 1000),
        _ => " Requests ".to_string(),
    };
    f.render_widget(Paragraph::new(requests).block(titled(title)), req);

    let o = d.and_then(|d| d.outbox);
    let outbox_lines = match o {
        None => vec![Line::raw("n/a")],
        Some(o) => {
            let dead_style = if o.dead > 0 { t.bad() } else { Style::new() };
            vec![
                Line::from(vec![
                    Span::raw("pending "),
                    Span::styled(o.pending.to_string(), t.bold()),
                    Span::raw(format!(
                        " · oldest {}",
                        format::duration(o.oldest_pending_age_secs as u64)
                    )),
                ]),
                Line::from(vec![
                    Span::raw("dead "),
                    Span::styled(o.dead.to_string(), dead_style),
                    Span::raw(format!(" · failed {}", o.failed_total)),
                ]),
                Line::raw(format!("delivered {}", o.delivered_total)),
            ]
        }
    };
    f.render_widget(
        Paragraph::new(outbox_lines).block(titled(" Outbox ")),
        outbox,
    );

    let box_lines = vec![
        label_value(
            "database ",
            or_na(d.and_then(|d| d.db_bytes), format::bytes),
            10,
        ),
        label_value(
            "uptime   ",
            or_na(d.and_then(|d| d.uptime_secs), format::duration),
            10,
        ),
        label_value(
            "refreshed",
            or_na(d.map(|d| d.at), |at| format!("{} UTC", format::clock(at))),
            10,
        ),
    ];
    f.render_widget(Paragraph::new(box_lines).block(titled(" Box ")), boxed);

    let [left, right] =
        Layout::horizontal([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(sparks);
    spark(m, f, left, t, Counter::Registrations, "Registrations/min");
    spark(m, f, right, t, Counter::CheckedIn, "Check-ins/min");

    let rows: Vec<Row> = d
        .map(|d| d.on_sale.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            Row::new(vec![
                Cell::from(e.name.clone()),
                Cell::from(format::date_time(e.starts_at)),
                Cell::from(seats(e, 10)),
                Cell::from(format!("{}", e.waitlisted)),
                Cell::from(format!("{}/{}", e.checked_in, e.confirmed)),
            ])
        })
        .collect();
    let empty = if d.is_none() {
        "loading…"
    } else {
        "no event on sale"
    };
    let table_w = Table::new(
        with_empty(rows, empty, 0, t),
        [
            Constraint::Fill(1),
            Constraint::Length(16),
            Constraint::Length(22),
            Constraint::Length(7),
            Constraint::Length(9),
        ],
    )
    .header(Row::new(vec!["Event", "Starts (UTC)", "Sold", "Waiting", "In"]).style(t.bold()))
    .block(titled(" On sale "));
    f.render_widget(table_w, table);
}

fn spark(m: &Model, f: &mut Frame, area: Rect, t: Theme, c: Counter, name: &str) {
    let rate = m.rates.per_minute(c);
    let missing = match c {
        Counter::Registrations => m
            .dashboard
            .as_ref()
            .is_some_and(|d| d.registrations_total.is_none()),
        Counter::CheckedIn => m
            .dashboard
            .as_ref()
            .is_some_and(|d| d.checked_in_total.is_none()),
    };
    let value = if missing {
        "n/a".to_string()
    } else {
        rate.map(|r| format!("{r:.1}"))
            .unwrap_or_else(|| "…".to_string())
    };
    let inner = area.width.saturating_sub(2) as usize;
    let data = m.rates.spark(c, inner);
    let span_secs = inner as i64 * SPARK_BUCKET_MS / 1000;
    let block = Block::bordered()
        .title(Line::from(vec![
            Span::raw(format!(" {name} ")),
            Span::styled(format!("{value} "), t.bold()),
        ]))
        .title_bottom(Line::styled(
            format!(
                " last {}, {} s a bar ",
                format::duration(span_secs as u64),
                SPARK_BUCKET_MS / 1000
            ),
            t.dim(),
        ));
    f.render_widget(
        Sparkline::default()
            .block(block)
            .data(data)
            .style(t.fg(Color::Cyan)),
        area,
    );
}

/// `███░░░░░░░ 16/40`
fn seats(e: &EventRow, width: usize) -> String {
    format!(
        "{} {}/{}",
        bar(e.confirmed + e.offered, e.capacity, width),
        e.confirmed + e.offered,
        e.capacity
    )
}

/// The rows, or one row saying why there are none, in column `col` (a wide one).
fn with_empty<'a>(rows: Vec<Row<'a>>, empty: &'a str, col: usize, t: Theme) -> Vec<Row<'a>> {
    if !rows.is_empty() {
        return rows;
    }
    let mut cells = vec![Cell::from(""); col];
    cells.push(Cell::from(Span::styled(empty, t.dim())));
    vec![Row::new(cells)]
}

fn list_table<'a>(
    rows: Vec<Row<'a>>,
    widths: Vec<Constraint>,
    header: Row<'a>,
    block: Block<'a>,
    t: Theme,
) -> Table<'a> {
    Table::new(rows, widths)
        .header(header.style(t.bold()))
        .block(block)
        .row_highlight_style(t.selected())
        .highlight_symbol("▶ ")
}

fn status_cell(s: EventState, t: Theme) -> Cell<'static> {
    let style = match s {
        EventState::Published => t.ok(),
        EventState::Cancelled => t.bad(),
        EventState::Draft | EventState::Completed => t.dim(),
    };
    Cell::from(Span::styled(s.label(), style))
}

fn events(m: &Model, f: &mut Frame, area: Rect, t: Theme) {
    let visible = m.visible_events();
    // Narrow terminals get a shorter bar so names keep their room; the numbers stay.
    let bar_w = if area.width >= 100 { 10 } else { 5 };
    let rows: Vec<Row> = visible
        .iter()
        .map(|e| {
            Row::new(vec![
                Cell::from(e.name.clone()),
                Cell::from(format::date_time(e.starts_at)),
                status_cell(e.status, t),
                Cell::from(seats(e, bar_w)),
                Cell::from(e.waitlisted.to_string()),
                Cell::from(e.checked_in.to_string()),
            ])
        })
        .collect();
    let n = rows.len();
    let empty = if m.events.is_none() {
        "loading…"
    } else {
        "no events match"
    };
    let table = list_table(
        with_empty(rows, empty, 0, t),
        vec![
            Constraint::Fill(1),
            Constraint::Length(16),
            Constraint::Length(9),
            Constraint::Length(bar_w as u16 + 12),
            Constraint::Length(7),
            Constraint::Length(5),
        ],
        Row::new(vec![
            "Event",
            "Starts (UTC)",
            "Status",
            "Seats",
            "Waiting",
            "In",
        ]),
        titled(format!(" Events ({n}) ")),
        t,
    );
    let mut state = TableState::default().with_selected((n > 0).then_some(m.events_sel));
    f.render_stateful_widget(table, area, &mut state);
}

fn detail(m: &Model, f: &mut Frame, area: Rect, t: Theme) {
    let Some(d) = &m.detail else {
        f.render_widget(Paragraph::new("loading…").block(titled(" Event ")), area);
        return;
    };
    let e = &d.event;
    // The last walk-up sold here, if it was for this event.
    let last_sale = m.last_sale.as_ref().filter(|s| s.event_id == d.event.id);
    let head_h = if last_sale.is_some() { 5 } else { 4 };
    let [head, lists] =
        Layout::vertical([Constraint::Length(head_h), Constraint::Fill(1)]).areas(area);
    let mut lines = vec![
        Line::from(vec![
            Span::raw(format!(
                "{} · {} UTC · ",
                e.venue,
                format::date_time(e.starts_at)
            )),
            Span::styled(
                e.status.label(),
                match e.status {
                    EventState::Published => t.ok(),
                    EventState::Cancelled => t.bad(),
                    _ => t.dim(),
                },
            ),
            Span::raw(if e.waitlist_enabled {
                " · waitlist open"
            } else {
                " · waitlist closed"
            }),
        ]),
        Line::raw(format!(
            "seats {} · free {} · offered {} · waiting {} · checked in {}",
            seats(e, 10),
            e.free(),
            e.offered,
            e.waitlisted,
            e.checked_in
        )),
    ];
    if let Some(sale) = last_sale {
        lines.push(Line::from(vec![
            Span::raw("last walk-up: ticket "),
            Span::styled(sale.ticket_code.clone(), t.bold()),
            Span::raw(format!(" ({})", sale.name)),
        ]));
    }
    f.render_widget(
        Paragraph::new(lines).block(titled(Line::styled(format!(" {} ", e.name), t.bold()))),
        head,
    );

    let [seated_area, wait_area] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(lists);
    let wide = area.width >= 100;
    let focus = |l: DetailList| if m.detail_focus == l { "▶" } else { " " };

    let seated = m.visible_seated();
    let rows: Vec<Row> = seated
        .iter()
        .map(|s| {
            let code = s.ticket_code.clone().unwrap_or_else(|| "-".into());
            Row::new(vec![
                Cell::from(s.attendee.clone()),
                Cell::from(Span::styled(
                    s.status.label(),
                    if s.status == SeatState::Offered {
                        t.warn()
                    } else {
                        Style::new()
                    },
                )),
                Cell::from(match (s.checked_in_at, s.offer_expires_at) {
                    (Some(at), _) => format!("in {}", format::clock(at)),
                    (None, Some(exp)) => format!("until {}", format::clock(exp)),
                    _ => "-".into(),
                }),
                Cell::from(if wide { code } else { fit(&code, 14) }),
            ])
        })
        .collect();
    let n_seated = e.confirmed + e.offered;
    let shown = if seated.len() as i64 == n_seated {
        format!("{n_seated}")
    } else {
        format!("{} of {n_seated}", seated.len())
    };
    let table = list_table(
        with_empty(rows, "nobody holds a seat", 0, t),
        vec![
            Constraint::Fill(1),
            Constraint::Length(9),
            Constraint::Length(14),
            Constraint::Length(if wide { 34 } else { 14 }),
        ],
        Row::new(vec!["Name", "Status", "Checked in", "Ticket"]),
        titled(format!(" {} Seated ({shown}) ", focus(DetailList::Seated))),
        t,
    );
    let sel = (m.detail_focus == DetailList::Seated && !seated.is_empty()).then_some(m.seated_sel);
    f.render_stateful_widget(
        table,
        seated_area,
        &mut TableState::default().with_selected(sel),
    );

    let waiting = m.visible_waitlist();
    let rows: Vec<Row> = waiting
        .iter()
        .map(|s| {
            Row::new(vec![
                Cell::from(s.position.map(|p| format!("#{p}")).unwrap_or_default()),
                Cell::from(s.attendee.clone()),
                Cell::from(format!("joined {} UTC", format::date_time(s.created_at))),
            ])
        })
        .collect();
    let table = list_table(
        with_empty(rows, "nobody waits", 1, t),
        vec![
            Constraint::Length(6),
            Constraint::Fill(1),
            Constraint::Length(27),
        ],
        Row::new(vec!["Pos", "Name", "Joined"]),
        titled(format!(
            " {} Waitlist ({}) ",
            focus(DetailList::Waitlist),
            e.waitlisted
        )),
        t,
    );
    let sel =
        (m.detail_focus == DetailList::Waitlist && !waiting.is_empty()).then_some(m.waitlist_sel);
    f.render_stateful_widget(
        table,
        wait_area,
        &mut TableState::default().with_selected(sel),
    );
}

/// The banner of a scan: what to do with the person in front of you, in words.
fn scan_banner(s: &Scan) -> (bool, String, String) {
    match &s.result {
        Ok(DoorResult::Admitted {
            name,
            event,
            checked_in,
            confirmed,
        }) => (
            true,
            "✓  ADMITTED".into(),
            format!("{name} · {event} · {checked_in} of {confirmed} in"),
        ),
        Ok(DoorResult::AlreadyCheckedIn { at }) => (
            false,
            "✗  ALREADY CHECKED IN".into(),
            match at {
                Some(at) => format!("at {} UTC · do not admit again", format::clock(*at)),
                None => "do not admit again".into(),
            },
        ),
        Ok(DoorResult::Cancelled) => (false, "✗  TICKET CANCELLED".into(), "do not admit".into()),
        Ok(DoorResult::Unknown) => (
            false,
            "?  UNKNOWN TICKET".into(),
            format!("no ticket has the code {}", s.code),
        ),
        Ok(DoorResult::NotOpen { detail }) => (false, "✗  EVENT NOT OPEN".into(), detail.clone()),
        Err(f) => (false, "!  NO ANSWER".into(), f.message.clone()),
    }
}

fn door(m: &Model, f: &mut Frame, area: Rect, t: Theme) {
    let banner_h = if area.height >= 30 { 9 } else { 7 };
    let [input, banner, history] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(banner_h),
        Constraint::Fill(1),
    ])
    .areas(area);
    let waiting = if m.door.waiting > 0 {
        "  checking…"
    } else {
        ""
    };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("> ", t.accent()),
            Span::styled(m.door.input.clone(), t.bold()),
            Span::raw("▏"),
            Span::styled(waiting, t.dim()),
        ]))
        .block(titled(" Scan or type a ticket code, then Enter ")),
        input,
    );

    let pad = banner_h.saturating_sub(4) / 2;
    let mut lines: Vec<Line> = (0..pad).map(|_| Line::raw("")).collect();
    let style = match m.door.scans.front() {
        None => {
            lines.push(Line::styled("Ready: scan a ticket", t.dim()));
            Style::new()
        }
        Some(s) => {
            let (good, big, small) = scan_banner(s);
            lines.push(Line::styled(big, Style::new().add_modifier(Modifier::BOLD)));
            lines.push(Line::raw(""));
            lines.push(Line::raw(small));
            t.banner(good)
        }
    };
    f.render_widget(
        Paragraph::new(lines)
            .alignment(Alignment::Center)
            .style(style)
            .block(Block::bordered().title(" Result ")),
        banner,
    );

    let rows: Vec<Row> = m
        .door
        .scans
        .iter()
        .map(|s| {
            let (good, big, small) = scan_banner(s);
            Row::new(vec![
                Cell::from(format::clock(s.at)),
                Cell::from(Span::styled(
                    big.trim_start_matches(['✓', '✗', '?', '!', ' '])
                        .to_string(),
                    if good { t.ok() } else { t.bad() },
                )),
                Cell::from(small),
            ])
        })
        .collect();
    let n = rows.len();
    f.render_widget(
        Table::new(
            with_empty(rows, "no scans yet", 2, t),
            [
                Constraint::Length(8),
                Constraint::Length(20),
                Constraint::Fill(1),
            ],
        )
        .header(Row::new(vec!["Time", "Result", ""]).style(t.bold()))
        .block(titled(format!(" Last scans ({n}) "))),
        history,
    );
}

fn deliveries(m: &Model, f: &mut Frame, area: Rect, t: Theme) {
    let [summary, list] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    let line = match &m.deliveries {
        None => Line::raw("loading…"),
        Some(d) => {
            let o = d.figures;
            Line::from(vec![
                Span::raw(format!(
                    " pending {} · oldest {} · ",
                    o.pending,
                    format::duration(o.oldest_pending_age_secs as u64)
                )),
                Span::styled(
                    format!("dead {}", o.dead),
                    if o.dead > 0 { t.bad() } else { Style::new() },
                ),
                Span::raw(format!(
                    " · failed attempts {} · delivered {}",
                    o.failed_total, o.delivered_total
                )),
            ])
        }
    };
    f.render_widget(Paragraph::new(line), summary);
    let visible = m.visible_messages();
    let rows: Vec<Row> = visible
        .iter()
        .map(|msg| {
            let dead = msg.state == "dead";
            Row::new(vec![
                Cell::from(Span::styled(
                    msg.state.clone(),
                    if dead { t.bad() } else { t.warn() },
                )),
                Cell::from(msg.kind.clone()),
                Cell::from(msg.attempts.to_string()),
                Cell::from(
                    msg.next_attempt_at
                        .map(format::clock)
                        .unwrap_or_else(|| "-".into()),
                ),
                Cell::from(msg.last_error.clone().unwrap_or_else(|| "-".into())),
            ])
        })
        .collect();
    let n = rows.len();
    let empty = if m.deliveries.is_none() {
        "loading…"
    } else {
        "nothing waits: every message is delivered"
    };
    let table = list_table(
        with_empty(rows, empty, 1, t),
        vec![
            Constraint::Length(7),
            Constraint::Length(24),
            Constraint::Length(5),
            Constraint::Length(9),
            Constraint::Fill(1),
        ],
        Row::new(vec!["State", "Type", "Tries", "Next try", "Last error"]),
        titled(format!(" Dead and pending messages ({n}) ")),
        t,
    );
    let mut state = TableState::default().with_selected((n > 0).then_some(m.deliveries_sel));
    f.render_stateful_widget(table, list, &mut state);
}

fn audit(m: &Model, f: &mut Frame, area: Rect, t: Theme) {
    let visible = m.visible_audit();
    let wide = area.width >= 100;
    let rows: Vec<Row> = visible
        .iter()
        .map(|a| {
            let mut cells = vec![
                Cell::from(format!(
                    "{} {}",
                    &format::date_time(a.at)[5..10],
                    format::clock(a.at)
                )),
                Cell::from(a.actor.clone()),
                Cell::from(a.action.clone()),
                Cell::from(a.target.clone().unwrap_or_else(|| "-".into())),
                Cell::from(a.detail.clone().unwrap_or_default()),
            ];
            if wide {
                cells.push(Cell::from(
                    a.remote_addr.clone().unwrap_or_else(|| "local".into()),
                ));
            }
            Row::new(cells)
        })
        .collect();
    let n = rows.len();
    let mut widths = vec![
        Constraint::Length(14),
        Constraint::Length(12),
        Constraint::Length(22),
        Constraint::Fill(1),
        Constraint::Fill(1),
    ];
    let mut head = vec!["When (UTC)", "Actor", "Action", "Target", "Detail"];
    if wide {
        widths.push(Constraint::Length(21));
        head.push("From");
    }
    let empty = if m.audit.is_none() {
        "loading…"
    } else {
        "no audit rows match"
    };
    let table = list_table(
        with_empty(rows, empty, 3, t),
        widths,
        Row::new(head),
        titled(format!(" Audit log, newest first ({n}) ")),
        t,
    );
    let mut state = TableState::default().with_selected((n > 0).then_some(m.audit_sel));
    f.render_stateful_widget(table, area, &mut state);
}

/// A centred rectangle of at most `w` x `h` inside `area`.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width.saturating_sub(2));
    let h = h.min(area.height.saturating_sub(2));
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn help(m: &Model, f: &mut Frame, area: Rect, t: Theme) {
    let entries: Vec<_> = keys::live(m.screen, m.opts.read_only).collect();
    let inner_h = area.height.saturating_sub(4) as usize;
    let cols = if entries.len() <= inner_h { 1 } else { 2 };
    let per_col = entries.len().div_ceil(cols);
    let col_w = (area.width.saturating_sub(4) as usize / cols).min(40);
    let mut lines = Vec::new();
    for r in 0..per_col {
        let mut spans = Vec::new();
        for c in 0..cols {
            if let Some(b) = entries.get(c * per_col + r) {
                spans.push(Span::styled(format!("{:<12}", b.label), t.accent()));
                spans.push(Span::raw(format!(
                    "{:<w$}",
                    fit(b.help, col_w - 13),
                    w = col_w - 12
                )));
            }
        }
        lines.push(Line::from(spans));
    }
    let w = (col_w * cols + 2) as u16;
    let h = (per_col + 2) as u16;
    let rect = centered(area, w, h);
    let mut title = format!(" Keys: {} (any key closes) ", m.screen.title());
    if m.opts.read_only {
        title = format!(" Keys: {} · read-only ", m.screen.title());
    }
    f.render_widget(Clear, rect);
    f.render_widget(Paragraph::new(lines).block(titled(title)), rect);
}

fn palette(m: &Model, f: &mut Frame, area: Rect, t: Theme, input: &str, selected: usize) {
    let entries = crate::model::palette_entries(m, input);
    let rect = centered(area, 60, 14);
    f.render_widget(Clear, rect);
    let block = titled(" Commands (enter runs · esc closes) ");
    let inner = block.inner(rect);
    f.render_widget(block, rect);
    let [prompt, list] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(inner);
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(": ", t.accent()),
            Span::raw(input.to_string()),
            Span::raw("▏"),
        ])),
        prompt,
    );
    let rows: Vec<Row> = entries
        .iter()
        .map(|b| {
            Row::new(vec![
                Cell::from(b.help),
                Cell::from(Span::styled(b.label, t.dim())),
            ])
        })
        .collect();
    let n = rows.len();
    let table = Table::new(
        with_empty(rows, "no command matches", 0, t),
        [Constraint::Fill(1), Constraint::Length(12)],
    )
    .row_highlight_style(t.selected())
    .highlight_symbol("▶ ");
    let mut state = TableState::default().with_selected((n > 0).then_some(selected));
    f.render_stateful_widget(table, list, &mut state);
}

fn confirm(f: &mut Frame, area: Rect, t: Theme, c: &Confirm) {
    let mut lines: Vec<Line> = c.lines.iter().map(|l| Line::raw(l.clone())).collect();
    lines.push(Line::raw(""));
    match &c.expect {
        None => lines.push(Line::from(vec![
            Span::styled("y", t.accent()),
            Span::raw(" confirms · any other key cancels"),
        ])),
        Some(_) => {
            lines.push(Line::from(vec![
                Span::styled("> ", t.accent()),
                Span::styled(c.typed.clone(), t.bold()),
                Span::raw("▏"),
            ]));
            if c.mismatch {
                lines.push(Line::styled(
                    "✗ the name does not match; nothing changed yet",
                    t.bad(),
                ));
            }
            lines.push(Line::from(vec![
                Span::styled("enter", t.accent()),
                Span::raw(" confirms · "),
                Span::styled("esc", t.accent()),
                Span::raw(" cancels"),
            ]));
        }
    }
    let w = c
        .lines
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(20)
        .max(40)
        + 4;
    let rect = centered(area, w as u16, lines.len() as u16 + 2);
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(Line::styled(format!(" {} ", c.title), t.bad()))),
        rect,
    );
}

fn form_popup(f: &mut Frame, area: Rect, t: Theme, form: &Form) {
    let mut lines = Vec::new();
    for (i, field) in form.fields.iter().enumerate() {
        let focused = i == form.focus;
        let mark = if focused { "▶ " } else { "  " };
        let mut spans = vec![
            Span::raw(mark),
            Span::raw(format!("{:<10}", field.label)),
            Span::styled(
                field.value.clone(),
                if focused { t.bold() } else { Style::new() },
            ),
        ];
        if focused {
            spans.push(Span::raw("▏"));
        }
        lines.push(Line::from(spans));
        if !field.hint.is_empty() {
            lines.push(Line::styled(format!("            {}", field.hint), t.dim()));
        }
    }
    lines.push(Line::raw(""));
    if let Some(e) = &form.error {
        lines.push(Line::styled(format!("✗ {e}"), t.bad()));
    }
    lines.push(Line::from(vec![
        Span::styled("tab", t.accent()),
        Span::raw(" next field · "),
        Span::styled("enter", t.accent()),
        Span::raw(" save · "),
        Span::styled("esc", t.accent()),
        Span::raw(" cancel"),
    ]));
    let rect = centered(area, 66, lines.len() as u16 + 2);
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(titled(Line::styled(format!(" {} ", form.title), t.bold()))),
        rect,
    );
}
