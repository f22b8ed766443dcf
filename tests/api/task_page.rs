//! The task page through HTTP: who may read it, the coordinator's reassign and cancel
//! (each confirmed first), a decline's reason, and the raiser hearing of a decline or a reply.
use crate::helpers::*;
use crate::pages::{client, listen, next_event, sign_in};
use serde_json::json;

async fn page(w: &Ward, session: &str, path: &str) -> (u16, String) {
    let res = client()
        .get(format!("{}{path}", w.app.base))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn form(w: &Ward, session: &str, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let res = client()
        .post(format!("{}{path}", w.app.base))
        .header("cookie", session)
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let to = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    (status, to.unwrap_or(res.text().await.unwrap()))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_task_page_is_for_the_people_the_task_concerns() {
    let w = Ward::new().await;
    let id = w.app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let path = format!("/tasks/{id}");
    let (nurse, _) = sign_in(&w.app, &w.nurse).await;
    let (status, html) = page(&w, &nurse, &path).await;
    assert_eq!(status, 200, "{html}");
    for shown in [
        "9990000018",
        "Cannula tissued",
        "Sister Grace Okafor",
        "Who was bleeped",
        "Timeline",
        "Task raised",
    ] {
        assert!(html.contains(shown), "{shown} missing: {html}");
    }
    // Who has it names the person the bleep reached, not only the bleep.
    assert!(
        html.contains("Medicine FY1 night: bleeped Dr Amy Patel"),
        "{html}"
    );
    let (amy, _) = sign_in(&w.app, &w.amy).await;
    assert_eq!(page(&w, &amy, &path).await.0, 200);
    let (manager, _) = sign_in(&w.app, &w.manager).await;
    assert_eq!(page(&w, &manager, &path).await.0, 200);
    // A clinician it has nothing to do with is told why not; no task is not found.
    let (ben, _) = sign_in(&w.app, &w.ben).await;
    let (status, html) = page(&w, &ben, &path).await;
    assert_eq!(status, 403);
    assert!(html.contains("for the people it concerns"), "{html}");
    assert!(!html.contains("Cannula tissued"), "{html}");
    let (status, html) = page(&w, &nurse, "/tasks/no-such-task").await;
    assert_eq!(status, 404, "{html}");
    // Each list links to it.
    let (_, list) = page(&w, &nurse, "/tasks/raised").await;
    assert!(list.contains(&format!("href=\"/tasks/{id}\"")), "{list}");
    let (_, mine) = page(&w, &amy, "/me").await;
    assert!(mine.contains(&format!("href=\"/tasks/{id}\"")), "{mine}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_reassigns_and_cancels_after_confirming_and_bad_input_is_told() {
    let w = Ward::new().await;
    let id = w.app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let (nurse, csrf) = sign_in(&w.app, &w.nurse).await;
    let reassign = format!("/tasks/{id}/reassign");
    let (status, html) = form(&w, &nurse, &reassign, &[("csrf", &csrf), ("assignee", "")]).await;
    assert_eq!(status, 422);
    assert!(html.contains("Choose who the task should go to"), "{html}");
    let nobody = [
        ("csrf", csrf.as_str()),
        ("assignee", "nobody"),
        ("confirm", "yes"),
    ];
    let (status, html) = form(&w, &nurse, &reassign, &nobody).await;
    assert_eq!(status, 422);
    assert!(
        html.contains("neither a member of staff nor an on-call role"),
        "{html}"
    );
    // First the question; nothing changes until it is answered.
    let to_ben = [("csrf", csrf.as_str()), ("assignee", w.ben.id.as_str())];
    let (status, html) = form(&w, &nurse, &reassign, &to_ben).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Reassign this task to Dr Ben Hughes?"),
        "{html}"
    );
    let (_, task) = w
        .app
        .get(&format!("/api/v1/tasks/{id}"), &w.nurse.token)
        .await;
    assert_eq!(task["assignee"]["id"], w.fy1.as_str());
    // A minute later (the test's clock stands still unless moved).
    w.app.advance(60);
    let confirmed = [to_ben[0], to_ben[1], ("confirm", "yes")];
    let (status, to) = form(&w, &nurse, &reassign, &confirmed).await;
    assert_eq!(
        (status, to.as_str()),
        (303, format!("/tasks/{id}").as_str())
    );
    let (_, task) = w
        .app
        .get(&format!("/api/v1/tasks/{id}"), &w.nurse.token)
        .await;
    assert_eq!(task["assignee"]["id"], w.ben.id.as_str());
    // Who has it is whoever it went to since: not the doctor it was taken from.
    let (_, html) = page(&w, &nurse, &format!("/tasks/{id}")).await;
    assert!(html.contains("<dd id=\"who\">Dr Ben Hughes</dd>"), "{html}");

    // A clinician may not cancel; a coordinator must say why, then confirm.
    let cancel = format!("/tasks/{id}/cancel");
    let (amy, amy_csrf) = sign_in(&w.app, &w.amy).await;
    let why = [
        ("csrf", amy_csrf.as_str()),
        ("reason", "done"),
        ("confirm", "yes"),
    ];
    assert_eq!(form(&w, &amy, &cancel, &why).await.0, 403);
    let (status, html) = form(&w, &nurse, &cancel, &[("csrf", &csrf), ("reason", " ")]).await;
    assert_eq!(status, 422);
    assert!(html.contains("Give a reason for cancelling"), "{html}");
    let why = [("csrf", csrf.as_str()), ("reason", "Patient discharged")];
    let (status, html) = form(&w, &nurse, &cancel, &why).await;
    assert_eq!(status, 200);
    assert!(html.contains("Cancel this task?"), "{html}");
    let why = [why[0], why[1], ("confirm", "yes")];
    assert_eq!(form(&w, &nurse, &cancel, &why).await.0, 303);
    let (_, html) = page(&w, &nurse, &format!("/tasks/{id}")).await;
    assert!(html.contains("Cancelled because"), "{html}");
    assert!(html.contains("Patient discharged"), "{html}");
    // Cancelling again is a clear 409, never a server error.
    let (status, html) = form(&w, &nurse, &cancel, &why).await;
    assert_eq!(status, 409, "{html}");
    assert!(
        html.contains("cannot cancel a task that is cancelled"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_raiser_sees_a_decline_with_its_reason_and_each_reply_as_it_happens() {
    let w = Ward::new().await;
    let id = w.app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let (nurse, _) = sign_in(&w.app, &w.nurse).await;
    let long = std::time::Duration::from_secs(10);
    let mut list = listen(&w.app, &w.nurse).await;
    // The test's clock stands still unless moved: a change is one that moves it.
    w.app.advance(30);
    let (status, body) = w
        .app
        .post(
            &format!("/api/v1/tasks/{id}/comments"),
            &w.amy.token,
            json!({ "text": "Which arm is the cannula in?" }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(next_event(&mut list, long).await.as_deref(), Some("change"));
    let (_, raised) = page(&w, &nurse, "/tasks/raised/fragment").await;
    assert!(raised.contains("Which arm is the cannula in?"), "{raised}");
    w.app.advance(30);
    let reason = json!({ "reason": "In theatre for the next two hours" });
    let (status, body) = w.app.act(&id, "decline", &w.amy.token, reason).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(next_event(&mut list, long).await.as_deref(), Some("change"));
    let (_, raised) = page(&w, &nurse, "/tasks/raised/fragment").await;
    assert!(
        raised.contains("Declined: In theatre for the next two hours"),
        "{raised}"
    );
    let (_, html) = page(&w, &nurse, &format!("/tasks/{id}")).await;
    assert!(html.contains("Declined because"), "{html}");
    assert!(html.contains("In theatre for the next two hours"), "{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_raisers_phone_is_told_of_a_decline_and_a_reply_and_opens_the_task() {
    use crate::escalation::{payload, register};
    use crate::support::push_service::PushService;
    let push = PushService::start().await;
    let w = Ward::draining().await;
    let app = &w.app;
    let phone = push.new_subscription();
    register(app, &w.nurse, &phone).await;
    let id = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let notices = || {
        push.received()
            .iter()
            .filter(|r| r.endpoint == phone.endpoint)
            .map(payload)
            .filter(|p| p["notice"] == true)
            .collect::<Vec<_>>()
    };
    let (s, body) = app
        .act(
            &id,
            "decline",
            &w.amy.token,
            json!({ "reason": "Not my patient: ask surgery" }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    app.drain().await;
    let told = notices();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["title"], "Dr Amy Patel declined your task");
    assert_eq!(
        told[0]["body"],
        format!("{WARD}, bed 12: open the task for the reason.")
    );
    assert!(told[0]["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/tasks/{id}")));
    let said = told[0].to_string();
    assert!(!said.contains("surgery") && !said.contains(NHS_1), "{said}");

    let path = format!("/api/v1/tasks/{id}/comments");
    let (s, _) = app
        .post(
            &path,
            &w.amy.token,
            json!({ "text": "Bleep surgery on 4455" }),
        )
        .await;
    assert_eq!(s, 201);
    // The raiser's own reply tells no one.
    let (s, _) = app
        .post(&path, &w.nurse.token, json!({ "text": "Thanks" }))
        .await;
    assert_eq!(s, 201);
    app.drain().await;
    let told = notices();
    assert_eq!(told.len(), 2, "{told:?}");
    assert_eq!(told[1]["title"], "Dr Amy Patel replied on your task");
    assert!(!told[1].to_string().contains("4455"));
}
