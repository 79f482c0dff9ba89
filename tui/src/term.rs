//! The run loop: the terminal, the threads, and the order of things. The UI thread owns the model
//! and the terminal and only updates and draws; a worker thread owns the [`Backend`] and makes the
//! blocking calls; an input thread turns terminal events into messages. Everything meets in one
//! channel of [`Msg`]s, so the UI thread sleeps until there is something to do (a key, an answer,
//! or the one-second tick) and an idle console costs one refresh and one frame a second.

use std::cell::Cell;
use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossterm::cursor::{Hide, Show};
use crossterm::event::{self, Event};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

use crate::data::{Backend, Millis};
use crate::model::{update, Effect, Model, Msg, Options};
use crate::view::view;

/// How often the figures refresh.
pub const TICK: Duration = Duration::from_secs(1);
/// How long the input thread waits for a key before looking whether it should stop.
const INPUT_POLL: Duration = Duration::from_millis(250);

thread_local! {
    /// Set on the console's own threads: a panic there restores the terminal. A panic on another
    /// thread (a request handler the HTTP layer catches, say) must not drop the console's raw mode
    /// while the console keeps running.
    static CONSOLE_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Puts the terminal back: cooked mode, main screen, visible cursor. Safe to call twice.
pub fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CONSOLE_THREAD.with(Cell::get) {
                restore_terminal();
            }
            previous(info);
        }));
    });
}

/// Raw mode and the alternate screen for as long as it lives.
struct Screen;

impl Screen {
    fn enter() -> io::Result<Self> {
        let guard = Screen;
        enable_raw_mode()?;
        execute!(io::stdout(), EnterAlternateScreen, Hide)?;
        Ok(guard)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn wall_clock() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Stops a running console from another thread (SIGTERM, the server shutting down).
#[derive(Debug, Clone)]
pub struct Handle {
    tx: Sender<Msg>,
}

impl Handle {
    pub fn quit(&self) {
        let _ = self.tx.send(Msg::Quit);
    }
}

/// A console ready to take the terminal.
#[derive(Debug)]
pub struct Console {
    opts: Options,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
}

impl Console {
    pub fn new(opts: Options) -> (Console, Handle) {
        let (tx, rx) = mpsc::channel();
        let handle = Handle { tx: tx.clone() };
        (Console { opts, tx, rx }, handle)
    }

    /// Takes the terminal and runs until the operator quits or [`Handle::quit`] is called; the
    /// terminal is restored on every way out, a panic included.
    pub fn run<B: Backend + 'static>(self, backend: B) -> io::Result<()> {
        install_panic_hook();
        CONSOLE_THREAD.with(|c| c.set(true));
        let mut model = Model::new(backend.origin(), self.opts);
        let screen = Screen::enter()?;
        let result = self.run_loop(&mut model, backend);
        drop(screen);
        CONSOLE_THREAD.with(|c| c.set(false));
        result
    }

    fn run_loop<B: Backend + 'static>(self, model: &mut Model, backend: B) -> io::Result<()> {
        let mut terminal: Terminal<CrosstermBackend<Stdout>> =
            Terminal::new(CrosstermBackend::new(io::stdout()))?;
        terminal.clear()?;
        let size = terminal.size()?;
        model.size = (size.width, size.height);

        let (work_tx, work_rx) = mpsc::channel::<Effect>();
        let results = self.tx.clone();
        std::thread::Builder::new()
            .name("console-worker".into())
            .spawn(move || work(backend, work_rx, results))?;
        let stop = Arc::new(AtomicBool::new(false));
        let input_tx = self.tx.clone();
        let input_stop = stop.clone();
        std::thread::Builder::new()
            .name("console-input".into())
            .spawn(move || input(input_tx, input_stop))?;

        let mut next_tick = Instant::now();
        let outcome = loop {
            let first = match self
                .rx
                .recv_timeout(next_tick.saturating_duration_since(Instant::now()))
            {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => {
                    next_tick = (next_tick + TICK).max(Instant::now());
                    Msg::Tick { now: wall_clock() }
                }
                Err(RecvTimeoutError::Disconnected) => Msg::Quit,
            };
            // Everything already queued is applied before one frame is drawn.
            let mut msgs = vec![first];
            msgs.extend(self.rx.try_iter());
            for msg in msgs {
                for effect in update(model, msg) {
                    match effect {
                        Effect::Quit => {}
                        other => {
                            let _ = work_tx.send(other);
                        }
                    }
                }
            }
            if model.quit {
                break Ok(());
            }
            if let Err(e) = terminal.draw(|f| view(model, f)) {
                break Err(e);
            }
        };
        stop.store(true, Ordering::Relaxed);
        outcome
    }
}

/// The worker: one blocking call at a time, each answer sent back as a message. A panic in the
/// backend ends the console (the hook has restored the terminal) rather than leaving it waiting.
fn work<B: Backend>(mut backend: B, rx: Receiver<Effect>, tx: Sender<Msg>) {
    CONSOLE_THREAD.with(|c| c.set(true));
    for effect in rx {
        let msg = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match effect {
            Effect::Load(q) => {
                let r = backend.load(&q);
                Some(Msg::Loaded(q, r))
            }
            Effect::Act(a) => {
                let r = backend.act(&a);
                Some(Msg::Acted(a, r))
            }
            Effect::Quit => None,
        }));
        let msg = match msg {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(_) => Msg::Quit,
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

fn input(tx: Sender<Msg>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match event::poll(INPUT_POLL) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(_) => return,
        }
        let msg = match event::read() {
            Ok(Event::Key(k)) => Msg::Key(k),
            Ok(Event::Resize(w, h)) => Msg::Resize(w, h),
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}
