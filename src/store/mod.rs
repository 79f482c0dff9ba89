//! Every SQL statement of boxoffice, and the two ways in: a pool of read-only connections and the one
//! writer thread (see `writer`). `schema.sql` is applied at open and tracked with `user_version`; every
//! connection gets its pragmas in `configure`. Functions that change data take `&Tx`, so they can only
//! run inside the writer's transaction, next to the outbox row that records the change (I5).

pub mod attendees;
pub mod audit;
pub mod check;
pub mod events;
pub mod idempotency;
mod migrate;
pub mod outbox;
pub mod registrations;
pub mod stats;
pub mod tokens;
pub mod webhooks;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};

use writer::Writer;
pub use writer::{CommitHook, CommitReport, EventTally, Guard, NewReg, Touched, Tx};

/// The schema this build writes; files with a higher `user_version` are refused.
pub const SCHEMA_VERSION: i64 = 4;
const SCHEMA: &str = include_str!("../../schema.sql");

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(Arc<rusqlite::Error>),
    #[error("reader pool: {0}")]
    Pool(String),
    #[error(
        "the database file has schema version {found}, newer than this build's {SCHEMA_VERSION}"
    )]
    SchemaTooNew { found: i64 },
    #[error("the writer has stopped")]
    WriterStopped,
    #[error("the writer's queue is full")]
    Busy,
    #[error("the writer has not finished a commit within {secs} s")]
    Stalled { secs: u64 },
    #[error("the transaction was rolled back by SQLite before this command ran")]
    TransactionLost,
    #[error("a command panicked; its changes were rolled back")]
    CommandPanicked,
    #[error("a command of the same group commit failed halfway; the whole group was rolled back")]
    GroupRolledBack,
    #[error("stored data is not what this build expects: {0}")]
    Corrupt(String),
    /// The file cannot be read as it stands (`boxoffice check` on a read-only disk).
    #[error("{0}")]
    Unreadable(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(Arc::new(e))
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        Self::Pool(e.to_string())
    }
}

impl StoreError {
    /// The storage cannot take writes right now (disk full, read-only, I/O trouble, writer gone): the
    /// caller should be told to retry later (503), and nothing was changed.
    pub fn is_unavailable(&self) -> bool {
        use rusqlite::ErrorCode::*;
        match self {
            Self::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(
                    DiskFull
                        | ReadOnly
                        | SystemIoFailure
                        | CannotOpen
                        | DatabaseBusy
                        | DatabaseLocked
                        | OutOfMemory
                )
            ),
            Self::Pool(_)
            | Self::WriterStopped
            | Self::TransactionLost
            | Self::GroupRolledBack
            | Self::Busy
            | Self::Stalled { .. }
            | Self::Unreadable(_) => true,
            Self::SchemaTooNew { .. } | Self::CommandPanicked | Self::Corrupt(_) => false,
        }
    }

    /// A UNIQUE constraint failed (used to turn races on unique keys into conflicts, not 500s).
    pub fn is_unique_violation(&self) -> bool {
        self.unique_failure().is_some()
    }

    /// The UNIQUE constraint on exactly these columns failed; `columns` as SQLite's message names
    /// them, `table.column, table.column` in the index's order.
    pub fn is_unique_violation_of(&self, columns: &str) -> bool {
        self.unique_failure()
            .flatten()
            .and_then(|m| m.strip_prefix("UNIQUE constraint failed: "))
            == Some(columns)
    }

    /// For a failed UNIQUE constraint, SQLite's message (when it gave one).
    fn unique_failure(&self) -> Option<Option<&str>> {
        match self {
            Self::Sqlite(e) => match e.as_ref() {
                rusqlite::Error::SqliteFailure(f, message)
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
                {
                    Some(message.as_deref())
                }
                _ => None,
            },
            _ => None,
        }
    }
}

/// Tunables of the store, from the config file.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub readers: u32,
    pub max_batch: usize,
    pub queue: usize,
    pub busy_timeout: Duration,
    /// Called with the SQL text (parameters unexpanded) of every statement each connection starts:
    /// the query-plan test collects the statements a workload runs. `None` in the product.
    pub sql_trace: Option<fn(&str)>,
}

/// Where the connections of a store opened with `sql_trace` send their statements (a trace callback
/// is a bare function, without context).
static SQL_TRACE: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

