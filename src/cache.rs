//! The read cache in front of the reader pool (DESIGN.md section 5): event details, attendees, event
//! counts and waitlist positions, each an LRU (the `lru` crate) bounded by entries, with its own TTL.
//!
//! Invalidation is exact and happens before a writer's callers are answered, so nobody reads their own
//! write stale. Every cached value depends on one *scope*: an event (its row, its counters, the
//! positions on its waitlist) or an attendee. The writer reports which scopes a commit touched (see
//! `store::Touched`), and `invalidate` moves each one's *mark* forward on one global clock. A value is
//! served only when it was read after the last mark of its scope, so one invalidation retires every
//! position on a waitlist at once, and a read that raced a commit (it read the old row, the commit
//! landed, then it filled the cache) is never served: it started before the mark.
//!
//! Changes made by another process on the same file are noticed by the writer (SQLite's
//! `data_version`), at its next group or within about a second when idle, and clear everything; the
//! TTL bounds staleness beyond that.
//!
//! Waitlist orders ([`Orders`]) are the one kind that is kept up to date instead of retired: an
//! event's waitlist in join order, read once when somebody asks for a position, then edited by the
//! writer's commit hook for every registration a commit changed (its status read back after the
//! commit). A position is then a binary search, however deep in the list, and a rush of sales and
//! cancellations does not make every position lookup count the waitlist again.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

/// What a cached value depends on: writes to it invalidate the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// An event's row, counters, registrations and waitlist (by its internal sequence number).
    Event(i64),
    /// An attendee's row (by its internal sequence number).
    Attendee(i64),
}

/// The kinds of cached values, each with its own bound, TTL and hit/miss counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Event,
    Attendee,
    Counts,
    Position,
    /// An event's waitlist in join order (see [`Orders`]).
    Waitlist,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Event,
        Kind::Attendee,
        Kind::Counts,
        Kind::Position,
        Kind::Waitlist,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Attendee => "attendee",
            Kind::Counts => "counts",
            Kind::Position => "position",
            Kind::Waitlist => "waitlist",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Bounds and lifetimes; the defaults are the seeds' TTLs (5 min, 10 min, 2 min, 1 min).
#[derive(Debug, Clone)]
pub struct CacheOptions {
    pub enabled: bool,
    pub event_entries: usize,
    pub attendee_entries: usize,
    pub counts_entries: usize,
    pub position_entries: usize,
    pub waitlist_entries: usize,
    pub event_ttl: Duration,
    pub attendee_ttl: Duration,
    pub counts_ttl: Duration,
    pub position_ttl: Duration,
    pub waitlist_ttl: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            event_entries: 10_000,
            attendee_entries: 50_000,
            counts_entries: 10_000,
            position_entries: 50_000,
            waitlist_entries: 1_000,
            event_ttl: Duration::from_secs(300),
            attendee_ttl: Duration::from_secs(600),
            counts_ttl: Duration::from_secs(120),
            position_ttl: Duration::from_secs(60),
            waitlist_ttl: Duration::from_secs(60),
        }
    }
}

/// A reading of the invalidation clock taken before a database read; `put` needs it.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

struct Entry<V> {
    value: V,
    scope: Scope,
    read_at: u64,
    stored: Instant,
}

/// One LRU of one kind.
pub struct Lru<K: Hash + Eq, V> {
    kind: Kind,
    ttl: Duration,
    map: Mutex<LruCache<K, Entry<V>>>,
}

impl CacheOptions {
    fn bounds(&self, kind: Kind) -> (NonZeroUsize, Duration) {
        let (entries, ttl) = match kind {
            Kind::Event => (self.event_entries, self.event_ttl),
            Kind::Attendee => (self.attendee_entries, self.attendee_ttl),
            Kind::Counts => (self.counts_entries, self.counts_ttl),
            Kind::Position => (self.position_entries, self.position_ttl),
            Kind::Waitlist => (self.waitlist_entries, self.waitlist_ttl),
        };
        let cap = NonZeroUsize::new(entries.max(1)).expect("max(1) is not zero");
        (cap, ttl)
    }
}

