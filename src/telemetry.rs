//! Logging, set up the same way by the binary and the tests. Capability secrets never reach
//! the log: request lines name an acknowledge link's path without its token, our own
//! messages never carry a push endpoint, and the web-push crate (which logs whole requests,
//! endpoint URL and signed VAPID `Authorization` header included, at debug and trace) is
//! held to warnings whatever `RUST_LOG` asks for.
use std::borrow::Cow;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// Crates whose debug output carries secrets we hand them.
const SECRET_CARRIERS: &[&str] = &["web_push"];

fn may_log(meta: &Metadata<'_>) -> bool {
    let carrier = SECRET_CARRIERS
        .iter()
        .any(|c| meta.target() == *c || meta.target().starts_with(&format!("{c}::")));
    !(carrier && *meta.level() > Level::WARN)
}

/// Installs the global subscriber: `directives` as in `RUST_LOG` (default `info`), lines to
/// `writer`. Also routes the `log` crate's records (actix, web-push) through the same
/// filter. Fails if a subscriber is already installed.
pub fn init<W>(directives: Option<&str>, writer: W) -> Result<(), String>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = directives
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_filter(filter_fn(may_log)),
        )
        .try_init()
        .map_err(|e| e.to_string())
}

/// Paths whose last segment is a capability (whoever holds it may act): logged without it.
const CAPABILITY_PATHS: &[&str] = &["/ack/"];

/// A request path as it may be logged.
pub fn loggable_path(path: &str) -> Cow<'_, str> {
    for prefix in CAPABILITY_PATHS {
        if let Some(rest) = path.strip_prefix(prefix) {
            if !rest.is_empty() {
                return Cow::Owned(format!("{prefix}{{token}}"));
            }
        }
    }
    Cow::Borrowed(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledge_tokens_are_not_logged() {
        assert_eq!(loggable_path("/ack/abc.def"), "/ack/{token}");
        assert_eq!(loggable_path("/ack/abc/def"), "/ack/{token}");
        assert_eq!(loggable_path("/api/v1/tasks"), "/api/v1/tasks");
    }
}
