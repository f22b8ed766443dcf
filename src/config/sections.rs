//! One function per part of the configuration: each takes what the file says (the
//! environment and command line where they may override it) and returns the typed settings,
//! or a [`ConfigError`] that names the key.
use super::file::{
    FileDispatch, FileEmail, FileFhir, FileHealth, FileMetrics, FilePush, FileRecord, FileSecurity,
};
use super::{
    env, parse_schedule, secret_file, ConfigError, DatabaseUrl, DispatchConfig, FhirConfig,
    HealthConfig, LogFormat, MetricsConfig, Overrides, PushConfig, RecordConfig, SecurityConfig,
    TextConfig, DEFAULT_PUSH_HOSTS, DEFAULT_SCHEDULE,
};
use crate::domain::task::AckTargets;
use crate::outbox::email::{SmtpSecurity, SmtpSettings};
use crate::outbox::endpoints::EndpointPolicy;
use crate::outbox::push::{DEFAULT_KEYS_AHEAD, MAX_KEYS_AHEAD};
use crate::outbox::worker::RECORD_WAIT_MOST;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the file's keys come from, for messages: `pool_size in /etc/bleepless.toml`, or
/// the bare key when there is no file.
pub(super) struct Source(pub(super) Option<PathBuf>);

impl Source {
    pub(super) fn key(&self, name: &str) -> String {
        match &self.0 {
            Some(p) => format!("{name} in {}", p.display()),
            None => name.to_string(),
        }
    }
}

pub(super) fn bind(
    o: &Overrides,
    file: Option<String>,
    src: &Source,
) -> Result<SocketAddr, ConfigError> {
    let (bind, bind_from) = if let Some(b) = &o.bind {
        (b.clone(), "--bind".to_string())
    } else if let Some(b) = env("BLEEPLESS_BIND") {
        (b, "BLEEPLESS_BIND".to_string())
    } else if let Some(b) = file {
        (b, src.key("bind"))
    } else {
        ("127.0.0.1:8080".to_string(), "the default bind".to_string())
    };
    bind.parse().map_err(|_| {
        ConfigError(format!(
            "{bind_from}: {bind:?} is not an address and port such as 127.0.0.1:8080"
        ))
    })
}

pub(super) fn database(
    o: &Overrides,
    file: Option<String>,
    src: &Source,
) -> Result<DatabaseUrl, ConfigError> {
    let (db, db_from) = if let Some(d) = &o.database_url {
        (d.clone(), "--database".to_string())
    } else if let Some(d) = env("DATABASE_URL") {
        (d, "DATABASE_URL".to_string())
    } else if let Some(d) = file {
        (d, src.key("database_url"))
    } else {
        (
            "sqlite://bleepless.db".to_string(),
            "the default database".to_string(),
        )
    };
    DatabaseUrl::parse(&db).map_err(|why| ConfigError(format!("{db_from}: {why}")))
}

pub(super) fn public_url(file: Option<String>, bind: SocketAddr) -> Result<String, ConfigError> {
    let public_url = env("BLEEPLESS_PUBLIC_URL")
        .or(file)
        .unwrap_or_else(|| format!("http://{bind}"));
    if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
        return Err(ConfigError(format!(
            "public_url: {public_url:?} must start with http:// or https://"
        )));
    }
    Ok(public_url.trim_end_matches('/').to_string())
}

pub(super) fn pool_size(file: Option<u32>, src: &Source) -> Result<u32, ConfigError> {
    let pool_size = file.unwrap_or(8);
    if !(1..=256).contains(&pool_size) {
        return Err(ConfigError(format!(
            "{}: {pool_size} is out of range (1 to 256)",
            src.key("pool_size")
        )));
    }
    Ok(pool_size)
}

