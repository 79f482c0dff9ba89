//! Configuration: one typed struct. Defaults, then the TOML file, then the `BOXOFFICE_*` environment,
//! then command-line flags, then validation. Every key is documented in
//! `fixtures/boxoffice.example.toml`; a test keeps that file parsing into this struct.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::app::{AppOptions, OutboxOptions};
use crate::cache::CacheOptions;
use crate::store::StoreOptions;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// Where the database, admin token and logs live; `None`: the platform's data dir.
    pub data_dir: Option<PathBuf>,
    /// `tracing` filter, e.g. "info" or "boxoffice=debug".
    pub log: String,
    pub http: HttpConfig,
    pub store: StoreConfig,
    pub idempotency: IdempotencyConfig,
    pub outbox: OutboxConfig,
    pub cache: CacheConfig,
}

/// `[cache]`: the read cache (DESIGN.md section 5), entries per kind and TTLs in seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub enabled: bool,
    pub event_entries: usize,
    pub attendee_entries: usize,
    pub counts_entries: usize,
    pub position_entries: usize,
    pub waitlist_entries: usize,
    pub event_ttl_secs: u64,
    pub attendee_ttl_secs: u64,
    pub counts_ttl_secs: u64,
    pub position_ttl_secs: u64,
    pub waitlist_ttl_secs: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        let d = CacheOptions::default();
        Self {
            enabled: d.enabled,
            event_entries: d.event_entries,
            attendee_entries: d.attendee_entries,
            counts_entries: d.counts_entries,
            position_entries: d.position_entries,
            waitlist_entries: d.waitlist_entries,
            event_ttl_secs: d.event_ttl.as_secs(),
            attendee_ttl_secs: d.attendee_ttl.as_secs(),
            counts_ttl_secs: d.counts_ttl.as_secs(),
            position_ttl_secs: d.position_ttl.as_secs(),
            waitlist_ttl_secs: d.waitlist_ttl.as_secs(),
        }
    }
}

