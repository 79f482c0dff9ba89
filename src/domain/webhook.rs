//! Webhook subscriptions as values: a target URL the box may call, and the event types it wants.
//! Both are validated once, at the edge, so a subscription that exists can be delivered to.

use super::{DomainEventType, FieldError};

const URL_MAX: usize = 2048;
const DESCRIPTION_MAX: usize = 500;

/// An `http` or `https` URL with a host and without credentials or a fragment.
///
/// The admin chooses targets, so private and loopback addresses are allowed (a venue's mailer may live
/// on the same LAN); other schemes are refused because the box only speaks HTTP. Credentials in the
/// URL are refused because the URL is shown in lists and logs: receivers authenticate the box by the
/// signature instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let bad = |why: &str| FieldError::new("url", why.to_string());
        if s.chars().count() > URL_MAX || s.trim().len() > URL_MAX {
            return Err(bad("must be at most 2048 characters"));
        }
        let s = s.trim();
        let url = url::Url::parse(s).map_err(|e| bad(&format!("is not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("must be an http:// or https:// URL"));
        }
        match url.host() {
            None => return Err(bad("must name a host")),
            Some(url::Host::Domain(name)) if !is_host_name(name) => {
                return Err(bad(
                    "must name a host: letters, digits, '-' and '_' in dot-separated labels of 1 to 63 characters",
                ))
            }
            Some(_) => {}
        }
        if url.port() == Some(0) {
            return Err(bad("must not use port 0"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "must not carry credentials; receivers verify the signature instead",
            ));
        }
        if url.fragment().is_some() {
            return Err(bad("must not have a #fragment"));
        }
        Ok(Self(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A DNS name as the `url` crate leaves it (lower case, internationalised names in punycode): labels
/// of 1 to 63 letters, digits, '-' or '_' (which some LAN names carry), not starting or ending with
/// '-', at most 253 characters, an optional final dot. `url` alone lets through names no resolver
/// will find (`*.example.org`, `x..org`), which would only fail at every delivery.
fn is_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The event types a subscription receives: all of them, or a set of known types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTypes {
    All,
    Only(Vec<DomainEventType>),
}

impl EventTypes {
    /// From the request: absent or `["*"]` means every type; otherwise each entry must be a known
    /// type. Duplicates are folded. An empty list is refused: read literally it asks for nothing,
    /// and a subscription that receives nothing is a mistake worth hearing about.
    pub fn parse(list: Option<&[String]>) -> Result<Self, FieldError> {
        let Some(list) = list else {
            return Ok(Self::All);
        };
        if list.is_empty() {
            return Err(FieldError::new(
                "event_types",
                "must name at least one event type, or be [\"*\"] (or left out) for every type",
            ));
        }
        if list.len() == 1 && list[0] == "*" {
            return Ok(Self::All);
        }
        let mut out = Vec::new();
        for name in list {
            let kind = DomainEventType::parse(name).ok_or_else(|| {
                FieldError::new(
                    "event_types",
                    format!(
                        "{name:?} is not an event type; use \"*\" or some of: {}",
                        DomainEventType::ALL.map(DomainEventType::as_str).join(", ")
                    ),
                )
            })?;
            if !out.contains(&kind) {
                out.push(kind);
            }
        }
        out.sort_by_key(|k| k.as_str());
        Ok(Self::Only(out))
    }

    /// The stored form: `*`, or the type names separated by spaces.
    pub fn to_stored(&self) -> String {
        match self {
            Self::All => "*".to_string(),
            Self::Only(kinds) => kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    pub fn from_stored(s: &str) -> Option<Self> {
        if s == "*" {
            return Some(Self::All);
        }
        s.split(' ')
            .map(DomainEventType::parse)
            .collect::<Option<Vec<_>>>()
            .map(Self::Only)
    }

    pub fn matches(&self, kind: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(kinds) => kinds.iter().any(|k| k.as_str() == kind),
        }
    }

    /// The API shape: `["*"]` or the type names.
    pub fn names(&self) -> Vec<&'static str> {
        match self {
            Self::All => vec!["*"],
            Self::Only(kinds) => kinds.iter().map(|k| k.as_str()).collect(),
        }
    }
}

impl serde::Serialize for EventTypes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

/// A free-text note about the subscription ("mailer", "web shop"); empty by default.
pub fn parse_description(s: &str) -> Result<String, FieldError> {
    // Bounds apply to the text as sent, like `required_text`.
    if s.chars().count() > DESCRIPTION_MAX {
        return Err(FieldError::new(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(FieldError::new(
            "description",
            "must not contain control characters",
        ));
    }
    Ok(s.trim().to_string())
}

/// A per-subscription delivery timeout, in milliseconds: 100 ms to 60 s.
pub fn parse_timeout_ms(ms: i64) -> Result<i64, FieldError> {
    if (100..=60_000).contains(&ms) {
        Ok(ms)
    } else {
        Err(FieldError::new(
            "timeout_ms",
            "must be from 100 to 60000 milliseconds",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/hook").is_ok());
        assert!(WebhookUrl::parse("https://shop.example.org/hooks?x=1").is_ok());
        for good in [
            "http://mailer/hook",
            "http://my_host.lan:8080/",
            "https://example.org./x",
            "http://[::1]:9000/",
            "https://bücher.example/",
        ] {
            assert!(WebhookUrl::parse(good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "ftp://example.org/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "http://",
            "not a url",
            "",
            "http://user:pw@example.org/",
            "http://example.org/#frag",
            "https://*.example.org/",
            "http://x..org/",
            "http://-x.org/",
            "http://127.0.0.1:0/hook",
            "http://a.b:0/",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn event_types_parse_round_trip_and_match() {
        let all = EventTypes::parse(None).expect("all");
        assert_eq!(all, EventTypes::All);
        assert_eq!(
            EventTypes::parse(Some(&["*".into()])).ok(),
            Some(EventTypes::All)
        );
        let some = EventTypes::parse(Some(&[
            "registration.promoted".into(),
            "event.created".into(),
            "event.created".into(),
        ]))
        .expect("known types");
        assert_eq!(some.to_stored(), "event.created registration.promoted");
        assert_eq!(
            EventTypes::from_stored(&some.to_stored()),
            Some(some.clone())
        );
        assert!(some.matches("event.created") && !some.matches("event.updated"));
        assert!(EventTypes::parse(Some(&["event.exploded".into()])).is_err());
        assert!(
            EventTypes::parse(Some(&[])).is_err(),
            "an empty list asks for nothing"
        );
        assert!(EventTypes::parse(Some(&["*".into(), "event.created".into()])).is_err());
    }
}