pub(super) fn ack_seconds(
    file: Option<AckTargets>,
    src: &Source,
) -> Result<AckTargets, ConfigError> {
    let ack_seconds = file.unwrap_or_default();
    for p in crate::domain::Priority::ALL {
        if ack_seconds.seconds(*p) == 0 {
            return Err(ConfigError(format!(
                "{}: {p} must be at least 1 second",
                src.key("escalation.ack_seconds")
            )));
        }
    }
    Ok(ack_seconds)
}

pub(super) fn schedule(file: Option<String>, src: &Source) -> Result<cron::Schedule, ConfigError> {
    let schedule_text = file.unwrap_or_else(|| DEFAULT_SCHEDULE.to_string());
    parse_schedule(&schedule_text)
        .map_err(|why| ConfigError(format!("{}: {why}", src.key("escalation.schedule"))))
}

/// The VAPID keys, given in one place or none: the private key from the environment or its
/// own file (the public key derived from it), or both keys in the file.
fn vapid(push: &FilePush, src: &Source) -> Result<Option<(String, String)>, ConfigError> {
    let vapid_secret = match (
        env("BLEEPLESS_VAPID_PRIVATE_KEY"),
        &push.vapid_private_key_file,
    ) {
        (Some(k), _) => Some((k, "BLEEPLESS_VAPID_PRIVATE_KEY".to_string())),
        (None, Some(path)) => Some((
            secret_file(path, &src.key("push.vapid_private_key_file"))?,
            src.key("push.vapid_private_key_file"),
        )),
        (None, None) => None,
    };
    match (
        vapid_secret,
        push.vapid_private_key.clone(),
        push.vapid_public_key.clone(),
    ) {
        (Some((private, from)), None, None) => {
            let keys = crate::outbox::push::vapid_keys_from_private(&private)
                .map_err(|why| ConfigError(format!("{from}: {why}")))?;
            Ok(Some((keys.private_key, keys.public_key)))
        }
        (Some((_, from)), _, _) => Err(ConfigError(format!(
            "{from}: give the VAPID private key in one place only (not also vapid_private_key in {})",
            src.key("push")
        ))),
        (None, Some(private), Some(public)) => Ok(Some((private, public))),
        (None, None, None) => Ok(None),
        _ => Err(ConfigError(format!(
            "{}: give both vapid_private_key and vapid_public_key, or neither",
            src.key("push")
        ))),
    }
}

pub(super) fn push(push: FilePush, src: &Source) -> Result<PushConfig, ConfigError> {
    let vapid = vapid(&push, src)?;
    let allowed_hosts = match push.allowed_hosts {
        Some(hosts) => hosts,
        None => DEFAULT_PUSH_HOSTS.iter().map(|h| h.to_string()).collect(),
    };
    let allow_endpoints = push.allow_endpoints.unwrap_or_default();
    EndpointPolicy::new(&allowed_hosts, &allow_endpoints)
        .map_err(|why| ConfigError(format!("{}: {why}", src.key("push"))))?;
    let push = PushConfig {
        subject: push
            .subject
            .unwrap_or_else(|| "mailto:bleepless-admin@localhost".to_string()),
        vapid,
        timeout: Duration::from_secs(push.timeout_seconds.unwrap_or(10).max(1)),
        allowed_hosts,
        allow_endpoints,
        keys_ahead: push.keys_ahead.unwrap_or(DEFAULT_KEYS_AHEAD),
    };
    if push.keys_ahead > MAX_KEYS_AHEAD {
        return Err(ConfigError(format!(
            "{}: {} is more than {MAX_KEYS_AHEAD} (each pair takes about 200 bytes; 0 makes none ahead)",
            src.key("push.keys_ahead"),
            push.keys_ahead
        )));
    }
    if !(push.subject.starts_with("mailto:") || push.subject.starts_with("https://")) {
        return Err(ConfigError(format!(
            "{}: {:?} must be a mailto: or https: URL (push services refuse others)",
            src.key("push.subject"),
            push.subject
        )));
    }
    Ok(push)
}