impl CacheConfig {
    pub fn options(&self) -> CacheOptions {
        CacheOptions {
            enabled: self.enabled,
            event_entries: self.event_entries,
            attendee_entries: self.attendee_entries,
            counts_entries: self.counts_entries,
            position_entries: self.position_entries,
            waitlist_entries: self.waitlist_entries,
            event_ttl: Duration::from_secs(self.event_ttl_secs),
            attendee_ttl: Duration::from_secs(self.attendee_ttl_secs),
            counts_ttl: Duration::from_secs(self.counts_ttl_secs),
            position_ttl: Duration::from_secs(self.position_ttl_secs),
            waitlist_ttl: Duration::from_secs(self.waitlist_ttl_secs),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_read_timeout_secs: u64,
    pub body_read_timeout_secs: u64,
    pub write_timeout_secs: u64,
    pub request_timeout_secs: u64,
    pub max_connections: usize,
    /// Connections one client address may hold at once; unset, half of `max_connections` (rounded
    /// up), so one address alone can never take every slot (I8).
    pub max_connections_per_address: Option<usize>,
    pub blocking_threads: usize,
    pub worker_threads: usize,
    pub gzip: bool,
    /// Brotli (`br`) for clients that accept it (preferred over gzip when both are accepted).
    pub brotli: bool,
    pub shutdown_grace_secs: u64,
    /// Requests that take at least this long are logged at `warn` with `slow=true`.
    pub slow_request_ms: u64,
    /// Strikes (431, 413, unparsable heads, anonymous 429s) within `ban_window_secs` that ban an
    /// address for `ban_secs`; 0 turns bans off.
    pub ban_strikes: u32,
    pub ban_window_secs: u64,
    pub ban_secs: u64,
    /// Host names (no port: any port matches) this box answers for, besides the address it listens
    /// on; `"*"` answers for any (only behind a proxy that checks `Host` itself).
    pub allowed_hosts: Vec<String>,
    /// Web origins (`https://shop.example.org`) whose pages may write, besides the allowed hosts.
    pub allowed_origins: Vec<String>,
    pub rate_limit: RateLimitConfig,
}

impl HttpConfig {
    /// How many connections one client address may hold at once.
    pub fn per_address_cap(&self) -> usize {
        self.max_connections_per_address
            .unwrap_or(self.max_connections.div_ceil(2))
            .max(1)
    }
}

/// `[http.rate_limit]`: requests per minute per caller, by the caller's class; 0 means no limit.
/// Anonymous callers (and tokens the box does not know) are counted per client IP address, the
/// others per token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub anonymous_per_minute: u32,
    pub kiosk_per_minute: u32,
    pub operator_per_minute: u32,
    pub admin_per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            anonymous_per_minute: 100,
            kiosk_per_minute: 6000,
            operator_per_minute: 6000,
            admin_per_minute: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub readers: u32,
    pub max_batch: usize,
    pub queue: usize,
    pub busy_timeout_ms: u64,
    pub min_free_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotencyConfig {
    pub ttl_hours: u64,
}

/// `[outbox]`: webhook delivery (DESIGN.md section 4).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    pub enabled: bool,
    pub timeout_ms: u64,
    pub max_attempts: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub breaker_threshold: u32,
    pub breaker_cooldown_ms: u64,
    pub parallel_endpoints: usize,
    pub per_endpoint_concurrency: usize,
    pub batch: usize,
    pub batch_wait_ms: u64,
    pub busy_writes_per_s: u64,
    pub busy_wait_ms: u64,
    pub retention_hours: u64,
    pub max_lag_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: None,
            log: "info".into(),
            http: HttpConfig::default(),
            store: StoreConfig::default(),
            idempotency: IdempotencyConfig::default(),
            outbox: OutboxConfig::default(),
            cache: CacheConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 10,
            write_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: 1024,
            max_connections_per_address: None,
            blocking_threads: 128,
            worker_threads: 0,
            gzip: true,
            brotli: true,
            shutdown_grace_secs: 10,
            slow_request_ms: 500,
            ban_strikes: 20,
            ban_window_secs: 10,
            ban_secs: 60,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            allowed_origins: Vec::new(),
            rate_limit: RateLimitConfig::default(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        let d = StoreOptions::default();
        Self {
            readers: d.readers,
            max_batch: d.max_batch,
            queue: d.queue,
            busy_timeout_ms: u64::try_from(d.busy_timeout.as_millis()).unwrap_or(5000),
            min_free_bytes: crate::app::DEFAULT_MIN_FREE_BYTES,
        }
    }
}

impl Default for OutboxConfig {
    fn default() -> Self {
        let d = OutboxOptions::default();
        let ms = |v: i64| u64::try_from(v).unwrap_or(0);
        Self {
            enabled: d.enabled,
            timeout_ms: u64::try_from(d.timeout.as_millis()).unwrap_or(10_000),
            max_attempts: d.max_attempts,
            backoff_initial_ms: ms(d.backoff_initial_ms),
            backoff_max_ms: ms(d.backoff_max_ms),
            breaker_threshold: d.breaker_threshold,
            breaker_cooldown_ms: ms(d.breaker_cooldown_ms),
            parallel_endpoints: d.parallel_endpoints,
            per_endpoint_concurrency: d.per_endpoint_concurrency,
            batch: d.batch,
            batch_wait_ms: ms(d.batch_wait_ms),
            busy_writes_per_s: d.busy_writes_per_s,
            busy_wait_ms: ms(d.busy_wait_ms),
            retention_hours: ms(d.retention_ms) / 3_600_000,
            max_lag_secs: ms(d.max_lag_ms) / 1000,
        }
    }
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self { ttl_hours: 24 }
    }
}

/// The environment variables read, and what they override.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("BOXOFFICE_LISTEN", "listen"),
    ("BOXOFFICE_DATA_DIR", "data_dir"),
    ("BOXOFFICE_LOG", "log"),
    ("BOXOFFICE_MAX_CONNECTIONS", "http.max_connections"),
    ("BOXOFFICE_MAX_BODY_BYTES", "http.max_body_bytes"),
];

