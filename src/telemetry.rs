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
    init_as(directives, writer, false)
}

/// [`init`], with `json` lines (one object a line, the event's fields at the top level)
/// for log shippers instead of text.
pub fn init_as<W>(directives: Option<&str>, writer: W, json: bool) -> Result<(), String>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = directives
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer().with_writer(writer);
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry
            .with(
                lines
                    .json()
                    .flatten_event(true)
                    .with_filter(filter_fn(may_log)),
            )
            .try_init()
    } else {
        registry
            .with(lines.with_filter(filter_fn(may_log)))
            .try_init()
    }
    .map_err(|e| e.to_string())
}

/// Paths whose last segment is a capability (whoever holds it may act): logged without it.
const CAPABILITY_PATHS: &[&str] = &["/ack/"];

/// A request path as it may be logged: a capability token replaced by `{token}`, and any
/// run of exactly ten digits (an NHS number a client put in a path) by `{number}`.
pub fn loggable_path(path: &str) -> Cow<'_, str> {
    for prefix in CAPABILITY_PATHS {
        if let Some(rest) = path.strip_prefix(prefix) {
            if !rest.is_empty() {
                return Cow::Owned(format!("{prefix}{{token}}"));
            }
        }
    }
    if !has_ten_digit_run(path) {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() == 10 {
            out.push_str("{number}");
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in path.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    Cow::Owned(out)
}

fn has_ten_digit_run(path: &str) -> bool {
    path.split(|c: char| !c.is_ascii_digit())
        .any(|run| run.len() == 10)
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

    #[test]
    fn a_ten_digit_number_in_a_path_is_not_logged() {
        assert_eq!(
            loggable_path("/fhir/Patient/9990000018/x"),
            "/fhir/Patient/{number}/x"
        );
        assert_eq!(loggable_path("/x/99900000181"), "/x/99900000181");
        assert_eq!(loggable_path("/x/999000001"), "/x/999000001");
    }
}