pub(super) fn email(
    file: Option<FileEmail>,
    src: &Source,
) -> Result<Option<SmtpSettings>, ConfigError> {
    let Some(e) = file else {
        return Ok(None);
    };
    let security = match e.security.as_deref().unwrap_or("starttls") {
        "starttls" => SmtpSecurity::StartTls,
        "tls" => SmtpSecurity::Tls,
        "plain" => SmtpSecurity::Plain,
        other => {
            return Err(ConfigError(format!(
                "{}: {other:?} is not one of starttls, tls, plain",
                src.key("email.security")
            )))
        }
    };
    let port = e.port.unwrap_or(match security {
        SmtpSecurity::Tls => 465,
        SmtpSecurity::StartTls => 587,
        SmtpSecurity::Plain => 25,
    });
    Ok(Some(SmtpSettings {
        host: e.host,
        port,
        security,
        username: e.username,
        password: env("BLEEPLESS_SMTP_PASSWORD").or(e.password),
        from: e.from,
        timeout: Duration::from_secs(e.timeout_seconds.unwrap_or(10).max(1)),
    }))
}

pub(super) fn dispatch(d: FileDispatch, src: &Source) -> Result<DispatchConfig, ConfigError> {
    let defaults = DispatchConfig::default();
    let dispatch = DispatchConfig {
        batch: d.batch.unwrap_or(defaults.batch),
        max_attempts: d.max_attempts.unwrap_or(defaults.max_attempts),
        backoff_base: d
            .backoff_base_seconds
            .map(Duration::from_secs)
            .unwrap_or(defaults.backoff_base),
        backoff_max: d
            .backoff_max_seconds
            .map(Duration::from_secs)
            .unwrap_or(defaults.backoff_max),
        lease: d
            .lease_seconds
            .map(Duration::from_secs)
            .unwrap_or(defaults.lease),
    };
    if !(1..=1000).contains(&dispatch.batch)
        || dispatch.max_attempts < 1
        || dispatch.lease.is_zero()
    {
        return Err(ConfigError(format!(
            "{}: batch must be 1 to 1000, max_attempts at least 1, lease_seconds at least 1",
            src.key("dispatch")
        )));
    }
    Ok(dispatch)
}

/// A send must finish well inside its lease, or another instance would send it again.
pub(super) fn lease_outlasts_sends(
    dispatch: &DispatchConfig,
    push: &PushConfig,
    email: Option<&SmtpSettings>,
    text: Option<&TextConfig>,
    records: &[RecordConfig],
    src: &Source,
) -> Result<(), ConfigError> {
    // The longest each kind of send may take, named for the error. A whole email send is
    // bounded by three times its per-operation timeout.
    let mut sends = vec![("the push timeout".to_string(), push.timeout)];
    sends.extend(email.map(|e| ("three email timeouts".into(), e.timeout * 3)));
    sends.extend(text.map(|t| ("the text timeout".into(), t.timeout)));
    sends.extend(
        records
            .iter()
            .map(|r| (format!("the {} timeout", r.name), r.timeout)),
    );
    let Some((what, slowest)) = sends.iter().max_by_key(|(_, took)| *took) else {
        return Ok(());
    };
    // Twice: a row written leased waits for its dispatcher, which sends it only while at
    // least half its lease is left (`outbox::worker`), and a send must end within it. Then
    // its outcome may wait a second to be written, in a burst (`outbox::outcomes`).
    let least = *slowest * 2 + RECORD_WAIT_MOST;
    if dispatch.lease <= least {
        return Err(ConfigError(format!(
            "{}: lease_seconds ({}) must be more than {} s: twice the slowest send ({} s, \
             {what}) and the {} s an outcome may wait to be written in a burst",
            src.key("dispatch"),
            dispatch.lease.as_secs(),
            least.as_secs_f64(),
            slowest.as_secs(),
            RECORD_WAIT_MOST.as_secs_f64()
        )));
    }
    Ok(())
}