impl Config {
    /// Defaults, then `file` if given, then the environment. Flags are applied by the caller, then
    /// `validate`.
    pub fn load(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => Config::default(),
        };
        if let Some(v) = env("BOXOFFICE_LISTEN") {
            cfg.listen = v
                .parse()
                .with_context(|| format!("BOXOFFICE_LISTEN={v:?} is not host:port"))?;
        }
        if let Some(v) = env("BOXOFFICE_DATA_DIR") {
            cfg.data_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = env("BOXOFFICE_LOG") {
            cfg.log = v;
        }
        if let Some(v) = env("BOXOFFICE_MAX_CONNECTIONS") {
            cfg.http.max_connections = v
                .parse()
                .with_context(|| format!("BOXOFFICE_MAX_CONNECTIONS={v:?}"))?;
        }
        if let Some(v) = env("BOXOFFICE_MAX_BODY_BYTES") {
            cfg.http.max_body_bytes = v
                .parse()
                .with_context(|| format!("BOXOFFICE_MAX_BODY_BYTES={v:?}"))?;
        }
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let h = &self.http;
        if !(1024..=16 * 1024 * 1024).contains(&h.max_body_bytes) {
            bail!("http.max_body_bytes must be from 1024 to 16777216");
        }
        // hyper refuses read buffers below 8 KiB.
        if !(8192..=1024 * 1024).contains(&h.max_header_bytes) {
            bail!("http.max_header_bytes must be from 8192 to 1048576");
        }
        if !(8..=1000).contains(&h.max_headers) {
            bail!("http.max_headers must be from 8 to 1000");
        }
        if !(1..=100_000).contains(&h.max_connections) || !(1..=4096).contains(&h.blocking_threads)
        {
            bail!("http.max_connections must be from 1 to 100000, http.blocking_threads from 1 to 4096");
        }
        if h.max_connections_per_address
            .is_some_and(|n| !(1..=h.max_connections).contains(&n))
        {
            bail!(
                "http.max_connections_per_address must be from 1 to http.max_connections ({})",
                h.max_connections
            );
        }
        if h.header_read_timeout_secs == 0
            || h.request_timeout_secs == 0
            || h.body_read_timeout_secs == 0
            || h.write_timeout_secs == 0
        {
            bail!("http timeouts must be at least 1 second");
        }
        if !(1..=3_600_000).contains(&h.slow_request_ms) {
            bail!("http.slow_request_ms must be from 1 to 3600000");
        }
        if h.ban_strikes > 1_000_000
            || !(1..=3600).contains(&h.ban_window_secs)
            || h.ban_secs > 86_400
        {
            bail!("http.ban_strikes must be at most 1000000, http.ban_window_secs from 1 to 3600, http.ban_secs at most 86400");
        }
        for host in &h.allowed_hosts {
            // A host name, IPv4 or bracketed IPv6 address, without a port.
            let bare = crate::http::hosts::host_of(host).is_some()
                && (host.starts_with('[') && host.ends_with(']') || !host.contains(':'));
            if host != crate::http::hosts::ANY_HOST && !bare {
                bail!("http.allowed_hosts: {host:?} is not a host name, an IPv4 address or a bracketed IPv6 address (give no port: any port matches)");
            }
        }
        for o in &h.allowed_origins {
            if crate::http::hosts::origin_of(o).is_none() {
                bail!("http.allowed_origins: {o:?} is not an origin like https://shop.example.org");
            }
        }
        // Upper bounds too: the writer allocates its group and queue up front, and SQLite takes the
        // busy timeout as a 32-bit count of milliseconds (a larger value panicked at start).
        let st = &self.store;
        if !(1..=64).contains(&st.readers)
            || !(1..=100_000).contains(&st.max_batch)
            || !(1..=1_000_000).contains(&st.queue)
        {
            bail!("store.readers must be from 1 to 64, store.max_batch from 1 to 100000, store.queue from 1 to 1000000");
        }
        if !(1..=600_000).contains(&st.busy_timeout_ms) {
            bail!("store.busy_timeout_ms must be from 1 to 600000");
        }
        if h.worker_threads > 1024 {
            bail!("http.worker_threads must be at most 1024 (0: one per core)");
        }
        if !(1..=24 * 365).contains(&self.idempotency.ttl_hours) {
            bail!("idempotency.ttl_hours must be from 1 to 8760");
        }
        let o = &self.outbox;
        if !(100..=60_000).contains(&o.timeout_ms) {
            bail!("outbox.timeout_ms must be from 100 to 60000");
        }
        if !(1..=100).contains(&o.max_attempts) {
            bail!("outbox.max_attempts must be from 1 to 100");
        }
        if o.backoff_initial_ms == 0 || o.backoff_max_ms < o.backoff_initial_ms {
            bail!("outbox.backoff_initial_ms must be at least 1 and at most outbox.backoff_max_ms");
        }
        if o.backoff_max_ms > 7 * 24 * 3_600_000 || o.breaker_cooldown_ms > 24 * 3_600_000 {
            bail!("outbox.backoff_max_ms must be at most a week, outbox.breaker_cooldown_ms a day");
        }
        if o.breaker_threshold == 0
            || o.parallel_endpoints == 0
            || o.per_endpoint_concurrency == 0
            || !(1..=10_000).contains(&o.batch)
        {
            bail!("outbox.breaker_threshold, parallel_endpoints, per_endpoint_concurrency must be at least 1, batch from 1 to 10000");
        }
        if o.batch_wait_ms > 10_000 || o.busy_wait_ms > 10_000 {
            bail!("outbox.batch_wait_ms and outbox.busy_wait_ms must be at most 10000");
        }
        if o.retention_hours == 0 || o.max_lag_secs == 0 {
            bail!("outbox.retention_hours and outbox.max_lag_secs must be at least 1");
        }
        let c = &self.cache;
        let entries = [
            c.event_entries,
            c.attendee_entries,
            c.counts_entries,
            c.position_entries,
            c.waitlist_entries,
        ];
        if entries.iter().any(|n| !(1..=10_000_000).contains(n)) {
            bail!("cache.*_entries must be from 1 to 10000000");
        }
        let ttls = [
            c.event_ttl_secs,
            c.attendee_ttl_secs,
            c.counts_ttl_secs,
            c.position_ttl_secs,
            c.waitlist_ttl_secs,
        ];
        if ttls.iter().any(|t| *t > 24 * 3600) {
            bail!("cache.*_ttl_secs must be at most 86400");
        }
        Ok(())
    }