impl<K: Hash + Eq, V: Clone> Lru<K, V> {
    /// An LRU of `kind` with the bound and TTL `o` gives that kind.
    pub fn new(kind: Kind, o: &CacheOptions) -> Self {
        let (cap, ttl) = o.bounds(kind);
        Self {
            kind,
            ttl,
            map: Mutex::new(LruCache::new(cap)),
        }
    }
}

/// Values that never change once written (a registration's internal keys), bounded by entries: no
/// TTL and no invalidation, since no commit can make them stale.
pub struct Facts<K: Hash + Eq, V> {
    map: Mutex<LruCache<K, V>>,
}

impl<K: Hash + Eq, V: Copy> Facts<K, V> {
    /// Bounded like the LRU of `kind`.
    pub fn new(kind: Kind, o: &CacheOptions) -> Self {
        Self {
            map: Mutex::new(LruCache::new(o.bounds(kind).0)),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
    }

    pub fn put_all(&self, facts: impl IntoIterator<Item = (K, V)>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for (k, v) in facts {
            map.put(k, v);
        }
    }
}

/// A registration's place in its event's waitlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank {
    /// 1-based.
    pub position: i64,
    /// The waitlist's length, from the same order, so the two always agree.
    pub length: i64,
}

/// One event's waitlist: the internal sequence numbers of its waitlisted registrations, ascending
/// (join order, I3). Promotion takes the front, joining appends at the back.
///
/// Beside it, the statuses of registrations of the event that are not waiting and that somebody
/// asked the position of (`left`: someone promoted, seated or cancelled polls on): their answer is
/// their status and the waitlist's length, which the order knows exactly. Any commit that changes
/// such a registration forgets its status (see `set`), so the next ask reads it again.
struct Order {
    seqs: VecDeque<i64>,
    left: HashMap<i64, &'static str>,
    stored: Instant,
}

/// Statuses of non-waiting registrations one order notes at most: beyond it, asks read the file.
const MAX_LEFT: usize = 50_000;

/// Where a registration stands by a held waitlist order (see [`Cache::peek_standing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldPlace {
    /// On the waitlist, at this rank.
    Waiting(Rank),
    /// Not waiting, with the status noted for it and the waitlist's length.
    Left { status: &'static str, length: i64 },
}

impl Order {
    fn rank(&self, seq: i64) -> Option<Rank> {
        let i = self.seqs.binary_search(&seq).ok()?;
        Some(Rank {
            position: i64::try_from(i).unwrap_or(i64::MAX - 1) + 1,
            length: self.length(),
        })
    }

    /// Whether the order is still within its TTL.
    fn fresh(&self, ttl: Duration) -> bool {
        self.stored.elapsed() < ttl
    }

    fn length(&self) -> i64 {
        i64::try_from(self.seqs.len()).unwrap_or(i64::MAX)
    }

    /// Makes the registration `seq` a member of the waitlist or not, wherever it was: idempotent, so
    /// a change the order already saw when it was read is applied again harmlessly.
    fn set(&mut self, seq: i64, waitlisted: bool) {
        self.left.remove(&seq);
        match (self.seqs.binary_search(&seq), waitlisted) {
            (Err(i), true) => self.seqs.insert(i, seq),
            (Ok(i), false) => {
                self.seqs.remove(i);
            }
            _ => {}
        }
    }
}

/// Waitlist orders per event (by its internal sequence number), an LRU bounded by entries. The commit
/// hook edits them under the same lock that it moves the marks with (see [`Cache::commit`]), so an
/// order read before a commit is either edited by that commit's hook or refused when it is stored.
pub struct Orders {
    ttl: Duration,
    map: Mutex<LruCache<i64, Order>>,
}

