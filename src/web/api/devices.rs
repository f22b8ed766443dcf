//! A clinician's devices: push subscriptions.
use super::tasks::unprocessable;
use super::views::{DeviceView, Devices, Subscribed, VapidKey};
use crate::error::AppResult;
use crate::store::notifications;
use crate::web::auth::Caller;
use crate::web::errors::ErrorBody;
use crate::web::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

/// The public key a browser subscribes to push with (no credentials needed).
#[utoipa::path(get, path = "/api/v1/push/vapid-public-key", tag = "devices",
    security(()),
    responses((status = 200, description = "The VAPID public key", body = VapidKey)))]
pub(super) async fn vapid_public_key(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(VapidKey {
        public_key: state.vapid_public_key.clone(),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SubscriptionKeys {
    p256dh: String,
    auth: String,
}

/// The browser's `PushSubscription.toJSON()`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct SubscriptionBody {
    /// The push service's URL for this browser.
    endpoint: String,
    keys: SubscriptionKeys,
    /// Ignored.
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    expiration_time: Option<serde_json::Value>,
}

fn check_key(field: &str, value: &str, len: usize) -> AppResult<()> {
    let bytes = crate::outbox::push::decode_key(value)
        .map_err(|_| unprocessable(format!("keys.{field} is not base64url")))?;
    if bytes.len() != len {
        return Err(unprocessable(format!(
            "keys.{field} is {} bytes; a browser gives {len}",
            bytes.len()
        )));
    }
    Ok(())
}

/// Registers one of the caller's devices for push.
#[utoipa::path(post, path = "/api/v1/push-subscriptions", tag = "devices",
    request_body = SubscriptionBody,
    responses(
        (status = 201, description = "Stored", body = Subscribed),
        (status = 409, description = "Someone else registered this endpoint, or the caller has as many devices as allowed", body = ErrorBody),
        (status = 422, description = "A key is not valid, or the endpoint is not allowed", body = ErrorBody),
    ))]
pub(super) async fn subscribe(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(staff): Caller,
    body: web::Json<SubscriptionBody>,
) -> AppResult<HttpResponse> {
    let b = body.into_inner();
    let _ = b.expiration_time;
    let endpoint = b.endpoint.trim().to_string();
    check_key("p256dh", &b.keys.p256dh, 65)?;
    check_key("auth", &b.keys.auth, 16)?;
    state
        .config
        .push
        .endpoint_policy()
        .check(&endpoint)
        .await
        .map_err(unprocessable)?;
    let ua = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect::<String>());
    let now = state.clock.now();
    let max = state.config.security.max_devices;
    let id = state
        .store
        .write(move |c| {
            notifications::room_for_device(c, &staff.id, &endpoint, max)?;
            notifications::subscribe(
                c,
                &staff.id,
                &endpoint,
                &b.keys.p256dh,
                &b.keys.auth,
                ua.as_deref(),
                now,
            )
        })
        .await?;
    Ok(HttpResponse::Created().json(Subscribed { id }))
}

/// A device as its owner sees it. Whatever the push service answered stays in the log:
/// echoing it would tell the caller what is listening at an address.
#[utoipa::path(get, path = "/api/v1/push-subscriptions", tag = "devices",
    responses((status = 200, description = "The caller's devices", body = Devices)))]
pub(super) async fn my_devices(
    state: web::Data<AppState>,
    Caller(staff): Caller,
) -> AppResult<HttpResponse> {
    let devices = state
        .store
        .read(move |c| notifications::devices(c, &staff.id))
        .await?;
    let list: Vec<_> = devices
        .into_iter()
        .map(|d| DeviceView {
            endpoint_host: d.endpoint.split('/').nth(2).unwrap_or("").to_string(),
            id: d.id,
            user_agent: d.user_agent,
            registered_at: crate::store::from_db(d.created_at),
            last_success_at: d.last_success_at.map(crate::store::from_db),
            failing: d.last_error.is_some(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(Devices { devices: list }))
}

/// Removes one of the caller's devices.
#[utoipa::path(delete, path = "/api/v1/push-subscriptions/{id}", tag = "devices",
    params(("id" = String, Path, description = "The subscription's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "The caller has no such device", body = ErrorBody),
    ))]
pub(super) async fn unsubscribe(
    state: web::Data<AppState>,
    Caller(staff): Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    state
        .store
        .write(move |c| notifications::unsubscribe(c, &staff.id, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
