//! Rate limits per caller (`[http.rate_limit]`), with `governor`'s keyed limiters (GCRA).
//!
//! A request belongs to one class by who sends it: `anonymous` (no token, a malformed header, or a
//! token the box does not know), counted per client IP address (IPv6 per /64 prefix, what one host
//! usually holds), or the role of its token, `kiosk`, `operator` or `admin`, counted per token. Each
//! class has a quota of N requests per minute per key: a caller may spend the whole minute's worth
//! at once, and it refills evenly, one request every 60/N seconds. A class with 0 is not limited.
//! Classifying a token needs its role: a token used within the last second is known from memory,
//! any other is looked up once on the blocking pool (which also warms the handlers' cache).
//!
//! Headers follow draft-ietf-httpapi-ratelimit-headers-10 (September 2025; the fields and
//! parameters are unchanged in -11): every response of a limited class carries
//! `RateLimit-Policy: "kiosk";q=6000;w=60` (the policy: quota `q` per window `w` seconds) and
//! `RateLimit: "kiosk";r=5998;t=1` (`r` requests left now, `t` seconds until the whole quota is back).
//! Over the limit the answer is 429 `rate_limited` with `Retry-After` (seconds until one more
//! request is allowed), and the request goes no further: it changes nothing.
//!
//! Memory stays bounded: every minute, keys whose quota is whole again (callers quiet for up to a
//! minute) are dropped, so the maps hold only the callers of the last minute or two, however many
//! addresses have come and gone.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::state::keyed::DashMapStateStore;
use governor::{NotUntil, Quota, RateLimiter};

use super::problem::Problem;
use crate::app::App;
use crate::config::RateLimitConfig;
use crate::domain::Role;
use crate::store::tokens::Token;

pub(super) static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub(super) static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// How often keys whose quota is whole again are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The limiters' clock: the app's monotonic reading, so tests that drive a manual clock decide
/// when quotas refill, and a wall clock set back never locks callers out.
#[derive(Clone)]
struct LimitClock(Arc<App>);

impl governor::clock::Clock for LimitClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.monotonic()
    }
}

/// Who is counted: a client address (anonymous) or a token (by its sequence number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    Token(i64),
}

/// The address a client is counted under: IPv4 as it is (also when mapped into IPv6), IPv6 by its
/// /64 prefix, since one host may use any address of its /64.
pub(super) fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

type Keyed = RateLimiter<Key, DashMapStateStore<Key>, LimitClock, StateInformationMiddleware>;

/// One class's limit.
struct Policy {
    name: &'static str,
    per_minute: u32,
    limiter: Keyed,
    /// `RateLimit-Policy`, the same on every response.
    header: HeaderValue,
}

impl Policy {
    fn new(name: &'static str, per_minute: u32, clock: &LimitClock) -> Option<Self> {
        let n = NonZeroU32::new(per_minute)?;
        let limiter = RateLimiter::<Key, _, _, NoOpMiddleware<Duration>>::new(
            Quota::per_minute(n),
            DashMapStateStore::default(),
            clock.clone(),
        )
        .with_middleware::<StateInformationMiddleware>();
        let header = HeaderValue::from_str(&format!("\"{name}\";q={per_minute};w=60"))
            .expect("a class name and numbers make a valid header");
        Some(Self {
            name,
            per_minute,
            limiter,
            header,
        })
    }

    /// Seconds until `cells` requests have come back after `extra`, rounded up; in integer
    /// nanoseconds, so 99 requests of a 100-per-minute quota after a 0.6 s wait are exactly 60 s.
    fn refill_secs(&self, cells: u32, extra: Duration) -> u64 {
        let nanos =
            u128::from(cells) * 60_000_000_000 / u128::from(self.per_minute) + extra.as_nanos();
        u64::try_from(nanos.div_ceil(1_000_000_000)).unwrap_or(u64::MAX)
    }

    /// `RateLimit` for `remaining` requests left, whole again in `reset` seconds.
    fn state_header(&self, remaining: u32, reset: u64) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!("\"{}\";r={remaining};t={reset}", self.name)).ok()
    }
}

/// The limits of every class, shared by all requests.
pub(super) struct RateLimits {
    app: Arc<App>,
    clock: LimitClock,
    anonymous: Option<Policy>,
    kiosk: Option<Policy>,
    operator: Option<Policy>,
    admin: Option<Policy>,
    /// When the next sweep is due, in nanoseconds of the limiters' clock.
    next_sweep: AtomicU64,
}

