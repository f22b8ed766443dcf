//! The OpenAPI document at /api/v1/openapi.json, read through HTTP: it is OpenAPI 3.1, every
//! operation has its answers and the one error shape, it names exactly the routes the app
//! serves, and real requests and answers validate against its schemas (with the
//! `jsonschema` crate, an implementation independent of the one that wrote the document).
use crate::cli::bleepless;
use crate::helpers::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

const METRICS_TOKEN: &str = "openapi-test-metrics-token";
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// The document as served, without credentials.
async fn document(app: &TestApp) -> Value {
    let res = app
        .client
        .get(format!("{}/api/v1/openapi.json", app.base))
        .send()
        .await
        .expect("request");
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (status, doc) = read(res).await;
    assert_eq!(status, 200, "{doc}");
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    doc
}

/// Every (path, method, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
    }
    out
}

/// Follows a local `$ref` (`#/components/schemas/X`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// Whether an answer's JSON schema is the error shape.
fn is_error_shape(doc: &Value, response: &Value) -> bool {
    let response = match response.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, r).expect("response ref resolves"),
        None => response,
    };
    response["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/ErrorBody"
}

#[tokio::test(flavor = "multi_thread")]
async fn the_document_is_openapi_3_1_with_answers_the_error_shape_and_security_on_every_operation()
{
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi is {version:?}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // The error shape is the one the API writes.
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], json!(["error"]), "{error}");
    let detail = &doc["components"]["schemas"]["ErrorDetail"];
    assert_eq!(detail["required"], json!(["code", "message"]), "{detail}");
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["session"]["name"], "bleepless_session");
    assert_eq!(schemes["csrf"]["in"], "header");

    // Every reference points at something.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        assert!(resolve(&doc, r).is_some(), "dangling $ref {r}");
    }

    let ops = operations(&doc);
    assert!(ops.len() >= 25, "only {} operations", ops.len());
    let mut ids = BTreeSet::new();
    for (path, method, op) in &ops {
        let at = format!("{} {path}", method.to_uppercase());
        assert!(
            ids.insert(op["operationId"].as_str().unwrap_or_default().to_string()),
            "{at}: operationId missing or not unique"
        );
        assert!(op["summary"].is_string(), "{at}: no summary");
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{at}: no success answer"
        );
        let errors: Vec<_> = responses
            .iter()
            .filter(|(s, _)| s.starts_with('4') || s.starts_with('5'))
            .collect();
        assert!(!errors.is_empty(), "{at}: no error answer");
        // Every error answer has the one shape (but /healthz's 503 may be its report too).
        for (status, response) in errors {
            assert!(
                is_error_shape(&doc, response) || (path == "/healthz" && status == "503"),
                "{at}: answer {status} is not the error shape: {response}"
            );
        }
        let security = op["security"]
            .as_array()
            .expect("security on every operation");
        let open = security.iter().any(|r| r == &json!({}));
        if !open {
            assert!(responses.contains_key("401"), "{at}: secured, but no 401");
        }
        // A request with a body may also be refused for its body.
        if op.get("requestBody").is_some() {
            for s in ["400", "413", "415"] {
                assert!(responses.contains_key(s), "{at}: a body, but no {s}");
            }
        }
        // The pages' scripts change things only with the CSRF token beside the cookie.
        if path.starts_with("/api/v1/") && !open {
            let session: Vec<&Value> = security
                .iter()
                .filter(|r| r.get("session").is_some())
                .collect();
            assert_eq!(session.len(), 1, "{at}: {security:?}");
            assert_eq!(
                session[0].get("csrf").is_some(),
                method != "get",
                "{at}: CSRF only on changes"
            );
            assert!(
                security.iter().any(|r| r == &json!({"bearer": []})),
                "{at}: {security:?}"
            );
        }
        // Every `{param}` of the path is described as a path parameter.
        for name in path_params(path) {
            assert!(
                op["parameters"].as_array().is_some_and(|ps| ps
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true)),
                "{at}: path parameter {name} is not described"
            );
        }
    }
    // The ones a caller cannot do without.
    for (path, method) in [
        ("/api/v1/tasks", "post"),
        ("/api/v1/tasks", "get"),
        ("/api/v1/tasks/{id}", "get"),
        ("/api/v1/tasks/{id}/{action}", "post"),
        ("/api/v1/openapi.json", "get"),
        ("/healthz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }

    // `bleepless openapi` prints the same document, without configuration or database.
    let (ok, out, err) = tokio::task::spawn_blocking(|| bleepless(&["openapi"]))
        .await
        .unwrap();
    assert!(ok, "{err}");
    let printed: Value = serde_json::from_str(&out).expect("the CLI prints JSON");
    assert_eq!(
        printed, doc,
        "the CLI and the service give different documents"
    );
}

fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_string)
        .collect()
}