/// The server under `[record]` first, then those under `[records.<name>]` by name.
pub(super) fn records(
    record: Option<FileRecord>,
    more: BTreeMap<String, FileRecord>,
    src: &Source,
) -> Result<Vec<RecordConfig>, ConfigError> {
    let mut servers = Vec::new();
    let first = record.map(|r| ("record".to_string(), r, "record".to_string()));
    let more = more.into_iter().map(|(name, r)| {
        let key = format!("records.{name}");
        (name, r, key)
    });
    for (name, r, key) in first.into_iter().chain(more) {
        let base_url = r.base_url.trim().trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError(format!(
                "{}: {base_url:?} must start with http:// or https://",
                src.key(&format!("{key}.base_url"))
            )));
        }
        if name.trim().is_empty() || servers.iter().any(|c: &RecordConfig| c.name == name) {
            return Err(ConfigError(format!(
                "{}: each record server needs a name of its own",
                src.key(&key)
            )));
        }
        // The environment's authorization is for the server under [record].
        let from_env = (key == "record")
            .then(|| env("BLEEPLESS_RECORD_AUTHORIZATION"))
            .flatten();
        servers.push(RecordConfig {
            name,
            base_url,
            authorization: from_env.or(r.authorization),
            timeout: Duration::from_secs(r.timeout_seconds.unwrap_or(30).max(1)),
        });
    }
    Ok(servers)
}

/// The link secret from the environment or its own file: at least 32 characters.
fn link_secret(sec: &FileSecurity, src: &Source) -> Result<Option<Vec<u8>>, ConfigError> {
    let link_secret = match (env("BLEEPLESS_LINK_SECRET"), &sec.link_secret_file) {
        (Some(s), _) => Some((s, "BLEEPLESS_LINK_SECRET".to_string())),
        (None, Some(path)) => Some((
            secret_file(path, &src.key("security.link_secret_file"))?,
            src.key("security.link_secret_file"),
        )),
        (None, None) => None,
    };
    match link_secret {
        Some((s, from)) if s.len() < 32 => Err(ConfigError(format!(
            "{from}: the link secret has {} characters; give at least 32 random ones (e.g. openssl rand -base64 48)",
            s.len()
        ))),
        Some((s, _)) => Ok(Some(s.into_bytes())),
        None => Ok(None),
    }
}

