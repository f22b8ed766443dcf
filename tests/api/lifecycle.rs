use crate::helpers::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn raise_acknowledge_start_complete_tells_the_whole_story() {
    let w = Ward::new().await;
    let (status, task) = w
        .app
        .raise(&w.nurse.token, "Medicine FY1 night", json!({ "news2": 5 }))
        .await;
    assert_eq!(status, 201, "{task}");
    assert_eq!(task["status"], "requested");
    assert_eq!(task["assignee"]["type"], "role");
    assert_eq!(task["assignee"]["name"], "Medicine FY1 night");
    assert_eq!(task["raised_by"]["name"], "Sister Grace Okafor");
    assert_eq!(task["news2"], 5);
    let id = task["id"].as_str().unwrap();

    w.app.advance(60);
    let (s, t) = w.app.act(id, "acknowledge", &w.amy.token, json!({})).await;
    assert_eq!((s, t["status"].as_str()), (200, Some("accepted")), "{t}");
    assert_eq!(t["acknowledged_by"]["name"], "Dr Amy Patel");
    let (s, t) = w.app.act(id, "start", &w.amy.token, json!({})).await;
    assert_eq!((s, t["status"].as_str()), (200, Some("in-progress")), "{t}");
    let (s, t) = w
        .app
        .act(
            id,
            "complete",
            &w.amy.token,
            json!({ "outcome": { "code": "done", "text": "Re-sited 20G left forearm" } }),
        )
        .await;
    assert_eq!((s, t["status"].as_str()), (200, Some("completed")), "{t}");
    assert_eq!(t["outcome"]["code"], "done");
    assert_eq!(t["outcome"]["text"], "Re-sited 20G left forearm");

    let (s, t) = w
        .app
        .get(&format!("/api/v1/tasks/{id}"), &w.manager.token)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        kinds(&t),
        ["raised", "acknowledged", "started", "completed"]
    );
    let tl = t["timeline"].as_array().unwrap();
    assert_eq!(tl[1]["from_status"], "requested");
    assert_eq!(tl[1]["to_status"], "accepted");
    assert_eq!(tl[1]["actor"]["name"], "Dr Amy Patel");
    assert_eq!(tl[1]["at"], "2026-11-26T02:01:00Z");
    let seqs: Vec<i64> = tl.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
}

