//! The one writer thread. It owns the only write connection (`synchronous=FULL`) and commits in groups:
//! it takes every command already queued (up to a bound), runs each in its own SAVEPOINT inside one
//! `BEGIN IMMEDIATE` transaction, commits once, and only then answers the callers. One fsync serves many
//! sales, a failing command rolls back only its own savepoint, and the total order of commands is what
//! makes the seat invariants (I1-I4) simple to keep. The hot commands whose refusals all come before
//! their first write run without a savepoint (`Guard::RefusesBeforeWriting`); one of them failing after
//! a write rolls back its whole group instead.

use std::cell::{Cell, RefCell};
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::StoreError;
use crate::domain::{DomainEventType, RegistrationId};

/// How many domain events of each kind a transaction recorded in the outbox. The writer reports the
/// tally of a group only once it has committed, so counters fed from it (`/metrics`) count what is
/// durable, never what was attempted and rolled back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventTally([u32; DomainEventType::ALL.len()]);

impl EventTally {
    /// Events of this kind.
    pub fn get(&self, kind: DomainEventType) -> u32 {
        self.0[kind as usize]
    }

    /// Every kind with its count (zeros included).
    pub fn iter(&self) -> impl Iterator<Item = (DomainEventType, u32)> + '_ {
        DomainEventType::ALL.iter().map(|k| (*k, self.get(*k)))
    }

    /// Events of every kind together: the outbox rows written.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|n| u64::from(*n)).sum()
    }

    fn add(&mut self, kind: DomainEventType) {
        self.0[kind as usize] = self.0[kind as usize].saturating_add(1);
    }
}

/// The write transaction a command runs in. Only the writer thread creates one, so every function that
/// takes `&Tx` is known to run inside the single writer's transaction, together with its outbox rows.
pub struct Tx<'c> {
    conn: &'c Connection,
    depth: Cell<u32>,
    events: Cell<EventTally>,
    inserted: RefCell<Vec<NewReg>>,
    /// A command without a savepoint of its own failed after it had changed rows: the group cannot
    /// commit (its half-done change would stand without its outbox row) and is rolled back whole.
    spoiled: Cell<bool>,
}

/// The commit report's notes before a command ran (`Tx::notes_mark`).
#[derive(Clone, Copy)]
struct NotesMark {
    events: EventTally,
    inserted: usize,
}

/// A registration row a group inserted: its public id and its internal keys, which never change, so
/// a read cache may keep them for good once the group has committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewReg {
    pub id: RegistrationId,
    pub seq: i64,
    pub event_seq: i64,
}

