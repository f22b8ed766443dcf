//! A text message provider for tests, playing both GOV.UK Notify and a Twilio-compatible
//! Messages API, and checking each request as the real API does:
//!
//! - Notify (`POST /v2/notifications/sms`): `Authorization: Bearer <JWT>` whose header says
//!   HS256, signed with the API key's secret, `iss` the service id, `iat` within 30 s of this
//!   machine's clock; a JSON body with exactly `phone_number`, `template_id`,
//!   `personalisation` (holding every placeholder of the template) and an optional
//!   `reference`; a UK mobile. Errors answer in Notify's shape
//!   (`{"status_code", "errors": [{"error", "message"}]}`); success is 201 with Notify's body.
//! - Twilio (`POST /2010-04-01/Accounts/{sid}/Messages.json`): HTTP Basic auth with the
//!   account SID and auth token; a form body with `To` (E.164), `Body`, and exactly one of
//!   `From` and `MessagingServiceSid`; errors in Twilio's shape (`code`, `message`, `status`).
//!
//! The JWT is checked here with `hmac` and `sha2` by hand, not with the service's code.
//! Faults (a status, with a `Retry-After` for 429) can be set for the next N requests.
#![allow(dead_code)]

use actix_web::{dev::ServerHandle, web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const SERVICE_ID: &str = "26785a09-ab16-4eb0-8407-a37497a57506";
pub const SECRET: &str = "3d844edf-8d35-48ac-975b-e847b4f122b0";
pub const TEMPLATE_ID: &str = "f33517ff-2a88-4f6e-b855-c550268ce08a";
pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const AUTH_TOKEN: &str = "test-auth-token-0123456789abcdef";
pub const FROM: &str = "+447700900000";

/// The whole Notify API key as Notify shows it once.
pub fn notify_api_key() -> String {
    format!("bleepless_test-{SERVICE_ID}-{SECRET}")
}

/// A text the provider took.
#[derive(Clone, Debug)]
pub struct Sent {
    pub provider: &'static str,
    pub to: String,
    pub body: String,
    pub reference: Option<String>,
}

#[derive(Default)]
struct State {
    /// (status, Retry-After seconds, how many more requests get it)
    faults: Vec<(u16, Option<u64>, usize)>,
    sent: Vec<Sent>,
    /// Requests refused for being wrong (not faults): what was wrong.
    refused: Vec<String>,
    requests: usize,
}

type Shared = Arc<Mutex<State>>;

pub struct TextProvider {
    base: String,
    state: Shared,
    handle: ServerHandle,
}

impl TextProvider {
    pub async fn start() -> TextProvider {
        let state: Shared = Arc::new(Mutex::new(State::default()));
        let data = web::Data::new(state.clone());
        let (addr, handle) = super::peer::serve_on_thread("test-text-provider", 2, move |cfg| {
            cfg.app_data(data.clone())
                .route("/v2/notifications/sms", web::post().to(notify))
                .route(
                    "/2010-04-01/Accounts/{sid}/Messages.json",
                    web::post().to(twilio),
                );
        })
        .await;
        TextProvider {
            base: format!("http://{addr}"),
            state,
            handle,
        }
    }

    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    /// The next `n` requests are answered with `status` (and `Retry-After` if given).
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.state
            .lock()
            .unwrap()
            .faults
            .push((status, retry_after, n));
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.state.lock().unwrap().sent.clone()
    }

    pub fn refused(&self) -> Vec<String> {
        self.state.lock().unwrap().refused.clone()
    }

    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }
}

