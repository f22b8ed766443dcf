//! Web Push sender: RFC 8030 (HTTP push), RFC 8291 (aes128gcm message encryption) and
//! RFC 8292 (VAPID), on top of the `web-push` crate's hyper client. The payload is encrypted
//! by [`super::ece`] (ring), not by web-push's OpenSSL-based `ece`: see there for why.
//!
//! One [`PushSender`] is built at start-up from the VAPID key pair and reused for every
//! message; [`PushSender::send`] makes exactly one attempt and classifies the outcome as
//! [`PushError`]. Plain `http://` endpoints work too (used by the tests' local push service).
//!
//! Quirks of web-push 0.11 handled here:
//! - it signs `aud` as `scheme://host`, dropping a non-default port; we sign the real origin
//!   (`scheme://host[:port]`) ourselves, as RFC 8292 asks;
//! - its HTTP client never times out: every send is wrapped in [`tokio::time::timeout`];
//! - it refuses a `Topic` longer than 32 characters or outside the base64url alphabet: see
//!   [`topic_token`];
//! - transport failures (connection refused, reset, …) all surface as
//!   `WebPushError::Unspecified` without detail.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::{ECDSAP256PublicKeyLike as _, ES256KeyPair};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use web_push::{
    ContentEncoding, HyperWebPushClient, PartialVapidSignatureBuilder, SubscriptionInfo,
    VapidSignatureBuilder, WebPushClient, WebPushError, WebPushMessage, WebPushPayload,
};

/// The application server's VAPID key pair, both base64url without padding.
///
/// `private_key` is the raw 32-byte P-256 scalar; `public_key` is the uncompressed point
/// (65 bytes, starting with 0x04), which is what browsers take as `applicationServerKey`.
#[derive(Clone, PartialEq, Eq)]
pub struct VapidKeys {
    pub private_key: String,
    pub public_key: String,
}

impl fmt::Debug for VapidKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidKeys")
            .field("private_key", &"<redacted>")
            .field("public_key", &self.public_key)
            .finish()
    }
}

/// Makes a fresh VAPID key pair (ES256 / P-256).
pub fn generate_vapid_keys() -> VapidKeys {
    let pair = ES256KeyPair::generate();
    VapidKeys {
        private_key: URL_SAFE_NO_PAD.encode(pair.to_bytes()),
        public_key: URL_SAFE_NO_PAD.encode(pair.public_key().public_key().to_bytes_uncompressed()),
    }
}

/// The key pair of a VAPID private key (base64url, 32 bytes), for a key given alone in a
/// file or the environment.
pub fn vapid_keys_from_private(private_key: &str) -> Result<VapidKeys, String> {
    let bad = || "not a VAPID private key (32 bytes, base64url)".to_string();
    let raw = URL_SAFE_NO_PAD
        .decode(private_key.trim().trim_end_matches('='))
        .map_err(|_| bad())?;
    let pair = ES256KeyPair::from_bytes(&raw).map_err(|_| bad())?;
    Ok(VapidKeys {
        private_key: URL_SAFE_NO_PAD.encode(pair.to_bytes()),
        public_key: URL_SAFE_NO_PAD.encode(pair.public_key().public_key().to_bytes_uncompressed()),
    })
}

/// A browser's push subscription (`PushSubscription.toJSON()`): the endpoint URL and the
/// `keys.p256dh` / `keys.auth` values, base64url.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

/// RFC 8030 §5.3 `Urgency` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Urgency {
    VeryLow,
    Low,
    Normal,
    High,
}

impl Urgency {
    /// The header value: `very-low`, `low`, `normal` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

impl From<Urgency> for web_push::Urgency {
    fn from(u: Urgency) -> Self {
        match u {
            Urgency::VeryLow => web_push::Urgency::VeryLow,
            Urgency::Low => web_push::Urgency::Low,
            Urgency::Normal => web_push::Urgency::Normal,
            Urgency::High => web_push::Urgency::High,
        }
    }
}

/// Outcome of a failed delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// 404 or 410: the subscription no longer exists; delete it.
    #[error("push subscription is gone")]
    Gone,
    /// 5xx, 429, timeout, connection failure: try again later.
    #[error("push delivery failed, retry later: {0}")]
    Retry(String),
    /// 400, 401, 403, 413, malformed keys or endpoint: retrying the same message won't help.
    #[error("push delivery failed permanently: {0}")]
    Permanent(String),
}

