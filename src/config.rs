//! One typed configuration, from a TOML file, the environment and the command line (in
//! rising order of precedence), validated before anything starts.
use crate::domain::task::AckTargets;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.is_empty() {
            return Err("it is empty".into());
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        let path = if let Some(rest) = url.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest
        } else if let Some((scheme, _)) = url.split_once("://") {
            return Err(format!(
                "the scheme {scheme:?} is not supported: use sqlite://PATH, a file path, or postgres://..."
            ));
        } else {
            url
        };
        if path.is_empty() || path == ":memory:" {
            return Err(
                "give a SQLite file path (an in-memory database would lose everything on restart)"
                    .into(),
            );
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
    }

    /// For logs: never print a password.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) => match (u.find("://"), u.rfind('@')) {
                (Some(s), Some(at)) if at > s => {
                    let creds = &u[s + 3..at];
                    let user = creds.split(':').next().unwrap_or("");
                    format!("{}{}@{}", &u[..s + 3], user, &u[at + 1..])
                }
                _ => u.clone(),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub database: DatabaseUrl,
    /// Where people reach the service, for links in email and notifications.
    pub public_url: String,
    pub pool_size: u32,
    pub ack_seconds: AckTargets,
}

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
    escalation: Option<FileEscalation>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEscalation {
    ack_seconds: Option<AckTargets>,
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

        let ack_seconds = file
            .escalation
            .and_then(|e| e.ack_seconds)
            .unwrap_or_default();
        for p in crate::domain::Priority::ALL {
            if ack_seconds.seconds(*p) == 0 {
                return Err(ConfigError(format!(
                    "{}: {p} must be at least 1 second",
                    src("escalation.ack_seconds")
                )));
            }
        }

        Ok(Config {
            bind,
            database,
            public_url,
            pool_size,
            ack_seconds,
        })
    }

    /// A configuration for tests: a given database, port 0, default policies.
    pub fn for_tests(database: DatabaseUrl) -> Config {
        Config {
            bind: "127.0.0.1:0".parse().expect("literal address"),
            database,
            public_url: "http://127.0.0.1".into(),
            pool_size: 8,
            ack_seconds: AckTargets::default(),
        }
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "config file {}: cannot be read: {e}",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        let msg = e.message().to_string();
        ConfigError(format!("config file {}: {msg}", path.display()))
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

    #[test]
    fn redacts_passwords() {
        let u = DatabaseUrl::parse("postgres://bob:secret@db:5432/x").unwrap();
        assert_eq!(u.redacted(), "postgres://bob@db:5432/x");
    }
}
