//! The FHIR R4 REST endpoint under `/fhir` (read-only, JSON), and the record delivery report
//! under `/api/v1/record-deliveries`. Every error from `/fhir` is an OperationOutcome.
use super::mapping::{self, FHIR_JSON};
use crate::domain::NhsNumber;
use crate::error::{AppError, AppResult};
use crate::store::deliveries::{self, RecordStatus};
use crate::store::schema::tasks;
use crate::store::{to_db, DbConnection};
use crate::web::auth::Caller;
use crate::web::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

/// A read-only resource: GET, and an OperationOutcome 405 for any other method.
macro_rules! get {
    ($path:literal, $handler:expr) => {
        web::resource($path)
            .route(web::get().to($handler))
            .default_service(web::to(method_not_allowed))
    };
}

/// Register before the `/api/v1` scope: a scope takes every path under its prefix.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/record-deliveries", web::get().to(list_deliveries))
        .service(
            web::scope("/fhir")
                .service(get!("/metadata", metadata))
                .service(get!("/Task", search_tasks))
                .service(get!("/Task/{id}", read_task))
                .service(get!("/Task/{id}/_history", history))
                .service(get!("/Task/{id}/_history/{vid}", vread))
                .service(get!("/Provenance", search_provenance))
                .service(get!("/Provenance/{id}", read_provenance))
                .service(get!("/CodeSystem/{id}", read_code_system))
                .default_service(web::to(unknown_path)),
        );
}

/// An error answered as an OperationOutcome with its HTTP status.
#[derive(Debug)]
pub struct FhirError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl FhirError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        FhirError {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", message)
    }
}

impl std::fmt::Display for FhirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<AppError> for FhirError {
    fn from(e: AppError) -> Self {
        let code = match &e {
            AppError::BadRequest(_) | AppError::Unprocessable(_) => "invalid",
            AppError::Unauthorized(_) => "login",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not-found",
            AppError::Conflict { .. } => "conflict",
            AppError::PayloadTooLarge(_) => "too-long",
            AppError::UnsupportedMediaType(_) => "not-supported",
            AppError::Unavailable(_) => "transient",
            AppError::TooManyRequests(_) => "throttled",
            AppError::Internal(_) => "exception",
        };
        match &e {
            AppError::Internal(cause) => tracing::error!(%cause, "internal error in /fhir"),
            AppError::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        FhirError::new(e.status_code(), code, e.public_message())
    }
}

impl ResponseError for FhirError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"bleepless\""));
        }
        res.content_type(FHIR_JSON)
            .body(mapping::operation_outcome(self.code, &self.message).to_string())
    }
}

type FhirResult = Result<HttpResponse, FhirError>;

fn fhir_ok(v: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(FHIR_JSON)
        .body(v.to_string())
}

async fn method_not_allowed(req: HttpRequest) -> FhirResult {
    Err(FhirError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "not-supported",
        format!(
            "{} {} is not supported: this FHIR endpoint is read-only (GET)",
            req.method(),
            req.path()
        ),
    ))
}

async fn unknown_path(req: HttpRequest) -> FhirResult {
    Err(FhirError::not_found(format!(
        "{} is not served here; see /fhir/metadata for what is",
        req.path()
    )))
}

/// The query's parameters in order; `_format` is checked and dropped. Without `_format`,
/// the `Accept` header must allow JSON (`_format` overrides `Accept`, as FHIR says).
fn query(req: &HttpRequest) -> Result<Vec<(String, String)>, FhirError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| FhirError::invalid(format!("the query string is not readable: {e}")))?
        .into_inner();
    let mut out = Vec::new();
    let mut format_given = false;
    for (k, v) in pairs {
        if k == "_format" {
            if !matches!(
                v.as_str(),
                "json" | "application/json" | "application/fhir+json"
            ) {
                return Err(FhirError::new(
                    StatusCode::NOT_ACCEPTABLE,
                    "not-supported",
                    format!("_format {v:?} is not supported: only JSON is served"),
                ));
            }
            format_given = true;
            continue;
        }
        out.push((k, v));
    }
    if !format_given {
        accepts_json(req)?;
    }
    Ok(out)
}

/// Media ranges under which we can answer `application/fhir+json`.
const JSON_RANGES: &[&str] = &[
    "*/*",
    "application/*",
    "application/fhir+json",
    "application/json",
    "application/json+fhir",
];

