//! The FHIR R4 REST endpoint under `/fhir` (read-only, JSON). Every error from `/fhir` is an
//! OperationOutcome ([`error`]); the resources are made by the pure [`crate::fhir::mapping`].
mod error;
mod request;
mod search;

use crate::error::AppError;
use crate::fhir::code_systems;
use crate::fhir::mapping::{self, FHIR_JSON};
use crate::fhir::TaskRecord;
use crate::web::auth::Caller;
use crate::web::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use error::{FhirError, FhirResult};
use request::{no_params, path_param, query};
use serde_json::Value;

/// A read-only resource: GET, and an OperationOutcome 405 for any other method.
macro_rules! get {
    ($path:literal, $handler:expr) => {
        web::resource($path)
            .route(web::get().to($handler))
            .default_service(web::to(method_not_allowed))
    };
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
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

async fn load(state: &AppState, id: String) -> Result<TaskRecord, FhirError> {
    if !mapping::is_id(&id) {
        return Err(FhirError::not_found(format!("no Task/{id}")));
    }
    let shown = id.clone();
    state
        .store
        .read(move |c| crate::fhir::load(c, &id))
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
    code_systems::code_system(&id, &state.config.fhir.system_base)
        .map(|cs| fhir_ok(&cs))
        .ok_or_else(|| {
            FhirError::not_found(format!(
                "no CodeSystem/{id}; ours are {}",
                code_systems::CODE_SYSTEMS.join(", ")
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

async fn search_tasks(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Result<Caller, AppError>,
) -> FhirResult {
    caller?;
    let base = state.config.public_url.clone();
    let systems = state.config.fhir.system_base.clone();
    let s = search::parse_task_search(query(&req)?, &systems)?;
    let search = s.clone();
    let (total, records, more) = state.store.read(move |c| search::page(c, &search)).await?;
    let links = search::links(&s, &base, more, records.last());
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
            "target" | "target:Task" if target.is_none() => {
                target = Some(search::parse_target(&v, &base)?)
            }
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