/// What the limiter decided for one request: the headers (or the whole 429 answer) are made before
/// the request goes on, so nothing is left to compute once the inner service has answered.
enum Decision {
    /// The caller's class has no limit.
    Unlimited,
    /// Allowed: the class's `RateLimit-Policy` and the caller's `RateLimit`.
    Allowed(HeaderValue, HeaderValue),
    /// Refused: the whole 429 answer.
    Refused(Response),
}

impl RateLimits {
    pub(super) fn new(app: Arc<App>, cfg: &RateLimitConfig) -> Self {
        let clock = LimitClock(app.clone());
        let next_sweep = AtomicU64::new(as_nanos(clock.0.monotonic() + SWEEP_EVERY));
        Self {
            anonymous: Policy::new("anonymous", cfg.anonymous_per_minute, &clock),
            kiosk: Policy::new("kiosk", cfg.kiosk_per_minute, &clock),
            operator: Policy::new("operator", cfg.operator_per_minute, &clock),
            admin: Policy::new("admin", cfg.admin_per_minute, &clock),
            app,
            clock,
            next_sweep,
        }
    }

    fn any(&self) -> bool {
        self.anonymous.is_some()
            || self.kiosk.is_some()
            || self.operator.is_some()
            || self.admin.is_some()
    }

    /// The caller's class and key, from its address and its bearer secret (if well formed), and
    /// the token when the secret is one. A token the box does not know counts as anonymous, so
    /// guessing tokens spends the address's anonymous quota.
    async fn classify(
        &self,
        ip: IpAddr,
        secret: Option<&str>,
    ) -> (Option<&Policy>, Key, Option<Token>) {
        let anonymous = (self.anonymous.as_ref(), Key::Ip(ip_key(ip)), None);
        let Some(secret) = secret else {
            return anonymous;
        };
        let token = match self.app.recently_authenticated(secret) {
            Some(t) => Some(t),
            None => {
                let app = self.app.clone();
                let secret = secret.to_string();
                tokio::task::spawn_blocking(move || app.authenticate(&secret))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .flatten()
            }
        };
        let Some(token) = token else {
            return anonymous;
        };
        let policy = match token.role {
            Role::Kiosk => self.kiosk.as_ref(),
            Role::Operator => self.operator.as_ref(),
            Role::Admin => self.admin.as_ref(),
        };
        (policy, Key::Token(token.seq), Some(token))
    }

    fn decide(&self, policy: Option<&Policy>, key: Key) -> Decision {
        let Some(policy) = policy else {
            return Decision::Unlimited;
        };
        match policy.limiter.check_key(&key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                let reset = policy.refill_secs(policy.per_minute - remaining, Duration::ZERO);
                match policy.state_header(remaining, reset) {
                    Some(h) => Decision::Allowed(policy.header.clone(), h),
                    None => Decision::Unlimited,
                }
            }
            Err(not_until) => {
                let mut resp = self.refusal(policy, &not_until);
                if matches!(key, Key::Ip(_)) {
                    resp.extensions_mut().insert(super::bans::AddressRefused);
                }
                Decision::Refused(resp)
            }
        }
    }

    /// The 429 answer: how long to wait for one more request (`Retry-After`), and the headers.
    fn refusal(&self, policy: &Policy, not_until: &NotUntil<Duration>) -> Response {
        let wait = not_until.wait_time_from(self.clock.0.monotonic());
        let retry_after = u64::try_from(wait.as_nanos().div_ceil(1_000_000_000))
            .unwrap_or(u64::MAX)
            .max(1);
        let reset = policy.refill_secs(policy.per_minute - 1, wait);
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests",
            format!(
                "the {} limit is {} requests per minute; retry in {retry_after} s",
                policy.name, policy.per_minute
            ),
        );
        p.retry_after = Some(retry_after);
        let mut resp = p.into_response();
        let h = resp.headers_mut();
        h.insert(RATELIMIT_POLICY.clone(), policy.header.clone());
        if let Some(state) = policy.state_header(0, reset) {
            h.insert(RATELIMIT.clone(), state);
        }
        resp
    }

    /// Starts a sweep on the blocking pool when one is due; at most one at a time.
    fn sweep_if_due(self: &Arc<Self>) {
        let now = as_nanos(self.clock.0.monotonic());
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let next = as_nanos(self.clock.0.monotonic() + SWEEP_EVERY);
        if self
            .next_sweep
            .compare_exchange(due, next, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.sweep());
        }
    }

    /// Drops every key whose quota is whole again: it is no different from a key never seen.
    pub(super) fn sweep(&self) {
        for p in [&self.anonymous, &self.kiosk, &self.operator, &self.admin]
            .into_iter()
            .flatten()
        {
            p.limiter.retain_recent();
            p.limiter.shrink_to_fit();
        }
    }

    /// Keys held, over every class (for tests of the memory bound).
    #[cfg(test)]
    fn keys(&self) -> usize {
        [&self.anonymous, &self.kiosk, &self.operator, &self.admin]
            .into_iter()
            .flatten()
            .map(|p| p.limiter.len())
            .sum()
    }
}