/// A 406 unless the `Accept` header (when given) allows one of [`JSON_RANGES`].
fn accepts_json(req: &HttpRequest) -> Result<(), FhirError> {
    let Some(accept) = req.headers().get(header::ACCEPT) else {
        return Ok(());
    };
    let text = accept.to_str().unwrap_or_default();
    let ok = text.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        !refused && JSON_RANGES.contains(&media.as_str())
    });
    if ok {
        Ok(())
    } else {
        Err(FhirError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-supported",
            format!("Accept: {text:?} is not served: only application/fhir+json (FHIR JSON) is"),
        ))
    }
}

fn no_params(req: &HttpRequest) -> Result<(), FhirError> {
    match query(req)?.first() {
        Some((k, _)) => Err(FhirError::invalid(format!(
            "parameter {k:?} is not supported here"
        ))),
        None => Ok(()),
    }
}

fn path_param(req: &HttpRequest, name: &str) -> String {
    req.match_info().get(name).unwrap_or_default().to_string()
}

async fn load(state: &AppState, id: String) -> Result<super::TaskRecord, FhirError> {
    if !mapping::is_id(&id) {
        return Err(FhirError::not_found(format!("no Task/{id}")));
    }
    let shown = id.clone();
    state
        .store
        .read(move |c| super::load(c, &id))
        .await
        .map_err(|e| match e {
            AppError::NotFound(_) => FhirError::not_found(format!("no Task/{shown}")),
            other => other.into(),
        })
}

async fn metadata(state: web::Data<AppState>, req: HttpRequest) -> FhirResult {
    for (k, v) in query(&req)? {
        match (k.as_str(), v.as_str()) {
            ("mode", "full" | "normal") => {}
            ("mode", other) => {
                return Err(FhirError::invalid(format!(
                    "mode {other:?} is not served: give mode=full or mode=normal (both answer this server's CapabilityStatement; there is no TerminologyCapabilities here)"
                )))
            }
            (other, _) => {
                return Err(FhirError::invalid(format!(
                    "parameter {other:?} is not supported here; metadata takes mode=full or mode=normal"
                )))
            }
        }
    }
    Ok(fhir_ok(&mapping::capability_statement(
        &state.config.public_url,
        state.clock.now(),
    )))
}

/// One of our code systems: public, like the CapabilityStatement (no patient data).
async fn read_code_system(state: web::Data<AppState>, req: HttpRequest) -> FhirResult {
    no_params(&req)?;
    let id = path_param(&req, "id");
    mapping::code_system(&id, &state.config.fhir.system_base)
        .map(|cs| fhir_ok(&cs))
        .ok_or_else(|| {
            FhirError::not_found(format!(
                "no CodeSystem/{id}; ours are {}",
                mapping::CODE_SYSTEMS.join(", ")
            ))
        })
}

async fn read_task(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Result<Caller, AppError>,
) -> FhirResult {
    caller?;
    no_params(&req)?;
    let rec = load(&state, path_param(&req, "id")).await?;
    let version = mapping::current_version(&rec);
    Ok(versioned(
        fhir_ok(&mapping::task(&rec, &state.config.fhir.system_base)),
        version,
        rec.task.updated_at,
    ))
}

/// A version of a resource: its `ETag` (`W/"version"`) and `Last-Modified` (an HTTP-date).
fn versioned(mut res: HttpResponse, version: i32, modified: DateTime<Utc>) -> HttpResponse {
    let headers = [
        (header::ETAG, format!("W/\"{version}\"")),
        (
            header::LAST_MODIFIED,
            modified.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        ),
    ];
    for (name, value) in headers {
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            res.headers_mut().insert(name, v);
        }
    }
    res
}

async fn history(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Result<Caller, AppError>,
) -> FhirResult {
    caller?;
    no_params(&req)?;
    let rec = load(&state, path_param(&req, "id")).await?;
    Ok(fhir_ok(&mapping::history(
        &rec,
        &state.config.fhir.system_base,
        &state.config.public_url,
    )))
}

