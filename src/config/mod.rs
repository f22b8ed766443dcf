//! One typed configuration, from a TOML file, the environment and the command line (in
//! rising order of precedence), validated before anything starts.
mod describe;
mod file;
mod oidc;
mod sections;
mod text;

use crate::domain::task::Policy;
use crate::outbox::email::SmtpSettings;
use crate::outbox::endpoints::EndpointPolicy;
pub use crate::outbox::record::{FhirConfig, RecordConfig};
pub use crate::outbox::text::TextConfig;
pub use crate::outbox::worker::DispatchConfig;
pub use crate::store::DatabaseUrl;
use file::FileConfig;
pub use oidc::{AuthConfig, MatchOn, OidcConfig, CALLBACK_PATH};
use sections::Source;
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
    /// No text message is sent or queued when absent.
    pub text: Option<TextConfig>,
    pub dispatch: DispatchConfig,
    pub health: HealthConfig,
    /// The patient-record FHIR servers every task is delivered to; nothing is sent or
    /// queued when there are none.
    pub record: Vec<RecordConfig>,
    pub security: SecurityConfig,
    pub fhir: FhirConfig,
    /// `/metrics` answers only when a token is set, and only to a scraper that sends it.
    pub metrics: MetricsConfig,
    /// How log lines are written to standard error.
    pub log_format: LogFormat,
    /// Sign-in with the trust's identity provider, when configured.
    pub oidc: Option<OidcConfig>,
    /// Passwords on or off; personal API tokens' default lifetime.
    pub auth: AuthConfig,
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
    /// Encryption key pairs made ahead while the machine is idle, for a burst of pushes.
    pub keys_ahead: usize,
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