/// Each command's answer is the task as a read straight after it shows it: the timeline the
/// command tells from what it read and wrote (with no read after the write) is the one
/// stored, names and all, a comment between two changes included.
#[tokio::test(flavor = "multi_thread")]
async fn each_answer_is_the_task_as_a_read_then_shows_it() {
    let w = Ward::new().await;
    let (s, answer) = w
        .app
        .raise(&w.nurse.token, "Medicine FY1 night", json!({}))
        .await;
    assert_eq!(s, 201, "{answer}");
    let id = answer["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/tasks/{id}");
    assert_eq!(answer, w.app.get(&path, &w.nurse.token).await.1);
    w.app.advance(30);
    let (s, answer) = w.app.act(&id, "acknowledge", &w.amy.token, json!({})).await;
    assert_eq!(s, 200, "{answer}");
    assert_eq!(answer, w.app.get(&path, &w.nurse.token).await.1);
    let comment = json!({ "text": "Bloods bottles are on the trolley" });
    let (s, _) = w
        .app
        .post(&format!("{path}/comments"), &w.nurse.token, comment)
        .await;
    assert_eq!(s, 201);
    w.app.advance(30);
    for (action, body) in [
        ("start", json!({})),
        (
            "complete",
            json!({ "outcome": { "code": "done", "text": "Taken" } }),
        ),
    ] {
        let (s, answer) = w.app.act(&id, action, &w.amy.token, body).await;
        assert_eq!(s, 200, "{answer}");
        assert_eq!(answer, w.app.get(&path, &w.nurse.token).await.1, "{action}");
    }
    assert_eq!(
        kinds(&w.app.get(&path, &w.nurse.token).await.1),
        [
            "raised",
            "acknowledged",
            "commented",
            "started",
            "completed"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledge_deadline_comes_from_the_priority_target() {
    let w = Ward::new().await;
    for (priority, secs) in [
        ("stat", 120),
        ("asap", 300),
        ("urgent", 900),
        ("routine", 3600),
    ] {
        let (s, t) = w
            .app
            .raise(&w.nurse.token, &w.fy1, json!({ "priority": priority }))
            .await;
        assert_eq!(s, 201);
        let raised =
            chrono::DateTime::parse_from_rfc3339(t["raised_at"].as_str().unwrap()).unwrap();
        let deadline =
            chrono::DateTime::parse_from_rfc3339(t["ack_deadline"].as_str().unwrap()).unwrap();
        assert_eq!((deadline - raised).num_seconds(), secs, "{priority}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_coordinators_raise_tasks() {
    let w = Ward::new().await;
    for who in [&w.amy, &w.manager] {
        let (s, body) = w.app.raise(&who.token, &w.fy1, json!({})).await;
        assert_eq!(s, 403, "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("coordinators"));
    }
    assert_eq!(w.app.task_count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_assignee_or_a_holder_of_the_role_may_acknowledge() {
    let w = Ward::new().await;
    let id = w.app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let (s, body) = w.app.act(&id, "acknowledge", &w.ben.token, json!({})).await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Medicine FY1 night"),
        "{body}"
    );

    // Amy hands the bleep to Ben: now Ben may, and Amy may not.
    let (s, body) = w
        .app
        .post(
            &format!("/api/v1/roles/{}/hand-over", w.fy1),
            &w.amy.token,
            json!({ "to": w.ben.id }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, _) = w.app.act(&id, "acknowledge", &w.amy.token, json!({})).await;
    assert_eq!(s, 403);
    let (s, t) = w.app.act(&id, "acknowledge", &w.ben.token, json!({})).await;
    assert_eq!(s, 200, "{t}");

    // A task assigned to a person: only that person.
    let id = w.app.raised(&w.nurse.token, &w.amy.id, json!({})).await;
    assert_eq!(
        w.app
            .act(&id, "acknowledge", &w.ben.token, json!({}))
            .await
            .0,
        403
    );
    assert_eq!(
        w.app
            .act(&id, "acknowledge", &w.amy.token, json!({}))
            .await
            .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bed_managers_read_everything_and_change_nothing() {
    let w = Ward::new().await;
    let id = w.app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let (s, list) = w.app.get("/api/v1/tasks", &w.manager.token).await;
    assert_eq!(s, 200);
    assert_eq!(list["tasks"].as_array().unwrap().len(), 1);
    let events_before = w.app.event_count().await;
    for (action, body) in [
        ("acknowledge", json!({})),
        ("cancel", json!({ "reason": "duplicate" })),
        ("reassign", json!({ "assignee": w.amy.id })),
        ("comments", json!({ "text": "I'm watching this" })),
    ] {
        let (s, body) = w.app.act(&id, action, &w.manager.token, body).await;
        assert_eq!(s, 403, "{action}: {body}");
    }
    assert_eq!(w.app.event_count().await, events_before);
    let (_, t) = w
        .app
        .get(&format!("/api/v1/tasks/{id}"), &w.manager.token)
        .await;
    assert_eq!(t["status"], "requested");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_the_state_machine_forbids_is_a_409_naming_the_current_status() {
    let w = Ward::new().await;
    let id = w.app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let (s, body) = w
        .app
        .act(
            &id,
            "complete",
            &w.amy.token,
            json!({ "outcome": { "code": "done", "text": "x" } }),
        )
        .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["error"]["current_status"], "requested");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("requested"));

    w.app
        .act(
            &id,
            "cancel",
            &w.nurse.token,
            json!({ "reason": "patient discharged" }),
        )
        .await;
    let (s, body) = w.app.act(&id, "acknowledge", &w.amy.token, json!({})).await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["error"]["current_status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread")]
async fn complete_needs_an_outcome_and_cancel_and_decline_need_a_reason() {
    let w = Ward::new().await;
    let id = w.app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    assert_eq!(
        w.app.act(&id, "decline", &w.amy.token, json!({})).await.0,
        422
    );
    assert_eq!(
        w.app
            .act(&id, "decline", &w.amy.token, json!({ "reason": "   " }))
            .await
            .0,
        422
    );
    assert_eq!(
        w.app.act(&id, "cancel", &w.nurse.token, json!({})).await.0,
        422
    );
    w.app.act(&id, "acknowledge", &w.amy.token, json!({})).await;
    let (s, body) = w.app.act(&id, "complete", &w.amy.token, json!({})).await;
    assert_eq!(s, 422, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("outcome"));
    let (s, _) = w
        .app
        .act(
            &id,
            "complete",
            &w.amy.token,
            json!({ "outcome": { "code": "maybe", "text": "x" } }),
        )
        .await;
    assert_eq!(s, 400);
    // "Could not be done" needs words; "done as requested" says enough by itself.
    let (s, body) = w
        .app
        .act(
            &id,
            "complete",
            &w.amy.token,
            json!({ "outcome": { "code": "unable", "text": " " } }),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("outcome.text is required for \"unable\""));
    let (_, t) = w
        .app
        .get(&format!("/api/v1/tasks/{id}"), &w.amy.token)
        .await;
    assert_eq!(t["status"], "accepted");
    assert_eq!(t["timeline"].as_array().unwrap().len(), 2);
    let (s, t) = w
        .app
        .act(
            &id,
            "complete",
            &w.amy.token,
            json!({ "outcome": { "code": "done" } }),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["outcome"]["code"], "done");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_task_is_reassigned_with_a_fresh_deadline() {
    let w = Ward::new().await;
    let id = w
        .app
        .raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    let (s, t) = w
        .app
        .act(
            &id,
            "decline",
            &w.amy.token,
            json!({ "reason": "In resus with a peri-arrest" }),
        )
        .await;
    assert_eq!((s, t["status"].as_str()), (200, Some("rejected")), "{t}");
    assert_eq!(t["status_reason"], "In resus with a peri-arrest");
    w.app.advance(600);
    let (s, t) = w
        .app
        .act(
            &id,
            "reassign",
            &w.nurse.token,
            json!({ "assignee": w.ben.id }),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["status"], "requested");
    assert_eq!(t["assignee"]["name"], "Dr Ben Hughes");
    assert_eq!(t["ack_deadline"], "2026-11-26T02:12:00Z");
    assert_eq!(t["overdue"], false);
    // What is stored is what the answer said: only the changed columns are written, so
    // this catches one left behind (the decline's end time, the role it was assigned to).
    let (_, stored) = w
        .app
        .get(&format!("/api/v1/tasks/{id}"), &w.ben.token)
        .await;
    assert_eq!(stored, t);
    assert_eq!(stored["ended_at"], serde_json::Value::Null, "{stored}");
    assert_eq!(
        w.app
            .act(&id, "acknowledge", &w.ben.token, json!({}))
            .await
            .0,
        200
    );
    let (_, t) = w
        .app
        .get(&format!("/api/v1/tasks/{id}"), &w.ben.token)
        .await;
    assert_eq!(
        kinds(&t),
        ["raised", "declined", "reassigned", "acknowledged"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reassignment_to_no_one_or_to_a_non_clinician_is_refused_and_changes_nothing() {
    let w = Ward::new().await;
    let id = w
        .app
        .raised(&w.nurse.token, &w.ben.id, json!({ "priority": "urgent" }))
        .await;
    let (_, before) = w
        .app
        .get(&format!("/api/v1/tasks/{id}"), &w.nurse.token)
        .await;
    for (assignee, says) in [
        (
            "Nobody at all",
            "neither a member of staff nor an on-call role",
        ),
        (w.nurse.id.as_str(), "is not a clinician"),
        ("   ", "assignee is required"),
    ] {
        let (s, body) = w
            .app
            .act(
                &id,
                "reassign",
                &w.nurse.token,
                json!({ "assignee": assignee }),
            )
            .await;
        assert_eq!(s, 422, "{assignee:?}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{body}"
        );
    }
    let (_, after) = w
        .app
        .get(&format!("/api/v1/tasks/{id}"), &w.nurse.token)
        .await;
    assert_eq!(after, before, "a refused reassignment changes nothing");
    // A role named by its name, as a coordinator types it.
    let (s, t) = w
        .app
        .act(
            &id,
            "reassign",
            &w.nurse.token,
            json!({ "assignee": "Medicine FY1 night" }),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["assignee"]["id"], w.fy1.as_str());
    assert_eq!(t["assignee"]["name"], "Medicine FY1 night");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_task_thread_keeps_comments_in_order() {
    let w = Ward::new().await;
    let id = w.app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let path = format!("/api/v1/tasks/{id}/comments");
    let (s, c) = w
        .app
        .post(&path, &w.amy.token, json!({ "text": "On my way, 10 min" }))
        .await;
    assert_eq!(s, 201, "{c}");
    w.app.advance(30);
    w.app
        .post(
            &path,
            &w.nurse.token,
            json!({ "text": "Thanks, bloods also due" }),
        )
        .await;
    let (s, body) = w.app.post(&path, &w.amy.token, json!({ "text": "" })).await;
    assert_eq!(s, 422, "{body}");
    let (s, body) = w.app.get(&path, &w.manager.token).await;
    assert_eq!(s, 200);
    let texts: Vec<&str> = body["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["detail"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["On my way, 10 min", "Thanks, bloods also due"]);
    assert_eq!(body["comments"][1]["actor"]["name"], "Sister Grace Okafor");
    // A comment does not get in the way of acknowledging.
    assert_eq!(
        w.app
            .act(&id, "acknowledge", &w.amy.token, json!({}))
            .await
            .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_list_by_filter_and_pages_without_gaps_or_repeats() {
    let w = Ward::new().await;
    let mut ids = Vec::new();
    for (i, (priority, ward)) in [
        ("stat", WARD),
        ("routine", WARD),
        ("urgent", "Ward 6"),
        ("stat", "Ward 6"),
        ("asap", WARD),
    ]
    .iter()
    .enumerate()
    {
        let assignee = if i == 2 {
            w.ben.id.clone()
        } else {
            w.fy1.clone()
        };
        ids.push(
            w.app
                .raised(
                    &w.nurse.token,
                    &assignee,
                    json!({ "priority": priority, "ward": ward }),
                )
                .await,
        );
        w.app.advance(1);
    }
    w.app
        .act(&ids[4], "acknowledge", &w.amy.token, json!({}))
        .await;

    let count = |v: &serde_json::Value| v["tasks"].as_array().unwrap().len();
    let t = &w.nurse.token;
    assert_eq!(
        count(&w.app.get("/api/v1/tasks?priority=stat", t).await.1),
        2
    );
    assert_eq!(
        count(&w.app.get("/api/v1/tasks?ward=Ward%206", t).await.1),
        2
    );
    assert_eq!(
        count(&w.app.get("/api/v1/tasks?status=accepted", t).await.1),
        1
    );
    assert_eq!(
        count(
            &w.app
                .get("/api/v1/tasks?status=requested,accepted", t)
                .await
                .1
        ),
        5
    );
    assert_eq!(
        count(
            &w.app
                .get(&format!("/api/v1/tasks?assignee={}", w.ben.id), t)
                .await
                .1
        ),
        1
    );
    assert_eq!(
        count(&w.app.get("/api/v1/tasks?assignee=me", &w.amy.token).await.1),
        4
    );
    assert_eq!(
        count(&w.app.get("/api/v1/tasks?overdue=true", t).await.1),
        0
    );
    w.app.advance(121); // past the stat target, not the others'
    let (_, overdue) = w.app.get("/api/v1/tasks?overdue=true", t).await;
    let overdue_ids: Vec<&str> = overdue["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(overdue_ids, [ids[3].as_str(), ids[0].as_str()]);

    let mut seen = Vec::new();
    let mut path = "/api/v1/tasks?limit=2".to_string();
    loop {
        let (s, page) = w.app.get(&path, t).await;
        assert_eq!(s, 200, "{page}");
        seen.extend(
            page["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/api/v1/tasks?limit=2&after={next}"),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
}

/// The timeline is the task's record: the database itself refuses to change or remove an
/// event, whoever asks, and the story read back afterwards is the one written.
#[tokio::test(flavor = "multi_thread")]
async fn the_database_refuses_to_change_or_remove_a_timeline_event() {
    let w = Ward::new().await;
    let app = &w.app;
    let id = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let (status, _) = app.act(&id, "acknowledge", &w.amy.token, json!({})).await;
    assert_eq!(status, 200);
    let (_, before) = app
        .get(&format!("/api/v1/tasks/{id}"), &w.nurse.token)
        .await;
    assert_eq!(kinds(&before), ["raised", "acknowledged"]);

    for statement in [
        "UPDATE task_events SET kind = 'completed' WHERE kind = 'acknowledged'",
        "DELETE FROM task_events WHERE kind = 'acknowledged'",
    ] {
        let store = app.store.clone();
        let refused = tokio::task::spawn_blocking(move || {
            use diesel::RunQueryDsl;
            store.write_now(|c| {
                diesel::sql_query(statement)
                    .execute(c)
                    .map_err(|e| bleepless::error::AppError::Unprocessable(e.to_string()))
            })
        })
        .await
        .unwrap();
        let error = refused.expect_err(statement).to_string();
        assert!(error.contains("append-only"), "{statement}: {error}");
    }

    let (_, after) = app
        .get(&format!("/api/v1/tasks/{id}"), &w.nurse.token)
        .await;
    assert_eq!(after["timeline"], before["timeline"]);
    assert_eq!(app.event_count().await, 2);
}
