//! What `bleepless check-config` prints: the effective configuration as TOML-like lines,
//! a section at a time.
use super::Config;
use crate::outbox::email::SmtpSecurity;

/// A secret shown only as set or not.
fn hidden(v: &Option<String>) -> &'static str {
    if v.is_some() {
        "\"(hidden)\""
    } else {
        "(not set)"
    }
}

impl Config {
    /// The effective configuration as TOML-like lines, for `bleepless check-config`:
    /// passwords, keys and authorization headers are shown only as set or not.
    pub fn describe(&self) -> String {
        let mut out = self.describe_top();
        out.extend(self.describe_push());
        out.extend(self.describe_email());
        out.extend(self.describe_text());
        out.extend(self.describe_dispatch());
        out.extend(self.describe_records());
        out.extend(self.describe_security_and_fhir());
        out.extend(self.describe_sign_in());
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

    /// The top-level keys and `[escalation]`.
    fn describe_top(&self) -> Vec<String> {
        let a = &self.policy.ack_seconds;
        vec![
            format!("bind = {:?}", self.bind.to_string()),
            format!("database_url = {:?}", self.database.redacted()),
            format!("public_url = {:?}", self.public_url),
            format!("pool_size = {}", self.pool_size),
            format!("log_format = {:?}", self.log_format.code()),
            format!("time_zone = {:?}", self.policy.zone.name()),
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
            format!(
                "ack_seconds = {{ stat = {}, asap = {}, urgent = {}, routine = {} }}",
                a.stat, a.asap, a.urgent, a.routine
            ),
        ]
    }

    fn describe_push(&self) -> Vec<String> {
        vec![
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
            format!("keys_ahead = {}", self.push.keys_ahead),
            String::new(),
        ]
    }

    fn describe_email(&self) -> Vec<String> {
        let Some(e) = &self.email else {
            return vec!["# [email] not set: no email is sent".into()];
        };
        vec![
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
        ]
    }

    fn describe_dispatch(&self) -> Vec<String> {
        let d = &self.dispatch;
        vec![
            String::new(),
            "[dispatch]".into(),
            format!("batch = {}", d.batch),
            format!("max_attempts = {}", d.max_attempts),
            format!("backoff_base_seconds = {}", d.backoff_base.as_secs()),
            format!("backoff_max_seconds = {}", d.backoff_max.as_secs()),
            format!("lease_seconds = {}", d.lease.as_secs()),
            String::new(),
        ]
    }

    fn describe_records(&self) -> Vec<String> {
        let mut out = Vec::new();
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
        out
    }

    fn describe_text(&self) -> Vec<String> {
        use crate::outbox::text::{Provider, TwilioSender};
        let Some(t) = &self.text else {
            return vec![String::new(), "# [text] (not set: no text messages)".into()];
        };
        let a = &t.after;
        let secs = |v: Option<u32>| v.map_or("none".to_string(), |s| s.to_string());
        let mut out = vec![
            String::new(),
            "[text]".into(),
            format!("provider = {:?}", t.provider.name()),
            format!("base_url = {:?}", t.base_url),
            format!("timeout_seconds = {}", t.timeout.as_secs()),
            format!(
                "# after_seconds: stat {}, asap {}, urgent {}, routine {}",
                secs(a.stat),
                secs(a.asap),
                secs(a.urgent),
                secs(a.routine)
            ),
        ];
        match &t.provider {
            Provider::Notify { key, template_id } => {
                out.push(format!(
                    "# service id {}; api key \"(hidden)\"",
                    key.service_id
                ));
                out.push(format!("template_id = {template_id:?}"));
            }
            Provider::Twilio {
                account_sid,
                sender,
                ..
            } => {
                out.push(format!("account_sid = {account_sid:?}"));
                out.push("# auth token \"(hidden)\"".into());
                out.push(match sender {
                    TwilioSender::From(n) => format!("from = {n:?}"),
                    TwilioSender::MessagingService(s) => format!("messaging_service_sid = {s:?}"),
                });
            }
        }
        out
    }

    fn describe_security_and_fhir(&self) -> Vec<String> {
        let sec = &self.security;
        vec![
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
            String::new(),
            "[metrics]".into(),
            format!("token = {}", hidden(&self.metrics.token)),
        ]
    }

    fn describe_sign_in(&self) -> Vec<String> {
        let mut out = vec![
            String::new(),
            "[auth]".into(),
            format!("passwords = {}", self.auth.passwords),
            format!("token_days = {}", self.auth.token_days),
            String::new(),
        ];
        let Some(o) = &self.oidc else {
            out.push("# [oidc] not set: no sign-in with an identity provider".into());
            return out;
        };
        let permissions = o
            .permission_map
            .iter()
            .map(|(v, p)| format!("{v:?} = {:?}", p.code()))
            .collect::<Vec<_>>()
            .join(", ");
        out.extend([
            "[oidc]".into(),
            format!("name = {:?}", o.name),
            format!("issuer = {:?}", o.issuer),
            format!("client_id = {:?}", o.client_id),
            format!("client_secret = {}", hidden(&o.client_secret)),
            format!("scopes = {:?}", o.scopes),
            format!("# redirect URL to register: {}", o.redirect_url),
            format!("claim = {:?}", o.claim),
            format!("match_on = {:?}", o.match_on.code()),
            format!("name_claim = {:?}", o.name_claim),
            format!(
                "permissions_claim = {}",
                o.permissions_claim
                    .as_ref()
                    .map(|c| format!("{c:?}"))
                    .unwrap_or_else(|| "(not set)".into())
            ),
            format!("permissions = {{ {permissions} }}"),
            format!("create_unknown = {}", o.create_unknown),
            format!("timeout_seconds = {}", o.timeout.as_secs()),
        ]);
        out
    }
}