/// The Prometheus endpoint's own bearer token (`[metrics] token` or
/// `BLEEPLESS_METRICS_TOKEN`); `/metrics` is off when it is unset.
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    pub token: Option<String>,
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
            Some(p) => file::read_file(p)?,
            None => FileConfig::default(),
        };
        let src = &Source(file_path);

        let bind = sections::bind(o, file.bind, src)?;
        let database = sections::database(o, file.database_url, src)?;
        let public_url = sections::public_url(file.public_url, bind)?;
        let pool_size = sections::pool_size(file.pool_size, src)?;
        let escalation = file.escalation.unwrap_or_default();
        let ack_seconds = sections::ack_seconds(escalation.ack_seconds, src)?;
        let schedule = sections::schedule(escalation.schedule, src)?;
        let push = sections::push(file.push.unwrap_or_default(), src)?;
        let email = sections::email(file.email, src)?;
        let text = text::text(file.text, src)?;
        let dispatch = sections::dispatch(file.dispatch.unwrap_or_default(), src)?;
        let record = sections::records(file.record, file.records, src)?;
        sections::lease_outlasts_sends(
            &dispatch,
            &push,
            email.as_ref(),
            text.as_ref(),
            &record,
            src,
        )?;
        let security = sections::security(file.security.unwrap_or_default(), src)?;
        let log_format = sections::log_format(file.log_format, src)?;
        let fhir = sections::fhir(file.fhir.unwrap_or_default(), &public_url, src)?;
        let health = sections::health(file.health, src)?;
        let metrics = sections::metrics(file.metrics.unwrap_or_default(), src)?;
        let zone = sections::zone(file.time_zone, src)?;
        let oidc = oidc::oidc(file.oidc, &public_url, src)?;
        let auth = oidc::auth(file.auth, oidc.as_ref(), src)?;

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
                text_after: text.as_ref().map(|t| t.after).unwrap_or_default(),
                zone,
            },
            schedule,
            push,
            email,
            text,
            dispatch,
            health,
            record,
            security,
            fhir,
            metrics,
            log_format,
            oidc,
            auth,
        })
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
                // A few, so that tests send with pairs made ahead and made as needed.
                keys_ahead: 4,
            },
            email: None,
            text: None,
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
            metrics: MetricsConfig::default(),
            log_format: LogFormat::Text,
            oidc: None,
            auth: AuthConfig::default(),
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
            ("[push]\nkeys_ahead = 100001\n", "push.keys_ahead"),
            ("[security]\nlockout_minutes = 0\n", "lockout_minutes"),
            ("[metrics]\ntoken = \"short\"\n", "metrics.token"),
        ] {
            let e = load_file(text).unwrap_err().0;
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    /// A row written leased is sent while at least half its lease is left, and its outcome
    /// may wait a second to be written, so the lease must outlast two of the slowest sends
    /// and a second.
    #[test]
    fn the_lease_outlasts_twice_the_slowest_send_and_a_second() {
        let push = "[push]\ntimeout_seconds = 10\n";
        assert!(load_file(&format!("{push}[dispatch]\nlease_seconds = 22\n")).is_ok());
        let ahead = load_file("[push]\nkeys_ahead = 0\n").unwrap();
        assert_eq!(ahead.push.keys_ahead, 0);
        let e = load_file(&format!("{push}[dispatch]\nlease_seconds = 21\n"))
            .unwrap_err()
            .0;
        assert!(
            e.contains("dispatch")
                && e.contains("more than 21 s: twice the slowest send (10 s, the push timeout)")
                && e.contains("the 1 s an outcome may wait"),
            "{e}"
        );
        // A record server's and a text provider's timeouts count too.
        let record =
            "[records.gp]\nbase_url = \"https://fhir.example.nhs.uk\"\ntimeout_seconds = 40\n";
        let e = load_file(&format!("{record}[dispatch]\nlease_seconds = 81\n"))
            .unwrap_err()
            .0;
        assert!(e.contains("(40 s, the gp timeout)"), "{e}");
        assert!(load_file(&format!("{record}[dispatch]\nlease_seconds = 82\n")).is_ok());
        let text = "[text]\nprovider = \"twilio\"\naccount_sid = \"AC1\"\n\
             auth_token_file = \"DIR/link.secret\"\nfrom = \"Bleepless\"\ntimeout_seconds = 60\nafter_seconds = { stat = 60 }\n";
        let e = load_file(&format!("{text}[dispatch]\nlease_seconds = 121\n"))
            .unwrap_err()
            .0;
        assert!(e.contains("(60 s, the text timeout)"), "{e}");
    }

    #[test]
    fn oidc_and_auth_are_checked_naming_the_key_and_the_secret_is_hidden() {
        let good = "[oidc]\nname = \"NHS CIS2\"\n\
             issuer = \"https://am.nhsint.auth-ptl.cis2.spineservices.nhs.uk:443/openam/oauth2/realms/root/realms/NHSIdentity/realms/Healthcare\"\n\
             client_id = \"bleepless\"\nclient_secret_file = \"DIR/link.secret\"\n\
             scopes = [\"openid\", \"profile\", \"email\", \"nhsperson\"]\n\
             claim = \"uid\"\nmatch_on = \"sds_user_id\"\n\
             permissions_claim = \"roles\"\npermissions = { \"Bleepless.Admin\" = \"admin\" }\n\
             [auth]\npasswords = false\ntoken_days = 30\n";
        let c = load_file(good).unwrap();
        let o = c.oidc.as_ref().unwrap();
        assert_eq!(o.match_on, MatchOn::SdsUserId);
        assert_eq!(o.redirect_url, "http://127.0.0.1:8080/login/oidc/callback");
        assert!(!c.auth.passwords);
        let described = c.describe();
        assert!(
            described.contains("client_secret = \"(hidden)\""),
            "{described}"
        );
        assert!(!described.contains("0123456789abcdef"), "{described}");
        assert!(described.contains("claim = \"uid\""), "{described}");
        for (text, says) in [
            ("[oidc]\nclient_id = \"x\"\n", "oidc.issuer"),
            ("[oidc]\nissuer = \"http://idp.example\"\nclient_id = \"x\"\n", "https://"),
            ("[oidc]\nissuer = \"https://idp.example\"\n", "oidc.client_id"),
            (
                "[oidc]\nissuer = \"https://idp.example\"\nclient_id = \"x\"\nscopes = [\"email\"]\n",
                "openid",
            ),
            (
                "[oidc]\nissuer = \"https://idp.example\"\nclient_id = \"x\"\nmatch_on = \"name\"\n",
                "oidc.match_on",
            ),
            (
                "[oidc]\nissuer = \"https://idp.example\"\nclient_id = \"x\"\npermissions_claim = \"r\"\npermissions = { a = \"surgeon\" }\n",
                "oidc.permissions",
            ),
            (
                "[oidc]\nissuer = \"https://idp.example\"\nclient_id = \"x\"\nclient_secret_file = \"DIR/missing\"\n",
                "oidc.client_secret_file",
            ),
            ("[oidc]\nissuer = \"https://idp.example\"\nclient_id = \"x\"\ncolour = 1\n", "colour"),
            ("[auth]\npasswords = false\n", "auth.passwords"),
            ("[auth]\ntoken_days = 0\n", "auth.token_days"),
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