async fn vread(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Result<Caller, AppError>,
) -> FhirResult {
    caller?;
    no_params(&req)?;
    let id = path_param(&req, "id");
    let vid = path_param(&req, "vid");
    let rec = load(&state, id.clone()).await?;
    vid.parse::<i32>()
        .ok()
        .and_then(|v| {
            let t = mapping::task_version(&rec, v, &state.config.fhir.system_base)?;
            let at = rec.events.iter().find(|e| e.seq == v)?.at;
            Some(versioned(fhir_ok(&t), v, at))
        })
        .ok_or_else(|| FhirError::not_found(format!("Task/{id} has no version {vid:?}")))
}

/// What `owner=` names.
#[derive(Debug, Clone)]
enum Owner {
    Staff(String),
    Role(String),
    Either(String),
}

#[derive(Debug, Clone, Copy)]
enum Bound {
    /// updated_at >= t
    From(NaiveDateTime),
    /// updated_at < t
    Before(NaiveDateTime),
}

#[derive(Debug, Clone, Default)]
struct TaskSearch {
    nhs_number: Option<String>,
    id: Option<String>,
    statuses: Option<Vec<String>>,
    owner: Option<Owner>,
    updated: Vec<Bound>,
    count: i64,
    /// Where this page starts: after the task raised at that time with that id (newest
    /// first). Raising time and id never change, so a task updated during a walk through
    /// the pages is neither skipped nor repeated.
    after: Option<(NaiveDateTime, String)>,
    /// The parameters as given (without _cursor), for the paging links.
    echo: Vec<(String, String)>,
}

/// `_cursor`: the raising time in nanoseconds (as precise as the database keeps it) and the
/// id of the last task of a page.
fn cursor(raised_at: NaiveDateTime, id: &str) -> String {
    let nanos = raised_at
        .and_utc()
        .timestamp_nanos_opt()
        .unwrap_or(i64::MAX);
    format!("{nanos}_{id}")
}

fn parse_cursor(value: &str) -> Result<(NaiveDateTime, String), FhirError> {
    value
        .split_once('_')
        .and_then(|(nanos, id)| {
            let t = DateTime::from_timestamp_nanos(nanos.parse().ok()?);
            mapping::is_id(id).then(|| (t.naive_utc(), id.to_string()))
        })
        .ok_or_else(|| {
            FhirError::invalid(format!(
                "_cursor {value:?} is not one of ours: follow the Bundle's next link"
            ))
        })
}

/// Every search parameter `/fhir/Task` answers; the CapabilityStatement declares each.
pub const TASK_SEARCH_PARAMS: &[&str] = &[
    "patient",
    "subject",
    "identifier",
    "_id",
    "status",
    "owner",
    "_lastUpdated",
    "_count",
    "_cursor",
];

const TASK_STATUSES: &[&str] = &[
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
];

fn parse_nhs(value: &str) -> Result<String, FhirError> {
    NhsNumber::parse(value)
        .map(|n| n.as_str().to_string())
        .map_err(|e| FhirError::invalid(format!("patient: {e}")))
}

/// `_lastUpdated`: an optional prefix, then a date or a dateTime; a partial date is a range.
fn parse_last_updated(value: &str) -> Result<Vec<Bound>, FhirError> {
    let bad = || {
        FhirError::invalid(format!(
            "_lastUpdated {value:?}: give a prefix (eq, gt, ge, lt, le) and a date such as 2026-11-26 or 2026-11-26T02:00:00Z"
        ))
    };
    let (prefix, text) = match value.get(..2) {
        Some(p) if p.bytes().all(|b| b.is_ascii_lowercase()) => (p, &value[2..]),
        _ => ("eq", value),
    };
    let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    let (start, end) = match text.len() {
        4 => {
            let y: i32 = text.parse().map_err(|_| bad())?;
            let s = NaiveDate::from_ymd_opt(y, 1, 1).ok_or_else(bad)?;
            let e = NaiveDate::from_ymd_opt(y + 1, 1, 1).ok_or_else(bad)?;
            (
                s.and_time(Default::default()),
                e.and_time(Default::default()),
            )
        }
        7 => {
            let s = day(&format!("{text}-01")).ok_or_else(bad)?;
            let e = s
                .checked_add_months(chrono::Months::new(1))
                .ok_or_else(bad)?;
            (
                s.and_time(Default::default()),
                e.and_time(Default::default()),
            )
        }
        10 => {
            let s = day(text).ok_or_else(bad)?;
            (
                s.and_time(Default::default()),
                (s + Duration::days(1)).and_time(Default::default()),
            )
        }
        _ => {
            let t = DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| bad())?;
            let step = if text.contains('.') {
                Duration::microseconds(1)
            } else {
                Duration::seconds(1)
            };
            (to_db(t), to_db(t + step))
        }
    };
    Ok(match prefix {
        "eq" => vec![Bound::From(start), Bound::Before(end)],
        "ge" => vec![Bound::From(start)],
        "gt" => vec![Bound::From(end)],
        "lt" => vec![Bound::Before(start)],
        "le" => vec![Bound::Before(end)],
        other => {
            return Err(FhirError::invalid(format!(
                "_lastUpdated: the prefix {other:?} is not supported (use eq, gt, ge, lt or le)"
            )))
        }
    })
}

