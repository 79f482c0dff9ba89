//! Addresses that keep breaking the protocol are shut out for a while (I8: no client may starve the
//! others). A *strike* is a request the box had to refuse for its shape or its pace: a head over the
//! bounds (431) or unparsable (400 from the connection driver), a body over the bound (413), or a
//! 429 of the limit counted per address (anonymous callers; a token's 429 strikes nobody's address,
//! so a web shop behind one proxy address is not shut out for one customer's token). An address
//! with `http.ban_strikes` strikes within `http.ban_window_secs` is banned for `http.ban_secs`: its
//! new connections are closed as soon as they are accepted, unread, and its open ones are closed
//! after their current answer. What a banned client costs the box is an accept and a close, instead
//! of parsing whatever it sends; its pushing of megabytes through the network stops too, since
//! nothing of it is read any more.
//!
//! Addresses are counted like the rate limits count them (IPv6 per /64). Time comes from the app's
//! monotonic clock, so tests can let a ban run out without sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::Response;
use hyper::StatusCode;

use crate::app::App;
use crate::config::HttpConfig;
use crate::metrics::Metrics;

/// On a response: it refused a caller counted by its address (an anonymous 429), a strike.
#[derive(Debug, Clone, Copy)]
pub struct AddressRefused;

/// The most addresses remembered at once; beyond it, new addresses are not counted until old
/// records run out (a flood of spoofed-looking addresses cannot grow the map).
const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    window_start: Duration,
    strikes: u32,
    banned_until: Option<Duration>,
}

/// The monotonic clock bans are measured on (the app's, so tests drive it).
type Monotonic = Box<dyn Fn() -> Duration + Send + Sync>;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub struct Bans {
    /// Where strikes and bans are counted (`None` in unit tests).
    metrics: Option<Arc<Metrics>>,
    clock: Monotonic,
    strikes: u32,
    window: Duration,
    ban: Duration,
    map: Mutex<HashMap<IpAddr, Record>>,
    /// When the latest ban ends (nanoseconds on `clock`): past it no address is banned, and
    /// `banned`, asked on every answer, skips the map's lock.
    bans_end: AtomicU64,
}

impl std::fmt::Debug for Bans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bans")
            .field("strikes", &self.strikes)
            .field("window", &self.window)
            .field("ban", &self.ban)
            .finish()
    }
}

impl Bans {
    pub fn new(app: Arc<App>, cfg: &HttpConfig) -> Self {
        let metrics = app.shared_metrics();
        Self {
            metrics: Some(metrics),
            ..Self::with_clock(Box::new(move || app.monotonic()), cfg)
        }
    }

    fn with_clock(clock: Monotonic, cfg: &HttpConfig) -> Self {
        Self {
            metrics: None,
            clock,
            strikes: cfg.ban_strikes,
            window: Duration::from_secs(cfg.ban_window_secs),
            ban: Duration::from_secs(cfg.ban_secs),
            map: Mutex::default(),
            bans_end: AtomicU64::new(0),
        }
    }

    fn enabled(&self) -> bool {
        self.strikes > 0 && !self.ban.is_zero()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether connections from `ip` are refused now.
    pub fn banned(&self, ip: IpAddr) -> bool {
        if !self.enabled() {
            return false;
        }
        let now = (self.clock)();
        if nanos(now) >= self.bans_end.load(Ordering::SeqCst) {
            return false;
        }
        let key = super::ratelimit::ip_key(ip);
        let banned = self
            .lock()
            .get(&key)
            .and_then(|r| r.banned_until)
            .is_some_and(|until| now < until);
        banned
    }

    /// Records a strike against `ip`; answers whether the address is banned now.
    pub fn strike(&self, ip: IpAddr) -> bool {
        if !self.enabled() {
            return false;
        }
        let (banned, now_banned) = self.count_strike(ip);
        if let Some(metrics) = &self.metrics {
            metrics.record_strike(now_banned);
        }
        banned
    }

    /// The strike itself: whether the address is banned, and whether this strike banned it.
    fn count_strike(&self, ip: IpAddr) -> (bool, bool) {
        let now = (self.clock)();
        let key = super::ratelimit::ip_key(ip);
        let mut map = self.lock();
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&key) {
            let window = self.window;
            map.retain(|_, r| {
                r.banned_until.is_some_and(|u| now < u) || now < r.window_start + window
            });
            if map.len() >= MAX_ADDRESSES {
                return (false, false);
            }
        }
        let r = map.entry(key).or_insert(Record {
            window_start: now,
            strikes: 0,
            banned_until: None,
        });
        if let Some(until) = r.banned_until {
            if now < until {
                return (true, false);
            }
            r.banned_until = None;
            r.strikes = 0;
            r.window_start = now;
        }
        if now >= r.window_start + self.window {
            r.window_start = now;
            r.strikes = 0;
        }
        r.strikes += 1;
        if r.strikes >= self.strikes {
            // Raised before the record, so `banned` never skips a ban it could see in the map.
            self.bans_end
                .fetch_max(nanos(now + self.ban), Ordering::SeqCst);
            r.banned_until = Some(now + self.ban);
            tracing::warn!(
                address = %key,
                strikes = r.strikes,
                ban_secs = self.ban.as_secs(),
                "address banned: too many refused requests"
            );
            return (true, true);
        }
        (false, false)
    }
}

/// Whether an answer is a strike against its caller's address.
pub fn is_strike(resp: &Response) -> bool {
    matches!(
        resp.status(),
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    ) || resp.extensions().get::<AddressRefused>().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn bans(strikes: u32) -> (Bans, Arc<AtomicU64>) {
        let ms = Arc::new(AtomicU64::new(1_000_000));
        let read = ms.clone();
        let cfg = HttpConfig {
            ban_strikes: strikes,
            ban_window_secs: 10,
            ban_secs: 60,
            ..HttpConfig::default()
        };
        let clock = Box::new(move || Duration::from_millis(read.load(Ordering::SeqCst)));
        (Bans::with_clock(clock, &cfg), ms)
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn strikes_within_the_window_ban_for_the_ban_time() {
        let (b, ms) = bans(3);
        assert!(!b.strike(A) && !b.strike(A));
        assert!(!b.banned(A));
        assert!(b.strike(A), "the third strike bans");
        assert!(b.banned(A) && !b.banned(B), "only that address");
        ms.fetch_add(59_999, Ordering::SeqCst);
        assert!(b.banned(A));
        ms.fetch_add(1, Ordering::SeqCst);
        assert!(!b.banned(A), "over after 60 s");
        assert!(!b.strike(A), "and its strikes start again from zero");
    }

    #[test]
    fn strikes_spread_wider_than_the_window_never_ban() {
        let (b, ms) = bans(3);
        for _ in 0..20 {
            assert!(!b.strike(A));
            assert!(!b.strike(A));
            ms.fetch_add(10_000, Ordering::SeqCst);
        }
        assert!(!b.banned(A));
    }

    #[test]
    fn ipv6_addresses_are_counted_per_64_and_zero_strikes_turn_bans_off() {
        let (b, _) = bans(2);
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("v6");
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("v6");
        let other_64: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        assert!(!b.strike(one));
        assert!(b.strike(same_64));
        assert!(b.banned(one) && !b.banned(other_64));
        let (off, _) = bans(0);
        for _ in 0..100 {
            assert!(!off.strike(A));
        }
        assert!(!off.banned(A));
    }
}
