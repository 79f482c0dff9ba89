//! The one writer thread. It owns the only write connection (`synchronous=FULL`) and commits in groups:
//! it takes every command already queued (up to a bound), runs each in its own SAVEPOINT inside one
//! `BEGIN IMMEDIATE` transaction, commits once, and only then answers the callers. One fsync serves many
//! sales, a failing command rolls back only its own savepoint, and the total order of commands is what
//! makes the seat invariants (I1-I4) simple to keep.

use std::cell::Cell;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::StoreError;

/// The write transaction a command runs in. Only the writer thread creates one, so every function that
/// takes `&Tx` is known to run inside the single writer's transaction, together with its outbox rows.
pub struct Tx<'c> {
    conn: &'c Connection,
    depth: Cell<u32>,
    outbox_rows: Cell<u64>,
}

impl<'c> Tx<'c> {
    fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            depth: Cell::new(0),
            outbox_rows: Cell::new(0),
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
        let outbox_before = self.outbox_rows.get();
        let result = catch_unwind(AssertUnwindSafe(|| f(self)));
        self.depth.set(depth);
        // On some errors (disk full, I/O) SQLite rolls the whole transaction back by itself. The
        // savepoint went with it, so there is nothing to roll back to, and the command's own error is
        // the one worth reporting; the writer sees the loss and fails the whole group.
        let lost = self.conn.is_autocommit();
        if lost || !matches!(result, Ok(Ok(_))) {
            self.outbox_rows.set(outbox_before);
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

    /// Counts outbox rows written, so the commit can wake the outbox processor.
    pub(crate) fn note_outbox_row(&self) {
        self.outbox_rows.set(self.outbox_rows.get() + 1);
    }
}

impl Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// What one group commit did, for metrics and for waking the outbox processor.
#[derive(Debug, Clone, Copy)]
pub struct CommitReport {
    pub commands: usize,
    pub outbox_rows: u64,
    pub duration: Duration,
    pub ok: bool,
}

pub type CommitHook = Arc<dyn Fn(&CommitReport) + Send + Sync>;

/// A queued command: runs inside the transaction and hands back how to answer its caller once the
/// outcome of the commit is known.
/// It gets `None` when the transaction could not be opened or was lost before its turn.
type Job = Box<dyn FnOnce(Option<&Tx<'_>>) -> Reply + Send>;
type Reply = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

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
    pub(super) async fn execute_async<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, E>>();
        self.enqueue(
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
            let result = tx.map(|tx| tx.savepoint(f));
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
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    let mut replies: Vec<Reply> = Vec::with_capacity(max_batch);
    // Blocks while idle; ends when every sender is gone and the queue is drained.
    while let Ok(first) = receiver.recv() {
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
        let mut outbox_rows = 0;
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
                    // rest of the group is refused and everyone is told the group failed.
                    lost = conn.is_autocommit();
                }
                outbox_rows = tx.outbox_rows.get();
                if lost {
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
            outbox_rows = 0;
        } else {
            *last_ok.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
        // Commands never ran when BEGIN failed: they are answered with its error.
        for job in batch.drain(..) {
            replies.push(job(None));
        }
        let report = CommitReport {
            commands,
            outbox_rows,
            duration: started.elapsed(),
            ok: outcome.is_ok(),
        };
        for reply in replies.drain(..) {
            reply(outcome.as_ref().map(|_| ()));
        }
        for hook in hooks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            // A hook that panics must not take the only writer down with it.
            if catch_unwind(AssertUnwindSafe(|| hook(&report))).is_err() {
                tracing::error!("a commit hook panicked");
            }
        }
        if let Err(e) = &outcome {
            tracing::error!(error = %e, commands, "group commit failed; every command in it was answered with the error");
        }
    }
}
