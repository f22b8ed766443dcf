//! A clinician's devices: push subscriptions.
use super::tasks::unprocessable;
use super::views::{DeviceView, Devices, MobileSet, ReceiptRecorded, Subscribed, VapidKey};
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
    let now = state.clock.now();
    let list: Vec<_> = devices
        .into_iter()
        .map(|d| {
            let (taken, shown) = (
                d.last_success_at.map(crate::store::from_db),
                d.last_shown_at.map(crate::store::from_db),
            );
            DeviceView {
                endpoint_host: d.endpoint.split('/').nth(2).unwrap_or("").to_string(),
                id: d.id,
                user_agent: d.user_agent,
                registered_at: crate::store::from_db(d.created_at),
                last_success_at: taken,
                last_shown_at: shown,
                failing: d.last_error.is_some(),
                // Its push service takes pushes that it never shows: fix it or remove it.
                silent: crate::domain::delivery::silent(taken, shown, now),
            }
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MobileBody {
    /// A UK mobile (07…, +447…) or an international number; null removes it.
    mobile: Option<String>,
}

/// `PUT /api/v1/staff/{id}/mobile`: the number text messages go to. A person sets their
/// own; an admin sets anyone's.
#[utoipa::path(put, path = "/api/v1/staff/{id}/mobile", tag = "people",
    params(("id" = String, Path, description = "The member of staff's id")),
    request_body = MobileBody,
    responses(
        (status = 200, description = "The number as stored (normalised), or null", body = MobileSet),
        (status = 403, description = "Another person's number, and not an admin", body = ErrorBody),
        (status = 404, description = "No such member of staff", body = ErrorBody),
        (status = 422, description = "Not a mobile number", body = ErrorBody),
    ))]
pub(super) async fn set_mobile(
    state: web::Data<AppState>,
    Caller(staff): Caller,
    id: web::Path<String>,
    body: web::Json<MobileBody>,
) -> AppResult<HttpResponse> {
    use crate::domain::Permission;
    let id = id.into_inner();
    if id != staff.id && !staff.can(Permission::Admin) {
        return Err(crate::error::AppError::Forbidden(
            "only an admin may set another person's mobile number".into(),
        ));
    }
    let mobile = match body.into_inner().mobile {
        Some(m) => Some(crate::domain::phone::parse_mobile(&m).map_err(unprocessable)?),
        None => None,
    };
    let shown = mobile.clone();
    state
        .store
        .write(move |c| notifications::set_mobile(c, &id, mobile.as_deref()))
        .await?;
    Ok(HttpResponse::Ok().json(MobileSet { mobile: shown }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReceiptBody {
    /// The `receipt` of the push the phone showed.
    receipt: String,
}

/// `POST /api/v1/receipts`: the service worker's word that it showed a push. The receipt
/// the push carried is signed for that push and device: it is the only credential needed.
#[utoipa::path(post, path = "/api/v1/receipts", tag = "devices",
    security(()),
    request_body = ReceiptBody,
    responses(
        (status = 201, description = "Recorded", body = ReceiptRecorded),
        (status = 200, description = "Already recorded", body = ReceiptRecorded),
        (status = 403, description = "The receipt is damaged or was not made by this service", body = ErrorBody),
    ))]
pub(super) async fn receipt(
    state: web::Data<AppState>,
    body: web::Json<ReceiptBody>,
) -> AppResult<HttpResponse> {
    use crate::outbox::links::Purpose;
    use crate::store::receipts::{self, Recorded};
    let ids = state
        .links
        .open(Purpose::Receipt, body.receipt.trim(), 2)
        .map_err(|_| {
            crate::error::AppError::Forbidden(
                "this receipt is damaged or was not made by this service".into(),
            )
        })?;
    let now = state.clock.now();
    let recorded = state
        .store
        .write(move |c| receipts::record_shown(c, &ids[0], &ids[1], now))
        .await?;
    Ok(match recorded {
        Recorded::New { task_id, .. } => {
            tracing::info!(task_id = %task_id, "a phone showed the bleep");
            HttpResponse::Created().json(ReceiptRecorded { recorded: true })
        }
        Recorded::Again => HttpResponse::Ok().json(ReceiptRecorded { recorded: false }),
    })
}
