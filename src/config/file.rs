//! The TOML file as written: every key optional unless a section needs it, unknown keys
//! refused.
use super::ConfigError;
use crate::domain::task::AckTargets;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) bind: Option<String>,
    pub(super) database_url: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) pool_size: Option<u32>,
    pub(super) log_format: Option<String>,
    /// The hospital's time zone (IANA name): rotas are written and shown in it.
    pub(super) time_zone: Option<String>,
    pub(super) escalation: Option<FileEscalation>,
    pub(super) push: Option<FilePush>,
    pub(super) email: Option<FileEmail>,
    pub(super) dispatch: Option<FileDispatch>,
    pub(super) health: Option<FileHealth>,
    pub(super) record: Option<FileRecord>,
    /// More record servers, by name: `[records.shared-care]`.
    #[serde(default)]
    pub(super) records: std::collections::BTreeMap<String, FileRecord>,
    pub(super) security: Option<FileSecurity>,
    pub(super) fhir: Option<FileFhir>,
    pub(super) metrics: Option<FileMetrics>,
    pub(super) text: Option<super::text::FileText>,
    pub(super) oidc: Option<super::oidc::FileOidc>,
    pub(super) auth: Option<super::oidc::FileAuth>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileMetrics {
    pub(super) token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSecurity {
    pub(super) link_secret_file: Option<PathBuf>,
    pub(super) sign_in_failures_per_account: Option<i32>,
    pub(super) sign_in_failures_per_address: Option<i32>,
    pub(super) lockout_minutes: Option<u64>,
    pub(super) session_idle_minutes: Option<u64>,
    pub(super) trust_proxy_headers: Option<bool>,
    pub(super) body_timeout_seconds: Option<u64>,
    pub(super) max_devices_per_person: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileFhir {
    pub(super) system_base: Option<String>,
    pub(super) conditional_patient_reference: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRecord {
    pub(super) base_url: String,
    pub(super) authorization: Option<String>,
    pub(super) timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileEscalation {
    pub(super) schedule: Option<String>,
    pub(super) fallback_role: Option<String>,
    pub(super) ack_seconds: Option<AckTargets>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilePush {
    pub(super) subject: Option<String>,
    pub(super) vapid_private_key: Option<String>,
    pub(super) vapid_public_key: Option<String>,
    pub(super) vapid_private_key_file: Option<PathBuf>,
    pub(super) timeout_seconds: Option<u64>,
    pub(super) allowed_hosts: Option<Vec<String>>,
    pub(super) allow_endpoints: Option<Vec<String>>,
    pub(super) keys_ahead: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileEmail {
    pub(super) host: String,
    pub(super) port: Option<u16>,
    pub(super) security: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) from: String,
    pub(super) timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDispatch {
    pub(super) batch: Option<i64>,
    pub(super) max_attempts: Option<i32>,
    pub(super) backoff_base_seconds: Option<u64>,
    pub(super) backoff_max_seconds: Option<u64>,
    pub(super) lease_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHealth {
    pub(super) heartbeat_url: Option<String>,
    pub(super) max_due_age_seconds: Option<u64>,
}

pub(super) fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
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