fn as_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The middleware: classify, count, and answer 429 or pass the request on; every response of a
/// limited class gets the two headers.
pub(super) async fn limit<F, Fut>(limits: &Arc<RateLimits>, mut req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    if !limits.any() {
        return next(req).await;
    }
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let secret = match super::handlers::bearer(req.headers()) {
        Some(Ok(s)) => Some(s),
        _ => None,
    };
    let decision = {
        let (policy, key, token) = limits.classify(ip, secret).await;
        if let Some(token) = token {
            // The handler's hot path takes the token from here rather than hashing the secret
            // and locking the token cache a second time.
            req.extensions_mut()
                .insert(super::handlers::ResolvedToken(token));
        }
        limits.decide(policy, key)
    };
    limits.sweep_if_due();
    match decision {
        Decision::Unlimited => next(req).await,
        Decision::Allowed(policy, state) => {
            let mut resp = next(req).await;
            let h = resp.headers_mut();
            h.insert(RATELIMIT_POLICY.clone(), policy);
            h.insert(RATELIMIT.clone(), state);
            resp
        }
        Decision::Refused(resp) => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{AppOptions, ManualClock};
    use crate::domain::Timestamp;

    fn limits(cfg: &RateLimitConfig) -> (Arc<RateLimits>, Arc<ManualClock>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_900_000_000_000)));
        let app = App::open_with_clock(
            &dir.path().join("boxoffice.db"),
            AppOptions::default(),
            clock.clone(),
        )
        .expect("open");
        (Arc::new(RateLimits::new(Arc::new(app), cfg)), clock, dir)
    }

    #[test]
    fn ipv6_callers_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(ip_key(mapped), "192.0.2.7".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn keys_of_quiet_callers_are_swept_and_busy_ones_kept() {
        let (l, clock, _dir) = limits(&RateLimitConfig::default());
        for i in 0..20_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(matches!(
                l.decide(l.anonymous.as_ref(), Key::Ip(ip)),
                Decision::Allowed(..)
            ));
        }
        let busy = Key::Ip(IpAddr::from([192, 0, 2, 1]));
        for _ in 0..50 {
            l.decide(l.anonymous.as_ref(), busy);
        }
        assert_eq!(l.keys(), 20_001);
        // One request comes back 0.6 s after it was made: before that, nobody is whole again.
        clock.advance_millis(300);
        l.sweep();
        assert_eq!(l.keys(), 20_001);
        // A second on, only the caller that spent 50 requests (30 s to refill) is remembered.
        clock.advance_millis(1_000);
        l.sweep();
        assert_eq!(l.keys(), 1);
        clock.advance_millis(30_000);
        l.sweep();
        assert_eq!(l.keys(), 0);
    }

    #[test]
    fn a_sweep_is_started_once_a_minute_at_most() {
        let (l, clock, _dir) = limits(&RateLimitConfig::default());
        let first = l.next_sweep.load(Ordering::Relaxed);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            l.sweep_if_due();
            assert_eq!(l.next_sweep.load(Ordering::Relaxed), first);
            clock.advance_millis(60_000);
            l.sweep_if_due();
            let second = l.next_sweep.load(Ordering::Relaxed);
            assert_eq!(second, first + 60_000_000_000);
            l.sweep_if_due();
            assert_eq!(l.next_sweep.load(Ordering::Relaxed), second);
        });
    }
}
