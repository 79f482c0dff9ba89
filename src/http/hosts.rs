//! Defence against DNS rebinding and cross-site writes (`http.allowed_hosts`, `http.allowed_origins`).
//!
//! DNS rebinding: a web page on `attacker.example` makes its name resolve to the box's address, and
//! the visitor's browser then talks to the box as if it were the attacker's site. The browser still
//! names the site it thinks it is talking to in `Host`, so the box answers only requests for names it
//! knows: the loopback names by default, the address it listens on, and what the venue adds. Any other
//! `Host` is answered 421 Misdirected Request before anything else happens. 421, not 400: the request
//! is well formed, it was sent to a server that is not authoritative for that name (RFC 9110 section
//! 15.5.20), which is exactly the case. A request without `Host` is not refused: browsers always send
//! one, and an HTTP/1.0 tool or a raw socket is not a rebinding attack.
//!
//! Cross-site writes: a browser sends `Origin` with every cross-site `POST`. A write (`POST`, `PATCH`,
//! `PUT`, `DELETE`) whose `Origin` is neither one of the allowed hosts (any scheme or port) nor an
//! allowed origin is refused 403 `forbidden_origin`. Requests without `Origin` (curl, kiosks,
//! scanners, the remote console) pass: only browsers send it.

use std::collections::HashSet;
use std::net::{Ipv6Addr, SocketAddr};

use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use crate::config::HttpConfig;

/// The allowlist entry that turns the Host check off (for a reverse proxy that rewrites `Host`).
pub const ANY_HOST: &str = "*";

fn valid_port(p: &str) -> bool {
    (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
}

/// The host of a `Host` value (`name`, `name:port`, `[v6]:port`), in the one form the allowlist
/// holds: lowercase, no port, no trailing dot, IPv6 in brackets in its shortest form. `None` when it
/// is not a DNS name, an IPv4 address or a bracketed IPv6 address.
pub fn host_of(value: &str) -> Option<String> {
    let (host, port) = match value.strip_prefix('[') {
        Some(rest) => {
            let (ip, after) = rest.split_once(']')?;
            let ip: Ipv6Addr = ip.parse().ok()?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (format!("[{ip}]"), port)
        }
        None => {
            let (name, port) = match value.split_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (value, None),
            };
            let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            let labels_ok = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|l| {
                    (1..=63).contains(&l.len())
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if !labels_ok {
                return None;
            }
            (name, port)
        }
    };
    if port.is_some_and(|p| !valid_port(p)) {
        return None;
    }
    Some(host)
}

/// An `allowed_origins` entry or an `Origin` value as `scheme://host[:port]` (lowercase, default port
/// left out), with its host: `None` for `null`, other schemes, or anything with a path or query.
pub fn origin_of(value: &str) -> Option<(String, String)> {
    let url = url::Url::parse(value).ok()?;
    let bare = matches!(url.path(), "" | "/")
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !bare || !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = host_of(url.host_str()?)?;
    Some((url.origin().ascii_serialization(), host))
}

/// The allowlists, normalised once.
pub(super) struct Hosts {
    any_host: bool,
    hosts: HashSet<String>,
    origins: HashSet<String>,
}

impl Hosts {
    pub(super) fn new(cfg: &HttpConfig) -> Self {
        Self {
            any_host: cfg.allowed_hosts.iter().any(|h| h == ANY_HOST),
            hosts: cfg
                .allowed_hosts
                .iter()
                .filter_map(|h| host_of(h))
                .collect(),
            origins: cfg
                .allowed_origins
                .iter()
                .filter_map(|o| origin_of(o).map(|(origin, _)| origin))
                .collect(),
        }
    }

    /// The request's target host (the absolute URI's, else the `Host` header's): `Ok(None)` when it
    /// names none, `Err` when it is unreadable or the header is repeated.
    fn target(req: &Request) -> Result<Option<String>, ()> {
        if let Some(authority) = req.uri().authority() {
            return host_of(authority.as_str()).map(Some).ok_or(());
        }
        let mut values = req.headers().get_all(header::HOST).iter();
        let Some(first) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(());
        }
        let value = first.to_str().map_err(|_| ())?;
        host_of(value).map(Some).ok_or(())
    }

    fn host_allowed(&self, req: &Request) -> bool {
        match Self::target(req) {
            Ok(None) => true,
            Ok(Some(host)) => self.any_host || self.hosts.contains(&host),
            Err(()) => false,
        }
    }

    /// Whether a write may go on: no `Origin`, or one whose host is allowed, or an allowed origin.
    fn origin_allowed(&self, req: &Request) -> bool {
        let Some(value) = req.headers().get(header::ORIGIN) else {
            return true;
        };
        let Some((origin, host)) = value.to_str().ok().and_then(origin_of) else {
            // `null` (a sandboxed frame, a file) or garbage: never an allowed site.
            return false;
        };
        self.hosts.contains(&host) || self.origins.contains(&origin)
    }
}

