//! Standard Webhooks signing: `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
//! with the subscription's key, and the JSON envelope every delivery carries.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::Timestamp;

/// The HMAC key of one subscription, decoded from its `whsec_<base64>` secret.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// `None` when the secret is not `whsec_` followed by base64 of at least one byte.
    pub fn from_secret(secret: &str) -> Option<Self> {
        let b64 = secret.strip_prefix("whsec_")?;
        let key = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        (!key.is_empty()).then_some(Self { key })
    }

    /// The `webhook-signature` header value for one delivery.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(tag)
        )
    }
}

/// The delivery body: `{"type", "timestamp" (when the change was recorded), "data" (the resource in
/// its API shape, as stored)}`. It is the same bytes on every attempt, so a receiver may hash it.
pub fn envelope(kind: &str, recorded_at: Timestamp, payload: &str) -> String {
    let kind = serde_json::to_string(kind).expect("a string serializes");
    format!(
        "{{\"type\":{kind},\"timestamp\":\"{}\",\"data\":{payload}}}",
        recorded_at.to_rfc3339()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference test suite: this secret, id,
    /// timestamp and body sign to this value in every official library.
    #[test]
    fn signs_like_the_reference_libraries() {
        let signer = Signer::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let sig = signer.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn refuses_secrets_not_in_whsec_form() {
        assert!(Signer::from_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
        assert!(Signer::from_secret("whsec_").is_none());
        assert!(Signer::from_secret("whsec_!!!").is_none());
    }

    #[test]
    fn envelope_embeds_the_stored_payload_verbatim() {
        let body = envelope(
            "registration.confirmed",
            Timestamp::from_millis(1_800_000_000_123),
            r#"{"id":"r1","status":"confirmed"}"#,
        );
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["type"], "registration.confirmed");
        assert_eq!(v["timestamp"], "2027-01-15T08:00:00.123Z");
        assert_eq!(v["data"]["status"], "confirmed");
    }
}