impl<'c> Tx<'c> {
    fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            depth: Cell::new(0),
            events: Cell::new(EventTally::default()),
            inserted: RefCell::default(),
            spoiled: Cell::new(false),
        }
    }

    /// Runs `f` in a nested savepoint: on `Err` (or a panic) everything `f` wrote is rolled back and the
    /// rest of the transaction is untouched.
    pub fn savepoint<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'c>) -> Result<T, E>,
    ) -> Result<T, E> {
        if self.conn.is_autocommit() {
            // The transaction is gone; a SAVEPOINT now would open a new one and commit on RELEASE.
            return Err(StoreError::TransactionLost.into());
        }
        let depth = self.depth.get();
        self.exec(&format!("SAVEPOINT sp{depth}"))?;
        self.depth.set(depth + 1);
        let notes = self.notes_mark();
        let result = catch_unwind(AssertUnwindSafe(|| f(self)));
        self.depth.set(depth);
        // On some errors (disk full, I/O) SQLite rolls the whole transaction back by itself. The
        // savepoint went with it, so there is nothing to roll back to, and the command's own error is
        // the one worth reporting; the writer sees the loss and fails the whole group.
        let lost = self.conn.is_autocommit();
        if lost || !matches!(result, Ok(Ok(_))) {
            self.forget_notes_since(notes);
        }
        match result {
            Ok(Ok(_)) if lost => Err(StoreError::TransactionLost.into()),
            Ok(Ok(v)) => {
                self.exec(&format!("RELEASE sp{depth}"))?;
                Ok(v)
            }
            Ok(Err(e)) => {
                if !lost {
                    self.rollback_to(depth)?;
                }
                Err(e)
            }
            Err(_) => {
                if !lost {
                    self.rollback_to(depth)?;
                }
                Err(StoreError::CommandPanicked.into())
            }
        }
    }

    /// Runs a fixed statement through the statement cache: savepoints are on every command's path.
    fn exec(&self, sql: &str) -> Result<(), StoreError> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    fn rollback_to(&self, depth: u32) -> Result<(), StoreError> {
        self.exec(&format!("ROLLBACK TO sp{depth}"))?;
        self.exec(&format!("RELEASE sp{depth}"))
    }

    /// Runs `f` without a savepoint of its own, for a command whose every refusal comes before its
    /// first write (a sale, a door scan). A savepoint makes SQLite copy each page the command
    /// touches into a sub-journal first, about a tenth of the writer's time in a rush, to undo a
    /// command that fails halfway; such a command never fails halfway but on an SQLite error or a
    /// bug. Should it fail (or panic) after it has changed rows anyway, the group is spoiled: the
    /// writer rolls the whole group back and tells every caller, so no half-done change commits
    /// without its outbox row (I5). A refusal before any write leaves the group as it was.
    pub fn unguarded<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'c>) -> Result<T, E>,
    ) -> Result<T, E> {
        if self.conn.is_autocommit() {
            return Err(StoreError::TransactionLost.into());
        }
        let changes_before = self.conn.total_changes();
        let notes = self.notes_mark();
        let result = catch_unwind(AssertUnwindSafe(|| f(self)));
        let lost = self.conn.is_autocommit();
        if lost || !matches!(result, Ok(Ok(_))) {
            self.forget_notes_since(notes);
            // A statement that failed was undone by SQLite and counted no change; what counts is
            // whether an earlier statement of this command went through.
            if !lost && self.conn.total_changes() != changes_before {
                self.spoiled.set(true);
            }
        }
        match result {
            Ok(Ok(_)) if lost => Err(StoreError::TransactionLost.into()),
            Ok(r) => r,
            Err(_) => Err(StoreError::CommandPanicked.into()),
        }
    }

    /// How far the commit report's notes (outbox rows by kind, registrations inserted) have come.
    fn notes_mark(&self) -> NotesMark {
        NotesMark {
            events: self.events.get(),
            inserted: self.inserted.borrow().len(),
        }
    }

    /// Forgets the notes of a command that does not stand.
    fn forget_notes_since(&self, mark: NotesMark) {
        self.events.set(mark.events);
        self.inserted.borrow_mut().truncate(mark.inserted);
    }

    /// Notes a registration row inserted, for the commit report.
    pub(crate) fn note_registration(&self, reg: NewReg) {
        self.inserted.borrow_mut().push(reg);
    }

    /// Counts an outbox row written, by kind: the commit wakes the outbox processor, and the counts
    /// of a committed group feed the business counters of `/metrics`.
    pub(crate) fn note_outbox_row(&self, kind: DomainEventType) {
        let mut tally = self.events.get();
        tally.add(kind);
        self.events.set(tally);
    }
}

impl Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// What one group commit did, for metrics, for waking the outbox processor, and for the read cache.
#[derive(Debug, Clone)]
pub struct CommitReport {
    /// Commands in the group (the batch size).
    pub commands: usize,
    /// Outbox rows committed (0 when the group failed).
    pub outbox_rows: u64,
    /// The domain events committed, by kind (all zero when the group failed).
    pub events: EventTally,
    /// From `BEGIN IMMEDIATE` to the end of `COMMIT` (its fsync included): what the group's callers
    /// waited for, besides their time in the queue.
    pub duration: Duration,
    pub ok: bool,
    /// The events and attendees whose rows the group wrote (also when it failed: a cache may drop
    /// more than it must, never less). Each appears once.
    pub touched: Vec<Touched>,
    /// The registrations the group inserted (empty when it failed).
    pub inserted: Vec<NewReg>,
    /// Another connection (another process on the same file) committed since the writer last looked:
    /// anything read before may be stale. Also reported on its own (`commands` 0) when the writer is
    /// idle, within about a second.
    pub foreign_change: bool,
}

