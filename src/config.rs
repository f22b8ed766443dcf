//! One typed configuration, from a TOML file, the environment and the command line (in
//! rising order of precedence), validated before anything starts.
use crate::domain::task::{AckTargets, Policy};
use crate::outbox::email::{SmtpSecurity, SmtpSettings};
use crate::outbox::endpoints::EndpointPolicy;
pub use crate::outbox::record::{FhirConfig, RecordConfig};
pub use crate::outbox::worker::DispatchConfig;
pub use crate::store::DatabaseUrl;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub database: DatabaseUrl,
    /// Where people reach the service, for links in email and notifications.
    pub public_url: String,
    pub pool_size: u32,
    pub policy: Policy,
    /// When the escalation tick runs (cron with a seconds field).
    pub schedule: cron::Schedule,
    pub push: PushConfig,
    /// No email is sent when absent.
    pub email: Option<SmtpSettings>,
    pub dispatch: DispatchConfig,
    pub health: HealthConfig,
    /// The patient-record FHIR servers every task is delivered to; nothing is sent or
    /// queued when there are none.
    pub record: Vec<RecordConfig>,
    pub security: SecurityConfig,
    pub fhir: FhirConfig,
    /// How log lines are written to standard error.
    pub log_format: LogFormat,
}

/// `text` for people reading a terminal or journal; `json` (one object a line) for log shippers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not one of text, json")),
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Sign-in limits, sessions, request bounds and secrets kept outside the database.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// The key that signs one-click acknowledge links, from `link_secret_file` or
    /// `BLEEPLESS_LINK_SECRET`; when absent it is made once and kept in the database.
    pub link_secret: Option<Vec<u8>>,
    /// Failed sign-ins to one account, within `lockout`, before it is locked for `lockout`.
    pub failures_per_account: i32,
    /// Failed sign-ins from one client address, within `lockout`, before it must wait.
    pub failures_per_address: i32,
    pub lockout: Duration,
    /// A session unused for this long has ended.
    pub session_idle: Duration,
    /// Take the client address from `X-Forwarded-For` / `Forwarded` (only behind a proxy
    /// that sets them); otherwise the connection's address.
    pub trust_proxy_headers: bool,
    /// A request body must arrive within this long.
    pub body_timeout: Duration,
    /// Push devices one person may register.
    pub max_devices: i64,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            link_secret: None,
            failures_per_account: 5,
            failures_per_address: 50,
            lockout: Duration::from_secs(15 * 60),
            session_idle: Duration::from_secs(30 * 60),
            trust_proxy_headers: false,
            body_timeout: Duration::from_secs(30),
            max_devices: 10,
        }
    }
}

/// The push services of the major browsers: Chrome and other Chromium browsers (FCM),
/// Firefox (Mozilla autopush), Safari (Apple) and Edge on Windows (WNS).
pub const DEFAULT_PUSH_HOSTS: &[&str] = &[
    "fcm.googleapis.com",
    "android.googleapis.com",
    "updates.push.services.mozilla.com",
    "*.push.apple.com",
    "*.notify.windows.com",
];

#[derive(Debug, Clone)]
pub struct PushConfig {
    /// VAPID `sub`: a mailto: or https: URL push services can reach the operator at.
    pub subject: String,
    /// Given keys (from the file, `vapid_private_key_file` or `BLEEPLESS_VAPID_PRIVATE_KEY`);
    /// when absent they are generated on first start and kept in the database.
    pub vapid: Option<(String, String)>,
    pub timeout: Duration,
    /// Hosts a push endpoint may name (`*.` for any subdomain): the browsers' push services.
    pub allowed_hosts: Vec<String>,
    /// Endpoint origins allowed besides, with no host or address check: for tests only.
    pub allow_endpoints: Vec<String>,
}

impl PushConfig {
    /// Which push endpoints a browser may register under these settings.
    pub fn endpoint_policy(&self) -> EndpointPolicy {
        EndpointPolicy::of(&self.allowed_hosts, &self.allow_endpoints)
    }
}

pub const DEFAULT_SCHEDULE: &str = "*/5 * * * * *";