impl Drop for TextProvider {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// A fault to answer with instead, if one is set.
fn fault(state: &Shared) -> Option<(u16, Option<u64>)> {
    let mut s = state.lock().unwrap();
    s.requests += 1;
    let f = s.faults.iter_mut().find(|f| f.2 > 0)?;
    f.2 -= 1;
    Some((f.0, f.1))
}

fn answer(status: u16, retry_after: Option<u64>, body: Value) -> HttpResponse {
    let mut r = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    if let Some(s) = retry_after {
        r.insert_header(("Retry-After", s.to_string()));
    }
    r.json(body)
}

fn header(req: &HttpRequest, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn uk_mobile(n: &str) -> bool {
    n.len() == 13 && n.starts_with("+447") && n[1..].bytes().all(|b| b.is_ascii_digit())
}

fn notify_error(status: u16, error: &str, message: &str) -> HttpResponse {
    answer(
        status,
        None,
        json!({ "status_code": status, "errors": [{ "error": error, "message": message }] }),
    )
}

/// What is wrong with a Notify bearer token, if anything.
fn check_notify_jwt(auth: &str) -> Result<(), String> {
    let token = auth
        .strip_prefix("Bearer ")
        .ok_or("Unauthorized: authentication token must be provided")?;
    let parts: Vec<&str> = token.split('.').collect();
    let [head, claims, sig] = parts[..] else {
        return Err("Invalid token: not a JWT".into());
    };
    let decode = |p: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let head = decode(head)?;
    if head["alg"] != "HS256" || head["typ"] != "JWT" {
        return Err(format!("Invalid token: header {head} is not HS256 JWT"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|e| e.to_string())?;
    mac.verify_slice(&sig)
        .map_err(|_| "Invalid token: signature, api token not found")?;
    let claims = decode(claims)?;
    if claims["iss"] != SERVICE_ID {
        return Err(format!(
            "Invalid token: service id {} not found",
            claims["iss"]
        ));
    }
    let iat = claims["iat"].as_i64().ok_or("Invalid token: iat missing")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - iat).abs() > 30 {
        return Err("Error: Your system clock must be accurate to within 30 seconds".into());
    }
    Ok(())
}

async fn notify(state: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if let Some((status, retry_after)) = fault(&state) {
        let (error, message) = match status {
            429 => (
                "RateLimitError",
                "Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds",
            ),
            _ => ("Exception", "Internal server error"),
        };
        let mut r = notify_error(status, error, message);
        if let Some(s) = retry_after {
            r.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                s.to_string().parse().unwrap(),
            );
        }
        return r;
    }
    let refuse = |status: u16, error: &str, message: String| {
        state.lock().unwrap().refused.push(message.clone());
        notify_error(status, error, &message)
    };
    if let Err(why) = check_notify_jwt(&header(&req, "authorization")) {
        return refuse(403, "AuthError", why);
    }
    if !header(&req, "content-type").starts_with("application/json") {
        return refuse(
            400,
            "BadRequestError",
            "Content-Type must be application/json".into(),
        );
    }
    let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(&body) else {
        return refuse(
            400,
            "BadRequestError",
            "Invalid JSON supplied in POST data".into(),
        );
    };
    if let Some(k) = b.keys().find(|k| {
        !matches!(
            k.as_str(),
            "phone_number" | "template_id" | "personalisation" | "reference"
        )
    }) {
        return refuse(
            400,
            "ValidationError",
            format!("Additional properties are not allowed ({k} was unexpected)"),
        );
    }
    let to = b.get("phone_number").and_then(Value::as_str).unwrap_or("");
    if !uk_mobile(to) {
        return refuse(
            400,
            "ValidationError",
            format!("phone_number {to:?}: Not a UK mobile number"),
        );
    }
    if b.get("template_id").and_then(Value::as_str) != Some(TEMPLATE_ID) {
        return refuse(400, "BadRequestError", "Template not found".into());
    }
    let Some(message) = b
        .get("personalisation")
        .and_then(|p| p.get("message"))
        .and_then(Value::as_str)
    else {
        return refuse(
            400,
            "BadRequestError",
            "Missing personalisation: message".into(),
        );
    };
    let reference = b.get("reference").and_then(Value::as_str).map(String::from);
    state.lock().unwrap().sent.push(Sent {
        provider: "notify",
        to: to.into(),
        body: message.into(),
        reference: reference.clone(),
    });
    let id = uuid::Uuid::new_v4().to_string();
    answer(
        201,
        None,
        json!({
            "id": id, "reference": reference,
            "content": { "body": message, "from_number": "GOVUK" },
            "uri": format!("https://api.notifications.service.gov.uk/v2/notifications/{id}"),
            "template": { "id": TEMPLATE_ID, "version": 1, "uri": format!("https://api.notifications.service.gov.uk/services/{SERVICE_ID}/templates/{TEMPLATE_ID}") },
            "scheduled_for": null,
        }),
    )
}

fn twilio_error(status: u16, code: u32, message: &str) -> HttpResponse {
    answer(
        status,
        None,
        json!({ "code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status }),
    )
}

async fn twilio(
    state: web::Data<Shared>,
    req: HttpRequest,
    sid: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some((status, retry_after)) = fault(&state) {
        let mut r = twilio_error(
            status,
            if status == 429 { 20429 } else { 20500 },
            "Too Many Requests",
        );
        if let Some(s) = retry_after {
            r.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                s.to_string().parse().unwrap(),
            );
        }
        return r;
    }
    let refuse = |status: u16, code: u32, message: String| {
        state.lock().unwrap().refused.push(message.clone());
        twilio_error(status, code, &message)
    };
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    if header(&req, "authorization") != expected || sid.as_str() != ACCOUNT_SID {
        return refuse(401, 20003, "Authenticate".into());
    }
    if header(&req, "content-type") != "application/x-www-form-urlencoded" {
        return refuse(
            400,
            20001,
            "Content-Type must be application/x-www-form-urlencoded".into(),
        );
    }
    let form: HashMap<String, String> = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(e) => return refuse(400, 20001, format!("Invalid form: {e}")),
    };
    let to = form.get("To").cloned().unwrap_or_default();
    if !(to.starts_with('+')
        && (9..=16).contains(&to.len())
        && to[1..].bytes().all(|b| b.is_ascii_digit()))
    {
        return refuse(
            400,
            21211,
            format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    let Some(text) = form.get("Body").filter(|b| !b.is_empty()) else {
        return refuse(400, 21602, "Message body is required.".into());
    };
    match (form.get("From"), form.get("MessagingServiceSid")) {
        (Some(f), None) if f == FROM => {}
        (None, Some(_)) => {}
        _ => {
            return refuse(
                400,
                21603,
                "A 'From' or 'MessagingServiceSid' parameter is required (one, not both).".into(),
            )
        }
    }
    if form
        .keys()
        .any(|k| !matches!(k.as_str(), "To" | "Body" | "From" | "MessagingServiceSid"))
    {
        return refuse(400, 20001, "Unknown parameter".into());
    }
    state.lock().unwrap().sent.push(Sent {
        provider: "twilio",
        to: to.clone(),
        body: text.clone(),
        reference: None,
    });
    answer(
        201,
        None,
        json!({ "sid": format!("SM{}", uuid::Uuid::new_v4().simple()), "status": "queued", "to": to, "from": FROM, "body": text, "account_sid": ACCOUNT_SID }),
    )
}