fn parse_task_search(params: Vec<(String, String)>, base: &str) -> Result<TaskSearch, FhirError> {
    let mut s = TaskSearch {
        count: 20,
        ..TaskSearch::default()
    };
    let mut seen: Vec<String> = Vec::new();
    for (k, v) in params {
        if k != "_lastUpdated" && seen.contains(&k) {
            return Err(FhirError::invalid(format!("give {k} once")));
        }
        seen.push(k.clone());
        let v = v.trim().to_string();
        if v.is_empty() {
            return Err(FhirError::invalid(format!("{k} has no value")));
        }
        match k.as_str() {
            "patient" | "subject" => {
                let n = v.strip_prefix("Patient/").unwrap_or(&v);
                s.nhs_number = Some(parse_nhs(n)?);
            }
            "patient:identifier" | "subject:identifier" => {
                let n = match v.split_once('|') {
                    Some((sys, n)) if sys == mapping::NHS_NUMBER_SYSTEM || sys.is_empty() => n,
                    Some((sys, _)) => {
                        return Err(FhirError::invalid(format!(
                            "{k}: the identifier system must be {} (not {sys:?})",
                            mapping::NHS_NUMBER_SYSTEM
                        )))
                    }
                    None => &v,
                };
                s.nhs_number = Some(parse_nhs(n)?);
            }
            "identifier" | "_id" => {
                let id = match v.split_once('|') {
                    Some((sys, id))
                        if sys.is_empty() || sys == mapping::system(base, "Id/task") =>
                    {
                        id
                    }
                    Some((sys, _)) => {
                        return Err(FhirError::invalid(format!(
                            "identifier: tasks are identified in the system {} (not {sys:?})",
                            mapping::system(base, "Id/task")
                        )))
                    }
                    None => &v,
                };
                s.id = Some(id.to_string());
            }
            "status" => {
                let list: Vec<String> = v.split(',').map(|c| c.trim().to_string()).collect();
                for c in &list {
                    if !TASK_STATUSES.contains(&c.as_str()) {
                        return Err(FhirError::invalid(format!(
                            "status {c:?} is not a FHIR Task status: expected one of {}",
                            TASK_STATUSES.join(", ")
                        )));
                    }
                }
                s.statuses = Some(list);
            }
            "owner" => {
                s.owner = Some(if let Some(id) = v.strip_prefix("Practitioner/") {
                    Owner::Staff(id.to_string())
                } else if let Some(id) = v.strip_prefix("PractitionerRole/") {
                    Owner::Role(id.to_string())
                } else if v.contains('/') {
                    return Err(FhirError::invalid(format!(
                        "owner {v:?}: give Practitioner/{{staff id}} or PractitionerRole/{{role id}}"
                    )));
                } else {
                    Owner::Either(v.clone())
                });
            }
            "_lastUpdated" => s.updated.extend(parse_last_updated(&v)?),
            "_count" => {
                s.count = v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (0..=100).contains(n))
                    .ok_or_else(|| {
                        FhirError::invalid(format!(
                            "_count {v:?}: give a whole number from 0 to 100"
                        ))
                    })?;
            }
            "_cursor" => {
                s.after = Some(parse_cursor(&v)?);
                continue;
            }
            other => {
                return Err(FhirError::invalid(format!(
                    "search parameter {other:?} is not supported for Task; supported: {}",
                    TASK_SEARCH_PARAMS.join(", ")
                )))
            }
        }
        s.echo.push((k, v));
    }
    Ok(s)
}