/// Sends Web Push messages signed with one VAPID key pair.
#[derive(Clone)]
pub struct PushSender {
    vapid: PartialVapidSignatureBuilder,
    public_key: String,
    subject: String,
    timeout: Duration,
    client: HyperWebPushClient,
    /// VAPID `Authorization` headers by audience: one ES256 signature per push service per
    /// hour, not per message.
    signatures: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    /// Ephemeral key pairs, and the key agreements of the pushes foreseen, made ahead while
    /// the machine is idle (see [`super::stock`]).
    keys: Option<Arc<super::stock::KeyStock>>,
}

/// How many key pairs the service keeps made ahead unless `[push] keys_ahead` says
/// otherwise, and the most key agreements it makes ahead for the pushes the next tick
/// foresees: a tick of 10,000 escalations at once (about 3 MB, made in about 0.7 s of
/// otherwise idle CPU).
pub const DEFAULT_KEYS_AHEAD: usize = 10_000;

/// The most key pairs `[push] keys_ahead` may ask for (about 20 MB).
pub const MAX_KEYS_AHEAD: usize = 100_000;

/// How long a signed VAPID JWT is reused (it is valid for twelve hours).
const SIGNATURE_REUSE: Duration = Duration::from_secs(3600);

impl fmt::Debug for PushSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushSender")
            .field("public_key", &self.public_key)
            .field("subject", &self.subject)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PushSender {
    /// `subject` is the VAPID `sub` claim, a contact for the push service operator: a
    /// `mailto:` or `https:` URL (Apple refuses anything else with 403 BadJwtToken).
    /// `timeout` bounds each whole send (connect, request and response).
    pub fn new(keys: &VapidKeys, subject: &str, timeout: Duration) -> Result<PushSender, String> {
        let subject = subject.trim();
        let valid_subject = (subject.starts_with("mailto:") && subject.len() > "mailto:".len())
            || (subject.starts_with("https://") && subject.len() > "https://".len());
        if !valid_subject {
            return Err(format!(
                "VAPID subject must be a mailto: or https: URL, got {subject:?}"
            ));
        }
        let vapid = VapidSignatureBuilder::from_base64_no_sub(keys.private_key.trim())
            .map_err(|e| format!("VAPID private key: {e}"))?;
        let derived = URL_SAFE_NO_PAD.encode(vapid.get_public_key());
        if derived != keys.public_key.trim() {
            return Err(
                "VAPID public key does not match the private key (expected the uncompressed \
                 P-256 point, base64url without padding)"
                    .to_string(),
            );
        }
        if timeout.is_zero() {
            return Err("push timeout must be greater than zero".to_string());
        }
        Ok(PushSender {
            vapid,
            public_key: derived,
            subject: subject.to_string(),
            timeout,
            client: HyperWebPushClient::new(),
            signatures: Arc::new(Mutex::new(HashMap::new())),
            keys: None,
        })
    }

    /// Keeps `n` encryption key pairs made ahead (none when `n` is 0), from now on.
    pub fn with_keys_ahead(mut self, n: usize) -> PushSender {
        self.keys = (n > 0).then(|| Arc::new(super::stock::KeyStock::new(n)));
        self
    }

    /// How many key pairs are made ahead and waiting.
    pub fn keys_in_stock(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.len())
    }

    /// The pushes the next tick will send if nobody acknowledges first, as how many to each
    /// phone (by its subscription's `p256dh` key): their key agreements are made ahead,
    /// while the machine is idle (see [`super::stock`]). A key that does not decode is
    /// left out; its pushes fail when they are sent, as they would have.
    pub fn foresee(&self, pushes: &HashMap<String, usize>) {
        let Some(stock) = &self.keys else { return };
        stock.foresee(
            pushes
                .iter()
                .filter_map(|(key, &n)| decode_key(key).ok().map(|k| (k, n)))
                .collect(),
        );
    }

    /// How many pushes are foreseen, and how many of their key agreements are made.
    pub fn foreseen(&self) -> (usize, usize) {
        self.keys.as_ref().map_or((0, 0), |k| k.foreseen())
    }

    /// The `Authorization: vapid t=…, k=…` header for a push service (`aud`), signed at most
    /// once per [`SIGNATURE_REUSE`].
    fn authorization(&self, sub: &Subscription, aud: String) -> Result<String, PushError> {
        let cached = self
            .signatures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&aud)
            .filter(|(_, at)| at.elapsed() < SIGNATURE_REUSE)
            .map(|(s, _)| s.clone());
        if let Some(s) = cached {
            return Ok(s);
        }
        let info = SubscriptionInfo::new(
            sub.endpoint.as_str(),
            sub.p256dh.as_str(),
            sub.auth.as_str(),
        );
        let mut builder = self.vapid.clone().add_sub_info(&info);
        builder.add_claim("sub", self.subject.as_str());
        builder.add_claim("aud", aud.clone());
        let signature = builder.build().map_err(classify)?;
        let header = format!(
            "vapid t={}, k={}",
            signature.auth_t,
            URL_SAFE_NO_PAD.encode(&signature.auth_k)
        );
        self.signatures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(aud, (header.clone(), Instant::now()));
        Ok(header)
    }

    /// The VAPID public key, base64url: what the page passes as `applicationServerKey`.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// One delivery attempt of `payload` (at most 3052 bytes before encryption), encrypted
    /// aes128gcm for the subscription and signed with VAPID. Sets `TTL: ttl_secs`,
    /// `Urgency`, and `Topic` (derived with [`topic_token`]; omitted when `topic` is empty)
    /// so that a newer message with the same topic replaces an undelivered older one.
    pub async fn send(
        &self,
        sub: &Subscription,
        payload: &[u8],
        ttl_secs: u32,
        urgency: Urgency,
        topic: &str,
    ) -> Result<(), PushError> {
        let aud = audience(&sub.endpoint).map_err(PushError::Permanent)?;
        let endpoint: http::Uri = sub
            .endpoint
            .parse()
            .map_err(|e| PushError::Permanent(format!("push endpoint is not a URL: {e}")))?;
        let authorization = self.authorization(sub, aud)?;

        let key = |name: &str, value: &str| {
            decode_key(value)
                .map_err(|_| PushError::Permanent(format!("subscription {name} is not base64url")))
        };
        let content = super::ece::encrypt_with(
            self.keys.as_deref(),
            &key("p256dh", &sub.p256dh)?,
            &key("auth", &sub.auth)?,
            payload,
        )
        .map_err(|e| PushError::Permanent(e.to_string()))?;
        let message = WebPushMessage {
            endpoint,
            ttl: ttl_secs,
            urgency: Some(urgency.into()),
            topic: (!topic.is_empty()).then(|| topic_token(topic)),
            payload: Some(WebPushPayload {
                content,
                crypto_headers: vec![("Authorization", authorization)],
                content_encoding: ContentEncoding::Aes128Gcm,
            }),
        };

        match tokio::time::timeout(self.timeout, self.client.send(message)).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(PushError::Retry(format!(
                "no answer from push service within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

/// A subscription key (`keys.p256dh` or `keys.auth`) as browsers give it: base64url, with
/// or without padding.
pub fn decode_key(value: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(value.trim_end_matches('='))
}

/// The `Topic` header value for `topic`.
///
/// RFC 8030 allows at most 32 characters of the base64url alphabet. A topic that already
/// fits is used as it is; any other string becomes the base64url encoding of the first 24
/// bytes of its SHA-256 (exactly 32 characters), so the same string always gives the same
/// topic and different strings practically never collide.
pub fn topic_token(topic: &str) -> String {
    let fits = !topic.is_empty()
        && topic.len() <= 32
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if fits {
        topic.to_string()
    } else {
        let digest = Sha256::digest(topic.as_bytes());
        URL_SAFE_NO_PAD.encode(&digest[..24])
    }
}

/// The origin of the endpoint (`scheme://host[:port]`, default port omitted, lower case),
/// which RFC 8292 §2 requires as the JWT `aud` claim.
pub fn audience(endpoint: &str) -> Result<String, String> {
    // The endpoint itself is a capability: it is never put in a message that may be logged.
    let bad = || "push endpoint is not an http(s) URL".to_string();
    let (scheme, rest) = endpoint.split_once("://").ok_or_else(bad)?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return Err(bad()),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Drop any userinfo.
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(bad());
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Ok(format!("{scheme}://{authority}"))
}

fn classify(err: WebPushError) -> PushError {
    use WebPushError as E;
    match err {
        E::EndpointNotValid(_) | E::EndpointNotFound(_) => PushError::Gone,
        E::ServerError { retry_after, info } => PushError::Retry(match retry_after {
            Some(after) => format!(
                "push service error {info}; retry after {}s",
                after.as_secs()
            ),
            None => format!("push service error {info}"),
        }),
        // The hyper client reports every transport failure this way, without detail.
        E::Unspecified => {
            PushError::Retry("could not reach the push service (connection failed)".to_string())
        }
        E::Io(e) => PushError::Retry(format!("i/o error: {e}")),
        E::InvalidResponse | E::ResponseTooLarge => PushError::Retry(err.to_string()),
        E::Other(info) if info.code == 429 || info.code == 408 => {
            PushError::Retry(format!("push service: {info}"))
        }
        E::Other(info) if (500..600).contains(&info.code) => {
            PushError::Retry(format!("push service: {info}"))
        }
        other => PushError::Permanent(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_browser_shapes() {
        let keys = generate_vapid_keys();
        let public = URL_SAFE_NO_PAD.decode(&keys.public_key).unwrap();
        assert_eq!(public.len(), 65);
        assert_eq!(public[0], 0x04);
        assert_eq!(URL_SAFE_NO_PAD.decode(&keys.private_key).unwrap().len(), 32);
        assert!(PushSender::new(&keys, "mailto:ops@example.org", Duration::from_secs(5)).is_ok());
    }

    #[test]
    fn sender_rejects_bad_subject_and_mismatched_keys() {
        let keys = generate_vapid_keys();
        let other = generate_vapid_keys();
        let t = Duration::from_secs(1);
        assert!(PushSender::new(&keys, "ops@example.org", t).is_err());
        assert!(PushSender::new(&keys, "http://example.org", t).is_err());
        let mixed = VapidKeys {
            private_key: keys.private_key.clone(),
            public_key: other.public_key,
        };
        assert!(PushSender::new(&mixed, "mailto:ops@example.org", t).is_err());
        let garbage = VapidKeys {
            private_key: "not a key".into(),
            public_key: keys.public_key,
        };
        assert!(PushSender::new(&garbage, "mailto:ops@example.org", t).is_err());
    }

    #[test]
    fn topic_is_kept_when_valid_and_hashed_otherwise() {
        assert_eq!(topic_token("task-42"), "task-42");
        let long = "task:0190f3a2-7c1e-7d3b-9c55-0a1b2c3d4e5f";
        let t = topic_token(long);
        assert_eq!(t.len(), 32);
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(t, topic_token(long));
        assert_ne!(t, topic_token("task:0190f3a2-7c1e-7d3b-9c55-0a1b2c3d4e60"));
        assert_eq!(topic_token("a b").len(), 32);
    }

    #[test]
    fn audience_is_the_endpoint_origin() {
        assert_eq!(
            audience("https://fcm.googleapis.com/fcm/send/abc").unwrap(),
            "https://fcm.googleapis.com"
        );
        assert_eq!(
            audience("https://Push.Example:443/x").unwrap(),
            "https://push.example"
        );
        assert_eq!(
            audience("http://127.0.0.1:8081/push/a?b").unwrap(),
            "http://127.0.0.1:8081"
        );
        assert!(audience("ftp://x/y").is_err());
        assert!(audience("nonsense").is_err());
    }
}