/// How often an idle writer looks for commits by other processes on the same file.
const FOREIGN_CHECK: Duration = Duration::from_secs(1);

/// `PRAGMA data_version` of the writer's connection: it moves only when another connection commits.
fn data_version(conn: &Connection) -> Option<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0)).ok()
}

fn run_hooks(hooks: &Mutex<Vec<CommitHook>>, report: &CommitReport, conn: &Connection) {
    for hook in hooks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        // A hook that panics must not take the only writer down with it.
        if catch_unwind(AssertUnwindSafe(|| hook(report, conn))).is_err() {
            tracing::error!("a commit hook panicked");
        }
    }
}

/// A row a group commit wrote that read caches depend on, by its internal sequence number. The
/// counters of an event live in its row, so every change to its registrations touches it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Touched {
    Event(i64),
    Attendee(i64),
    /// A registration (inserted or updated): waitlist orders held in memory follow it.
    Registration(i64),
}

/// Runs on the writer thread after each group, before its callers are answered. It gets the
/// writer's connection, outside any transaction, to read back what the group committed.
pub type CommitHook = Arc<dyn Fn(&CommitReport, &Connection) + Send + Sync>;

/// A queued command: runs inside the transaction and hands back how to answer its caller once the
/// outcome of the commit is known.
/// It gets `None` when the transaction could not be opened or was lost before its turn.
type Job = Box<dyn FnOnce(Option<&Tx<'_>>) -> Reply + Send>;
type Reply = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// How a command is kept apart from the others of its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// In its own savepoint: a failure anywhere rolls back this command only.
    Savepoint,
    /// Without one (`Tx::unguarded`), for commands whose every refusal comes before their first
    /// write, or is that write refused by a constraint (SQLite undoes a failed statement whole, so
    /// it changed nothing: a sale's second active registration); a failure after a write rolls back
    /// the whole group.
    RefusesBeforeWriting,
}

pub(super) struct Writer {
    sender: Mutex<Option<SyncSender<Job>>>,
    /// Commands queued and not yet taken into a group.
    queued: Arc<AtomicUsize>,
    /// When the last group commit succeeded (for `/health` while the queue is full).
    last_ok: Arc<Mutex<Option<Instant>>>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    pub(super) fn spawn(
        conn: Connection,
        max_batch: usize,
        queue: usize,
        hooks: Arc<Mutex<Vec<CommitHook>>>,
    ) -> Self {
        let (sender, receiver) = sync_channel::<Job>(queue.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let last_ok: Arc<Mutex<Option<Instant>>> = Arc::default();
        let (taken, committed) = (queued.clone(), last_ok.clone());
        let handle = std::thread::Builder::new()
            .name("boxoffice-writer".into())
            .spawn(move || run(conn, receiver, max_batch.max(1), hooks, taken, committed))
            .expect("the OS can start one thread at open");
        Self {
            sender: Mutex::new(Some(sender)),
            queued,
            last_ok,
            handle: Mutex::new(Some(handle)),
        }
    }

    /// Queues `f` and blocks until its group has committed (or failed). Call it off the async runtime.
    pub(super) fn execute<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (answer, answered) = sync_channel::<Result<T, E>>(1);
        self.enqueue(
            Guard::Savepoint,
            f,
            move |out| {
                let _ = answer.send(out);
            },
            true,
        )?;
        answered.recv().map_err(|_| StoreError::WriterStopped)?
    }

    /// Like `execute`, for async callers: the answer arrives on a future, and a full queue is refused
    /// (`Busy`) rather than waited for, so an IO thread never blocks.
    pub(super) async fn execute_async<T, E, F>(&self, guard: Guard, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, E>>();
        self.enqueue(
            guard,
            f,
            move |out| {
                let _ = answer.send(out);
            },
            false,
        )?;
        answered.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Queues `f` without waiting for room and waits at most `timeout` for its group's outcome: for a
    /// probe that must answer even when the writer is stuck (a frozen disk, a lock held elsewhere).
    pub(super) fn execute_within<T, E, F>(&self, timeout: Duration, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (answer, answered) = sync_channel::<Result<T, E>>(1);
        self.enqueue(
            Guard::Savepoint,
            f,
            move |out| {
                let _ = answer.send(out);
            },
            false,
        )?;
        match answered.recv_timeout(timeout) {
            Ok(out) => out,
            Err(RecvTimeoutError::Timeout) => Err(StoreError::Stalled {
                secs: timeout.as_secs(),
            }
            .into()),
            Err(RecvTimeoutError::Disconnected) => Err(StoreError::WriterStopped.into()),
        }
    }

    /// How long ago the last group commit succeeded; `None` before the first.
    pub(super) fn since_last_commit(&self) -> Option<Duration> {
        self.last_ok
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|at| at.elapsed())
    }