fn forward_sql(event: rusqlite::trace::TraceEvent<'_>) {
    if let rusqlite::trace::TraceEvent::Stmt(_, sql) = event {
        if let Some(f) = SQL_TRACE.get() {
            f(sql);
        }
    }
}

fn install_trace(conn: &Connection, trace: Option<fn(&str)>) {
    if let Some(f) = trace {
        let _ = SQL_TRACE.set(f);
        conn.trace_v2(
            rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT,
            Some(forward_sql),
        );
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            readers: 8,
            max_batch: 256,
            queue: 4096,
            busy_timeout: Duration::from_secs(5),
            sql_trace: None,
        }
    }
}

/// What `statvfs` says about the data directory's file system.
#[derive(Debug, Clone, Copy)]
pub struct DiskSpace {
    pub free_bytes: u64,
    pub read_only: bool,
}

pub struct Store {
    path: PathBuf,
    readers: r2d2::Pool<SqliteConnectionManager>,
    writer: Writer,
    hooks: Arc<Mutex<Vec<CommitHook>>>,
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Writer,
    Reader,
}

/// Pragmas for every connection, in one place. The writer syncs fully (I6); readers cannot write.
fn configure(conn: &Connection, role: Role, busy: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy)?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;")?;
    match role {
        // `secure_delete = ON`: SQLite zeroes the bytes of every row it deletes or rewrites, and
        // every page it frees, instead of leaving them in free space, so an erased attendee's name,
        // email and phone (DESIGN.md section 7) are gone from the file, not merely unlinked. `FAST`
        // would leave freed pages as they were, with whatever old copies of rows they held. The
        // zeroing happens in pages the commit writes anyway; only pages freed by a delete (the
        // hourly prunes) are written once more. No extra fsync.
        Role::Writer => conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 1000; \
             PRAGMA cache_size = -32000; PRAGMA secure_delete = ON;",
        ),
        // Readers keep SQLite's small default page cache: a commit by the writer resets a reader's
        // cache at its next read, and a large cache costs more to reset than it saves here.
        Role::Reader => conn.execute_batch("PRAGMA query_only = ON;"),

    }
}

