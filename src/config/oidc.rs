//! `[oidc]`: signing in with the trust's identity provider (OpenID Connect: NHS CIS2
//! Authentication, Microsoft Entra ID), and `[auth]`: whether passwords are still accepted
//! and how long a new personal API token lasts.
use super::sections::Source;
use super::{env, secret_file, ConfigError};
use crate::domain::Permission;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The environment variable that may hold the client secret instead of a file.
pub const CLIENT_SECRET_VAR: &str = "BLEEPLESS_OIDC_CLIENT_SECRET";

/// Where the provider sends the browser back to, under the redirect base URL.
pub const CALLBACK_PATH: &str = "/login/oidc/callback";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileOidc {
    name: Option<String>,
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret_file: Option<PathBuf>,
    scopes: Option<Vec<String>>,
    redirect_base_url: Option<String>,
    claim: Option<String>,
    match_on: Option<String>,
    name_claim: Option<String>,
    permissions_claim: Option<String>,
    #[serde(default)]
    permissions: BTreeMap<String, String>,
    create_unknown: Option<bool>,
    timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAuth {
    passwords: Option<bool>,
    token_days: Option<u32>,
}

/// Which field of the staff record the identifying claim is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOn {
    Email,
    /// The Spine Directory Service user id (CIS2's `uid`), `bleepless staff identify`.
    SdsUserId,
}

impl MatchOn {
    pub fn code(self) -> &'static str {
        match self {
            MatchOn::Email => "email",
            MatchOn::SdsUserId => "sds_user_id",
        }
    }
}

#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// Shown on the button: "Sign in with <name>".
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// From `client_secret_file` or `BLEEPLESS_OIDC_CLIENT_SECRET`; none for a public client.
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    /// The full callback URL registered with the provider.
    pub redirect_url: String,
    /// Where the provider may send a browser after signing out there.
    pub post_logout_url: String,
    /// The claim that identifies a person on their first sign-in.
    pub claim: String,
    pub match_on: MatchOn,
    /// The claim that holds a person's name, for a record made on first sign-in.
    pub name_claim: String,
    /// A claim whose values map to permissions; when set, it decides them at each sign-in.
    pub permissions_claim: Option<String>,
    pub permission_map: Vec<(String, Permission)>,
    /// Whether a person with no staff record gets one (with no permissions) on first sign-in.
    pub create_unknown: bool,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Whether the email and password form signs anyone in.
    pub passwords: bool,
    /// How long a new personal API token lasts unless its owner asks for less.
    pub token_days: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            passwords: true,
            token_days: 90,
        }
    }
}

/// An http(s) URL; plain http only to this machine (a provider run for tests).
fn url(value: &str, key: &str, src: &Source) -> Result<String, ConfigError> {
    let v = value.trim().trim_end_matches('/');
    let local = v.starts_with("http://127.0.0.1") || v.starts_with("http://localhost");
    if !(v.starts_with("https://") || local) || v.contains(char::is_whitespace) {
        return Err(ConfigError(format!(
            "{}: {v:?} must be an https:// URL",
            src.key(key)
        )));
    }
    Ok(v.to_string())
}

fn required(v: Option<String>, key: &str, what: &str, src: &Source) -> Result<String, ConfigError> {
    v.map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConfigError(format!("{}: missing; give {what}", src.key(key))))
}

pub(super) fn oidc(
    file: Option<FileOidc>,
    public_url: &str,
    src: &Source,
) -> Result<Option<OidcConfig>, ConfigError> {
    let Some(f) = file else {
        return Ok(None);
    };
    let issuer = required(f.issuer, "oidc.issuer", "the provider's issuer URL", src)?;
    let issuer = url(&issuer, "oidc.issuer", src)?;
    let client_id = required(
        f.client_id,
        "oidc.client_id",
        "the client id the provider gave this service",
        src,
    )?;
    let client_secret = match (env(CLIENT_SECRET_VAR), &f.client_secret_file) {
        (Some(s), _) => Some(s),
        (None, Some(path)) => Some(secret_file(path, &src.key("oidc.client_secret_file"))?),
        (None, None) => None,
    };
    let scopes = f
        .scopes
        .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        return Err(ConfigError(format!(
            "{}: must include \"openid\"",
            src.key("oidc.scopes")
        )));
    }
    if let Some(bad) = scopes
        .iter()
        .find(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        return Err(ConfigError(format!(
            "{}: {bad:?} is not a scope (one word each)",
            src.key("oidc.scopes")
        )));
    }
    let base = match f.redirect_base_url {
        Some(b) => url(&b, "oidc.redirect_base_url", src)?,
        None => public_url.trim_end_matches('/').to_string(),
    };
    let match_on = match f.match_on.as_deref().map(str::trim) {
        None | Some("email") => MatchOn::Email,
        Some("sds_user_id") => MatchOn::SdsUserId,
        Some(other) => {
            return Err(ConfigError(format!(
                "{}: {other:?} is not one of email, sds_user_id",
                src.key("oidc.match_on")
            )))
        }
    };
    let mut permission_map = Vec::new();
    for (value, permission) in &f.permissions {
        let p = Permission::parse(permission.trim()).map_err(|why| {
            ConfigError(format!("{}: {value:?}: {why}", src.key("oidc.permissions")))
        })?;
        permission_map.push((value.clone(), p));
    }
    if !permission_map.is_empty() && f.permissions_claim.is_none() {
        return Err(ConfigError(format!(
            "{}: give permissions_claim, the claim whose values these map",
            src.key("oidc.permissions")
        )));
    }
    let timeout = f.timeout_seconds.unwrap_or(10);
    if !(1..=120).contains(&timeout) {
        return Err(ConfigError(format!(
            "{}: {timeout} is out of range (1 to 120)",
            src.key("oidc.timeout_seconds")
        )));
    }
    Ok(Some(OidcConfig {
        name: f
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "your organisation's account".into()),
        issuer,
        client_id,
        client_secret,
        scopes,
        redirect_url: format!("{base}{CALLBACK_PATH}"),
        post_logout_url: format!("{base}/login"),
        claim: f
            .claim
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| "email".into()),
        match_on,
        name_claim: f.name_claim.unwrap_or_else(|| "name".into()),
        permissions_claim: f.permissions_claim.filter(|c| !c.trim().is_empty()),
        permission_map,
        create_unknown: f.create_unknown.unwrap_or(false),
        timeout: Duration::from_secs(timeout),
    }))
}

pub(super) fn auth(
    file: Option<FileAuth>,
    oidc: Option<&OidcConfig>,
    src: &Source,
) -> Result<AuthConfig, ConfigError> {
    let f = file.unwrap_or_default();
    let passwords = f.passwords.unwrap_or(true);
    if !passwords && oidc.is_none() {
        return Err(ConfigError(format!(
            "{}: with passwords off, nobody could sign in: configure [oidc] too",
            src.key("auth.passwords")
        )));
    }
    let token_days = f.token_days.unwrap_or(90);
    if !(1..=366).contains(&token_days) {
        return Err(ConfigError(format!(
            "{}: {token_days} is out of range (1 to 366)",
            src.key("auth.token_days")
        )));
    }
    Ok(AuthConfig {
        passwords,
        token_days,
    })
}
