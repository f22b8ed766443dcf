//! A FHIR server for tests, playing the trust's patient record (EPR): it takes transaction
//! Bundles POSTed to its base URL, checks that each is one (every entry a PUT or POST with a
//! resource), stores the resources by type and id as a server would (a repeat PUT makes a
//! new version of the same resource, not a new resource), and answers with a
//! transaction-response Bundle. It can be told to fail the next N requests with a status.
//!
//! The HTTP server (actix-web) runs on its own thread with its own runtime, like the push
//! service, and stops when the value drops.
#![allow(dead_code)]

use actix_web::{dev::ServerHandle, web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A transaction the server accepted.
#[derive(Clone, Debug)]
pub struct Received {
    pub bundle: Value,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
}

#[derive(Default)]
struct State {
    /// (status, how many more requests get it)
    failures: Vec<(u16, usize)>,
    requests: usize,
    received: Vec<Received>,
    /// "Type/id" → how many versions
    stored: HashMap<String, usize>,
    resources: HashMap<String, Value>,
}

type Shared = Arc<Mutex<State>>;

pub struct FhirServer {
    base: String,
    state: Shared,
    handle: ServerHandle,
}

impl FhirServer {
    pub async fn start() -> FhirServer {
        let state: Shared = Arc::new(Mutex::new(State::default()));
        let data = web::Data::new(state.clone());
        let (addr, handle) = super::peer::serve_on_thread("test-fhir-server", 1, move |cfg| {
            cfg.app_data(data.clone())
                .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
                .route("/fhir", web::post().to(transaction))
                .default_service(web::to(|| async {
                    HttpResponse::NotFound().body("not a FHIR base")
                }));
        })
        .await;
        FhirServer {
            base: format!("http://{addr}/fhir"),
            state,
            handle,
        }
    }

    /// The FHIR base URL to configure as `[record] base_url`.
    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    /// Answers the next `n` requests with `status` instead of processing them.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state.lock().unwrap().failures.push((status, n));
    }

    /// Every request, failed or not.
    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    /// The transactions accepted, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// How many versions of `Type/id` the server holds (0: none).
    pub fn versions(&self, reference: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .stored
            .get(reference)
            .copied()
            .unwrap_or(0)
    }

    /// The stored resource `Type/id`.
    pub fn resource(&self, reference: &str) -> Option<Value> {
        self.state.lock().unwrap().resources.get(reference).cloned()
    }

    pub fn resource_count(&self) -> usize {
        self.state.lock().unwrap().resources.len()
    }
}

impl Drop for FhirServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn outcome(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .content_type("application/fhir+json")
        .json(json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "error", "code": code, "diagnostics": message }],
        }))
}

async fn transaction(state: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let mut s = state.lock().unwrap();
    s.requests += 1;
    if let Some(rule) = s.failures.iter_mut().find(|(_, n)| *n > 0) {
        rule.1 -= 1;
        let status = rule.0;
        return outcome(status, "transient", "injected failure");
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let Ok(bundle) = serde_json::from_slice::<Value>(&body) else {
        return outcome(400, "structure", "the body is not JSON");
    };
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "transaction" {
        return outcome(
            400,
            "invalid",
            "POST to the base takes a transaction Bundle",
        );
    }
    let Some(entries) = bundle["entry"].as_array() else {
        return outcome(400, "invalid", "the transaction has no entries");
    };
    let mut responses = Vec::new();
    let mut writes = Vec::new();
    for e in entries {
        let method = e["request"]["method"].as_str().unwrap_or("");
        let url = e["request"]["url"].as_str().unwrap_or("");
        let rt = e["resource"]["resourceType"].as_str().unwrap_or("");
        let id = e["resource"]["id"].as_str().unwrap_or("");
        if method != "PUT" || url != format!("{rt}/{id}") || rt.is_empty() || id.is_empty() {
            return outcome(
                400,
                "invalid",
                &format!("entry {method} {url}: expected PUT Type/id matching the resource"),
            );
        }
        writes.push((url.to_string(), e["resource"].clone()));
    }
    for (url, resource) in writes {
        let n = s.stored.entry(url.clone()).or_insert(0);
        *n += 1;
        let status = if *n == 1 { "201 Created" } else { "200 OK" };
        responses.push(
            json!({ "response": { "status": status, "location": format!("{url}/_history/{n}") } }),
        );
        s.resources.insert(url, resource);
    }
    s.received.push(Received {
        bundle: bundle.clone(),
        authorization: header("Authorization"),
        content_type: header("Content-Type"),
    });
    HttpResponse::Ok()
        .content_type("application/fhir+json")
        .json(
            json!({ "resourceType": "Bundle", "type": "transaction-response", "entry": responses }),
        )
}
