//! A local Web Push service for tests: it plays the browser vendor's push server.
//!
//! It hands out fake browser subscriptions (real P-256 keys and auth secrets made with the
//! `ece` crate, as a browser makes them), and for every POST to `/push/{name}` it checks what
//! a real push service checks — VAPID `Authorization: vapid t=<jwt>, k=<key>` (ES256 signature,
//! `aud` equal to this service's origin, `exp` in the future and at most 24 h ahead, `sub` a
//! `mailto:`/`https:` URL), `TTL` present, `Content-Encoding: aes128gcm` — and then decrypts
//! the body with the subscription's private key, as the browser would. Accepted messages are
//! recorded as [`Received`]; anything else is answered 400/401/403 and recorded as
//! [`Rejected`], so a test can assert that nothing was rejected.
//!
//! Faults can be injected per endpoint: a status code (500, 429, 410, 404, …) or a hang
//! (the request is never answered), for the next N requests or always.
//!
//! The HTTP server (actix-web) runs on its own thread with its own runtime, so it works
//! under `#[tokio::test]` and `#[actix_web::test]` alike, and stops when the value drops.
#![allow(dead_code)]

use actix_web::{dev::ServerHandle, web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bleepless::outbox::push::Subscription;
use jwt_simple::prelude::{
    Clock, ECDSAP256PublicKeyLike as _, ES256PublicKey, NoCustomClaims, VerificationOptions,
};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake push service does with a request instead of accepting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status (e.g. 500, 429, 410, 404) without checking anything.
    Status(u16),
    /// Never answer.
    Hang,
}

/// A message the service accepted: verified and decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The full endpoint URL, as in the subscription.
    pub endpoint: String,
    /// The decrypted payload.
    pub payload: Vec<u8>,
    pub ttl: u32,
    pub urgency: Option<String>,
    pub topic: Option<String>,
    /// The VAPID JWT `sub` claim.
    pub sub_claim: String,
    /// The VAPID JWT `aud` claim.
    pub aud: String,
    /// The `k=` VAPID public key, base64url.
    pub vapid_key: String,
}

/// A request the service refused because it was not a valid Web Push message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub endpoint: String,
    pub status: u16,
    pub reason: String,
}

struct FakeBrowser {
    keys: ece::EcKeyComponents,
    auth: Vec<u8>,
    /// When set, the subscription was made with this `applicationServerKey` and only
    /// messages signed with it are accepted (403 otherwise), as real push services do.
    app_server_key: Option<Vec<u8>>,
}

struct FaultRule {
    fault: Fault,
    /// `None`: always.
    remaining: Option<usize>,
}

#[derive(Default)]
struct State {
    origin: String,
    base: String,
    next_id: u64,
    browsers: HashMap<String, FakeBrowser>,
    faults: HashMap<String, Vec<FaultRule>>,
    received: Vec<Received>,
    rejected: Vec<Rejected>,
    requests: usize,
}

type Shared = Arc<Mutex<State>>;

pub struct PushService {
    addr: SocketAddr,
    origin: String,
    base: String,
    state: Shared,
    handle: ServerHandle,
}