/// A concrete path for a documented one: each `{param}` replaced by a value its schema
/// allows (the first of an enum, else a made-up id).
fn concrete(doc: &Value, path: &str, op: &Value) -> String {
    let mut out = path.to_string();
    for name in path_params(path) {
        let param = op["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .expect("described");
        let schema = match param["schema"].get("$ref").and_then(Value::as_str) {
            Some(r) => resolve(doc, r).expect("resolves").clone(),
            None => param["schema"].clone(),
        };
        let value = schema["enum"][0]
            .as_str()
            .unwrap_or("0192f0c0-0000-7000-8000-000000000000")
            .to_string();
        out = out.replace(&format!("{{{name}}}"), &value);
    }
    out
}

fn method(m: &str) -> reqwest::Method {
    reqwest::Method::from_bytes(m.to_uppercase().as_bytes()).unwrap()
}

/// Whether an answer is the router's "nothing here" rather than an operation's own.
fn no_such_endpoint(status: u16, body: &Value) -> bool {
    status == 405
        || (status == 404
            && body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no such endpoint")))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_document_names_exactly_the_routes_the_app_serves() {
    let app = TestApp::spawn_with(|c| c.metrics.token = Some(METRICS_TOKEN.into())).await;
    let doc = document(&app).await;
    let ops = operations(&doc);

    // Every documented operation is served: without credentials, a secured one says 401
    // (never the router's 404 or a 405), and an open one answers.
    for (path, m, op) in &ops {
        let url = format!("{}{}", app.base, concrete(&doc, path, op));
        let res = app
            .client
            .request(method(m), &url)
            .send()
            .await
            .expect("request");
        let (status, body) = read(res).await;
        let at = format!("{} {path}", m.to_uppercase());
        assert!(
            !no_such_endpoint(status, &body),
            "{at}: not served: {status} {body}"
        );
        let open = op["security"]
            .as_array()
            .is_some_and(|s| s.contains(&json!({})));
        if open && op.get("requestBody").is_none() {
            assert!(
                status < 400
                    || (path == "/healthz" && status == 503)
                    // A calendar feed's code is a secret: a made-up one names no feed.
                    || (path == "/calendar/{code}" && status == 404),
                "{at}: open, but {status} {body}"
            );
        } else if !open {
            assert_eq!(status, 401, "{at}: {body}");
            assert_eq!(body["error"]["code"], "unauthorized", "{at}: {body}");
        }
        assert!(
            op["responses"][status.to_string()].is_object(),
            "{at}: answered {status}, which the document does not give"
        );
    }

    // Nothing else is served at a documented path: every other method is the router's 404
    // (unless another documented pattern takes that path, as `/tasks/{id}/{action}` does).
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "post", "put", "delete", "patch"] {
            if item.get(m).is_some() {
                continue;
            }
            let op = item.as_object().unwrap().values().next().unwrap();
            let at = concrete(&doc, path, op);
            if ops.iter().any(|(p, pm, _)| pm == m && matches(p, &at)) {
                continue;
            }
            let url = format!("{}{at}", app.base);
            let res = app.client.request(method(m), &url).send().await.unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            // Outside /api the router's 404 is a page, not JSON.
            let page_404 = !path.starts_with("/api/") && status == 404;
            assert!(
                page_404 || no_such_endpoint(status, &body),
                "{} {path} is served ({status} {body}) but not documented",
                m.to_uppercase()
            );
        }
    }

    // And no route is registered under /api/v1 except from the one list that also makes the
    // document (src/web/api/mod.rs, `operations!`): the source registers routes there only
    // through `document::register`, and names no /api path anywhere else.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let registering = [
        ".route(",
        ".service(",
        "web::resource(",
        "web::scope(",
        "Resource::new(",
        "Scope::new(",
        "#[get(",
        "#[post(",
        "#[put(",
        "#[delete(",
        "#[patch(",
        "#[route(",
    ];
    let mut scopes = 0;
    for file in &files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let registers = registering.iter().any(|r| code.contains(r));
            if rel.starts_with("web/api/") && registers {
                assert!(
                    rel == "web/api/document.rs"
                        && code.contains("cfg.route(at, web::method(actix_method(&method))"),
                    "src/{rel}:{}: registers a route outside the one list of operations: {line}",
                    n + 1
                );
            }
            if registers && (code.contains("\"/api") || code.contains("API_PREFIX")) {
                assert!(
                    rel == "web/mod.rs"
                        && code.contains(
                            ".service(web::scope(api::API_PREFIX).configure(api::routes))"
                        ),
                    "src/{rel}:{}: registers an /api route outside the one list: {line}",
                    n + 1
                );
                scopes += 1;
            }
        }
    }
    assert_eq!(scopes, 1, "the API is mounted once, from api::routes");
}

