//! `/metrics` in the Prometheus text exposition format (version 0.0.4), behind a bearer
//! token of its own. The figures are read from the database at scrape time (the same on
//! every instance) and from this instance's request timings.
use super::AppState;
use crate::domain::delivery::{Delivery, Kind};
use crate::domain::Priority;
use crate::error::{AppError, AppResult};
use crate::store::metrics::{self, Readings, WAITING};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

/// Upper bounds of the time-to-acknowledge buckets, in seconds.
const ACK_BUCKETS: &[f64] = &[
    15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
];
/// Upper bounds of the request-duration buckets, in seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counts per bucket (not yet cumulative), the sum and the count.
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Histogram {
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, bounds: &[f64], v: f64) {
        if let Some(i) = bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// The `_bucket`, `_sum` and `_count` lines, with `labels` (already rendered) first.
    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let mut cumulative = 0;
        for (b, n) in bounds.iter().zip(&self.counts) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// Request durations by (route pattern, method, status class), since this instance started.
#[derive(Debug, Default)]
pub struct RequestTimings(Mutex<BTreeMap<(String, String, String), Histogram>>);

impl RequestTimings {
    fn observe(&self, route: String, method: String, class: String, seconds: f64) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((route, method, class))
            .or_insert_with(|| Histogram::new(HTTP_BUCKETS))
            .observe(HTTP_BUCKETS, seconds);
    }

    fn render(&self, out: &mut String) {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let name = "bleepless_http_request_duration_seconds";
        header_lines(out, name, "histogram", "Time to answer a request, by route pattern (never the path itself), method and status class, since this instance started.");
        for ((route, method, class), h) in &map {
            let labels = format!(
                "route=\"{}\",method=\"{}\",status=\"{}\"",
                escape(route),
                escape(method),
                escape(class)
            );
            h.render(out, name, &labels, HTTP_BUCKETS);
        }
    }
}

/// Middleware: times every request under the route pattern it matched (`/api/v1/tasks/{id}`),
/// never its path, which may carry a token or an NHS number.
pub async fn measure(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let timings = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.request_timings.clone());
    let method = req.method().as_str().to_string();
    let res = next.call(req).await;
    if let Some(timings) = timings {
        let (route, status) = match &res {
            Ok(r) => (r.request().match_pattern(), r.status().as_u16()),
            Err(e) => (None, e.as_response_error().status_code().as_u16()),
        };
        let route = route.map_or_else(|| "(no route)".to_string(), |r| colon_params(&r));
        let class = format!("{}xx", status / 100);
        timings.observe(route, method, class, started.elapsed().as_secs_f64());
    }
    res
}

/// `/api/v1/tasks/{id}` as `/api/v1/tasks/:id`: braces are legal in a label value, but
/// simple text parsers (and people's regular expressions) split the sample at them.
fn colon_params(pattern: &str) -> String {
    pattern
        .split('/')
        .map(
            |part| match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => format!(":{}", name.split(':').next().unwrap_or(name)),
                None => part.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn authorize(req: &HttpRequest, state: &AppState) -> AppResult<()> {
    let Some(token) = &state.config.metrics.token else {
        return Err(AppError::NotFound(
            "metrics are off: set a token under [metrics] in the configuration file (or \
             BLEEPLESS_METRICS_TOKEN) and scrape with Authorization: Bearer <token>"
                .into(),
        ));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().as_bytes().to_vec())
        .unwrap_or_default();
    if same(&given, token.as_bytes()) {
        Ok(())
    } else {
        Err(AppError::Unauthorized(
            "/metrics needs Authorization: Bearer with the metrics token".into(),
        ))
    }
}

/// `GET /metrics`: Prometheus text exposition of this instance and the shared database.
#[utoipa::path(get, path = "/metrics", tag = "service",
    security(("metrics_token" = [])),
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 404, description = "Metrics are off: no token is configured", body = crate::web::errors::ErrorBody),
    ))]
