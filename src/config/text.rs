//! `[text]`: text messages as the fallback route to a phone, through GOV.UK Notify or a
//! Twilio-compatible API. Without the section no text is sent or queued.
use super::sections::Source;
use super::{env, secret_file, ConfigError};
use crate::domain::delivery::TextAfter;
use crate::outbox::text::{NotifyKey, Provider, TextConfig, TwilioSender, NOTIFY_URL, TWILIO_URL};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileText {
    provider: Option<String>,
    /// Seconds after a notification that a text follows it, per priority.
    after_seconds: Option<FileTextAfter>,
    base_url: Option<String>,
    timeout_seconds: Option<u64>,
    api_key_file: Option<PathBuf>,
    template_id: Option<String>,
    account_sid: Option<String>,
    auth_token_file: Option<PathBuf>,
    from: Option<String>,
    messaging_service_sid: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTextAfter {
    stat: Option<u32>,
    asap: Option<u32>,
    urgent: Option<u32>,
    routine: Option<u32>,
}

/// A secret from the environment, else from the file the key names.
fn secret(
    var: &str,
    file: &Option<PathBuf>,
    key: &str,
    src: &Source,
) -> Result<String, ConfigError> {
    match (env(var), file) {
        (Some(v), _) => Ok(v),
        (None, Some(path)) => secret_file(path, &src.key(key)),
        (None, None) => Err(ConfigError(format!(
            "{}: give the file that holds it (or set {var})",
            src.key(key)
        ))),
    }
}

fn required(v: Option<String>, key: &str, what: &str, src: &Source) -> Result<String, ConfigError> {
    v.filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ConfigError(format!("{}: missing; give {what}", src.key(key))))
}

fn provider(t: &FileText, src: &Source) -> Result<Provider, ConfigError> {
    match t.provider.as_deref().map(str::trim) {
        Some("notify") => {
            let key = secret(
                "BLEEPLESS_NOTIFY_API_KEY",
                &t.api_key_file,
                "text.api_key_file",
                src,
            )?;
            let key = NotifyKey::parse(&key)
                .map_err(|e| ConfigError(format!("{}: {e}", src.key("text.api_key_file"))))?;
            let template_id = required(
                t.template_id.clone(),
                "text.template_id",
                "the id of a Notify text message template whose body is ((message))",
                src,
            )?;
            if uuid::Uuid::parse_str(&template_id).is_err() {
                return Err(ConfigError(format!("{}: {template_id:?} is not a template id (a UUID, from the template's page in Notify)", src.key("text.template_id"))));
            }
            Ok(Provider::Notify { key, template_id })
        }
        Some("twilio") => {
            let account_sid = required(
                t.account_sid.clone(),
                "text.account_sid",
                "the account SID (AC…)",
                src,
            )?;
            let auth_token = secret(
                "BLEEPLESS_TWILIO_AUTH_TOKEN",
                &t.auth_token_file,
                "text.auth_token_file",
                src,
            )?;
            let sender = match (&t.from, &t.messaging_service_sid) {
                (Some(from), None) => TwilioSender::From(
                    crate::domain::phone::parse_mobile(from)
                        .or_else(|_| {
                            // A short code or alphanumeric sender id is allowed as it is.
                            if from.len() <= 11 && from.chars().all(|c| c.is_ascii_alphanumeric()) { Ok(from.clone()) } else { Err(()) }
                        })
                        .map_err(|_| ConfigError(format!("{}: {from:?} is neither a phone number nor a sender id of up to 11 letters and digits", src.key("text.from"))))?,
                ),
                (None, Some(sid)) => TwilioSender::MessagingService(sid.clone()),
                _ => {
                    return Err(ConfigError(format!(
                        "{}: give either from (a number) or messaging_service_sid, not both or neither",
                        src.key("text")
                    )))
                }
            };
            Ok(Provider::Twilio {
                account_sid,
                auth_token,
                sender,
            })
        }
        Some(other) => Err(ConfigError(format!(
            "{}: {other:?} is not one of notify, twilio",
            src.key("text.provider")
        ))),
        None => Err(ConfigError(format!(
            "{}: missing; give notify (GOV.UK Notify) or twilio",
            src.key("text.provider")
        ))),
    }
}

pub(super) fn text(
    file: Option<FileText>,
    src: &Source,
) -> Result<Option<TextConfig>, ConfigError> {
    let Some(t) = file else { return Ok(None) };
    let provider = provider(&t, src)?;
    let base_url = t.base_url.clone().unwrap_or_else(|| {
        match provider {
            Provider::Notify { .. } => NOTIFY_URL,
            Provider::Twilio { .. } => TWILIO_URL,
        }
        .to_string()
    });
    if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
        return Err(ConfigError(format!(
            "{}: {base_url:?} must be an https:// URL",
            src.key("text.base_url")
        )));
    }
    let a = t.after_seconds.unwrap_or_default();
    let after = TextAfter {
        stat: a.stat,
        asap: a.asap,
        urgent: a.urgent,
        routine: a.routine,
    };
    for (name, v) in [
        ("stat", after.stat),
        ("asap", after.asap),
        ("urgent", after.urgent),
        ("routine", after.routine),
    ] {
        if v.is_some_and(|s| s > 86_400) {
            return Err(ConfigError(format!(
                "{}: give at most 86400 seconds (a day)",
                src.key(&format!("text.after_seconds.{name}"))
            )));
        }
    }
    if after == TextAfter::default() {
        return Err(ConfigError(format!(
            "{}: missing; say after how many seconds an unseen bleep is followed by a text, per priority, e.g. {{ stat = 60, asap = 180 }}",
            src.key("text.after_seconds")
        )));
    }
    let timeout = t.timeout_seconds.unwrap_or(10);
    if !(1..=60).contains(&timeout) {
        return Err(ConfigError(format!(
            "{}: give 1 to 60",
            src.key("text.timeout_seconds")
        )));
    }
    Ok(Some(TextConfig {
        provider,
        base_url: base_url.trim_end_matches('/').to_string(),
        timeout: Duration::from_secs(timeout),
        after,
    }))
}