/// Whether a concrete path matches a documented pattern (`{param}` takes one segment).
fn matches(pattern: &str, path: &str) -> bool {
    let (p, c): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == c.len()
        && p.iter()
            .zip(&c)
            .all(|(p, c)| p == c || (p.starts_with('{') && p.ends_with('}')))
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The document's schemas made strict for checking our own answers: an object schema that
/// lists its properties admits no others (except the error detail, which a 409 extends).
fn strict(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.contains_key("properties") && !m.contains_key("additionalProperties") {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            m.values_mut().for_each(strict);
        }
        Value::Array(a) => a.iter_mut().for_each(strict),
        _ => {}
    }
}

/// Checks JSON against schemas of the document.
struct Judge {
    doc: Value,
    components: Value,
}

impl Judge {
    fn new(doc: Value) -> Judge {
        let mut components = doc["components"].clone();
        if let Some(schemas) = components["schemas"].as_object_mut() {
            for (name, schema) in schemas.iter_mut() {
                if name != "ErrorDetail" {
                    strict(schema);
                }
            }
        }
        Judge { doc, components }
    }

    fn check(&self, what: &str, schema: &Value, instance: &Value) {
        let mut root = Map::new();
        root.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        root.insert("components".into(), self.components.clone());
        root.insert("allOf".into(), json!([schema]));
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: does not match the document:\n{}\n{instance:#}",
            errors.join("\n")
        );
    }

    fn op(&self, method: &str, path: &str) -> &Value {
        let op = &self.doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        op
    }

    /// Checks a request body against the operation's.
    fn request(&self, method: &str, path: &str, body: &Value) {
        let schema = &self.op(method, path)["requestBody"]["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{method} {path}: no request schema");
        self.check(&format!("{method} {path} request"), schema, body);
    }