type Backend = <DbConnection as diesel::Connection>::Backend;

fn filtered(s: &TaskSearch) -> tasks::BoxedQuery<'static, Backend> {
    let mut q = tasks::table.into_boxed();
    if let Some(n) = &s.nhs_number {
        q = q.filter(tasks::nhs_number.eq(n.clone()));
    }
    if let Some(id) = &s.id {
        q = q.filter(tasks::id.eq(id.clone()));
    }
    if let Some(list) = &s.statuses {
        q = q.filter(tasks::status.eq_any(list.clone()));
    }
    match s.owner.clone() {
        Some(Owner::Staff(x)) => {
            q = q.filter(
                tasks::acknowledged_by
                    .eq(x.clone())
                    .or(tasks::acknowledged_by
                        .is_null()
                        .and(tasks::assignee_staff_id.eq(x))),
            )
        }
        Some(Owner::Role(x)) => {
            q = q.filter(
                tasks::acknowledged_by
                    .is_null()
                    .and(tasks::assignee_role_id.eq(x)),
            )
        }
        Some(Owner::Either(x)) => {
            q = q.filter(
                tasks::acknowledged_by
                    .eq(x.clone())
                    .or(tasks::acknowledged_by.is_null().and(
                        tasks::assignee_staff_id
                            .eq(x.clone())
                            .or(tasks::assignee_role_id.eq(x)),
                    )),
            )
        }
        None => {}
    }
    for b in &s.updated {
        q = match *b {
            Bound::From(t) => q.filter(tasks::updated_at.ge(t)),
            Bound::Before(t) => q.filter(tasks::updated_at.lt(t)),
        };
    }
    q
}

async fn search_tasks(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Result<Caller, AppError>,
) -> FhirResult {
    caller?;
    let base = state.config.public_url.clone();
    let systems = state.config.fhir.system_base.clone();
    let s = parse_task_search(query(&req)?, &systems)?;
    let search = s.clone();
    let (total, records, more) = state
        .store
        .read(move |c| {
            let total: i64 = filtered(&search).count().get_result(c)?;
            let mut q = filtered(&search);
            if let Some((t, id)) = search.after.clone() {
                q = q.filter(
                    tasks::raised_at
                        .lt(t)
                        .or(tasks::raised_at.eq(t).and(tasks::id.lt(id))),
                );
            }
            // One more than the page, to know whether there is a next one.
            let mut ids: Vec<String> = if search.count == 0 {
                Vec::new()
            } else {
                q.select(tasks::id)
                    .order((tasks::raised_at.desc(), tasks::id.desc()))
                    .limit(search.count + 1)
                    .load(c)?
            };
            let more = ids.len() as i64 > search.count;
            ids.truncate(search.count as usize);
            let records = ids
                .iter()
                .map(|id| super::load(c, id))
                .collect::<AppResult<Vec<_>>>()?;
            Ok((total, records, more))
        })
        .await?;
    let page = |after: Option<String>| {
        let mut pairs = s.echo.clone();
        if !pairs.iter().any(|(k, _)| k == "_count") {
            pairs.push(("_count".into(), s.count.to_string()));
        }
        if let Some(c) = after {
            pairs.push(("_cursor".into(), c));
        }
        format!(
            "{base}/fhir/Task?{}",
            pairs
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect::<Vec<_>>()
                .join("&")
        )
    };
    let this = s.after.as_ref().map(|(t, id)| cursor(*t, id));
    let mut links = vec![("self", page(this)), ("first", page(None))];
    if let (true, Some(last)) = (more, records.last()) {
        links.push((
            "next",
            page(Some(cursor(to_db(last.task.raised_at), &last.task.id))),
        ));
    }
    let matches = records
        .iter()
        .map(|r| {
            (
                format!("{base}/fhir/Task/{}", r.task.id),
                mapping::task(r, &systems),
            )
        })
        .collect();
    Ok(fhir_ok(&mapping::searchset(matches, total, &links)))
}