impl PushService {
    /// Starts the service on `127.0.0.1:<free port>`.
    pub async fn start() -> PushService {
        let state: Shared = Arc::new(Mutex::new(State::default()));
        let data = web::Data::new(state.clone());
        let (addr, handle) = super::peer::serve_on_thread("test-push-service", 1, move |cfg| {
            cfg.app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 * 1024))
                .default_service(web::to(handle_request));
        })
        .await;
        let origin = format!("http://{addr}");
        let base = format!("{origin}/push/");
        {
            let mut s = state.lock().unwrap();
            s.origin = origin.clone();
            s.base = base.clone();
        }
        PushService {
            addr,
            origin,
            base,
            state,
            handle,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the `aud` a VAPID token for this service must carry.
    pub fn origin(&self) -> String {
        self.origin.clone()
    }

    /// The endpoint URL for `name` (whether or not a subscription exists for it: posting to
    /// an unknown one is answered 404, like an expired subscription).
    pub fn endpoint(&self, name: &str) -> String {
        format!("{}{}", self.base, name)
    }

    /// A fake browser subscription, not bound to any application server key.
    pub fn new_subscription(&self) -> Subscription {
        self.make_subscription(None, None)
    }

    /// A subscription with a chosen endpoint name.
    pub fn new_subscription_named(&self, name: &str) -> Subscription {
        self.make_subscription(Some(name), None)
    }

    /// A subscription made with `applicationServerKey = app_server_key` (base64url): pushes
    /// signed with any other VAPID key are refused with 403.
    pub fn new_subscription_for_key(&self, app_server_key: &str) -> Subscription {
        let key = URL_SAFE_NO_PAD
            .decode(app_server_key)
            .expect("applicationServerKey must be base64url");
        self.make_subscription(None, Some(key))
    }

    fn make_subscription(
        &self,
        name: Option<&str>,
        app_server_key: Option<Vec<u8>>,
    ) -> Subscription {
        let (keypair, auth) = ece::generate_keypair_and_auth_secret().expect("ece keypair");
        let p256dh = URL_SAFE_NO_PAD.encode(keypair.pub_as_raw().expect("public key"));
        let keys = keypair.raw_components().expect("key components");
        let mut s = self.state.lock().unwrap();
        let name = match name {
            Some(n) => n.to_string(),
            None => {
                s.next_id += 1;
                format!("sub-{}", s.next_id)
            }
        };
        s.browsers.insert(
            name.clone(),
            FakeBrowser {
                keys,
                auth: auth.to_vec(),
                app_server_key,
            },
        );
        Subscription {
            endpoint: format!("{}{}", self.base, name),
            p256dh,
            auth: URL_SAFE_NO_PAD.encode(auth),
        }
    }

    /// Forget a subscription: later pushes to it are answered 404.
    pub fn unsubscribe(&self, endpoint: &str) {
        let name = endpoint_name(endpoint);
        self.state.lock().unwrap().browsers.remove(&name);
    }

    /// The next `n` requests to `endpoint` (a URL or a name) get `fault`.
    pub fn fail_next(&self, endpoint: &str, n: usize, fault: Fault) {
        self.add_fault(endpoint, fault, Some(n));
    }

    /// Every request to `endpoint` (a URL or a name) gets `fault` until cleared.
    pub fn fail_always(&self, endpoint: &str, fault: Fault) {
        self.add_fault(endpoint, fault, None);
    }

    pub fn clear_faults(&self, endpoint: &str) {
        let name = endpoint_name(endpoint);
        self.state.lock().unwrap().faults.remove(&name);
    }

    fn add_fault(&self, endpoint: &str, fault: Fault, remaining: Option<usize>) {
        if remaining == Some(0) {
            return;
        }
        let name = endpoint_name(endpoint);
        self.state
            .lock()
            .unwrap()
            .faults
            .entry(name)
            .or_default()
            .push(FaultRule { fault, remaining });
    }

    /// Every message accepted so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Messages accepted for one endpoint (a URL or a name).
    pub fn received_for(&self, endpoint: &str) -> Vec<Received> {
        let url = self.endpoint(&endpoint_name(endpoint));
        self.received()
            .into_iter()
            .filter(|r| r.endpoint == url)
            .collect()
    }

    /// Requests refused as invalid Web Push (bad signature, claims, headers or encryption).
    pub fn rejected(&self) -> Vec<Rejected> {
        self.state.lock().unwrap().rejected.clone()
    }

    /// All requests that arrived, including faulted and rejected ones.
    pub fn request_count(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    /// Waits until at least `n` messages were accepted (for senders running in the
    /// background), or panics after `timeout`.
    pub async fn wait_for_received(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "push service: expected {n} message(s) within {timeout:?}, got {}; rejected: {:?}",
                    got.len(),
                    self.rejected()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for PushService {
    fn drop(&mut self) {
        // Sends the stop command at once; the server thread then ends by itself.
        drop(self.handle.stop(false));
    }
}

/// `http://…/push/abc` or `abc` → `abc`.
fn endpoint_name(endpoint: &str) -> String {
    match endpoint.rsplit_once("/push/") {
        Some((_, name)) => name.to_string(),
        None => endpoint.to_string(),
    }
}

async fn handle_request(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Shared>,
) -> HttpResponse {
    let name = match req.path().strip_prefix("/push/") {
        Some(n) if !n.is_empty() && req.method() == actix_web::http::Method::POST => n.to_string(),
        _ => return HttpResponse::NotFound().finish(),
    };

    let fault = {
        let mut s = state.lock().unwrap();
        s.requests += 1;
        take_fault(&mut s, &name)
    };
    match fault {
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return HttpResponse::ServiceUnavailable().finish();
        }
        Some(Fault::Status(code)) => {
            let status = actix_web::http::StatusCode::from_u16(code).expect("valid status code");
            return HttpResponse::build(status).body(format!("injected fault {code}"));
        }
        None => {}
    }

    let mut s = state.lock().unwrap();
    let endpoint = format!("{}{}", s.base, name);
    let outcome = match s.browsers.get(&name) {
        None => Err((404, "no such subscription".to_string())),
        Some(browser) => check_and_decrypt(&req, &body, browser, &s.origin, &endpoint),
    };
    match outcome {
        Ok(received) => {
            s.received.push(received);
            // Like FCM/Mozilla: 201 Created with a Location for the message.
            HttpResponse::Created()
                .insert_header(("Location", format!("{endpoint}/m/{}", s.received.len())))
                .finish()
        }
        Err((404, reason)) => HttpResponse::NotFound().body(reason),
        Err((status, reason)) => {
            s.rejected.push(Rejected {
                endpoint,
                status,
                reason: reason.clone(),
            });
            let status = actix_web::http::StatusCode::from_u16(status).expect("valid status");
            HttpResponse::build(status).body(reason)
        }
    }
}

fn take_fault(s: &mut State, name: &str) -> Option<Fault> {
    let rules = s.faults.get_mut(name)?;
    let idx = rules
        .iter()
        .position(|r| r.remaining.is_none_or(|n| n > 0))?;
    let fault = rules[idx].fault;
    if let Some(n) = rules[idx].remaining.as_mut() {
        *n -= 1;
        if *n == 0 {
            rules.remove(idx);
        }
    }
    Some(fault)
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn check_and_decrypt(
    req: &HttpRequest,
    body: &[u8],
    browser: &FakeBrowser,
    origin: &str,
    endpoint: &str,
) -> Result<Received, (u16, String)> {
    // VAPID (RFC 8292 §3): Authorization: vapid t=<jwt>, k=<public key>
    let auth = header(req, "Authorization").ok_or((401, "missing Authorization".to_string()))?;
    let params = auth
        .strip_prefix("vapid ")
        .ok_or((401, format!("not a vapid Authorization: {auth}")))?;
    let mut token = None;
    let mut key = None;
    for part in params.split(',') {
        let part = part.trim();
        if let Some(t) = part.strip_prefix("t=") {
            token = Some(t);
        } else if let Some(k) = part.strip_prefix("k=") {
            key = Some(k);
        }
    }
    let token = token.ok_or((401, "vapid without t=".to_string()))?;
    let key_b64 = key.ok_or((401, "vapid without k=".to_string()))?;
    let key = URL_SAFE_NO_PAD
        .decode(key_b64)
        .map_err(|e| (401, format!("k= is not base64url: {e}")))?;
    if key.len() != 65 || key[0] != 4 {
        return Err((401, "k= is not an uncompressed P-256 point".to_string()));
    }
    let public = ES256PublicKey::from_bytes(&key).map_err(|e| (401, format!("bad k=: {e}")))?;
    let options = VerificationOptions {
        allowed_audiences: Some(HashSet::from([origin.to_string()])),
        time_tolerance: Some(jwt_simple::prelude::Duration::from_secs(0)),
        ..Default::default()
    };
    let claims = public
        .verify_token::<NoCustomClaims>(token, Some(options))
        .map_err(|e| (401, format!("VAPID JWT refused: {e}")))?;
    let now = Clock::now_since_epoch().as_secs();
    let exp = claims
        .expires_at
        .ok_or((401, "JWT without exp".to_string()))?
        .as_secs();
    if exp <= now {
        return Err((401, "JWT expired".to_string()));
    }
    if exp > now + 24 * 3600 {
        return Err((401, "JWT exp more than 24 hours ahead".to_string()));
    }
    let aud = claims
        .audiences
        .ok_or((401, "JWT without aud".to_string()))?
        .into_string()
        .map_err(|e| (401, format!("aud: {e}")))?;
    let sub = claims.subject.ok_or((401, "JWT without sub".to_string()))?;
    if !(sub.starts_with("mailto:") || sub.starts_with("https:")) {
        return Err((403, format!("sub is not a mailto: or https: URL: {sub}")));
    }
    if let Some(expected) = &browser.app_server_key {
        if expected != &key {
            return Err((
                403,
                "VAPID key differs from the subscription's applicationServerKey".to_string(),
            ));
        }
    }

    // RFC 8030 headers.
    let ttl: u32 = header(req, "TTL")
        .ok_or((400, "missing TTL".to_string()))?
        .trim()
        .parse()
        .map_err(|_| (400, "TTL is not a number".to_string()))?;
    let urgency = header(req, "Urgency").map(str::to_string);
    if let Some(u) = &urgency {
        if !["very-low", "low", "normal", "high"].contains(&u.as_str()) {
            return Err((400, format!("bad Urgency {u}")));
        }
    }
    let topic = header(req, "Topic").map(str::to_string);
    if let Some(t) = &topic {
        let ok = !t.is_empty()
            && t.len() <= 32
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err((400, format!("bad Topic {t}")));
        }
    }

    // RFC 8291 body.
    if header(req, "Content-Encoding") != Some("aes128gcm") {
        return Err((
            400,
            format!(
                "Content-Encoding is {:?}, expected aes128gcm",
                header(req, "Content-Encoding")
            ),
        ));
    }
    let payload = ece::decrypt(&browser.keys, &browser.auth, body)
        .map_err(|e| (400, format!("cannot decrypt payload: {e}")))?;

    Ok(Received {
        endpoint: endpoint.to_string(),
        payload,
        ttl,
        urgency,
        topic,
        sub_claim: sub,
        aud,
        vapid_key: key_b64.to_string(),
    })
}