impl Orders {
    pub fn new(o: &CacheOptions) -> Self {
        let (cap, ttl) = o.bounds(Kind::Waitlist);
        Self {
            ttl,
            map: Mutex::new(LruCache::new(cap)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<i64, Order>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How a registration a commit changed stands now: its event and whether it is waitlisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub event_seq: i64,
    pub waitlisted: bool,
}

/// The file could not say how a changed registration stands: every held order goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

/// How a changed registration stands after a commit: waiting or not, gone, or unknown.
pub type Standing = Result<Option<Placement>, Unreadable>;

/// Marks of recently touched scopes. Bounded: when it is full, the oldest half is folded into
/// `floor`, a mark every scope not in the map is taken to have (it can only cause extra misses).
struct Marks {
    map: HashMap<Scope, u64>,
    floor: u64,
}

const MAX_MARKS: usize = 100_000;

/// The invalidation clock, the marks and the counters shared by every kind's LRU.
pub struct Cache {
    enabled: bool,
    clock: AtomicU64,
    marks: Mutex<Marks>,
    hits: [AtomicU64; Kind::ALL.len()],
    misses: [AtomicU64; Kind::ALL.len()],
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// Hits and misses of one kind, for `/metrics` and the console.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindStats {
    pub hits: u64,
    pub misses: u64,
}

impl Cache {
    pub fn new(o: &CacheOptions) -> Self {
        Self {
            enabled: o.enabled,
            clock: AtomicU64::new(1),
            marks: Mutex::new(Marks {
                map: HashMap::new(),
                floor: 0,
            }),
            hits: Default::default(),
            misses: Default::default(),
        }
    }

    /// Whether anything is cached at all (`cache.enabled`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Take this before reading the database for a value that will be `put`.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.clock.load(Ordering::SeqCst))
    }

    /// Retires every cached value that depends on one of `scopes`. The writer calls it after the
    /// commit and before it answers the commit's callers.
    pub fn invalidate(&self, scopes: impl IntoIterator<Item = Scope>) {
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        for scope in scopes {
            let mark = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
            marks.map.insert(scope, mark);
        }
        if marks.map.len() > MAX_MARKS {
            // Keep the newer half; the older marks all fall under the new floor.
            let mut all: Vec<u64> = marks.map.values().copied().collect();
            all.sort_unstable();
            let cut = all[all.len() / 2];
            marks.map.retain(|_, m| *m > cut);
            marks.floor = marks.floor.max(cut);
        }
    }

    /// Retires every cached value: another process changed the file, and what it touched is unknown.
    pub fn invalidate_all(&self) {
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        marks.map.clear();
        marks.floor = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
    }

    fn mark(&self, scope: Scope) -> u64 {
        let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        marks.map.get(&scope).copied().unwrap_or(marks.floor)
    }

    /// The cached value under `key`, if it is fresh: younger than its TTL and read after the last
    /// change to its scope. Counts a hit or a miss.
    pub fn get<K: Hash + Eq, V: Clone>(&self, lru: &Lru<K, V>, key: &K) -> Option<V> {
        self.lookup(lru, key, true)
    }

    /// Like `get`, but a miss is not counted: for a first look whose miss leads to a `get` (so every
    /// read counts once).
    pub fn try_get<K: Hash + Eq, V: Clone>(&self, lru: &Lru<K, V>, key: &K) -> Option<V> {
        self.lookup(lru, key, false)
    }

    fn lookup<K: Hash + Eq, V: Clone>(
        &self,
        lru: &Lru<K, V>,
        key: &K,
        count_miss: bool,
    ) -> Option<V> {
        if !self.enabled {
            return None;
        }
        let found = {
            let mut map = lru.map.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(key) {
                Some(e) if e.stored.elapsed() < lru.ttl => {
                    Some((e.value.clone(), e.scope, e.read_at))
                }
                Some(_) => {
                    map.pop(key);
                    None
                }
                None => None,
            }
        };
        let fresh =
            found.and_then(|(v, scope, read_at)| (read_at >= self.mark(scope)).then_some(v));
        if fresh.is_some() {
            self.hits[lru.kind.index()].fetch_add(1, Ordering::Relaxed);
        } else if count_miss {
            self.misses[lru.kind.index()].fetch_add(1, Ordering::Relaxed);
        }
        fresh
    }

    /// Remembers a value read from the database after `ticket` was taken. A value whose scope changed
    /// since then is not stored: it may be older than the change.
    pub fn put<K: Hash + Eq, V: Clone>(
        &self,
        lru: &Lru<K, V>,
        ticket: Ticket,
        key: K,
        scope: Scope,
        value: V,
    ) {
        if !self.enabled || ticket.0 < self.mark(scope) {
            return;
        }
        let entry = Entry {
            value,
            scope,
            read_at: ticket.0,
            stored: Instant::now(),
        };
        lru.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(key, entry);
    }

    /// What the writer's hook does after a group commit, before the group's callers are answered:
    /// retires the values of every scope in `scopes`, and edits each held waitlist order for the
    /// registrations the group changed (`placement` reads how one stands now; it is called only
    /// while some order is held). With `everything`, another process changed the file: every value
    /// and every order goes.
    pub fn commit(
        &self,
        orders: &Orders,
        everything: bool,
        scopes: impl IntoIterator<Item = Scope>,
        changed: &[i64],
        mut placement: impl FnMut(i64) -> Standing,
    ) {
        // How each changed registration stands now, read before the lock is taken, so that position
        // lookups do not wait on these reads (on the writer's connection, where nothing can commit
        // in between). Only while some order is held.
        let read: Option<Vec<(i64, Standing)>> = if orders.lock().is_empty() {
            None
        } else {
            Some(changed.iter().map(|&seq| (seq, placement(seq))).collect())
        };
        // The orders' lock is held across the marks' move and the edits: a reader storing an order
        // takes the same lock to compare its ticket with the mark (see `put_order`).
        let mut held = orders.lock();
        if everything {
            self.invalidate_all();
            held.clear();
        }
        let scopes: Vec<Scope> = scopes.into_iter().collect();
        self.invalidate(scopes.iter().copied());
        if held.is_empty() {
            return;
        }
        let Some(read) = read else {
            // An order was stored after the look above and may predate this commit: every change to
            // a registration writes its event's row, so dropping the touched events' orders is enough.
            for scope in &scopes {
                if let Scope::Event(event_seq) = scope {
                    held.pop(event_seq);
                }
            }
            return;
        };
        for (seq, now) in read {
            match now {
                Ok(Some(p)) => {
                    if let Some(order) = held.peek_mut(&p.event_seq) {
                        order.set(seq, p.waitlisted);
                    }
                }
                // Gone (erased rows are kept, so this is a rolled-back insert): it cannot be waiting.
                Ok(None) => {
                    for (_, order) in held.iter_mut() {
                        order.set(seq, false);
                    }
                }
                Err(Unreadable) => {
                    held.clear();
                    return;
                }
            }
        }
    }

    /// The rank of registration `seq` in the held waitlist order of its event: `Some(Some(rank))`, or
    /// `Some(None)` when the order is held but does not list it (a read that raced a commit: the
    /// caller counts instead), or `None` when no fresh order is held (a miss). Counts a hit or a miss.
    pub fn rank(&self, orders: &Orders, event_seq: i64, seq: i64) -> Option<Option<Rank>> {
        self.order_lookup(orders, event_seq, seq, true)
    }

    /// Like `rank`, without counting: a second look after waiting for another reader's read.
    pub fn peek_rank(&self, orders: &Orders, event_seq: i64, seq: i64) -> Option<Option<Rank>> {
        self.order_lookup(orders, event_seq, seq, false)
    }

    fn order_lookup(
        &self,
        orders: &Orders,
        event_seq: i64,
        seq: i64,
        count: bool,
    ) -> Option<Option<Rank>> {
        if !self.enabled {
            return None;
        }
        let found = {
            let mut held = orders.lock();
            match held.get(&event_seq) {
                Some(o) if o.fresh(orders.ttl) => Some(o.rank(seq)),
                Some(_) => {
                    held.pop(&event_seq);
                    None
                }
                None => None,
            }
        };
        if count {
            let counter = if found.is_some() {
                &self.hits
            } else {
                &self.misses
            };
            counter[Kind::Waitlist.index()].fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Holds the waitlist order of `event_seq` (`seqs` ascending), read after `ticket` was taken,
    /// unless a commit touched the event since: its hook may have run before this order existed.
    pub fn put_order(&self, orders: &Orders, ticket: Ticket, event_seq: i64, seqs: Vec<i64>) {
        if !self.enabled {
            return;
        }
        let mut held = orders.lock();
        if ticket.0 < self.mark(Scope::Event(event_seq)) {
            return;
        }
        held.put(
            event_seq,
            Order {
                seqs: seqs.into(),
                left: HashMap::new(),
                stored: Instant::now(),
            },
        );
    }

    /// Notes the status of registration `seq` of event `event_seq`, read as not waiting after
    /// `ticket` was taken, in the event's held order. Nothing is noted when no fresh order is held,
    /// when the order lists it (the read raced a commit), or when a commit changed the event since the
    /// ticket (the status may be older than that commit).
    pub fn note_left(
        &self,
        orders: &Orders,
        ticket: Ticket,
        event_seq: i64,
        seq: i64,
        status: &'static str,
    ) {
        if !self.enabled {
            return;
        }
        let mut held = orders.lock();
        if ticket.0 < self.mark(Scope::Event(event_seq)) {
            return;
        }
        if let Some(order) = held.peek_mut(&event_seq) {
            if order.fresh(orders.ttl) && order.rank(seq).is_none() && order.left.len() < MAX_LEFT {
                order.left.insert(seq, status);
            }
        }
    }

    /// Where registration `seq` stands by its event's held order, without counting: waiting at a
    /// rank, not waiting with a noted status, or `None` (no fresh order, or nothing noted for it).
    pub fn peek_standing(&self, orders: &Orders, event_seq: i64, seq: i64) -> Option<HeldPlace> {
        if !self.enabled {
            return None;
        }
        let mut held = orders.lock();
        let order = held.get(&event_seq)?;
        if !order.fresh(orders.ttl) {
            return None;
        }
        if let Some(rank) = order.rank(seq) {
            return Some(HeldPlace::Waiting(rank));
        }
        order.left.get(&seq).map(|status| HeldPlace::Left {
            status,
            length: order.length(),
        })
    }

    /// Counts a read of `kind` answered from memory by other means than one LRU (a position from a
    /// registration's keys and its event's waitlist order).
    pub fn count_hit(&self, kind: Kind) {
        if self.enabled {
            self.hits[kind.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hits and misses per kind since start.
    pub fn stats(&self) -> [(Kind, KindStats); Kind::ALL.len()] {
        Kind::ALL.map(|k| {
            (
                k,
                KindStats {
                    hits: self.hits[k.index()].load(Ordering::Relaxed),
                    misses: self.misses[k.index()].load(Ordering::Relaxed),
                },
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(o: CacheOptions) -> (Cache, Lru<u32, String>) {
        (Cache::new(&o), Lru::new(Kind::Attendee, &o))
    }

    #[test]
    fn a_value_is_served_until_its_scope_is_touched() {
        let (c, lru) = setup(CacheOptions::default());
        let t = c.ticket();
        c.put(&lru, t, 1, Scope::Attendee(1), "Ada".to_string());
        assert_eq!(c.get(&lru, &1).as_deref(), Some("Ada"));
        c.invalidate([Scope::Attendee(2), Scope::Event(1)]);
        assert!(c.get(&lru, &1).is_some(), "other scopes' changes");
        c.invalidate([Scope::Attendee(1)]);
        assert!(c.get(&lru, &1).is_none());
        let s = c.stats()[Kind::Attendee.index()].1;
        assert_eq!((s.hits, s.misses), (2, 1));
    }

    #[test]
    fn a_read_that_raced_a_commit_is_not_stored() {
        let (c, lru) = setup(CacheOptions::default());
        let t = c.ticket(); // the read starts
        c.invalidate([Scope::Attendee(1)]); // a commit lands meanwhile
        c.put(&lru, t, 1, Scope::Attendee(1), "Old".to_string());
        assert!(c.get(&lru, &1).is_none());
    }

    #[test]
    fn expired_values_are_misses() {
        let (c, lru) = setup(CacheOptions {
            attendee_ttl: Duration::ZERO,
            ..CacheOptions::default()
        });
        c.put(&lru, c.ticket(), 1, Scope::Attendee(1), "Ada".to_string());
        assert!(c.get(&lru, &1).is_none());
    }

    #[test]
    fn the_lru_is_bounded_by_entries() {
        let (c, lru) = setup(CacheOptions {
            attendee_entries: 2,
            ..CacheOptions::default()
        });
        for k in 0..3 {
            c.put(
                &lru,
                c.ticket(),
                k,
                Scope::Attendee(i64::from(k)),
                k.to_string(),
            );
        }
        assert!(c.get(&lru, &0).is_none(), "the least recently used went");
        assert!(c.get(&lru, &1).is_some() && c.get(&lru, &2).is_some());
    }

    #[test]
    fn folding_old_marks_never_revives_a_stale_value() {
        let (c, lru) = setup(CacheOptions::default());
        c.put(&lru, c.ticket(), 1, Scope::Attendee(1), "Ada".to_string());
        c.invalidate([Scope::Attendee(1)]);
        // Push scope 1's mark out of the map: the floor now covers it.
        c.invalidate((0..=MAX_MARKS as i64).map(Scope::Event));
        assert!(c.get(&lru, &1).is_none());
        // A value read after the fold is served again.
        c.put(&lru, c.ticket(), 1, Scope::Attendee(1), "Ada".to_string());
        assert!(c.get(&lru, &1).is_some());
    }

    #[test]
    fn invalidating_everything_retires_every_scope() {
        let (c, lru) = setup(CacheOptions::default());
        c.put(&lru, c.ticket(), 1, Scope::Attendee(1), "Ada".to_string());
        c.put(&lru, c.ticket(), 2, Scope::Event(9), "Gala".to_string());
        c.invalidate_all();
        assert!(c.get(&lru, &1).is_none() && c.get(&lru, &2).is_none());
        c.put(&lru, c.ticket(), 1, Scope::Attendee(1), "Ada".to_string());
        assert!(c.get(&lru, &1).is_some(), "read after the change");
    }

    fn rank_of(c: &Cache, o: &Orders, event: i64, seq: i64) -> Option<Option<(i64, i64)>> {
        c.peek_rank(o, event, seq)
            .map(|r| r.map(|r| (r.position, r.length)))
    }

    #[test]
    fn a_noted_status_is_served_until_its_registration_changes() {
        let o = CacheOptions::default();
        let (c, orders) = (Cache::new(&o), Orders::new(&o));
        let stays = |event_seq: i64| {
            move |_: i64| {
                Ok(Some(Placement {
                    event_seq,
                    waitlisted: false,
                }))
            }
        };
        c.put_order(&orders, c.ticket(), 7, vec![10, 20]);
        assert_eq!(c.peek_standing(&orders, 7, 5), None, "nothing noted yet");
        c.note_left(&orders, c.ticket(), 7, 5, "confirmed");
        let left = |status, length| Some(HeldPlace::Left { status, length });
        assert_eq!(c.peek_standing(&orders, 7, 5), left("confirmed", 2));
        // Someone the order lists is never noted as left: the read raced a commit.
        c.note_left(&orders, c.ticket(), 7, 10, "confirmed");
        let head = Rank {
            position: 1,
            length: 2,
        };
        assert_eq!(
            c.peek_standing(&orders, 7, 10),
            Some(HeldPlace::Waiting(head))
        );
        // A read that began before a commit to the event is not noted.
        let stale = c.ticket();
        c.commit(&orders, false, [Scope::Event(7)], &[10], stays(7));
        c.note_left(&orders, stale, 7, 6, "cancelled");
        assert_eq!(c.peek_standing(&orders, 7, 6), None);
        // The length is the order's: 10 left the waitlist.
        assert_eq!(c.peek_standing(&orders, 7, 5), left("confirmed", 1));
        // A commit that changes 5 forgets its status; so does its row going away.
        c.commit(&orders, false, [Scope::Event(7)], &[5], stays(7));
        assert_eq!(c.peek_standing(&orders, 7, 5), None);
        c.note_left(&orders, c.ticket(), 7, 5, "cancelled");
        assert_eq!(c.peek_standing(&orders, 7, 5), left("cancelled", 1));
        c.commit(&orders, false, [Scope::Event(7)], &[5], |_| Ok(None));
        assert_eq!(c.peek_standing(&orders, 7, 5), None);
        // Nothing is noted for an event whose order is not held.
        c.note_left(&orders, c.ticket(), 8, 5, "confirmed");
        assert_eq!(c.peek_standing(&orders, 8, 5), None);
    }

    #[test]
    fn the_writer_keeps_a_held_waitlist_order_exact() {
        let o = CacheOptions::default();
        let (c, orders) = (Cache::new(&o), Orders::new(&o));
        c.put_order(&orders, c.ticket(), 7, vec![10, 20, 30, 40]);
        assert_eq!(rank_of(&c, &orders, 7, 30), Some(Some((3, 4))));
        assert_eq!(rank_of(&c, &orders, 7, 25), Some(None), "not waiting");
        assert_eq!(rank_of(&c, &orders, 8, 30), None, "no order held");

        // A commit: 10 promoted (the head), 30 left, 50 joined; 60 joined event 8, not held.
        let now = |seq: i64| {
            Ok(Some(match seq {
                60 => Placement {
                    event_seq: 8,
                    waitlisted: true,
                },
                _ => Placement {
                    event_seq: 7,
                    waitlisted: seq == 50,
                },
            }))
        };
        c.commit(
            &orders,
            false,
            [Scope::Event(7), Scope::Event(8)],
            &[10, 30, 50, 60],
            now,
        );
        assert_eq!(rank_of(&c, &orders, 7, 20), Some(Some((1, 3))));
        assert_eq!(rank_of(&c, &orders, 7, 40), Some(Some((2, 3))));
        assert_eq!(rank_of(&c, &orders, 7, 50), Some(Some((3, 3))));
        assert_eq!(rank_of(&c, &orders, 7, 10), Some(None));
        assert_eq!(rank_of(&c, &orders, 8, 60), None);

        // Applying the same commit again changes nothing (an order read after a commit, before its
        // hook ran, already holds the change).
        c.commit(&orders, false, [Scope::Event(7)], &[10, 30, 50], now);
        assert_eq!(rank_of(&c, &orders, 7, 50), Some(Some((3, 3))));

        // A rolled-back insert has no row: it is dropped from every order.
        c.commit(&orders, false, [Scope::Event(7)], &[40], |_| Ok(None));
        assert_eq!(rank_of(&c, &orders, 7, 50), Some(Some((2, 2))));

        // A change that cannot be read back: nothing held can be trusted.
        c.commit(&orders, false, [Scope::Event(7)], &[20], |_| {
            Err(Unreadable)
        });
        assert_eq!(rank_of(&c, &orders, 7, 50), None);
        c.put_order(&orders, c.ticket(), 7, vec![40, 50]);

        // Another process changed the file: nothing held survives.
        c.commit(&orders, true, [], &[], now);
        assert_eq!(rank_of(&c, &orders, 7, 20), None);
    }

    #[test]
    fn an_order_read_before_a_commit_to_its_event_is_not_held() {
        let o = CacheOptions::default();
        let (c, orders) = (Cache::new(&o), Orders::new(&o));
        let t = c.ticket();
        // The commit's hook runs while the order is being read (nothing is held to edit yet).
        c.commit(&orders, false, [Scope::Event(7)], &[5], |_| {
            Ok(Some(Placement {
                event_seq: 7,
                waitlisted: true,
            }))
        });
        c.put_order(&orders, t, 7, vec![1, 2]);
        assert_eq!(
            rank_of(&c, &orders, 7, 1),
            None,
            "refused: it may miss seq 5"
        );
        // A commit to another event does not refuse it.
        let t = c.ticket();
        c.commit(&orders, false, [Scope::Event(9)], &[], |_| Ok(None));
        c.put_order(&orders, t, 7, vec![1, 2, 5]);
        assert_eq!(rank_of(&c, &orders, 7, 5), Some(Some((3, 3))));
        let s = c.stats()[Kind::Waitlist.index()].1;
        assert_eq!((s.hits, s.misses), (0, 0), "peeks are not counted");
        assert!(c.rank(&orders, 7, 5).is_some() && c.rank(&orders, 8, 5).is_none());
        let s = c.stats()[Kind::Waitlist.index()].1;
        assert_eq!((s.hits, s.misses), (1, 1));
    }

    #[test]
    fn a_disabled_cache_stores_nothing() {
        let (c, lru) = setup(CacheOptions {
            enabled: false,
            ..CacheOptions::default()
        });
        c.put(&lru, c.ticket(), 1, Scope::Attendee(1), "Ada".to_string());
        assert!(c.get(&lru, &1).is_none());
    }
}