    /// Queues `f`; once its group's commit outcome is known, `deliver` gets the answer. With `wait`,
    /// a full queue is waited for; without, it is refused.
    fn enqueue<T, E, F>(
        &self,
        guard: Guard,
        f: F,
        deliver: impl FnOnce(Result<T, E>) + Send + 'static,
        wait: bool,
    ) -> Result<(), StoreError>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let job: Job = Box::new(move |tx: Option<&Tx<'_>>| {
            let result = tx.map(|tx| match guard {
                Guard::Savepoint => tx.savepoint(f),
                Guard::RefusesBeforeWriting => tx.unguarded(f),
            });
            Box::new(move |commit: Result<(), &StoreError>| {
                // Nothing decided in a group that failed to commit stands: a refusal such as "sold
                // out" may rest on a change by an earlier command that was just rolled back, so every
                // caller of the group gets the storage error and may retry.
                let out = match (result, commit) {
                    (_, Err(e)) => Err(E::from(e.clone())),
                    (None, Ok(())) => Err(E::from(StoreError::TransactionLost)),
                    (Some(r), Ok(())) => r,
                };
                // The caller may have gone away (its request timed out); the outcome stands anyway.
                deliver(out);
            })
        });
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(sender) = sender else {
            return Err(StoreError::WriterStopped);
        };
        self.queued.fetch_add(1, Ordering::SeqCst);
        let sent = match sender.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) if wait => {
                sender.send(job).map_err(|_| StoreError::WriterStopped)
            }
            Err(TrySendError::Full(_)) => Err(StoreError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::WriterStopped),
        };
        if sent.is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
        }
        sent
    }

    /// Commands waiting for the writer (queue depth).
    pub(super) fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Whether the writer thread is still running (for `/health`).
    pub(super) fn alive(&self) -> bool {
        self.handle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }

    /// Stops taking commands, lets the writer commit what is queued, and waits for it.
    pub(super) fn shutdown(&self) {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}