impl Store {
    /// Opens (creating if needed) the database file, applies the schema, starts the writer thread.
    pub fn open(path: &Path, opts: &StoreOptions) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&conn, Role::Writer, opts.busy_timeout)?;
        migrate::migrate(&conn)?;
        install_trace(&conn, opts.sql_trace);
        let busy = opts.busy_timeout;
        let trace = opts.sql_trace;
        let manager = SqliteConnectionManager::file(path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(move |c| {
                configure(c, Role::Reader, busy)?;
                install_trace(c, trace);
                Ok(())
            });
        let readers = r2d2::Pool::builder()
            .max_size(opts.readers.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(5))
            .build(manager)?;
        let hooks: Arc<Mutex<Vec<CommitHook>>> = Arc::default();
        let writer = Writer::spawn(conn, opts.max_batch, opts.queue, hooks.clone());
        Ok(Self {
            path: path.to_path_buf(),
            readers,
            writer,
            hooks,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Called after every group commit (or failed group), on the writer thread, before the group's
    /// callers are answered and before the next group starts.
    pub fn on_commit(&self, hook: CommitHook) {
        self.hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    /// Runs `f` on a pooled read-only connection, in one read transaction: everything `f` reads
    /// comes from the same committed state. Without it each statement saw the file as it stood when
    /// that statement started, so a page of the waitlist read its rows before a promotion and counted
    /// the first one's place after it (position 0, found by review).
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let conn = self.readers.get().map_err(StoreError::from)?;
        let _snapshot = Snapshot::begin(&conn)?;
        f(&conn)
    }

    /// Runs `f` on the writer thread in its own savepoint of the next group commit, and blocks until
    /// that group is durable (or failed). Must not be called from an async task.
    pub fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        self.writer.execute(f)
    }

    /// `write` for async callers: never blocks the calling thread (a full queue is refused as `Busy`).
    /// With `Guard::RefusesBeforeWriting` the command runs without a savepoint of its own (see
    /// `Tx::unguarded`): for the hot commands whose refusals all come before their first write.
    pub async fn write_async<T, E, F>(&self, guard: Guard, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        self.writer.execute_async(guard, f).await
    }

    /// Commands waiting for the writer right now.
    pub fn writer_queue(&self) -> usize {
        self.writer.queued()
    }

    /// Whether the writer thread is running.
    pub fn writer_alive(&self) -> bool {
        self.writer.alive()
    }

    /// Proves the database takes writes: a command on the writer that rewrites the schema version
    /// with the value it already has. It changes no data and records nothing in the outbox, yet it
    /// dirties a page, so its group commit appends to the WAL and syncs it as any sale would. A full
    /// or read-only disk, a lock held by another process, or a writer that stopped shows up here.
    /// A full queue is refused at once (`Busy`); a writer that does not answer within `timeout`
    /// is reported as `Stalled`.
    pub fn probe_write(&self, timeout: Duration) -> Result<(), StoreError> {
        self.writer.execute_within(timeout, |tx| {
            tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
            Ok(())
        })
    }

    /// How long ago the writer last committed successfully; `None` before its first commit.
    pub fn since_last_commit(&self) -> Option<Duration> {
        self.writer.since_last_commit()
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// Free space and the read-only flag of the file system that holds the database file.
    pub fn disk_space(&self) -> std::io::Result<DiskSpace> {
        let vfs = rustix::fs::statvfs(self.dir())?;
        Ok(DiskSpace {
            // Blocks available to an unprivileged process: what SQLite can count on.
            free_bytes: vfs.f_bavail.saturating_mul(vfs.f_frsize),
            read_only: vfs.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
        })
    }

    /// Creates and removes an empty file in the data directory. A file system the kernel turned
    /// read-only after an error (ext4's `errors=remount-ro`) still shows as read-write in `statvfs`
    /// on recent kernels; creating a file tells.
    pub fn probe_dir(&self) -> std::io::Result<()> {
        let probe = self.dir().join(".boxoffice-health-probe");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&probe)?;
        std::fs::remove_file(&probe)
    }

    /// Commits what is queued and stops the writer; later writes fail with `WriterStopped`.
    pub fn shutdown(&self) {
        self.writer.shutdown();
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.writer.shutdown();
    }
}

/// A trivial read: the file is there and answers.
pub fn ping(conn: &Connection) -> Result<(), StoreError> {
    conn.query_row("SELECT 1", [], |_| Ok(()))?;
    Ok(())
}

/// Reads a timestamp column.
pub(crate) fn ts(ms: i64) -> crate::domain::Timestamp {
    crate::domain::Timestamp::from_millis(ms)
}

/// Reads an optional timestamp column.
pub(crate) fn ts_opt(ms: Option<i64>) -> Option<crate::domain::Timestamp> {
    ms.map(ts)
}

/// Turns stored text back into a domain value, or reports the row as corrupt.
pub(crate) fn decode<T>(
    what: &str,
    raw: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    parse(raw).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unexpected {what} {raw:?}").into(),
        )
    })
}

/// `boxoffice backup`: copies the file at `db` into `out` as it stands, schema version included. It
/// opens the file without `Store::open`, which would first upgrade an older file in place; the
/// backup taken before an upgrade must be of the old version (the README's upgrade steps).
pub fn backup_file(db: &Path, out: &Path, busy_timeout: Duration) -> Result<(), StoreError> {
    let src = Untouched::open(db, busy_timeout)?;
    copy_into(&src.conn, out)?;
    src.unchanged(db)
}

/// `boxoffice check`: the integrity check and invariants I1-I4 over the file at `db`, opened like
/// `backup_file`: the file is never changed (an older version is checked as it is, not upgraded; a
/// WAL left by a stopped box is read, not checkpointed into it), and a copy kept on a read-only disk
/// can be checked.
pub fn check_file(db: &Path, busy_timeout: Duration) -> Result<check::CheckReport, StoreError> {
    let file = Untouched::open(db, busy_timeout)?;
    let conn = &file.conn;
    // Every version's tables have the columns the checks read (the upgrades changed constraints and
    // indexes only); a newer file may not.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found: version });
    }
    if version == 0 {
        return Err(StoreError::Corrupt(
            "the file has no boxoffice schema (version 0)".into(),
        ));
    }
    let report = {
        let _snapshot = Snapshot::begin(conn)?;
        check::run(conn)?
    };
    file.unchanged(db)?;
    Ok(report)
}

/// A read-only connection to a file that the commands reading it (`backup`, `check`) leave as it
/// is: closing a read-write one would checkpoint a stopped box's WAL into the file.
struct Untouched {
    conn: Connection,
    /// Set when the file had to be opened immutable: what it looked like then (see `unchanged`).
    immutable: Option<Option<(u64, std::time::SystemTime, bool)>>,
}