pub(super) fn security(sec: FileSecurity, src: &Source) -> Result<SecurityConfig, ConfigError> {
    let defaults = SecurityConfig::default();
    let link_secret = link_secret(&sec, src)?;
    let minutes = |m: Option<u64>, default: Duration, name: &str| match m {
        Some(0) => Err(ConfigError(format!(
            "{}: must be at least 1",
            src.key(name)
        ))),
        Some(m) => Ok(Duration::from_secs(m * 60)),
        None => Ok(default),
    };
    let at_least_one = |n: Option<i32>, default: i32, name: &str| match n {
        Some(n) if n < 1 => Err(ConfigError(format!(
            "{}: must be at least 1",
            src.key(name)
        ))),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    Ok(SecurityConfig {
        link_secret,
        failures_per_account: at_least_one(
            sec.sign_in_failures_per_account,
            defaults.failures_per_account,
            "security.sign_in_failures_per_account",
        )?,
        failures_per_address: at_least_one(
            sec.sign_in_failures_per_address,
            defaults.failures_per_address,
            "security.sign_in_failures_per_address",
        )?,
        lockout: minutes(
            sec.lockout_minutes,
            defaults.lockout,
            "security.lockout_minutes",
        )?,
        session_idle: minutes(
            sec.session_idle_minutes,
            defaults.session_idle,
            "security.session_idle_minutes",
        )?,
        trust_proxy_headers: sec.trust_proxy_headers.unwrap_or(false),
        body_timeout: Duration::from_secs(
            sec.body_timeout_seconds
                .unwrap_or(defaults.body_timeout.as_secs())
                .max(1),
        ),
        max_devices: sec
            .max_devices_per_person
            .unwrap_or(defaults.max_devices)
            .max(1),
    })
}

pub(super) fn log_format(file: Option<String>, src: &Source) -> Result<LogFormat, ConfigError> {
    let (log_format, log_from) = match env("BLEEPLESS_LOG_FORMAT") {
        Some(f) => (f, "BLEEPLESS_LOG_FORMAT".to_string()),
        None => (file.unwrap_or_else(|| "text".into()), src.key("log_format")),
    };
    LogFormat::parse(&log_format).map_err(|why| ConfigError(format!("{log_from}: {why}")))
}

/// The hospital's time zone: `BLEEPLESS_TIME_ZONE`, `time_zone`, or Europe/London.
pub(super) fn zone(
    file: Option<String>,
    src: &Source,
) -> Result<crate::domain::rota::Zone, ConfigError> {
    let (name, from) = match env("BLEEPLESS_TIME_ZONE") {
        Some(z) => (z, "BLEEPLESS_TIME_ZONE".to_string()),
        None => match file {
            Some(z) => (z, src.key("time_zone")),
            None => return Ok(crate::domain::rota::Zone::default()),
        },
    };
    crate::domain::rota::Zone::parse(&name).map_err(|why| ConfigError(format!("{from}: {why}")))
}

pub(super) fn fhir(f: FileFhir, public_url: &str, src: &Source) -> Result<FhirConfig, ConfigError> {
    let system_base = env("BLEEPLESS_FHIR_SYSTEM_BASE")
        .or(f.system_base)
        .unwrap_or_else(|| public_url.to_string());
    if !(system_base.starts_with("http://") || system_base.starts_with("https://"))
        || system_base.chars().any(char::is_whitespace)
    {
        return Err(ConfigError(format!(
            "{}: {system_base:?} must be an http:// or https:// URL",
            src.key("fhir.system_base")
        )));
    }
    Ok(FhirConfig {
        system_base: system_base.trim_end_matches('/').to_string(),
        conditional_patient_reference: f.conditional_patient_reference.unwrap_or(false),
    })
}

pub(super) fn health(file: Option<FileHealth>, src: &Source) -> Result<HealthConfig, ConfigError> {
    let h = file.unwrap_or_default();
    let heartbeat_url = env("BLEEPLESS_HEARTBEAT_URL").or(h.heartbeat_url);
    if let Some(u) = &heartbeat_url {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            return Err(ConfigError(format!(
                "{}: must start with https:// (or http://)",
                src.key("health.heartbeat_url")
            )));
        }
    }
    let max_due_age = h.max_due_age_seconds.unwrap_or(120);
    if max_due_age < 10 {
        return Err(ConfigError(format!(
            "{}: {max_due_age} is too short to mean anything; give at least 10",
            src.key("health.max_due_age_seconds")
        )));
    }
    Ok(HealthConfig {
        heartbeat_url,
        max_due_age: Duration::from_secs(max_due_age),
    })
}

/// The scraper's token: from the environment or the file; at least 16 characters.
pub(super) fn metrics(m: FileMetrics, src: &Source) -> Result<MetricsConfig, ConfigError> {
    let (token, from) = match env("BLEEPLESS_METRICS_TOKEN") {
        Some(t) => (Some(t), "BLEEPLESS_METRICS_TOKEN".to_string()),
        None => (m.token, src.key("metrics.token")),
    };
    if let Some(t) = &token {
        if t.trim().len() < 16 || t.chars().any(char::is_whitespace) {
            return Err(ConfigError(format!(
                "{from}: give at least 16 characters with no spaces (e.g. openssl rand -hex 24)"
            )));
        }
    }
    Ok(MetricsConfig { token })
}