    pub fn app_options(&self) -> AppOptions {
        AppOptions {
            store: StoreOptions {
                readers: self.store.readers,
                max_batch: self.store.max_batch,
                queue: self.store.queue,
                busy_timeout: Duration::from_millis(self.store.busy_timeout_ms),
                sql_trace: None,
            },
            idempotency_ttl_ms: i64::try_from(self.idempotency.ttl_hours).unwrap_or(24) * 3_600_000,
            outbox: self.outbox.options(),
            cache: self.cache.options(),
            min_free_bytes: self.store.min_free_bytes,
        }
    }
}

impl OutboxConfig {
    pub fn options(&self) -> OutboxOptions {
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        OutboxOptions {
            enabled: self.enabled,
            timeout: Duration::from_millis(self.timeout_ms),
            max_attempts: self.max_attempts,
            backoff_initial_ms: ms(self.backoff_initial_ms),
            backoff_max_ms: ms(self.backoff_max_ms),
            breaker_threshold: self.breaker_threshold,
            breaker_cooldown_ms: ms(self.breaker_cooldown_ms),
            parallel_endpoints: self.parallel_endpoints,
            per_endpoint_concurrency: self.per_endpoint_concurrency,
            batch: self.batch,
            batch_wait_ms: ms(self.batch_wait_ms),
            busy_writes_per_s: self.busy_writes_per_s,
            busy_wait_ms: ms(self.busy_wait_ms),
            retention_ms: ms(self.retention_hours).saturating_mul(3_600_000),
            max_lag_ms: ms(self.max_lag_secs).saturating_mul(1000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses_and_matches_the_defaults() {
        let text = include_str!("../fixtures/boxoffice.example.toml");
        let parsed: Config = toml::from_str(text).expect("the example config parses");
        parsed.validate().expect("the example config is valid");
        let d = Config::default();
        assert_eq!(parsed.listen, d.listen);
        assert_eq!(parsed.http.max_body_bytes, d.http.max_body_bytes);
        assert_eq!(parsed.http.max_connections, d.http.max_connections);
        assert_eq!(parsed.http.slow_request_ms, d.http.slow_request_ms);
        assert_eq!(parsed.http.rate_limit, d.http.rate_limit);
        assert_eq!(parsed.http.allowed_hosts, d.http.allowed_hosts);
        assert_eq!(parsed.http.allowed_origins, d.http.allowed_origins);
        assert_eq!(parsed.store.max_batch, d.store.max_batch);
        assert_eq!(parsed.store.min_free_bytes, d.store.min_free_bytes);
        assert_eq!(parsed.idempotency.ttl_hours, d.idempotency.ttl_hours);
        let (po, dout) = (parsed.outbox.options(), d.outbox.options());
        assert_eq!(po.max_attempts, dout.max_attempts);
        assert_eq!(po.backoff_initial_ms, dout.backoff_initial_ms);
        assert_eq!(po.backoff_max_ms, dout.backoff_max_ms);
        assert_eq!(po.timeout, dout.timeout);
        assert_eq!(po.retention_ms, dout.retention_ms);
        assert_eq!(po.max_lag_ms, dout.max_lag_ms);
        assert_eq!(po.breaker_cooldown_ms, dout.breaker_cooldown_ms);
        assert_eq!(po.batch_wait_ms, dout.batch_wait_ms);
        assert_eq!(po.busy_writes_per_s, dout.busy_writes_per_s);
        assert_eq!(po.busy_wait_ms, dout.busy_wait_ms);
        assert_eq!(po.batch, dout.batch);
    }

    #[test]
    fn host_and_origin_lists_are_checked() {
        let with = |hosts: &[&str], origins: &[&str]| {
            let mut c = Config::default();
            c.http.allowed_hosts = hosts.iter().map(|s| s.to_string()).collect();
            c.http.allowed_origins = origins.iter().map(|s| s.to_string()).collect();
            c.validate()
        };
        assert!(with(
            &["box.venue.lan", "192.0.2.1", "[2001:db8::1]", "*"],
            &["https://shop.example.org"]
        )
        .is_ok());
        assert!(with(&["box.venue.lan:8080"], &[]).is_err());
        assert!(with(&["[::1]:80"], &[]).is_err());
        assert!(with(&["http://box"], &[]).is_err());
        assert!(with(&[], &["shop.example.org"]).is_err());
        assert!(with(&[], &["https://shop.example.org/path"]).is_err());
    }

    #[test]
    fn sizes_the_writer_allocates_or_sqlite_narrows_are_bounded() {
        let with = |toml_text: &str| {
            toml::from_str::<Config>(toml_text)
                .expect("parses")
                .validate()
        };
        // Each of these crashed the start (a panic in SQLite's busy timeout, an allocation abort).
        for bad in [
            "[store]\nbusy_timeout_ms = 3000000000",
            "[store]\nqueue = 1000000000000",
            "[store]\nmax_batch = 1000000000000",
            "[store]\nreaders = 100000",
            "[http]\nworker_threads = 100000",
        ] {
            let e = with(bad).expect_err(bad);
            assert!(e.to_string().contains("must be"), "{bad}: {e}");
        }
        assert!(
            with("[store]\nqueue = 1000000\nmax_batch = 100000\nbusy_timeout_ms = 600000").is_ok()
        );
        assert!(with("[http]\nworker_threads = 0").is_ok());
    }

    #[test]
    fn one_address_gets_half_the_connections_unless_told_otherwise() {
        let with = |toml_text: &str| toml::from_str::<Config>(toml_text).expect("parses");
        assert_eq!(Config::default().http.per_address_cap(), 512);
        assert_eq!(
            with("[http]\nmax_connections = 5").http.per_address_cap(),
            3
        );
        assert_eq!(
            with("[http]\nmax_connections = 1").http.per_address_cap(),
            1
        );
        let set = with("[http]\nmax_connections = 100\nmax_connections_per_address = 100");
        assert_eq!(set.http.per_address_cap(), 100);
        assert!(set.validate().is_ok());
        for bad in [
            "[http]\nmax_connections_per_address = 0",
            "[http]\nmax_connections = 100\nmax_connections_per_address = 101",
        ] {
            let e = with(bad).validate().expect_err(bad);
            assert!(
                e.to_string()
                    .contains("max_connections_per_address must be"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("listn = \"127.0.0.1:1\"").is_err());
        assert!(toml::from_str::<Config>("[http]\nmax_body = 1").is_err());
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = |k: &str| match k {
            "BOXOFFICE_LISTEN" => Some("127.0.0.1:9999".to_string()),
            "BOXOFFICE_MAX_CONNECTIONS" => Some("7".to_string()),
            _ => None,
        };
        let cfg = Config::load(None, env).expect("loads");
        assert_eq!(cfg.listen.port(), 9999);
        assert_eq!(cfg.http.max_connections, 7);
        let bad = |k: &str| (k == "BOXOFFICE_LISTEN").then(|| "nowhere".to_string());
        assert!(Config::load(None, bad).is_err());
    }
}
