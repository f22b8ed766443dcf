//! Turns every framework error into the same JSON body as our own errors, so that a caller
//! never sees a bare text or HTML error from the API.
use crate::error::AppError;
use actix_web::body::{to_bytes, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(super::MAX_BODY)
        .error_handler(|err, _req: &HttpRequest| json_error(err).into())
}

pub fn json_error(err: JsonPayloadError) -> AppError {
    match err {
        JsonPayloadError::OverflowKnownLength { length, limit } => AppError::PayloadTooLarge(
            format!("the body is {length} bytes; at most {limit} are accepted"),
        ),
        JsonPayloadError::Overflow { limit } => {
            AppError::PayloadTooLarge(format!("the body is larger than {limit} bytes"))
        }
        JsonPayloadError::ContentType => AppError::UnsupportedMediaType(
            "send the body as JSON with Content-Type: application/json".into(),
        ),
        JsonPayloadError::Deserialize(e) => AppError::BadRequest(format!("invalid JSON body: {e}")),
        JsonPayloadError::Payload(PayloadError::Io(e)) => {
            AppError::BadRequest(format!("cannot read the body: {e}"))
        }
        other => AppError::BadRequest(format!("cannot read the body: {other}")),
    }
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let msg = match err {
            QueryPayloadError::Deserialize(e) => format!("invalid query string: {e}"),
            other => format!("invalid query string: {other}"),
        };
        AppError::BadRequest(msg).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        let msg = match err {
            PathError::Deserialize(e) => format!("invalid path: {e}"),
            other => format!("invalid path: {other}"),
        };
        AppError::NotFound(msg).into()
    })
}

/// The JSON 404 for paths that name nothing.
pub async fn no_route(req: HttpRequest) -> Result<HttpResponse, AppError> {
    if !req.path().starts_with("/api/") && !req.path().starts_with("/fhir") {
        return Ok(HttpResponse::NotFound()
            .content_type("text/html; charset=utf-8")
            .body("<!doctype html><title>Not found</title><h1>Not found</h1><p><a href=\"/\">Back to Bleepless</a></p>"));
    }
    Err(AppError::NotFound(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.path()
    )))
}

/// Middleware body: an error response that is not JSON already (a 405, a payload error from
/// actix itself) is rewritten into our JSON error shape, keeping its status and message.
pub async fn ensure_json_errors(
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let api = req.path().starts_with("/api/");
    let res = next.call(req).await?.map_into_boxed_body();
    if !api {
        return Ok(res);
    }
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return Ok(res);
    }
    let (req, res) = res.into_parts();
    let (head, body) = res.into_parts();
    let text = to_bytes(body)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_lowercase()
        .replace(' ', "_");
    let message = if status.is_server_error() {
        tracing::error!(%status, cause = %text, "framework error");
        "something went wrong inside Bleepless; it has been logged".to_string()
    } else {
        text
    };
    let mut out = HttpResponse::build(status)
        .json(serde_json::json!({ "error": { "code": code, "message": message } }));
    for (k, v) in head.headers().iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(ServiceResponse::new(req, out))
}

/// The API's one error shape: every 4xx and 5xx answer of the API has this body.
// (Written by `AppError::error_response` and `ensure_json_errors`; described here.)
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "no task \"0192…\""}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong. A 409 (`conflict`) may carry more fields, such as the task's current
/// status and version.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable code: bad_request, unauthorized, forbidden, not_found, conflict,
    /// payload_too_large, unsupported_media_type, invalid (422), too_many_requests,
    /// unavailable, internal, or the lowercased HTTP reason of a framework error (for
    /// example method_not_allowed).
    #[schema(example = "invalid")]
    pub code: String,
    /// What was wrong with the request, for a person to read.
    pub message: String,
}