/// Allows the listen address as a host, unless it is a wildcard (0.0.0.0, [::]), which no client
/// names.
pub fn allow_listen_address(cfg: &mut HttpConfig, addr: SocketAddr) {
    if addr.ip().is_unspecified() {
        return;
    }
    let host = match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    if !cfg.allowed_hosts.contains(&host) {
        cfg.allowed_hosts.push(host);
    }
}

/// The answer to a request refused here: a foreign `Host` gets 421, a write with a foreign `Origin`
/// 403; both before the request reaches anything that could change state. `None` lets it pass.
pub(super) fn refusal(hosts: &Hosts, req: &Request) -> Option<Response> {
    if !hosts.host_allowed(req) {
        return Some(
            Problem::new(
                StatusCode::MISDIRECTED_REQUEST,
                "host_not_allowed",
                "Host not served here",
                "this box answers only for the host names in its http.allowed_hosts",
            )
            .into_response(),
        );
    }
    let write = matches!(
        *req.method(),
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    );
    if write && !hosts.origin_allowed(req) {
        return Some(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "Origin not allowed",
            "writes from a web page are accepted only from the box's own hosts and http.allowed_origins",
        )
        .into_response());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalised_and_garbage_refused() {
        assert_eq!(host_of("LocalHost:8080").as_deref(), Some("localhost"));
        assert_eq!(host_of("localhost.").as_deref(), Some("localhost"));
        assert_eq!(host_of("127.0.0.1:1").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_of("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(host_of("[0:0::0001]").as_deref(), Some("[::1]"));
        assert_eq!(host_of("box.venue.lan").as_deref(), Some("box.venue.lan"));
        for bad in [
            "",
            ":80",
            "a:b",
            "a:123456",
            "a b",
            "[::1",
            "[nope]",
            "[::1]x",
            "a..b",
            "é.example",
            "a/b",
        ] {
            assert_eq!(host_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn origins_are_normalised_and_null_or_paths_refused() {
        assert_eq!(
            origin_of("HTTPS://Shop.Example.org:443"),
            Some(("https://shop.example.org".into(), "shop.example.org".into()))
        );
        assert_eq!(
            origin_of("http://[::1]:8080"),
            Some(("http://[::1]:8080".into(), "[::1]".into()))
        );
        for bad in [
            "null",
            "file:///x",
            "https://a.example/path",
            "https://u:p@a.example",
            "nope",
        ] {
            assert_eq!(origin_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_listen_address_is_allowed_unless_it_is_a_wildcard() {
        let mut cfg = HttpConfig::default();
        allow_listen_address(&mut cfg, "192.0.2.10:8080".parse().expect("addr"));
        allow_listen_address(&mut cfg, "[2001:db8::1]:8080".parse().expect("addr"));
        allow_listen_address(&mut cfg, "0.0.0.0:8080".parse().expect("addr"));
        allow_listen_address(&mut cfg, "[::]:8080".parse().expect("addr"));
        assert_eq!(
            cfg.allowed_hosts,
            [
                "localhost",
                "127.0.0.1",
                "[::1]",
                "192.0.2.10",
                "[2001:db8::1]"
            ]
        );
    }
}