/// Percent-encodes a query string key or value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `Task/{id}`, `Task/{id}/_history/{n}`, a full URL to either, or a bare id.
fn parse_target(value: &str, base: &str) -> Result<(String, Option<i32>), FhirError> {
    let v = value
        .strip_prefix(&format!("{base}/fhir/"))
        .unwrap_or(value);
    let v = v.strip_prefix("Task/").unwrap_or(v);
    let (id, version) = match v.split_once("/_history/") {
        Some((id, n)) => (
            id,
            Some(n.parse::<i32>().map_err(|_| {
                FhirError::invalid(format!("target {value:?}: the version is not a number"))
            })?),
        ),
        None => (v, None),
    };
    if !mapping::is_id(id) {
        return Err(FhirError::invalid(format!(
            "target {value:?}: give Task/{{id}} (only Task targets are recorded)"
        )));
    }
    Ok((id.to_string(), version))
}

async fn search_provenance(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Result<Caller, AppError>,
) -> FhirResult {
    caller?;
    let base = state.config.public_url.clone();
    let systems = state.config.fhir.system_base.clone();
    let mut target = None;
    for (k, v) in query(&req)? {
        match k.as_str() {
            "target" | "target:Task" if target.is_none() => target = Some(parse_target(&v, &base)?),
            "target" | "target:Task" => return Err(FhirError::invalid("give target once")),
            other => {
                return Err(FhirError::invalid(format!(
                    "search parameter {other:?} is not supported for Provenance; supported: target"
                )))
            }
        }
    }
    let Some((id, version)) = target else {
        return Err(FhirError::invalid(
            "give target=Task/{id}: Provenance is searched by the task it is about",
        ));
    };
    let rec = match load(&state, id).await {
        Ok(r) => Some(r),
        Err(e) if e.status == StatusCode::NOT_FOUND => None,
        Err(e) => return Err(e),
    };
    let matches: Vec<(String, Value)> = rec
        .iter()
        .flat_map(|r| {
            r.events
                .iter()
                .filter(|e| version.is_none_or(|v| v == e.seq))
                .map(|e| {
                    (
                        format!(
                            "{base}/fhir/Provenance/{}",
                            mapping::provenance_id(&r.task.id, e.seq)
                        ),
                        mapping::provenance(r, e, &systems, true),
                    )
                })
        })
        .collect();
    let total = matches.len() as i64;
    let self_url = match req.query_string() {
        "" => format!("{base}/fhir/Provenance"),
        q => format!("{base}/fhir/Provenance?{q}"),
    };
    Ok(fhir_ok(&mapping::searchset(
        matches,
        total,
        &[("self", self_url)],
    )))
}

async fn read_provenance(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Result<Caller, AppError>,
) -> FhirResult {
    caller?;
    no_params(&req)?;
    let pid = path_param(&req, "id");
    let missing = || FhirError::not_found(format!("no Provenance/{pid}"));
    let (id, seq) = pid.rsplit_once('-').ok_or_else(missing)?;
    let seq: i32 = seq.parse().map_err(|_| missing())?;
    let rec = load(&state, id.to_string()).await.map_err(|_| missing())?;
    let e = rec
        .events
        .iter()
        .find(|e| e.seq == seq)
        .ok_or_else(missing)?;
    Ok(fhir_ok(&mapping::provenance(
        &rec,
        e,
        &state.config.fhir.system_base,
        true,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryParams {
    status: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/record-deliveries?status=failed|pending`: what has not reached the record.
async fn list_deliveries(
    state: web::Data<AppState>,
    Caller(staff): Caller,
    params: web::Query<DeliveryParams>,
) -> AppResult<HttpResponse> {
    if !staff.watches_wards() {
        return Err(AppError::Forbidden(
            "delivery reports are for bed managers, coordinators and admins".into(),
        ));
    }
    let statuses = match &params.status {
        Some(s) => deliveries::parse_statuses(s)?,
        None => vec![
            RecordStatus::Pending,
            RecordStatus::Sending,
            RecordStatus::Failed,
        ],
    };
    let limit = params.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit is {limit}; give 1 to 500"
        )));
    }
    let list = state
        .store
        .read(move |c| deliveries::records(c, &statuses, limit))
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "configured": !state.config.record.is_empty(),
        "record_server": state.config.record.first().map(|r| r.base_url.clone()),
        "record_servers": state.config.record.iter()
            .map(|r| json!({ "name": r.name, "base_url": r.base_url }))
            .collect::<Vec<_>>(),
        "deliveries": list,
    })))
}