pub async fn scrape(req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    authorize(&req, &state)?;
    let now = state.clock.now();
    let readings = state.store.read(move |c| metrics::read(c, now)).await?;
    let period = super::api::tick_period(&state.config.schedule, now);
    let mut out = render(&readings, now, period);
    let took = *state
        .app
        .last_tick_took
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(took) = took {
        sample(&mut out, "bleepless_tick_duration_seconds", "gauge", "How long this instance's last escalation tick took (auditor, escalations, heartbeat row), in real time.", took.as_secs_f64());
    }
    let foreseen = state
        .app
        .foreseen
        .load(std::sync::atomic::Ordering::Relaxed);
    sample(&mut out, "bleepless_push_foreseen", "gauge", "Pushes this instance's next escalation tick will send if nobody acknowledges first, foreseen after its last tick; their encryption's key agreements are made ahead while the machine is idle.", foreseen);
    state.request_timings.render(&mut out);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out))
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header_lines(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header_lines(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// The database's figures as exposition text.
pub fn render(r: &Readings, now: DateTime<Utc>, tick_period: chrono::Duration) -> String {
    let mut out = String::new();
    render_acks(&mut out, r);
    sample(&mut out, "bleepless_escalations_total", "counter", "Escalations (a task passed to the next role because nobody acknowledged it in time), ever.", r.escalations);
    sample(
        &mut out,
        "bleepless_escalations_repaired_total",
        "counter",
        "Tasks whose lost escalation the auditor put back, ever.",
        r.repairs,
    );
    render_deliveries(&mut out, r);
    let waiting: i64 = r
        .deliveries
        .iter()
        .filter(|(_, s, _)| WAITING.iter().any(|w| w.code() == s))
        .map(|(_, _, n)| n)
        .sum();
    sample(
        &mut out,
        "bleepless_outbox_depth",
        "gauge",
        "Deliveries waiting to be sent (pending, failing or being sent).",
        waiting,
    );
    let oldest = r.oldest_due.map_or(0, |at| (now - at).num_seconds().max(0));
    sample(
        &mut out,
        "bleepless_outbox_oldest_due_age_seconds",
        "gauge",
        "How long the longest-waiting delivery has been due (0 when none waits).",
        oldest,
    );
    let period = tick_period.num_seconds();
    sample(
        &mut out,
        "bleepless_tick_period_seconds",
        "gauge",
        "How often the escalation tick is scheduled to run.",
        period,
    );
    if let Some(at) = r.last_tick {
        let age = (now - at).num_seconds().max(0);
        sample(
            &mut out,
            "bleepless_tick_last_run_age_seconds",
            "gauge",
            "Time since the escalation tick last ran on any instance.",
            age,
        );
        sample(&mut out, "bleepless_tick_lag_seconds", "gauge", "How far the escalation tick is behind its schedule (time since its last run beyond one period).", (age - period).max(0));
    }
    out
}

fn render_acks(out: &mut String, r: &Readings) {
    let name = "bleepless_time_to_acknowledge_seconds";
    header_lines(out, name, "histogram", "Time from raising a task to its acknowledgement, by priority and ward, over the tasks acknowledged in the last 24 hours (a window, not a running count).");
    let mut by: BTreeMap<(usize, &str, &str), Histogram> = BTreeMap::new();
    for (priority, ward, seconds) in &r.acknowledgements {
        let rank = Priority::ALL
            .iter()
            .position(|p| p.code() == priority)
            .unwrap_or(usize::MAX);
        by.entry((rank, priority, ward))
            .or_insert_with(|| Histogram::new(ACK_BUCKETS))
            .observe(ACK_BUCKETS, *seconds as f64);
    }
    for ((_, priority, ward), h) in &by {
        let labels = format!(
            "priority=\"{}\",ward=\"{}\"",
            escape(priority),
            escape(ward)
        );
        h.render(out, name, &labels, ACK_BUCKETS);
    }
}

/// Every kind and status, zero when there are no such rows, so that each series exists.
fn render_deliveries(out: &mut String, r: &Readings) {
    let name = "bleepless_deliveries";
    header_lines(out, name, "gauge", "Outbox rows (push, email, record deliveries) by kind and status: pending, sending, sent, failing (still retried), failed, cancelled.");
    let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
    for k in Kind::ALL {
        for s in Delivery::ALL {
            counts.insert((k.code().into(), s.code().into()), 0);
        }
    }
    for (k, s, n) in &r.deliveries {
        counts.insert((k.clone(), s.clone()), *n);
    }
    for ((k, s), n) in &counts {
        let _ = writeln!(
            out,
            "{name}{{kind=\"{}\",status=\"{}\"}} {n}",
            escape(k),
            escape(s)
        );
    }
}
