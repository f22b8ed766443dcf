//! The OpenAPI document: how a listed handler is registered, the conventions every
//! operation shares (security, the error answers), and `GET /api/v1/openapi.json`.
use super::ApiDoc;
use crate::web::auth::{CSRF_HEADER, SESSION_COOKIE};
use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpResponse, Responder};
use std::sync::OnceLock;
use utoipa::openapi::path::{HttpMethod, Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::OpenApi;

/// The document, generated from the annotated handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty-printed JSON (what `GET /api/v1/openapi.json` and
/// `bleepless openapi` give).
pub fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

/// This document: OpenAPI 3.1, every operation of the JSON API (no credentials needed).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "service",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json",
        body = serde_json::Value)))]
pub(super) async fn serve_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(openapi_json())
}

/// Registers `handler` at the method(s) and path of its `#[utoipa::path]` annotation `P`,
/// relative to `prefix` (the scope it is mounted in).
pub(super) fn register<P, F, Args>(cfg: &mut web::ServiceConfig, prefix: &str, handler: F)
where
    P: utoipa::Path,
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let path = P::path();
    let at = path.strip_prefix(prefix).unwrap_or_else(|| {
        panic!("the operation at {path} is listed under {prefix} but its path is not")
    });
    for method in P::methods() {
        cfg.route(at, web::method(actix_method(&method)).to(handler.clone()));
    }
}

fn actix_method(m: &HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// What every operation shares, added once here rather than on each handler: the security
/// schemes of `auth.rs`; each operation's security (unless its annotation says otherwise);
/// and the error answers that come from the credentials, the body's extractor and the
/// service itself, all with the one error shape.
pub(super) struct Conventions;

const BEARER: &str = "bearer";
const SESSION: &str = "session";
const CSRF: &str = "csrf";
pub(super) const METRICS_TOKEN: &str = "metrics_token";

impl utoipa::Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A member of staff's API token (`bleepless staff token`), for systems",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "A signed-in browser's session cookie (the pages' own scripts)",
            ))),
        );
        components.add_security_scheme(
            CSRF,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "With the session cookie, on every request that changes something: the \
                 token the page was given",
            ))),
        );
        components.add_security_scheme(
            METRICS_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The `[metrics] token` of the configuration"))
                    .build(),
            ),
        );
        debug_assert!(CSRF_HEADER.eq_ignore_ascii_case("X-CSRF-Token"));
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                let (op, safe) = op;
                conventions(op, safe);
            }
        }
    }
}

/// Each operation of a path, with whether its method is safe (no CSRF token needed).
fn operations(item: &mut PathItem) -> Vec<(&mut Operation, bool)> {
    let PathItem {
        get,
        put,
        post,
        delete,
        options,
        head,
        patch,
        trace,
        ..
    } = item;
    [
        (get, true),
        (head, true),
        (options, true),
        (put, false),
        (post, false),
        (delete, false),
        (patch, false),
        (trace, false),
    ]
    .into_iter()
    .filter_map(|(op, safe)| op.as_mut().map(|op| (op, safe)))
    .collect()
}

fn conventions(op: &mut Operation, safe: bool) {
    let open = SecurityRequirement::default();
    let security = op.security.get_or_insert_with(|| {
        let session = if safe {
            SecurityRequirement::new(SESSION, Vec::<String>::new())
        } else {
            SecurityRequirement::new(SESSION, Vec::<String>::new()).add(CSRF, Vec::<String>::new())
        };
        vec![
            SecurityRequirement::new(BEARER, Vec::<String>::new()),
            session,
        ]
    });
    let secured = !security.iter().all(|r| *r == open);
    let by_session = security
        .iter()
        .any(|r| serde_json::to_value(r).is_ok_and(|v| v.get(SESSION).is_some()));
    let has_body = op.request_body.is_some();
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(error(description)));
    };
    if secured {
        add(
            "401",
            "No credentials, or not valid ones (the answer has WWW-Authenticate)",
        );
    }
    if by_session && !safe {
        add(
            "403",
            "Signed in with the session cookie but without the right X-CSRF-Token",
        );
    }
    if has_body {
        add("400", "The body is not valid JSON for this operation");
        add("413", "The body is larger than 64 KiB");
        add("415", "The body is not sent as application/json");
    }
    add(
        "500",
        "Something went wrong inside Bleepless (it is logged)",
    );
    add("503", "The database is unavailable: try again shortly");
}

/// An answer with the one error shape.
fn error(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}
