use crate::helpers::*;
use serde_json::json;

/// Sends a raw request and checks the status and that the body is a JSON error with a message.
async fn expect_error(app: &TestApp, req: reqwest::RequestBuilder, status: u16, says: &str) {
    let (s, body) = read(req.send().await.expect("request")).await;
    assert_eq!(
        s, status,
        "expected {status} saying {says:?}, got {s}: {body}"
    );
    let msg = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {body}"));
    assert!(
        msg.to_lowercase().contains(&says.to_lowercase()),
        "message {msg:?} should mention {says:?}"
    );
    let _ = app;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_raise_gets_a_4xx_naming_the_problem_and_stores_nothing() {
    let w = Ward::new().await;
    let app = &w.app;
    let url = format!("{}/api/v1/tasks", app.base);
    let post = || app.client.post(&url).bearer_auth(&w.nurse.token);
    let good = json!({
        "nhs_number": NHS_1, "ward": WARD, "bed": "3", "category": "bloods",
        "description": "U&E and FBC", "priority": "routine", "assignee": w.fy1,
    });
    let with = |k: &str, v: serde_json::Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            post()
                .header("content-type", "application/json")
                .body("{\"nhs_number\": "),
            400,
            "invalid JSON",
        ),
        (
            post().json(&with("priority", json!(3))),
            400,
            "invalid type",
        ),
        (
            post().json(&with("surprise", json!("x"))),
            400,
            "unknown field",
        ),
        (
            post().json(&with("priority", json!("whenever"))),
            400,
            "stat, asap, urgent, routine",
        ),
        (
            post().json(&with("category", json!("haircut"))),
            400,
            "category",
        ),
        (
            post().json(&with("nhs_number", json!("9990000019"))),
            422,
            "check digit",
        ),
        (
            post().json(&with("nhs_number", json!("12345"))),
            422,
            "10 digits",
        ),
        (
            post().json(&with("ward", json!("Ward 99"))),
            422,
            "not a ward",
        ),
        (post().json(&with("bed", json!(""))), 422, "bed"),
        (
            post().json(&with("assignee", json!("Nobody at all"))),
            422,
            "neither",
        ),
        (
            post().json(&with("assignee", json!(w.nurse.id))),
            422,
            "not a clinician",
        ),
        (
            post().json(&with("news2", json!(21))),
            422,
            "between 0 and 20",
        ),
        (
            post().json(&with("description", json!("x".repeat(2001)))),
            422,
            "at most 2000",
        ),
        (post().json(&json!({ "ward": WARD })), 400, "missing field"),
        (
            post()
                .header("content-type", "application/json")
                .body(format!("{{\"description\": \"{}\"}}", "x".repeat(70_000))),
            413,
            "bytes",
        ),
        (
            post().header("content-type", "text/plain").body("hello"),
            415,
            "application/json",
        ),
        (app.client.post(&url).json(&good), 401, "Bearer"),
        (
            app.client
                .post(&url)
                .bearer_auth("blp_not-a-real-token")
                .json(&good),
            401,
            "not valid",
        ),
        (
            app.client
                .post(&url)
                .header("authorization", "Basic Zm9vOmJhcg==")
                .json(&good),
            401,
            "Bearer",
        ),
    ];
    for (req, status, says) in cases {
        expect_error(app, req, status, says).await;
    }
    assert_eq!(
        app.task_count().await,
        0,
        "a rejected request stored a task"
    );
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_ids_paths_and_queries_are_clear_4xx_errors() {
    let w = Ward::new().await;
    let app = &w.app;
    let t = &w.nurse.token;
    let get = |p: &str| app.client.get(format!("{}{p}", app.base)).bearer_auth(t);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (get("/api/v1/tasks/no-such-task"), 404, "no task"),
        (get("/api/v1/tasks?status=lost"), 400, "status"),
        (get("/api/v1/tasks?limit=0"), 400, "limit"),
        (get("/api/v1/tasks?limit=many"), 400, "invalid query"),
        (get("/api/v1/tasks?after=garbage"), 400, "cursor"),
        (get("/api/v1/tasks?colour=blue"), 400, "unknown field"),
        (get("/api/v1/tasks?assignee=ghost"), 400, "assignee"),
        (get("/api/v1/nothing-here"), 404, "no such endpoint"),
        (
            app.client
                .post(format!(
                    "{}/api/v1/tasks/no-such-task/acknowledge",
                    app.base
                ))
                .bearer_auth(&w.amy.token),
            404,
            "no task",
        ),
        (
            app.client
                .post(format!("{}/api/v1/tasks/x/explode", app.base))
                .bearer_auth(&w.amy.token),
            404,
            "no action",
        ),
        (
            app.client
                .post(format!("{}/api/v1/tasks/x/comments", app.base))
                .bearer_auth(&w.amy.token)
                .json(&json!({"text": "hi"})),
            404,
            "no task",
        ),
        (
            app.client.get(format!("{}/api/v1/tasks", app.base)),
            401,
            "Bearer",
        ),
    ];
    for (req, status, says) in cases {
        expect_error(app, req, status, says).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_action_bodies_change_nothing() {
    let w = Ward::new().await;
    let app = &w.app;
    let id = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let url = format!("{}/api/v1/tasks/{id}/acknowledge", app.base);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            app.client
                .post(&url)
                .bearer_auth(&w.amy.token)
                .header("content-type", "application/json")
                .body("{oops"),
            400,
            "invalid JSON",
        ),
        (
            app.client
                .post(&url)
                .bearer_auth(&w.amy.token)
                .json(&json!({ "reason": "x" })),
            400,
            "takes no field",
        ),
        (
            app.client
                .post(&url)
                .bearer_auth(&w.amy.token)
                .json(&json!({ "colour": "x" })),
            400,
            "unknown field",
        ),
        (
            app.client
                .post(&url)
                .bearer_auth(&w.amy.token)
                .body("x".repeat(100_000)),
            413,
            "",
        ),
    ];
    for (req, status, says) in cases {
        expect_error(app, req, status, says).await;
    }
    let (_, t) = app.get(&format!("/api/v1/tasks/{id}"), &w.amy.token).await;
    assert_eq!(t["status"], "requested");
    assert_eq!(t["version"], 1);
}