    /// Checks an answer against the operation's answer with that status.
    fn answer(&self, method: &str, path: &str, status: u16, body: &Value) {
        let response = &self.op(method, path)["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{method} {path}: {status} is not documented: {body}"
        );
        let schema = &response["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{method} {path} {status}: no schema");
        self.check(&format!("{method} {path} {status}"), schema, body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn real_requests_and_answers_validate_against_the_documents_schemas() {
    let w = Ward::new().await;
    let app = &w.app;
    let judge = Judge::new(document(app).await);

    // Raise: the request as an integrator would send it, and the 201.
    let raise = json!({
        "nhs_number": NHS_1,
        "ward": WARD,
        "bed": "12",
        "category": "cannula",
        "description": "Cannula tissued; IV antibiotics due at 22:00",
        "priority": "urgent",
        "news2": 5,
        "assignee": w.fy1,
    });
    judge.request("post", "/api/v1/tasks", &raise);
    let (status, task) = app.post("/api/v1/tasks", &w.nurse.token, raise).await;
    assert_eq!(status, 201, "{task}");
    judge.answer("post", "/api/v1/tasks", status, &task);
    let id = task["id"].as_str().unwrap().to_string();

    // Acknowledge, comment, read it back, and list.
    let (status, acked) = w.app.act(&id, "acknowledge", &w.amy.token, json!({})).await;
    assert_eq!(status, 200, "{acked}");
    judge.answer("post", "/api/v1/tasks/{id}/{action}", status, &acked);
    let comment = json!({ "text": "On my way" });
    judge.request("post", "/api/v1/tasks/{id}/comments", &comment);
    let (status, event) = app
        .post(
            &format!("/api/v1/tasks/{id}/comments"),
            &w.amy.token,
            comment,
        )
        .await;
    assert_eq!(status, 201, "{event}");
    judge.answer("post", "/api/v1/tasks/{id}/comments", status, &event);
    let done = json!({ "outcome": { "code": "done", "text": "New cannula sited, left forearm" } });
    judge.request("post", "/api/v1/tasks/{id}/{action}", &done);
    let (status, body) = w.app.act(&id, "start", &w.amy.token, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, completed) = w.app.act(&id, "complete", &w.amy.token, done).await;
    assert_eq!(status, 200, "{completed}");
    judge.answer("post", "/api/v1/tasks/{id}/{action}", status, &completed);
    assert!(completed["outcome"].is_object(), "{completed}");

    let (status, read_back) = app.get(&format!("/api/v1/tasks/{id}"), &w.amy.token).await;
    assert_eq!(status, 200, "{read_back}");
    judge.answer("get", "/api/v1/tasks/{id}", status, &read_back);
    assert!(read_back["timeline"]
        .as_array()
        .is_some_and(|t| t.len() >= 4));

    // Every other read, as a caller allowed to make it.
    w.app
        .raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    let comments = format!("/api/v1/tasks/{id}/comments");
    let notifications = format!("/api/v1/tasks/{id}/notifications");
    let reads = [
        (
            "/api/v1/tasks",
            "/api/v1/tasks?status=requested,completed&limit=5",
            &w.nurse.token,
        ),
        (
            "/api/v1/tasks/{id}/comments",
            comments.as_str(),
            &w.amy.token,
        ),
        (
            "/api/v1/tasks/{id}/notifications",
            notifications.as_str(),
            &w.amy.token,
        ),
        ("/api/v1/me", "/api/v1/me", &w.amy.token),
        ("/api/v1/wards", "/api/v1/wards", &w.amy.token),
        ("/api/v1/roles", "/api/v1/roles", &w.amy.token),
        ("/api/v1/staff", "/api/v1/staff", &w.amy.token),
        (
            "/api/v1/push-subscriptions",
            "/api/v1/push-subscriptions",
            &w.amy.token,
        ),
        (
            "/api/v1/push/vapid-public-key",
            "/api/v1/push/vapid-public-key",
            &w.amy.token,
        ),
        (
            "/api/v1/notifications",
            "/api/v1/notifications",
            &w.manager.token,
        ),
        (
            "/api/v1/record-deliveries",
            "/api/v1/record-deliveries",
            &w.manager.token,
        ),
        ("/api/v1/dashboard", "/api/v1/dashboard", &w.manager.token),
        ("/healthz", "/healthz", &w.amy.token),
    ];
    for (documented, url, token) in reads {
        let (status, body) = app.get(url, token).await;
        assert!(
            status == 200 || documented == "/healthz",
            "{url}: {status} {body}"
        );
        judge.answer("get", documented, status, &body);
    }
    let (_, dashboard) = app.get("/api/v1/dashboard", &w.manager.token).await;
    assert!(
        dashboard["late"].as_array().is_some_and(|l| !l.is_empty())
            || dashboard["wards"].as_array().is_some_and(|l| !l.is_empty()),
        "{dashboard}"
    );

    // Errors, each in the one shape and documented for its operation: a body that is not
    // the operation's (400), no credentials (401), a task that is not there (404), a status
    // change the task's status does not allow (409), a field that is not valid (422).
    let (status, body) = app
        .post("/api/v1/tasks", &w.nurse.token, json!({ "nope": 1 }))
        .await;
    assert_eq!(status, 400, "{body}");
    judge.answer("post", "/api/v1/tasks", status, &body);
    let (status, body) = app.get("/api/v1/tasks", "not-a-token").await;
    assert_eq!(status, 401, "{body}");
    judge.answer("get", "/api/v1/tasks", status, &body);
    let (status, body) = app
        .get(
            "/api/v1/tasks/0192f0c0-0000-7000-8000-000000000000",
            &w.amy.token,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    judge.answer("get", "/api/v1/tasks/{id}", status, &body);
    let (status, body) = w.app.act(&id, "acknowledge", &w.amy.token, json!({})).await;
    assert_eq!(status, 409, "{body}");
    judge.answer("post", "/api/v1/tasks/{id}/{action}", status, &body);
    let (status, body) = w
        .app
        .raise(&w.nurse.token, &w.fy1, json!({ "nhs_number": "123" }))
        .await;
    assert_eq!(status, 422, "{body}");
    judge.answer("post", "/api/v1/tasks", status, &body);

    // The schemas are strict enough to notice a field that is not described.
    let mut extra = read_back.clone();
    extra["undocumented"] = json!(true);
    let strict_schema = &judge.op("get", "/api/v1/tasks/{id}")["responses"]["200"]["content"]
        ["application/json"]["schema"];
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        judge.check("extra field", strict_schema, &extra)
    }));
    assert!(caught.is_err(), "an undescribed field passed");
}
