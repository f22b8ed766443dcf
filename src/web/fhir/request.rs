//! Reading a `/fhir` request: its query parameters, `_format` and `Accept`, its path.
use super::error::FhirError;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest};

/// The query's parameters in order; `_format` is checked and dropped. Without `_format`,
/// the `Accept` header must allow JSON (`_format` overrides `Accept`, as FHIR says).
pub(super) fn query(req: &HttpRequest) -> Result<Vec<(String, String)>, FhirError> {
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

pub(super) fn no_params(req: &HttpRequest) -> Result<(), FhirError> {
    match query(req)?.first() {
        Some((k, _)) => Err(FhirError::invalid(format!(
            "parameter {k:?} is not supported here"
        ))),
        None => Ok(()),
    }
}

pub(super) fn path_param(req: &HttpRequest, name: &str) -> String {
    req.match_info().get(name).unwrap_or_default().to_string()
}
