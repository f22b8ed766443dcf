//! Middleware on every answer: security headers, the request log line, and a deadline for
//! request bodies.
use super::AppState;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use futures_util::StreamExt;
use std::time::Instant;

/// Pages load scripts, styles and images from this site only, and no one may frame them.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers on every answer, errors included. A handler's own `Cache-Control`
/// (static assets) and `Referrer-Policy` (acknowledge pages) are kept; every other answer
/// may carry patient data and is never stored.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let https = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.config.public_url.starts_with("https://"));
    // (Handlers' errors arrive here as responses already; the request must not be cloned
    // before routing, which needs it unshared.)
    let mut res = next.call(req).await?.map_into_boxed_body();
    let h = res.headers_mut();
    let mut set = |name: HeaderName, value: &'static str, replace: bool| {
        if replace || !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
        true,
    );
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff", true);
    set(header::X_FRAME_OPTIONS, "DENY", true);
    set(header::REFERRER_POLICY, "same-origin", false);
    set(header::CACHE_CONTROL, "no-store", false);
    if https {
        set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
            true,
        );
    }
    Ok(res)
}

/// One line per request: status, method, path (never the query string, which may name a
/// patient, and never a capability token: see [`crate::telemetry::loggable_path`]), time.
pub async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = crate::telemetry::loggable_path(req.path()).into_owned();
    let res = next.call(req).await;
    let status = match &res {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(target: "bleepless::request", status, %method, %path, ms = format!("{ms:.1}"), "request");
    res
}

/// A request body must arrive within the configured time: a client that sends its headers
/// and then trickles (or withholds) the body would otherwise hold a connection and a worker's
/// attention for as long as it liked.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.config.security.body_timeout)
        .unwrap_or_else(|| crate::config::SecurityConfig::default().body_timeout);
    let deadline = tokio::time::Instant::now() + limit;
    let body = req.take_payload();
    let timed = futures_util::stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(body))),
            Ok(None) => None,
            Err(_) => Some((
                Err(PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the request body did not arrive within {} s",
                        limit.as_secs()
                    ),
                ))),
                None,
            )),
        }
    });
    req.set_payload(Payload::Stream {
        payload: Box::pin(timed),
    });
    next.call(req).await
}
