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

use std::collections::HashMap;
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
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Event, Kind::Attendee, Kind::Counts, Kind::Position];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Attendee => "attendee",
            Kind::Counts => "counts",
            Kind::Position => "position",
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
    pub event_ttl: Duration,
    pub attendee_ttl: Duration,
    pub counts_ttl: Duration,
    pub position_ttl: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            event_entries: 10_000,
            attendee_entries: 50_000,
            counts_entries: 10_000,
            position_entries: 50_000,
            event_ttl: Duration::from_secs(300),
            attendee_ttl: Duration::from_secs(600),
            counts_ttl: Duration::from_secs(120),
            position_ttl: Duration::from_secs(60),
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

impl<K: Hash + Eq, V: Clone> Lru<K, V> {
    /// An LRU of `kind` with the bound and TTL `o` gives that kind.
    pub fn new(kind: Kind, o: &CacheOptions) -> Self {
        let (entries, ttl) = match kind {
            Kind::Event => (o.event_entries, o.event_ttl),
            Kind::Attendee => (o.attendee_entries, o.attendee_ttl),
            Kind::Counts => (o.counts_entries, o.counts_ttl),
            Kind::Position => (o.position_entries, o.position_ttl),
        };
        let cap = NonZeroUsize::new(entries.max(1)).expect("max(1) is not zero");
        Self {
            kind,
            ttl,
            map: Mutex::new(LruCache::new(cap)),
        }
    }
}

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
    hits: [AtomicU64; 4],
    misses: [AtomicU64; 4],
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

    /// Hits and misses per kind since start.
    pub fn stats(&self) -> [(Kind, KindStats); 4] {
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