impl Untouched {
    /// Opens `db` read-only. A file in WAL mode (every boxoffice file) needs its `-shm` beside it,
    /// which SQLite creates; where it cannot (a copy on a read-only disk) and no `-wal` is left (the
    /// box that wrote it stopped cleanly, or it is a backup), the file is opened as immutable
    /// instead: nothing can be writing it there, and all its pages are in the file itself. With a
    /// `-wal`, the pages in it are needed, and only a copy of both to a writable place can be read.
    fn open(db: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let cannot_open =
            |e: &rusqlite::Error| e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen);
        let fallback = |e: rusqlite::Error| {
            if !cannot_open(&e) {
                return Err(e.into());
            }
            if wal_beside(db) {
                return Err(StoreError::Unreadable(format!(
                    "{e}: a -wal is beside the file and SQLite cannot make its -shm here (a \
                     read-only disk?); copy the file and its -wal to a writable directory and use \
                     the copy"
                )));
            }
            Ok(Self {
                conn: open_immutable(db, flags)?,
                immutable: Some(stamp(db)),
            })
        };
        let file = match Connection::open_with_flags(db, flags) {
            // The open itself may pass and the first read fail: SQLite opens the `-shm` lazily.
            Ok(conn) => match conn.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            }) {
                Err(e) if cannot_open(&e) => fallback(e)?,
                _ => Self {
                    conn,
                    immutable: None,
                },
            },
            Err(e) => fallback(e)?,
        };
        file.conn.busy_timeout(busy_timeout)?;
        Ok(file)
    }

    /// An immutable connection takes no locks and would not notice a writer; none can be there (no
    /// `-wal`, a disk SQLite cannot write), and this makes sure of it after the reading.
    fn unchanged(&self, db: &Path) -> Result<(), StoreError> {
        match &self.immutable {
            Some(before) if *before != stamp(db) => Err(StoreError::Unreadable(
                "the file changed while it was read without locks; try again".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// What would show a write to the file: its size, its modification time, a `-wal` beside it.
fn stamp(db: &Path) -> Option<(u64, std::time::SystemTime, bool)> {
    let meta = std::fs::metadata(db).ok()?;
    Some((meta.len(), meta.modified().ok()?, wal_beside(db)))
}

fn wal_beside(db: &Path) -> bool {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    Path::new(&wal).exists()
}

fn open_immutable(db: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let absolute = std::path::absolute(db)
        .map_err(|e| StoreError::Unreadable(format!("{}: {e}", db.display())))?;
    let mut uri = url::Url::from_file_path(&absolute)
        .map_err(|()| StoreError::Unreadable(format!("{} is not a file path", db.display())))?;
    uri.set_query(Some("mode=ro&immutable=1"));
    Ok(Connection::open_with_flags(
        uri.as_str(),
        flags | OpenFlags::SQLITE_OPEN_URI,
    )?)
}

/// Online backup of `src` into a new file `out`: steps over all pages, so the copy is one consistent
/// snapshot even while a writer keeps committing.
fn copy_into(src: &Connection, out: &Path) -> Result<(), StoreError> {
    let mut dst = Connection::open(out)?;
    let backup = rusqlite::backup::Backup::new(src, &mut dst)?;
    loop {
        match backup.step(-1)? {
            rusqlite::backup::StepResult::Done => break,
            rusqlite::backup::StepResult::More => continue,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    Ok(())
}

/// A read transaction on a reader connection, ended when dropped (also when `f` fails or panics, so
/// the connection goes back to the pool outside any transaction).
struct Snapshot<'c>(&'c Connection);

impl<'c> Snapshot<'c> {
    fn begin(conn: &'c Connection) -> Result<Self, StoreError> {
        if !conn.is_autocommit() {
            // Left open by a reader that could not end it; start from a clean state.
            conn.execute_batch("ROLLBACK")?;
        }
        conn.prepare_cached("BEGIN")?.execute([])?;
        Ok(Self(conn))
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        if self.0.is_autocommit() {
            return;
        }
        // A read transaction has nothing to keep: rolling back only ends it.
        if let Err(e) = self
            .0
            .prepare_cached("ROLLBACK")
            .and_then(|mut st| st.execute([]))
        {
            tracing::warn!(error = %e, "cannot end a read transaction");
        }
    }
}