fn run(
    conn: Connection,
    receiver: Receiver<Job>,
    max_batch: usize,
    hooks: Arc<Mutex<Vec<CommitHook>>>,
    queued: Arc<AtomicUsize>,
    last_ok: Arc<Mutex<Option<Instant>>>,
) {
    // SQLite reports every row change of this connection; the ones caches depend on are collected
    // per group, so invalidation can never forget a statement that changed an event or an attendee.
    let touched: Arc<Mutex<Vec<Touched>>> = Arc::default();
    let sink = touched.clone();
    conn.update_hook(Some(
        move |_: rusqlite::hooks::Action, _: &str, table: &str, rowid: i64| {
            let t = match table {
                "events" => Touched::Event(rowid),
                "attendees" => Touched::Attendee(rowid),
                "registrations" => Touched::Registration(rowid),
                _ => return,
            };
            let mut v = sink.lock().unwrap_or_else(|p| p.into_inner());
            if v.last() != Some(&t) {
                v.push(t);
            }
        },
    ))
    .expect("the writer opened its connection itself, so it owns the handle the hook needs");
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut replies: Vec<Reply> = Vec::with_capacity(max_batch);
    // Blocks while idle; ends when every sender is gone and the queue is drained.
    let mut version = data_version(&conn);
    loop {
        let first = match receiver.recv_timeout(FOREIGN_CHECK) {
            Ok(job) => job,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let now = data_version(&conn);
                if now != version {
                    version = now;
                    let report = CommitReport {
                        commands: 0,
                        outbox_rows: 0,
                        events: EventTally::default(),
                        duration: Duration::ZERO,
                        ok: true,
                        touched: Vec::new(),
                        inserted: Vec::new(),
                        foreign_change: true,
                    };
                    run_hooks(&hooks, &report, &conn);
                }
                continue;
            }
        };
        if !conn.is_autocommit() {
            // A failed COMMIT whose ROLLBACK failed too left a transaction open; BEGIN would refuse.
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "cannot end a failed transaction; writes will fail until restart");
            }
        }
        batch.push(first);
        while batch.len() < max_batch {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        queued.fetch_sub(batch.len(), Ordering::SeqCst);
        let started = Instant::now();
        let commands = batch.len();
        let before = data_version(&conn);
        let foreign_change = before != version;
        let mut events = EventTally::default();
        let mut inserted = Vec::new();
        let outcome = match conn.execute_batch("BEGIN IMMEDIATE") {
            Err(e) => Err(StoreError::from(e)),
            Ok(()) => {
                let tx = Tx::new(&conn);
                let mut lost = false;
                for job in batch.drain(..) {
                    if lost {
                        replies.push(job(None));
                        continue;
                    }
                    replies.push(job(Some(&tx)));
                    // SQLite rolls the whole transaction back by itself on some errors (disk full,
                    // I/O). Running on would autocommit statement by statement and break I5, so the
                    // rest of the group is refused and everyone is told the group failed. The same
                    // when a command without a savepoint failed halfway (`Tx::unguarded`).
                    lost = conn.is_autocommit() || tx.spoiled.get();
                }
                events = tx.events.get();
                inserted = tx.inserted.take();
                if tx.spoiled.get() && !conn.is_autocommit() {
                    tracing::error!(
                        commands,
                        "a command failed after writing without a savepoint; the group is rolled back"
                    );
                    if let Err(e) = conn.execute_batch("ROLLBACK") {
                        tracing::error!(error = %e, "cannot roll back a spoiled group");
                    }
                }
                if tx.spoiled.get() {
                    Err(StoreError::GroupRolledBack)
                } else if lost {
                    Err(StoreError::TransactionLost)
                } else {
                    match conn.execute_batch("COMMIT") {
                        Ok(()) => Ok(()),
                        Err(e) => {
                            // A failed COMMIT (disk full, I/O error) may leave the transaction open.
                            if !conn.is_autocommit() {
                                let _ = conn.execute_batch("ROLLBACK");
                            }
                            Err(StoreError::from(e))
                        }
                    }
                }
            }
        };
        if outcome.is_err() {
            events = EventTally::default();
            inserted.clear();
        } else {
            *last_ok.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
        // Commands never ran when BEGIN failed: they are answered with its error.
        for job in batch.drain(..) {
            replies.push(job(None));
        }
        let mut touched = std::mem::take(&mut *touched.lock().unwrap_or_else(|p| p.into_inner()));
        touched.sort_unstable_by_key(|t| match t {
            Touched::Event(s) => (0, *s),
            Touched::Attendee(s) => (1, *s),
            Touched::Registration(s) => (2, *s),
        });
        touched.dedup();
        let report = CommitReport {
            commands,
            outbox_rows: events.total(),
            events,
            duration: started.elapsed(),
            ok: outcome.is_ok(),
            touched,
            inserted,
            foreign_change,
        };
        // Our own commits do not move our connection's data_version; what moved it before BEGIN
        // was someone else.
        version = before;
        // Hooks run before the callers are answered: a caller that reads right after its write must
        // find the cache already cleared of what the write changed, and the commit in the metrics.
        run_hooks(&hooks, &report, &conn);
        for reply in replies.drain(..) {
            reply(outcome.as_ref().map(|_| ()));
        }
        if let Err(e) = &outcome {
            tracing::error!(error = %e, commands, "group commit failed; every command in it was answered with the error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_has_a_slot_per_kind_at_its_discriminant() {
        let mut tally = EventTally::default();
        for (i, kind) in DomainEventType::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{kind:?} is out of place in ALL");
            for _ in 0..=i {
                tally.add(*kind);
            }
        }
        for (i, (kind, n)) in tally.iter().enumerate() {
            assert_eq!(n as usize, i + 1, "{kind:?}");
        }
        let n = DomainEventType::ALL.len() as u64;
        assert_eq!(tally.total(), n * (n + 1) / 2);
    }
}