/// What the command line may override.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub bind: Option<String>,
    pub database_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    database_url: Option<String>,
    public_url: Option<String>,
    pool_size: Option<u32>,
    log_format: Option<String>,
    escalation: Option<FileEscalation>,
    push: Option<FilePush>,
    email: Option<FileEmail>,
    dispatch: Option<FileDispatch>,
    health: Option<FileHealth>,
    record: Option<FileRecord>,
    /// More record servers, by name: `[records.shared-care]`.
    #[serde(default)]
    records: std::collections::BTreeMap<String, FileRecord>,
    security: Option<FileSecurity>,
    fhir: Option<FileFhir>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSecurity {
    link_secret_file: Option<PathBuf>,
    sign_in_failures_per_account: Option<i32>,
    sign_in_failures_per_address: Option<i32>,
    lockout_minutes: Option<u64>,
    session_idle_minutes: Option<u64>,
    trust_proxy_headers: Option<bool>,
    body_timeout_seconds: Option<u64>,
    max_devices_per_person: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFhir {
    system_base: Option<String>,
    conditional_patient_reference: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRecord {
    base_url: String,
    authorization: Option<String>,
    timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEscalation {
    schedule: Option<String>,
    fallback_role: Option<String>,
    ack_seconds: Option<AckTargets>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePush {
    subject: Option<String>,
    vapid_private_key: Option<String>,
    vapid_public_key: Option<String>,
    vapid_private_key_file: Option<PathBuf>,
    timeout_seconds: Option<u64>,
    allowed_hosts: Option<Vec<String>>,
    allow_endpoints: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEmail {
    host: String,
    port: Option<u16>,
    security: Option<String>,
    username: Option<String>,
    password: Option<String>,
    from: String,
    timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDispatch {
    batch: Option<i64>,
    max_attempts: Option<i32>,
    backoff_base_seconds: Option<u64>,
    backoff_max_seconds: Option<u64>,
    lease_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHealth {
    heartbeat_url: Option<String>,
    max_due_age_seconds: Option<u64>,
}

/// How the service watches itself.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// Called (GET) after every escalation tick, so an outside monitor (a dead man's
    /// switch) pages someone when the calls stop. It may carry a secret: never logged.
    pub heartbeat_url: Option<String>,
    /// `/healthz` fails when a delivery or an escalation has waited longer than this.
    pub max_due_age: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            heartbeat_url: None,
            max_due_age: Duration::from_secs(120),
        }
    }
}

fn health(
    file: Option<FileHealth>,
    key: impl Fn(&str) -> String,
) -> Result<HealthConfig, ConfigError> {
    let h = file.unwrap_or_default();
    let heartbeat_url = env("BLEEPLESS_HEARTBEAT_URL").or(h.heartbeat_url);
    if let Some(u) = &heartbeat_url {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            return Err(ConfigError(format!(
                "{}: must start with https:// (or http://)",
                key("health.heartbeat_url")
            )));
        }
    }
    let max_due_age = h.max_due_age_seconds.unwrap_or(120);
    if max_due_age < 10 {
        return Err(ConfigError(format!(
            "{}: {max_due_age} is too short to mean anything; give at least 10",
            key("health.max_due_age_seconds")
        )));
    }
    Ok(HealthConfig {
        heartbeat_url,
        max_due_age: Duration::from_secs(max_due_age),
    })
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Layers defaults, the TOML file, the environment and the command line.
    pub fn load(o: &Overrides) -> Result<Config, ConfigError> {
        let file_path = o
            .config_file
            .clone()
            .or_else(|| env("BLEEPLESS_CONFIG").map(PathBuf::from));
        let file = match &file_path {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let src = |name: &str| match &file_path {
            Some(p) => format!("{name} in {}", p.display()),
            None => name.to_string(),
        };

        let (bind, bind_from) = if let Some(b) = &o.bind {
            (b.clone(), "--bind".to_string())
        } else if let Some(b) = env("BLEEPLESS_BIND") {
            (b, "BLEEPLESS_BIND".to_string())
        } else if let Some(b) = file.bind {
            (b, src("bind"))
        } else {
            ("127.0.0.1:8080".to_string(), "the default bind".to_string())
        };
        let bind: SocketAddr = bind.parse().map_err(|_| {
            ConfigError(format!(
                "{bind_from}: {bind:?} is not an address and port such as 127.0.0.1:8080"
            ))
        })?;

        let (db, db_from) = if let Some(d) = &o.database_url {
            (d.clone(), "--database".to_string())
        } else if let Some(d) = env("DATABASE_URL") {
            (d, "DATABASE_URL".to_string())
        } else if let Some(d) = file.database_url {
            (d, src("database_url"))
        } else {
            (
                "sqlite://bleepless.db".to_string(),
                "the default database".to_string(),
            )
        };
        let database =
            DatabaseUrl::parse(&db).map_err(|why| ConfigError(format!("{db_from}: {why}")))?;

        let public_url = env("BLEEPLESS_PUBLIC_URL")
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{bind}"));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError(format!(
                "public_url: {public_url:?} must start with http:// or https://"
            )));
        }
        let public_url = public_url.trim_end_matches('/').to_string();

        let pool_size = file.pool_size.unwrap_or(8);
        if !(1..=256).contains(&pool_size) {
            return Err(ConfigError(format!(
                "{}: {pool_size} is out of range (1 to 256)",
                src("pool_size")
            )));
        }

        let escalation = file.escalation.unwrap_or_default();
        let ack_seconds = escalation.ack_seconds.unwrap_or_default();
        for p in crate::domain::Priority::ALL {
            if ack_seconds.seconds(*p) == 0 {
                return Err(ConfigError(format!(
                    "{}: {p} must be at least 1 second",
                    src("escalation.ack_seconds")
                )));
            }
        }

        let schedule_text = escalation
            .schedule
            .unwrap_or_else(|| DEFAULT_SCHEDULE.to_string());
        let schedule = parse_schedule(&schedule_text)
            .map_err(|why| ConfigError(format!("{}: {why}", src("escalation.schedule"))))?;

        let push = file.push.unwrap_or_default();
        let vapid_secret = match (
            env("BLEEPLESS_VAPID_PRIVATE_KEY"),
            &push.vapid_private_key_file,
        ) {
            (Some(k), _) => Some((k, "BLEEPLESS_VAPID_PRIVATE_KEY".to_string())),
            (None, Some(path)) => Some((
                secret_file(path, &src("push.vapid_private_key_file"))?,
                src("push.vapid_private_key_file"),
            )),
            (None, None) => None,
        };
        let vapid = match (vapid_secret, push.vapid_private_key, push.vapid_public_key) {
            (Some((private, from)), None, None) => {
                let keys = crate::outbox::push::vapid_keys_from_private(&private)
                    .map_err(|why| ConfigError(format!("{from}: {why}")))?;
                Some((keys.private_key, keys.public_key))
            }
            (Some((_, from)), _, _) => {
                return Err(ConfigError(format!(
                    "{from}: give the VAPID private key in one place only (not also vapid_private_key in {})",
                    src("push")
                )))
            }
            (None, Some(private), Some(public)) => Some((private, public)),
            (None, None, None) => None,
            _ => {
                return Err(ConfigError(format!(
                    "{}: give both vapid_private_key and vapid_public_key, or neither",
                    src("push")
                )))
            }
        };
        let allowed_hosts = match push.allowed_hosts {
            Some(hosts) => hosts,
            None => DEFAULT_PUSH_HOSTS.iter().map(|h| h.to_string()).collect(),
        };
        let allow_endpoints = push.allow_endpoints.unwrap_or_default();
        EndpointPolicy::new(&allowed_hosts, &allow_endpoints)
            .map_err(|why| ConfigError(format!("{}: {why}", src("push"))))?;
        let push = PushConfig {
            subject: push
                .subject
                .unwrap_or_else(|| "mailto:bleepless-admin@localhost".to_string()),
            vapid,
            timeout: Duration::from_secs(push.timeout_seconds.unwrap_or(10).max(1)),
            allowed_hosts,
            allow_endpoints,
        };
        if !(push.subject.starts_with("mailto:") || push.subject.starts_with("https://")) {
            return Err(ConfigError(format!(
                "{}: {:?} must be a mailto: or https: URL (push services refuse others)",
                src("push.subject"),
                push.subject
            )));
        }

        let email = match file.email {
            None => None,
            Some(e) => {
                let security = match e.security.as_deref().unwrap_or("starttls") {
                    "starttls" => SmtpSecurity::StartTls,
                    "tls" => SmtpSecurity::Tls,
                    "plain" => SmtpSecurity::Plain,
                    other => {
                        return Err(ConfigError(format!(
                            "{}: {other:?} is not one of starttls, tls, plain",
                            src("email.security")
                        )))
                    }
                };
                let port = e.port.unwrap_or(match security {
                    SmtpSecurity::Tls => 465,
                    SmtpSecurity::StartTls => 587,
                    SmtpSecurity::Plain => 25,
                });
                Some(SmtpSettings {
                    host: e.host,
                    port,
                    security,
                    username: e.username,
                    password: env("BLEEPLESS_SMTP_PASSWORD").or(e.password),
                    from: e.from,
                    timeout: Duration::from_secs(e.timeout_seconds.unwrap_or(10).max(1)),
                })
            }
        };

        let d = file.dispatch.unwrap_or_default();
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
                src("dispatch")
            )));
        }

        // A send must finish well inside its lease, or another instance would send it again.
        let slowest = email
            .as_ref()
            .map(|e| e.timeout * 3)
            .unwrap_or_default()
            .max(push.timeout);
        if dispatch.lease <= slowest {
            return Err(ConfigError(format!(
                "{}: lease_seconds ({}) must be more than the slowest send ({} s, from the push and email timeouts)",
                src("dispatch"),
                dispatch.lease.as_secs(),
                slowest.as_secs()
            )));
        }

        let mut record = Vec::new();
        let servers = file
            .record
            .map(|r| ("record".to_string(), r, "record".to_string()));
        let more = file.records.into_iter().map(|(name, r)| {
            let key = format!("records.{name}");
            (name, r, key)
        });
        for (name, r, key) in servers.into_iter().chain(more) {
            let base_url = r.base_url.trim().trim_end_matches('/').to_string();
            if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "{}: {base_url:?} must start with http:// or https://",
                    src(&format!("{key}.base_url"))
                )));
            }
            if name.trim().is_empty() || record.iter().any(|c: &RecordConfig| c.name == name) {
                return Err(ConfigError(format!(
                    "{}: each record server needs a name of its own",
                    src(&key)
                )));
            }
            // The environment's authorization is for the server under [record].
            let from_env = (key == "record")
                .then(|| env("BLEEPLESS_RECORD_AUTHORIZATION"))
                .flatten();
            record.push(RecordConfig {
                name,
                base_url,
                authorization: from_env.or(r.authorization),
                timeout: Duration::from_secs(r.timeout_seconds.unwrap_or(30).max(1)),
            });
        }

        let sec = file.security.unwrap_or_default();
        let defaults = SecurityConfig::default();
        let link_secret = match (env("BLEEPLESS_LINK_SECRET"), &sec.link_secret_file) {
            (Some(s), _) => Some((s, "BLEEPLESS_LINK_SECRET".to_string())),
            (None, Some(path)) => Some((
                secret_file(path, &src("security.link_secret_file"))?,
                src("security.link_secret_file"),
            )),
            (None, None) => None,
        };
        let link_secret = match link_secret {
            Some((s, from)) if s.len() < 32 => {
                return Err(ConfigError(format!(
                    "{from}: the link secret has {} characters; give at least 32 random ones (e.g. openssl rand -base64 48)",
                    s.len()
                )))
            }
            Some((s, _)) => Some(s.into_bytes()),
            None => None,
        };
        let minutes = |m: Option<u64>, default: Duration, name: &str| match m {
            Some(0) => Err(ConfigError(format!("{}: must be at least 1", src(name)))),
            Some(m) => Ok(Duration::from_secs(m * 60)),
            None => Ok(default),
        };
        let at_least_one = |n: Option<i32>, default: i32, name: &str| match n {
            Some(n) if n < 1 => Err(ConfigError(format!("{}: must be at least 1", src(name)))),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let security = SecurityConfig {
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
        };

        let (log_format, log_from) = match env("BLEEPLESS_LOG_FORMAT") {
            Some(f) => (f, "BLEEPLESS_LOG_FORMAT".to_string()),
            None => (
                file.log_format.unwrap_or_else(|| "text".into()),
                src("log_format"),
            ),
        };
        let log_format = LogFormat::parse(&log_format)
            .map_err(|why| ConfigError(format!("{log_from}: {why}")))?;

        let f = file.fhir.unwrap_or_default();
        let system_base = env("BLEEPLESS_FHIR_SYSTEM_BASE")
            .or(f.system_base)
            .unwrap_or_else(|| public_url.clone());
        if !(system_base.starts_with("http://") || system_base.starts_with("https://"))
            || system_base.chars().any(char::is_whitespace)
        {
            return Err(ConfigError(format!(
                "{}: {system_base:?} must be an http:// or https:// URL",
                src("fhir.system_base")
            )));
        }
        let fhir = FhirConfig {
            system_base: system_base.trim_end_matches('/').to_string(),
            conditional_patient_reference: f.conditional_patient_reference.unwrap_or(false),
        };

        Ok(Config {
            bind,
            database,
            public_url,
            pool_size,
            policy: Policy {
                ack_seconds,
                fallback_role: escalation.fallback_role,
                email: email.is_some(),
                records: record.iter().map(|r| r.name.clone()).collect(),
            },
            schedule,
            push,
            email,
            dispatch,
            health: health(file.health, src)?,
            record,
            security,
            fhir,
            log_format,
        })
    }

    /// The effective configuration as TOML-like lines, for `bleepless check-config`:
    /// passwords, keys and authorization headers are shown only as set or not.
    pub fn describe(&self) -> String {
        fn hidden(v: &Option<String>) -> &'static str {
            if v.is_some() {
                "\"(hidden)\""
            } else {
                "(not set)"
            }
        }
        let mut out = vec![
            format!("bind = {:?}", self.bind.to_string()),
            format!("database_url = {:?}", self.database.redacted()),
            format!("public_url = {:?}", self.public_url),
            format!("pool_size = {}", self.pool_size),
            format!("log_format = {:?}", self.log_format.code()),
            String::new(),
            "[escalation]".into(),
            format!("schedule = {:?}", self.schedule.to_string()),
            format!(
                "fallback_role = {}",
                self.policy
                    .fallback_role
                    .as_ref()
                    .map(|r| format!("{r:?}"))
                    .unwrap_or_else(|| "(not set)".into())
            ),
        ];
        let a = &self.policy.ack_seconds;
        out.push(format!(
            "ack_seconds = {{ stat = {}, asap = {}, urgent = {}, routine = {} }}",
            a.stat, a.asap, a.urgent, a.routine
        ));
        out.extend([
            String::new(),
            "[push]".into(),
            format!("subject = {:?}", self.push.subject),
            format!(
                "vapid_private_key = {}",
                hidden(&self.push.vapid.as_ref().map(|(k, _)| k.clone()))
            ),
            format!(
                "vapid_public_key = {}",
                self.push
                    .vapid
                    .as_ref()
                    .map(|(_, k)| format!("{k:?}"))
                    .unwrap_or_else(|| "(made on first start, kept in the database)".into())
            ),
            format!("timeout_seconds = {}", self.push.timeout.as_secs()),
            format!("allowed_hosts = {:?}", self.push.allowed_hosts),
            String::new(),
        ]);
        match &self.email {
            None => out.push("# [email] not set: no email is sent".into()),
            Some(e) => out.extend([
                "[email]".into(),
                format!("host = {:?}", e.host),
                format!("port = {}", e.port),
                format!(
                    "security = {:?}",
                    match e.security {
                        SmtpSecurity::Plain => "plain",
                        SmtpSecurity::StartTls => "starttls",
                        SmtpSecurity::Tls => "tls",
                    }
                ),
                format!(
                    "username = {}",
                    e.username
                        .as_ref()
                        .map(|u| format!("{u:?}"))
                        .unwrap_or_else(|| "(not set)".into())
                ),
                format!("password = {}", hidden(&e.password)),
                format!("from = {:?}", e.from),
                format!("timeout_seconds = {}", e.timeout.as_secs()),
            ]),
        }
        let d = &self.dispatch;
        out.extend([
            String::new(),
            "[dispatch]".into(),
            format!("batch = {}", d.batch),
            format!("max_attempts = {}", d.max_attempts),
            format!("backoff_base_seconds = {}", d.backoff_base.as_secs()),
            format!("backoff_max_seconds = {}", d.backoff_max.as_secs()),
            format!("lease_seconds = {}", d.lease.as_secs()),
            String::new(),
        ]);
        if self.record.is_empty() {
            out.push("# [record] not set: nothing is sent to the patient record".into());
        }
        for r in &self.record {
            out.extend([
                if r.name == "record" {
                    "[record]".to_string()
                } else {
                    format!("[records.{}]", r.name)
                },
                format!("base_url = {:?}", r.base_url),
                format!("authorization = {}", hidden(&r.authorization)),
                format!("timeout_seconds = {}", r.timeout.as_secs()),
                String::new(),
            ]);
        }
        let sec = &self.security;
        out.extend([
            String::new(),
            "[security]".into(),
            format!(
                "link_secret = {}",
                if sec.link_secret.is_some() {
                    "\"(hidden)\""
                } else {
                    "(made on first start, kept in the database)"
                }
            ),
            format!(
                "sign_in_failures_per_account = {}",
                sec.failures_per_account
            ),
            format!(
                "sign_in_failures_per_address = {}",
                sec.failures_per_address
            ),
            format!("lockout_minutes = {}", sec.lockout.as_secs() / 60),
            format!("session_idle_minutes = {}", sec.session_idle.as_secs() / 60),
            format!("trust_proxy_headers = {}", sec.trust_proxy_headers),
            format!("body_timeout_seconds = {}", sec.body_timeout.as_secs()),
            format!("max_devices_per_person = {}", sec.max_devices),
            String::new(),
            "[fhir]".into(),
            format!("system_base = {:?}", self.fhir.system_base),
            format!(
                "conditional_patient_reference = {}",
                self.fhir.conditional_patient_reference
            ),
        ]);
        // Unset values as comments, so that the output reads as TOML.
        out.iter()
            .map(|l| {
                if l.ends_with("(not set)") || l.ends_with("kept in the database)") {
                    format!("# {l}")
                } else {
                    l.clone()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A configuration for tests: a given database, port 0, default policies.
    pub fn for_tests(database: DatabaseUrl) -> Config {
        Config {
            bind: "127.0.0.1:0".parse().expect("literal address"),
            database,
            public_url: "http://127.0.0.1".into(),
            pool_size: 8,
            policy: Policy::default(),
            schedule: parse_schedule(DEFAULT_SCHEDULE).expect("default schedule parses"),
            push: PushConfig {
                subject: "mailto:bleepless-tests@example.nhs.uk".into(),
                vapid: None,
                timeout: Duration::from_secs(2),
                allowed_hosts: DEFAULT_PUSH_HOSTS.iter().map(|h| h.to_string()).collect(),
                allow_endpoints: Vec::new(),
            },
            email: None,
            health: HealthConfig::default(),
            dispatch: DispatchConfig {
                backoff_base: Duration::from_secs(2),
                ..DispatchConfig::default()
            },
            record: Vec::new(),
            security: SecurityConfig::default(),
            fhir: FhirConfig {
                system_base: "http://127.0.0.1".into(),
                conditional_patient_reference: false,
            },
            log_format: LogFormat::Text,
        }
    }
}

impl Config {
    /// Turns on email through the given server.
    pub fn email_settings(&mut self, settings: SmtpSettings) {
        self.email = Some(settings);
        self.policy.email = true;
    }

    /// Turns on delivery to the patient record at the given FHIR server (another one, when
    /// called again).
    pub fn record_server(&mut self, base_url: &str, authorization: Option<&str>) {
        let name = if self.record.is_empty() {
            "record".to_string()
        } else {
            format!("record-{}", self.record.len() + 1)
        };
        self.policy.records.push(name.clone());
        self.record.push(RecordConfig {
            name,
            base_url: base_url.trim_end_matches('/').to_string(),
            authorization: authorization.map(str::to_string),
            timeout: Duration::from_secs(5),
        });
    }
}

/// A cron expression with a seconds field, e.g. `*/5 * * * * *`.
pub fn parse_schedule(text: &str) -> Result<cron::Schedule, String> {
    use std::str::FromStr;
    if text.split_whitespace().count() < 6 {
        return Err(format!(
            "{text:?} needs six fields, seconds first (e.g. \"*/5 * * * * *\" for every 5 seconds)"
        ));
    }
    cron::Schedule::from_str(text).map_err(|e| format!("{text:?} is not a cron schedule: {e}"))
}

/// A secret kept in a file of its own (e.g. a container secret), trimmed.
fn secret_file(path: &Path, from: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{from}: {} cannot be read: {e}", path.display())))?;
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(ConfigError(format!("{from}: {} is empty", path.display())));
    }
    Ok(text)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "config file {}: cannot be read: {e}",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        let mut msg = e.message().to_string();
        // "invalid type: integer `123`, expected a string": the value may be a password.
        if let Some((head, tail)) = msg.split_once(", expected") {
            if head.starts_with("invalid") {
                let kind = head.split(['`', '"']).next().unwrap_or(head).trim();
                msg = format!("{kind}, expected{tail}");
            }
        }
        // A wrong type names no key: name the key on its line (not the value, which may be
        // a secret).
        let place = e
            .span()
            .filter(|s| s.start < text.len())
            .map(|s| {
                let line_no = text[..s.start].matches('\n').count() + 1;
                let line = text.lines().nth(line_no - 1).unwrap_or_default();
                let key = line.split('=').next().unwrap_or_default().trim();
                format!(" (line {line_no}: {key})")
            })
            .unwrap_or_default();
        ConfigError(format!("config file {}: {msg}{place}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_pick_the_backend_from_the_scheme() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://x.db"),
            Ok(DatabaseUrl::Sqlite("x.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("data/x.db"),
            Ok(DatabaseUrl::Sqlite("data/x.db".into()))
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(DatabaseUrl::parse("mysql://h/db")
            .unwrap_err()
            .contains("mysql"));
        assert!(DatabaseUrl::parse(":memory:").is_err());
    }

    fn load_file(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bleepless.toml");
        std::fs::write(
            &path,
            text.replace("DIR", &dir.path().display().to_string()),
        )
        .unwrap();
        let vapid = crate::outbox::push::generate_vapid_keys();
        std::fs::write(dir.path().join("vapid.key"), &vapid.private_key).unwrap();
        std::fs::write(dir.path().join("short.secret"), "too short\n").unwrap();
        std::fs::write(
            dir.path().join("link.secret"),
            "0123456789abcdef0123456789abcdef-link\n",
        )
        .unwrap();
        let config = Config::load(&Overrides {
            config_file: Some(path),
            ..Overrides::default()
        });
        if let Ok(c) = &config {
            if let Some((private, public)) = &c.push.vapid {
                assert_eq!((private, public), (&vapid.private_key, &vapid.public_key));
            }
        }
        config
    }

    #[test]
    fn secrets_come_from_their_own_files() {
        let c = load_file(
            "[push]\nvapid_private_key_file = \"DIR/vapid.key\"\n\
             [security]\nlink_secret_file = \"DIR/link.secret\"\n",
        )
        .unwrap();
        assert!(c.push.vapid.is_some(), "the public key is derived");
        assert_eq!(
            c.security.link_secret.as_deref(),
            Some(&b"0123456789abcdef0123456789abcdef-link"[..])
        );
        for (text, says) in [
            (
                "[security]\nlink_secret_file = \"DIR/short.secret\"\n",
                "at least 32",
            ),
            (
                "[security]\nlink_secret_file = \"DIR/missing\"\n",
                "cannot be read",
            ),
            (
                "[push]\nvapid_private_key_file = \"DIR/link.secret\"\n",
                "not a VAPID private key",
            ),
            (
                "[push]\nallowed_hosts = [\"https://x/\"]\n",
                "allowed_hosts",
            ),
            (
                "[push]\nallow_endpoints = [\"localhost\"]\n",
                "allow_endpoints",
            ),
            ("[security]\nlockout_minutes = 0\n", "lockout_minutes"),
        ] {
            let e = load_file(text).unwrap_err().0;
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn redacts_passwords() {
        let u = DatabaseUrl::parse("postgres://bob:secret@db:5432/x").unwrap();
        assert_eq!(u.redacted(), "postgres://bob@db:5432/x");
    }
}
