//! Text messages, the fallback route to a phone: through GOV.UK Notify (the UK public
//! sector's messaging platform) or a Twilio-compatible Messages API, chosen in `[text]`.
//! A text carries no patient name or NHS number: priority, ward, bed, category and a short
//! acknowledge link.
use crate::domain::delivery::{Failure, TextAfter};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

/// GOV.UK Notify's API, where `base_url` is not set.
pub const NOTIFY_URL: &str = "https://api.notifications.service.gov.uk";
/// Twilio's API, where `base_url` is not set.
pub const TWILIO_URL: &str = "https://api.twilio.com";

/// A GOV.UK Notify API key, `{key name}-{service id}-{secret}`, the last two UUIDs.
#[derive(Clone)]
pub struct NotifyKey {
    pub service_id: String,
    secret: String,
}

impl std::fmt::Debug for NotifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NotifyKey {{ service_id: {}, secret: hidden }}",
            self.service_id
        )
    }
}

impl NotifyKey {
    pub fn parse(key: &str) -> Result<NotifyKey, String> {
        let key = key.trim();
        let uuid = |s: &str| uuid::Uuid::parse_str(s).is_ok() && s.len() == 36;
        let n = key.len();
        if n < 74 || key.as_bytes()[n - 37] != b'-' || key.as_bytes()[n - 74] != b'-' {
            return Err(
                "a GOV.UK Notify API key is the key's name, the service id and the secret, joined by dashes, as Notify shows it once".into(),
            );
        }
        let (service_id, secret) = (&key[n - 73..n - 37], &key[n - 36..]);
        if !uuid(service_id) || !uuid(secret) {
            return Err("the service id and the secret in a GOV.UK Notify API key are UUIDs: copy the whole key as Notify shows it".into());
        }
        Ok(NotifyKey {
            service_id: service_id.into(),
            secret: secret.into(),
        })
    }

    /// The bearer token Notify asks for: a JWT signed HS256 with the secret, `iss` the
    /// service id, `iat` now (Notify refuses one more than 30 s off its clock, so this is
    /// the machine's real time, never the service's test clock).
    pub fn bearer(&self) -> String {
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"HS256"}"#);
        let claims =
            URL_SAFE_NO_PAD.encode(json!({"iss": self.service_id, "iat": iat}).to_string());
        let signed = format!("{header}.{claims}");
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.secret.as_bytes()).expect("HMAC takes any key");
        mac.update(signed.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{sig}")
    }
}

/// Who a Twilio message is from: a number, or a messaging service that picks one.
#[derive(Debug, Clone)]
pub enum TwilioSender {
    From(String),
    MessagingService(String),
}

/// The provider and its credentials (hidden from `Debug`).
#[derive(Clone)]
pub enum Provider {
    Notify {
        key: NotifyKey,
        /// A text message template whose whole body is `((message))`.
        template_id: String,
    },
    Twilio {
        account_sid: String,
        auth_token: String,
        sender: TwilioSender,
    },
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Provider::Notify { key, template_id } => {
                write!(f, "Notify {{ {key:?}, template_id: {template_id} }}")
            }
            Provider::Twilio {
                account_sid,
                sender,
                ..
            } => {
                write!(
                    f,
                    "Twilio {{ account_sid: {account_sid}, auth_token: hidden, {sender:?} }}"
                )
            }
        }
    }
}

impl Provider {
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Notify { .. } => "notify",
            Provider::Twilio { .. } => "twilio",
        }
    }
}

/// `[text]`: text messages as the fallback route; none are sent without it.
#[derive(Debug, Clone)]
pub struct TextConfig {
    pub provider: Provider,
    pub base_url: String,
    pub timeout: Duration,
    pub after: TextAfter,
}

/// One text message.
pub struct TextMessage {
    /// E.164.
    pub to: String,
    pub body: String,
    /// Our outbox row, so the provider's records can be matched with ours.
    pub reference: String,
}

/// Sends text messages through the configured provider.
pub struct TextSender {
    client: reqwest::Client,
    config: TextConfig,
}

/// How long to wait when a provider says 429 without saying how long.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

impl TextSender {
    pub fn new(config: TextConfig) -> TextSender {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .unwrap_or_default();
        TextSender { client, config }
    }

    pub async fn send(&self, m: &TextMessage) -> Result<(), Failure> {
        let base = self.config.base_url.trim_end_matches('/');
        let request = match &self.config.provider {
            Provider::Notify { key, template_id } => self
                .client
                .post(format!("{base}/v2/notifications/sms"))
                .bearer_auth(key.bearer())
                .json(&json!({
                    "phone_number": m.to,
                    "template_id": template_id,
                    "personalisation": { "message": m.body },
                    "reference": m.reference,
                })),
            Provider::Twilio {
                account_sid,
                auth_token,
                sender,
            } => {
                let mut form = vec![("To", m.to.as_str()), ("Body", m.body.as_str())];
                match sender {
                    TwilioSender::From(n) => form.push(("From", n)),
                    TwilioSender::MessagingService(s) => form.push(("MessagingServiceSid", s)),
                }
                self.client
                    .post(format!(
                        "{base}/2010-04-01/Accounts/{account_sid}/Messages.json"
                    ))
                    .basic_auth(account_sid, Some(auth_token))
                    .form(&form)
            }
        };
        let res = request.send().await.map_err(|e| {
            Failure::Transient(format!("text provider unreachable: {}", e.without_url()))
        })?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: Value = res.json().await.unwrap_or(Value::Null);
        let error = format!(
            "{} said {}: {}",
            self.config.provider.name(),
            status.as_u16(),
            provider_message(&body)
        );
        Err(match status {
            StatusCode::TOO_MANY_REQUESTS => Failure::Busy {
                error,
                retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
            },
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                Failure::Transient(error)
            }
            _ => Failure::Refused(error),
        })
    }
}

/// The reason in a provider's error body: Notify's `errors[0].message`, Twilio's `message`.
fn provider_message(body: &Value) -> String {
    body.pointer("/errors/0/message")
        .or_else(|| body.get("message"))
        .and_then(Value::as_str)
        .map(|m| m.chars().take(200).collect())
        .unwrap_or_else(|| "no reason given".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notify_key_gives_its_service_id_and_refuses_a_partial_key() {
        let key = NotifyKey::parse(
            "bleepless_live-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122b0",
        )
        .unwrap();
        assert_eq!(key.service_id, "26785a09-ab16-4eb0-8407-a37497a57506");
        assert!(!format!("{key:?}").contains("3d844edf"));
        assert!(NotifyKey::parse("3d844edf-8d35-48ac-975b-e847b4f122b0").is_err());
        assert!(NotifyKey::parse(
            "x-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122bZ"
        )
        .is_err());
    }
}
