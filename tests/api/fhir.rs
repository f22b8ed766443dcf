//! The FHIR R4 endpoint and delivery to the patient record. Every resource is checked with an
//! independent FHIR R4 judge (tests/support/fhir_judge.rs: the `fhirbolt` R4 models in strict
//! mode, plus the R4 required value sets, primitive formats and invariants).
use super::helpers::{Person, TestApp, Ward, NHS_1, WARD};
use super::support::fhir_judge;
use super::support::fhir_server::FhirServer;
use serde_json::{json, Value};

/// Another valid NHS number from the 999 test range.
const NHS_2: &str = "9990000026";
const BASE: &str = "http://127.0.0.1/fhir";
const TASK_SYSTEM: &str = "http://127.0.0.1/fhir/Id/task";

/// What the independent validator says is wrong with a resource (empty: valid).
fn fhir_problems(v: &Value) -> Vec<String> {
    fhir_judge::problems(v)
}

fn assert_valid(v: &Value) {
    let problems = fhir_problems(v);
    assert!(
        problems.is_empty(),
        "not valid FHIR R4:\n{}\n{v:#}",
        problems.join("\n")
    );
}

/// GET under /fhir: (status, content type, body).
async fn fhir_get(app: &TestApp, path: &str, token: Option<&str>) -> (u16, String, Value) {
    let mut req = app.client.get(format!("{}{path}", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{path}: status {status}, body is not JSON: {text}"));
    (status, ct, body)
}

/// A 200 with a valid FHIR resource.
async fn fhir_ok(app: &TestApp, path: &str, token: &str) -> Value {
    let (status, ct, body) = fhir_get(app, path, Some(token)).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert!(ct.starts_with("application/fhir+json"), "{path}: {ct}");
    assert_valid(&body);
    body
}

/// An error as a valid OperationOutcome with the given status and issue code.
async fn fhir_err(app: &TestApp, path: &str, token: Option<&str>, status: u16, code: &str) {
    let (got, ct, body) = fhir_get(app, path, token).await;
    assert_eq!(got, status, "{path}: {body}");
    assert!(ct.starts_with("application/fhir+json"), "{path}: {ct}");
    assert_eq!(body["resourceType"], "OperationOutcome", "{path}: {body}");
    assert_eq!(body["issue"][0]["code"], code, "{path}: {body}");
    assert!(
        !body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{body}"
    );
    assert_valid(&body);
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|es| {
            es.iter()
                .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .map(|l| l["url"].as_str().unwrap().to_string())
}

async fn complete(app: &TestApp, id: &str, doctor: &Person) {
    let (s, b) = app.act(id, "acknowledge", &doctor.token, json!({})).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app
        .act(
            id,
            "complete",
            &doctor.token,
            json!({ "outcome": { "code": "done", "text": "Re-sited 20G left forearm" } }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test]
async fn a_completed_task_is_a_valid_fhir_r4_task_with_its_whole_story() {
    let w = Ward::new().await;
    let app = &w.app;
    let id = app
        .raised(&w.nurse.token, "Medicine FY1 night", json!({ "news2": 5 }))
        .await;
    app.advance(60);
    assert_eq!(
        app.act(&id, "acknowledge", &w.amy.token, json!({})).await.0,
        200
    );
    app.advance(60);
    assert_eq!(app.act(&id, "start", &w.amy.token, json!({})).await.0, 200);
    let (s, _) = app
        .post(
            &format!("/api/v1/tasks/{id}/comments"),
            &w.nurse.token,
            json!({ "text": "Left arm only, please" }),
        )
        .await;
    assert_eq!(s, 201);
    app.advance(300);
    let (s, b) = app
        .act(
            &id,
            "complete",
            &w.amy.token,
            json!({ "outcome": { "code": "done", "text": "Re-sited 20G left forearm" } }),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    let t = fhir_ok(app, &format!("/fhir/Task/{id}"), &w.nurse.token).await;
    assert_eq!(t["resourceType"], "Task");
    assert_eq!(t["id"], id.as_str());
    assert_eq!(
        t["meta"]["versionId"], "5",
        "raised, acknowledged, started, commented, completed"
    );
    assert_eq!(
        t["identifier"],
        json!([{ "use": "official", "system": TASK_SYSTEM, "value": id }])
    );
    assert_eq!(t["status"], "completed");
    assert_eq!(t["intent"], "order");
    assert_eq!(t["priority"], "urgent");
    assert_eq!(t["code"]["coding"][0]["code"], "cannula");
    assert_eq!(
        t["description"],
        "Cannula tissued; IV antibiotics due at 22:00"
    );
    assert_eq!(
        t["for"],
        json!({ "type": "Patient", "identifier": { "system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS_1 } })
    );
    assert_eq!(t["requester"]["type"], "Practitioner");
    assert_eq!(t["requester"]["identifier"]["value"], w.nurse.id.as_str());
    assert_eq!(t["requester"]["display"], "Sister Grace Okafor");
    assert_eq!(t["owner"]["type"], "Practitioner");
    assert_eq!(t["owner"]["display"], "Dr Amy Patel");
    assert_eq!(t["location"]["display"], format!("{WARD}, bed 12"));
    assert_eq!(t["authoredOn"], "2026-11-26T02:00:00Z");
    assert_eq!(t["lastModified"], "2026-11-26T02:07:00Z");
    assert_eq!(
        t["executionPeriod"],
        json!({ "start": "2026-11-26T02:01:00Z", "end": "2026-11-26T02:07:00Z" })
    );
    assert_eq!(
        t["restriction"]["period"]["end"], "2026-11-26T02:15:00Z",
        "the acknowledge deadline: urgent is 15 minutes"
    );
    assert_eq!(t["businessStatus"]["coding"][0]["code"], "0");
    assert_eq!(t["input"][0]["valueInteger"], 5, "NEWS2");
    assert_eq!(t["note"].as_array().unwrap().len(), 1);
    assert_eq!(t["note"][0]["text"], "Left arm only, please");
    assert_eq!(
        t["note"][0]["authorReference"]["display"],
        "Sister Grace Okafor"
    );
    assert_eq!(t["note"][0]["time"], "2026-11-26T02:02:00Z");
    let out = &t["output"][0]["valueCodeableConcept"];
    assert_eq!(out["coding"][0]["code"], "done");
    assert_eq!(out["text"], "Re-sited 20G left forearm");
    assert!(t.get("statusReason").is_none());
}

#[tokio::test]
async fn open_and_cancelled_tasks_map_owner_status_reason_and_no_output() {
    let w = Ward::new().await;
    let app = &w.app;
    let open = app
        .raised(&w.nurse.token, "Medicine FY1 night", json!({}))
        .await;
    let t = fhir_ok(app, &format!("/fhir/Task/{open}"), &w.amy.token).await;
    assert_eq!(t["status"], "requested");
    assert_eq!(
        t["owner"]["type"], "PractitionerRole",
        "the bleep, until someone acknowledges"
    );
    assert_eq!(t["owner"]["identifier"]["value"], w.fy1.as_str());
    assert_eq!(t["owner"]["display"], "Medicine FY1 night");
    assert!(t.get("executionPeriod").is_none() && t.get("output").is_none());
    assert!(t.get("input").is_none(), "no NEWS2 given");

    let (s, b) = app
        .act(
            &open,
            "cancel",
            &w.nurse.token,
            json!({ "reason": "Patient discharged" }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let t = fhir_ok(app, &format!("/fhir/Task/{open}"), &w.amy.token).await;
    assert_eq!(t["status"], "cancelled");
    assert_eq!(t["statusReason"]["text"], "Patient discharged");
    assert!(t.get("output").is_none());
}

#[tokio::test]
async fn history_has_one_version_per_event_and_its_last_is_the_task() {
    let w = Ward::new().await;
    let app = &w.app;
    let id = app
        .raised(&w.nurse.token, "Medicine FY1 night", json!({}))
        .await;
    app.advance(30);
    let (s, _) = app
        .act(
            &id,
            "reassign",
            &w.nurse.token,
            json!({ "assignee": w.ben.id, "reason": "Amy is in resus" }),
        )
        .await;
    assert_eq!(s, 200);
    app.advance(30);
    complete(app, &id, &w.ben).await;

    let h = fhir_ok(app, &format!("/fhir/Task/{id}/_history"), &w.nurse.token).await;
    assert_eq!(h["type"], "history");
    let entries = h["entry"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        4,
        "raised, reassigned, acknowledged, completed"
    );
    assert_eq!(h["total"], 4);
    let versions: Vec<&str> = entries
        .iter()
        .map(|e| e["resource"]["meta"]["versionId"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["4", "3", "2", "1"], "newest first");

    let current = fhir_ok(app, &format!("/fhir/Task/{id}"), &w.nurse.token).await;
    assert_eq!(
        entries[0]["resource"], current,
        "replaying every event gives the task"
    );

    let first = &entries[3]["resource"];
    assert_eq!(first["status"], "requested");
    assert_eq!(first["owner"]["type"], "PractitionerRole");
    assert_eq!(
        first["restriction"]["period"]["end"],
        "2026-11-26T02:15:00Z"
    );
    assert_eq!(entries[3]["request"]["method"], "POST");

    let v2 = fhir_ok(app, &format!("/fhir/Task/{id}/_history/2"), &w.nurse.token).await;
    assert_eq!(v2["status"], "requested");
    assert_eq!(v2["statusReason"]["text"], "Amy is in resus");
    assert_eq!(v2["owner"]["display"], "Dr Ben Hughes");
    assert_eq!(
        v2["restriction"]["period"]["end"], "2026-11-26T02:15:30Z",
        "a reassigned task has a new deadline"
    );
    assert_eq!(v2, entries[2]["resource"]);
    fhir_err(
        app,
        &format!("/fhir/Task/{id}/_history/9"),
        Some(&w.nurse.token),
        404,
        "not-found",
    )
    .await;
    fhir_err(
        app,
        &format!("/fhir/Task/{id}/_history/x"),
        Some(&w.nurse.token),
        404,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn search_by_patient_identifier_status_owner_and_last_updated_with_paging() {
    let w = Ward::new().await;
    let app = &w.app;
    let a = app
        .raised(
            &w.nurse.token,
            "Medicine FY1 night",
            json!({ "priority": "routine" }),
        )
        .await;
    let b = app
        .raised(
            &w.nurse.token,
            "Medicine FY1 night",
            json!({ "priority": "routine" }),
        )
        .await;
    let c = app
        .raised(
            &w.nurse.token,
            w.ben.id.as_str(),
            json!({ "priority": "routine" }),
        )
        .await;
    let other = app
        .raised(
            &w.nurse.token,
            "Medicine FY1 night",
            json!({ "nhs_number": NHS_2, "priority": "routine" }),
        )
        .await;
    app.advance(600); // within the routine target: nothing escalates
    complete(app, &a, &w.amy).await;
    let tok = &w.manager.token;

    let all = fhir_ok(app, &format!("/fhir/Task?patient={NHS_1}"), tok).await;
    assert_eq!(all["type"], "searchset");
    assert_eq!(all["total"], 3);
    let mut found = ids(&all);
    found.sort();
    let mut want = vec![a.clone(), b.clone(), c.clone()];
    want.sort();
    assert_eq!(found, want);
    assert_eq!(
        all["entry"][0]["fullUrl"],
        format!("{BASE}/Task/{c}"),
        "newest raised first"
    );
    assert_eq!(all["entry"][0]["search"]["mode"], "match");

    let by_system = fhir_ok(
        app,
        &format!("/fhir/Task?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{NHS_2}"),
        tok,
    )
    .await;
    assert_eq!(ids(&by_system), [other.as_str()]);
    let by_ref = fhir_ok(app, &format!("/fhir/Task?patient=Patient/{NHS_2}"), tok).await;
    assert_eq!(ids(&by_ref), [other.as_str()]);

    // Paging: two, then the last one, following the links.
    let page1 = fhir_ok(app, &format!("/fhir/Task?patient={NHS_1}&_count=2"), tok).await;
    assert_eq!(ids(&page1).len(), 2);
    assert_eq!(page1["total"], 3);
    let next = link(&page1, "next").expect("a next link");
    assert!(link(&page1, "previous").is_none());
    let path = next.strip_prefix("http://127.0.0.1").unwrap();
    let page2 = fhir_ok(app, path, tok).await;
    assert_eq!(ids(&page2).len(), 1);
    assert!(link(&page2, "next").is_none());
    assert!(link(&page2, "first").is_some());
    let mut both = [ids(&page1), ids(&page2)].concat();
    both.sort();
    assert_eq!(both, want);
    let none = fhir_ok(app, &format!("/fhir/Task?patient={NHS_1}&_count=0"), tok).await;
    assert_eq!(none["total"], 3);
    assert!(none.get("entry").is_none());

    let by_id = fhir_ok(
        app,
        &format!("/fhir/Task?identifier={TASK_SYSTEM}%7C{b}"),
        tok,
    )
    .await;
    assert_eq!(ids(&by_id), [b.as_str()]);
    let done = fhir_ok(app, "/fhir/Task?status=completed", tok).await;
    assert_eq!(ids(&done), [a.as_str()]);
    let open = fhir_ok(
        app,
        &format!("/fhir/Task?status=requested,accepted&patient={NHS_1}"),
        tok,
    )
    .await;
    assert_eq!(open["total"], 2);
    let draft = fhir_ok(app, "/fhir/Task?status=draft", tok).await;
    assert_eq!(
        draft["total"], 0,
        "a FHIR status we never use matches nothing"
    );

    let amys = fhir_ok(
        app,
        &format!("/fhir/Task?owner=Practitioner/{}", w.amy.id),
        tok,
    )
    .await;
    assert_eq!(ids(&amys), [a.as_str()], "she acknowledged it");
    let bens = fhir_ok(
        app,
        &format!("/fhir/Task?owner=Practitioner/{}", w.ben.id),
        tok,
    )
    .await;
    assert_eq!(ids(&bens), [c.as_str()], "assigned to him by name");
    let bleep = fhir_ok(
        app,
        &format!("/fhir/Task?owner=PractitionerRole/{}", w.fy1),
        tok,
    )
    .await;
    assert_eq!(
        bleep["total"], 2,
        "b and the other patient's: not yet acknowledged"
    );

    let late = fhir_ok(app, "/fhir/Task?_lastUpdated=ge2026-11-26T02:10:00Z", tok).await;
    assert_eq!(ids(&late), [a.as_str()]);
    let early = fhir_ok(
        app,
        &format!("/fhir/Task?_lastUpdated=lt2026-11-26T02:10:00Z&patient={NHS_1}"),
        tok,
    )
    .await;
    assert_eq!(early["total"], 2);
    let day = fhir_ok(app, "/fhir/Task?_lastUpdated=2026-11-26", tok).await;
    assert_eq!(day["total"], 4);
    let range = fhir_ok(
        app,
        "/fhir/Task?_lastUpdated=gt2026-11-26T01:00:00%2B00:00&_lastUpdated=le2026-11-26T02:00:00Z",
        tok,
    )
    .await;
    assert_eq!(range["total"], 3);
    let next_day = fhir_ok(app, "/fhir/Task?_lastUpdated=2026-11-27", tok).await;
    assert_eq!(next_day["total"], 0);
}

#[tokio::test]
async fn provenance_says_who_did_what_and_when() {
    let w = Ward::new().await;
    let app = &w.app;
    let id = app
        .raised(&w.nurse.token, "Medicine FY1 night", json!({}))
        .await;
    app.advance(90);
    complete(app, &id, &w.amy).await;

    let b = fhir_ok(
        app,
        &format!("/fhir/Provenance?target=Task/{id}"),
        &w.nurse.token,
    )
    .await;
    assert_eq!(b["type"], "searchset");
    assert_eq!(b["total"], 3, "raised, acknowledged, completed");
    let entries = b["entry"].as_array().unwrap();
    let raised = &entries[0]["resource"];
    assert_eq!(raised["resourceType"], "Provenance");
    assert_eq!(
        raised["target"][0]["reference"],
        format!("Task/{id}/_history/1")
    );
    assert_eq!(raised["recorded"], "2026-11-26T02:00:00Z");
    assert_eq!(raised["activity"]["coding"][0]["code"], "CREATE");
    assert_eq!(raised["agent"][0]["who"]["display"], "Sister Grace Okafor");
    assert_eq!(raised["agent"][0]["type"]["coding"][0]["code"], "author");
    let acked = &entries[1]["resource"];
    assert_eq!(acked["activity"]["coding"][1]["code"], "acknowledged");
    assert_eq!(acked["agent"][0]["who"]["display"], "Dr Amy Patel");
    assert_eq!(
        acked["agent"][0]["who"]["identifier"]["value"],
        w.amy.id.as_str()
    );
    assert_eq!(acked["occurredDateTime"], "2026-11-26T02:01:30Z");
    assert_eq!(
        entries[2]["resource"]["activity"]["text"],
        "Completed (accepted → completed)"
    );

    let one = fhir_ok(
        app,
        &format!("/fhir/Provenance?target=Task/{id}/_history/2"),
        &w.nurse.token,
    )
    .await;
    assert_eq!(one["total"], 1);
    let pid = one["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let read = fhir_ok(app, &format!("/fhir/Provenance/{pid}"), &w.nurse.token).await;
    assert_eq!(read, one["entry"][0]["resource"]);
    let unknown = fhir_ok(
        app,
        "/fhir/Provenance?target=Task/no-such-task",
        &w.nurse.token,
    )
    .await;
    assert_eq!(unknown["total"], 0);
}

#[tokio::test]
async fn the_capability_statement_tells_what_is_served() {
    let app = TestApp::spawn().await;
    let (status, ct, cs) = fhir_get(&app, "/fhir/metadata", None).await;
    assert_eq!(status, 200, "{cs}");
    assert!(ct.starts_with("application/fhir+json"));
    assert_valid(&cs);
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    assert_eq!(cs["kind"], "instance");
    let resources = cs["rest"][0]["resource"].as_array().unwrap();
    let types: Vec<&str> = resources
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Task", "Provenance", "CodeSystem"]);
    let task_interactions: Vec<&str> = resources[0]["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        task_interactions,
        ["read", "vread", "history-instance", "search-type"]
    );
    let params: Vec<&str> = resources[0]["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "patient",
        "identifier",
        "status",
        "owner",
        "_lastUpdated",
        "_count",
    ] {
        assert!(params.contains(&p), "{p} in {params:?}");
    }
}

/// The declared search parameter names of a resource type in the CapabilityStatement.
fn declared(cs: &Value, resource: &str) -> Vec<String> {
    cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == resource)
        .unwrap()["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_search_parameter_answered_is_declared_in_the_capability_statement() {
    let w = Ward::new().await;
    let app = &w.app;
    let id = app
        .raised(&w.nurse.token, "Medicine FY1 night", json!({}))
        .await;
    let (_, _, cs) = fhir_get(app, "/fhir/metadata", None).await;
    let names = declared(&cs, "Task");
    let answered = [
        format!("patient={NHS_1}"),
        format!("patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{NHS_1}"),
        format!("subject={NHS_1}"),
        format!("subject:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{NHS_1}"),
        format!("_id={id}"),
        format!("identifier={id}"),
        "status=requested".to_string(),
        format!("owner=PractitionerRole/{}", w.fy1),
        "_lastUpdated=2026-11-26".to_string(),
        "_count=5".to_string(),
    ];
    for q in answered {
        let b = fhir_ok(app, &format!("/fhir/Task?{q}"), &w.nurse.token).await;
        assert_eq!(b["total"], 1, "{q}: {b}");
        let name = q.split(['=', ':']).next().unwrap();
        assert!(
            names.iter().any(|n| n == name),
            "{name} is answered but not declared: {names:?}"
        );
    }
    // And what is not declared is refused, not ignored.
    fhir_err(
        app,
        "/fhir/Task?focus=Task/1",
        Some(&w.nurse.token),
        400,
        "invalid",
    )
    .await;
}

#[tokio::test]
async fn read_and_vread_carry_the_version_etag_and_last_modified() {
    let w = Ward::new().await;
    let app = &w.app;
    let id = app
        .raised(&w.nurse.token, "Medicine FY1 night", json!({}))
        .await;
    app.advance(90);
    assert_eq!(
        app.act(&id, "acknowledge", &w.amy.token, json!({})).await.0,
        200
    );
    let head = |path: String| {
        let req = app.client.get(format!("{}{path}", app.base));
        let token = w.nurse.token.clone();
        async move {
            let res = req.bearer_auth(token).send().await.unwrap();
            assert_eq!(res.status().as_u16(), 200, "{path}");
            let h = |n: &str| {
                res.headers()
                    .get(n)
                    .map(|v| v.to_str().unwrap().to_string())
            };
            (h("etag"), h("last-modified"))
        }
    };
    assert_eq!(
        head(format!("/fhir/Task/{id}")).await,
        (
            Some("W/\"2\"".to_string()),
            Some("Thu, 26 Nov 2026 02:01:30 GMT".to_string())
        )
    );
    assert_eq!(
        head(format!("/fhir/Task/{id}/_history/1")).await,
        (
            Some("W/\"1\"".to_string()),
            Some("Thu, 26 Nov 2026 02:00:00 GMT".to_string())
        )
    );
    assert_eq!(
        head(format!("/fhir/Task/{id}/_history/2")).await.0,
        Some("W/\"2\"".to_string())
    );
}

#[tokio::test]
async fn metadata_answers_mode_full_and_normal_and_refuses_other_modes() {
    let app = TestApp::spawn().await;
    for mode in ["full", "normal"] {
        let (status, _, cs) = fhir_get(&app, &format!("/fhir/metadata?mode={mode}"), None).await;
        assert_eq!(status, 200, "{mode}: {cs}");
        assert_eq!(cs["resourceType"], "CapabilityStatement");
        assert_valid(&cs);
    }
    fhir_err(
        &app,
        "/fhir/metadata?mode=terminology",
        None,
        400,
        "invalid",
    )
    .await;
    fhir_err(&app, "/fhir/metadata?mode=everything", None, 400, "invalid").await;
    fhir_err(&app, "/fhir/metadata?colour=blue", None, 400, "invalid").await;
}

#[tokio::test]
async fn xml_is_refused_with_406_whether_asked_by_accept_or_format() {
    let w = Ward::new().await;
    let app = &w.app;
    let id = app
        .raised(&w.nurse.token, "Medicine FY1 night", json!({}))
        .await;
    let get = |path: String, accept: &'static str| {
        let req = app
            .client
            .get(format!("{}{path}", app.base))
            .bearer_auth(&w.nurse.token)
            .header("Accept", accept);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let ct = res.headers()["content-type"].to_str().unwrap().to_string();
            let body: Value = res.json().await.unwrap();
            (status, ct, body)
        }
    };
    for path in [
        format!("/fhir/Task/{id}"),
        "/fhir/Task".to_string(),
        "/fhir/metadata".to_string(),
    ] {
        for accept in ["application/fhir+xml", "application/xml, text/xml"] {
            let (status, ct, body) = get(path.clone(), accept).await;
            assert_eq!(status, 406, "{path} {accept}: {body}");
            assert!(ct.starts_with("application/fhir+json"));
            assert_eq!(body["resourceType"], "OperationOutcome");
            assert_eq!(body["issue"][0]["code"], "not-supported");
            assert_valid(&body);
        }
        for accept in [
            "application/fhir+json",
            "application/json",
            "application/fhir+xml;q=0.9, application/fhir+json",
            "*/*",
        ] {
            let (status, _, body) = get(path.clone(), accept).await;
            assert_eq!(status, 200, "{path} {accept}: {body}");
        }
        // _format overrides Accept.
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, _, _) = get(format!("{path}{sep}_format=json"), "application/fhir+xml").await;
        assert_eq!(status, 200, "{path}");
    }
    fhir_err(
        app,
        "/fhir/Task?_format=xml",
        Some(&w.nurse.token),
        406,
        "not-supported",
    )
    .await;
}

#[tokio::test]
async fn paging_is_stable_when_a_task_is_updated_during_the_walk() {
    let w = Ward::new().await;
    let app = &w.app;
    let mut raised = Vec::new();
    for _ in 0..5 {
        raised.push(
            app.raised(
                &w.nurse.token,
                "Medicine FY1 night",
                json!({ "priority": "routine" }),
            )
            .await,
        );
        app.advance(1);
    }
    let tok = &w.manager.token;
    let mut seen: Vec<String> = Vec::new();
    let mut path = format!("/fhir/Task?patient={NHS_1}&_count=2");
    let mut pages = 0;
    let mut nexts = Vec::new();
    loop {
        let page = fhir_ok(app, &path, tok).await;
        seen.extend(ids(&page));
        pages += 1;
        if pages == 1 {
            // The oldest task, on the last page, is updated while the first is read.
            let (s, b) = app
                .act(&raised[0], "acknowledge", &w.amy.token, json!({}))
                .await;
            assert_eq!(s, 200, "{b}");
            // And one on the page just read.
            let (s, b) = app
                .act(&raised[4], "acknowledge", &w.amy.token, json!({}))
                .await;
            assert_eq!(s, 200, "{b}");
        }
        let Some(next) = link(&page, "next") else {
            break;
        };
        path = next.strip_prefix("http://127.0.0.1").unwrap().to_string();
        nexts.push(next);
    }
    let mut want = raised.clone();
    want.reverse();
    assert_eq!(seen, want, "each task once, newest raised first");
    assert_eq!(pages, 3);
    assert!(nexts.iter().all(|n| n.contains("_cursor=")), "{nexts:?}");
    fhir_err(
        app,
        "/fhir/Task?_cursor=yesterday",
        Some(tok.as_str()),
        400,
        "invalid",
    )
    .await;
}

/// Every coding of ours in a resource: (system, code).
fn our_codings(v: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            if let (Some(Value::String(sys)), Some(Value::String(code))) =
                (m.get("system"), m.get("code"))
            {
                if sys.starts_with(prefix) {
                    out.push((sys.clone(), code.clone()));
                }
            }
            m.values().for_each(|x| our_codings(x, prefix, out));
        }
        Value::Array(a) => a.iter().for_each(|x| our_codings(x, prefix, out)),
        _ => {}
    }
}

#[tokio::test]
async fn code_and_identifier_systems_are_canonical_and_their_code_systems_are_served() {
    const SYSTEMS: &str = "https://fhir.example-trust.nhs.uk/bleepless";
    let app = TestApp::spawn_with(|c| c.fhir.system_base = SYSTEMS.into()).await;
    let w = Ward::with(app).await;
    let app = &w.app;
    let id = app
        .raised(&w.nurse.token, "Medicine FY1 night", json!({}))
        .await;
    complete(app, &id, &w.amy).await;
    let t = fhir_ok(app, &format!("/fhir/Task/{id}"), &w.nurse.token).await;
    assert_eq!(
        t["identifier"][0]["system"],
        format!("{SYSTEMS}/fhir/Id/task"),
        "not under public_url"
    );
    assert_eq!(
        t["code"]["coding"][0]["system"],
        format!("{SYSTEMS}/fhir/CodeSystem/task-category")
    );
    let found = fhir_ok(
        app,
        &format!("/fhir/Task?identifier={SYSTEMS}/fhir/Id/task%7C{id}"),
        &w.nurse.token,
    )
    .await;
    assert_eq!(
        found["entry"][0]["fullUrl"],
        format!("{BASE}/Task/{id}"),
        "resources still live at public_url"
    );
    let p = fhir_ok(
        app,
        &format!("/fhir/Provenance?target=Task/{id}"),
        &w.nurse.token,
    )
    .await;

    // Every code of ours that a Task or Provenance uses is in the CodeSystem its system names,
    // served at /fhir/CodeSystem/{id} without a token.
    let mut codings = Vec::new();
    our_codings(&t, SYSTEMS, &mut codings);
    our_codings(&p, SYSTEMS, &mut codings);
    assert!(codings.len() >= 5, "{codings:?}");
    for (system, code) in codings {
        let cs_id = system
            .strip_prefix(&format!("{SYSTEMS}/fhir/CodeSystem/"))
            .unwrap_or_else(|| panic!("{system} is not a code system of ours"));
        let (status, _, cs) = fhir_get(app, &format!("/fhir/CodeSystem/{cs_id}"), None).await;
        assert_eq!(status, 200, "{cs_id}: {cs}");
        assert_valid(&cs);
        assert_eq!(cs["url"], system.as_str());
        assert!(
            cs["concept"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["code"] == code.as_str()),
            "{code} is not in {system}"
        );
    }
    let (_, _, cs) = fhir_get(app, "/fhir/metadata", None).await;
    let types: Vec<&str> = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"CodeSystem"), "{types:?}");
    fhir_err(app, "/fhir/CodeSystem/colours", None, 404, "not-found").await;
}

#[tokio::test]
async fn the_delivered_bundle_can_name_the_patient_by_a_conditional_reference() {
    const SYSTEMS: &str = "https://fhir.example-trust.nhs.uk/bleepless";
    let epr = FhirServer::start().await;
    let base = epr.base_url();
    let app = TestApp::spawn_draining(|c| {
        c.record_server(&base, None);
        c.fhir.conditional_patient_reference = true;
        c.fhir.system_base = SYSTEMS.into();
    })
    .await;
    let w = Ward::with(app).await;
    let app = &w.app;
    let id = app
        .raised(&w.nurse.token, "Medicine FY1 night", json!({}))
        .await;
    complete(app, &id, &w.amy).await;
    app.drain().await;

    let got = epr.received();
    assert_eq!(got.len(), 1, "delivered once");
    let bundle = &got[0].bundle;
    assert_valid(bundle);
    let task = &bundle["entry"][0]["resource"];
    assert_eq!(
        task["for"],
        json!({
            "reference": format!("Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{NHS_1}"),
            "type": "Patient",
            "identifier": { "system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS_1 },
        }),
        "the reference beside the identifier"
    );
    assert_eq!(
        task["identifier"][0]["system"],
        format!("{SYSTEMS}/fhir/Id/task"),
        "the record gets the same canonical systems as /fhir serves"
    );
    // A conditional reference is for transactions only: the served Task keeps the identifier.
    let t = fhir_ok(app, &format!("/fhir/Task/{id}"), &w.nurse.token).await;
    assert!(t["for"].get("reference").is_none());
    // And the judge refuses one outside a transaction.
    let mut served = t.clone();
    served["for"]["reference"] = task["for"]["reference"].clone();
    assert!(!fhir_problems(&served).is_empty());
}

#[tokio::test]
async fn without_the_setting_the_delivered_patient_is_an_identifier_only() {
    let epr = FhirServer::start().await;
    let base = epr.base_url();
    let w = Ward::with(TestApp::spawn_draining(|c| c.record_server(&base, None)).await).await;
    let app = &w.app;
    let id = app
        .raised(&w.nurse.token, "Medicine FY1 night", json!({}))
        .await;
    complete(app, &id, &w.amy).await;
    app.drain().await;
    let got = epr.received();
    assert_eq!(got.len(), 1);
    let task = &got[0].bundle["entry"][0]["resource"];
    assert!(task["for"].get("reference").is_none(), "{task}");
    assert_eq!(task["identifier"][0]["system"], TASK_SYSTEM);
}

#[tokio::test]
async fn every_bad_request_is_a_4xx_operation_outcome() {
    let w = Ward::new().await;
    let app = &w.app;
    let id = app
        .raised(&w.nurse.token, "Medicine FY1 night", json!({}))
        .await;
    let t = Some(w.nurse.token.as_str());
    fhir_err(app, &format!("/fhir/Task/{id}"), None, 401, "login").await;
    fhir_err(
        app,
        &format!("/fhir/Task/{id}"),
        Some("blp_wrong"),
        401,
        "login",
    )
    .await;
    fhir_err(app, "/fhir/Task?patient=9990000018", None, 401, "login").await;
    fhir_err(app, "/fhir/Task/no-such-task", t, 404, "not-found").await;
    fhir_err(app, "/fhir/Task/%20bad%20id", t, 404, "not-found").await;
    fhir_err(app, "/fhir/Task/no-such-task/_history", t, 404, "not-found").await;
    fhir_err(app, "/fhir/Provenance/no-such-task-1", t, 404, "not-found").await;
    fhir_err(app, "/fhir/Patient/9990000018", t, 404, "not-found").await;
    fhir_err(app, "/fhir/Task?colour=blue", t, 400, "invalid").await;
    fhir_err(app, "/fhir/Task?_count=many", t, 400, "invalid").await;
    fhir_err(app, "/fhir/Task?_count=-1", t, 400, "invalid").await;
    fhir_err(app, "/fhir/Task?_count=100000", t, 400, "invalid").await;
    fhir_err(app, "/fhir/Task?_offset=-5", t, 400, "invalid").await;
    fhir_err(app, "/fhir/Task?patient=1234567890", t, 400, "invalid").await;
    fhir_err(
        app,
        "/fhir/Task?patient:identifier=urn:other%7C9990000018",
        t,
        400,
        "invalid",
    )
    .await;
    fhir_err(app, "/fhir/Task?status=done", t, 400, "invalid").await;
    fhir_err(app, "/fhir/Task?owner=Device/x", t, 400, "invalid").await;
    fhir_err(app, "/fhir/Task?_lastUpdated=yesterday", t, 400, "invalid").await;
    fhir_err(
        app,
        "/fhir/Task?_lastUpdated=ne2026-11-26",
        t,
        400,
        "invalid",
    )
    .await;
    fhir_err(app, "/fhir/Task?patient=", t, 400, "invalid").await;
    fhir_err(
        app,
        "/fhir/Task?patient=9990000018&patient=9990000026",
        t,
        400,
        "invalid",
    )
    .await;
    fhir_err(
        app,
        &format!("/fhir/Task/{id}?_summary=true"),
        t,
        400,
        "invalid",
    )
    .await;
    fhir_err(app, "/fhir/Task?_format=xml", t, 406, "not-supported").await;
    fhir_err(app, "/fhir/Provenance", t, 400, "invalid").await;
    fhir_err(app, "/fhir/Provenance?target=Patient/1", t, 400, "invalid").await;

    let res = app
        .client
        .post(format!("{}/fhir/Task", app.base))
        .bearer_auth(&w.nurse.token)
        .json(&json!({ "resourceType": "Task" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/fhir+json"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_valid(&body);
}

#[tokio::test]
async fn the_validator_finds_what_is_wrong() {
    // The check must be able to fail: break a served Task in the ways the spec forbids.
    let w = Ward::new().await;
    let id = w
        .app
        .raised(&w.nurse.token, "Medicine FY1 night", json!({}))
        .await;
    let good = fhir_ok(&w.app, &format!("/fhir/Task/{id}"), &w.nurse.token).await;
    type Breakage = (&'static str, Box<dyn Fn(&mut Value)>);
    let breakages: Vec<Breakage> = vec![
        (
            "a priority outside request-priority",
            Box::new(|t| t["priority"] = json!("high")),
        ),
        (
            "a status outside task-status",
            Box::new(|t| t["status"] = json!("done")),
        ),
        (
            "no intent",
            Box::new(|t| {
                t.as_object_mut().unwrap().remove("intent");
            }),
        ),
        (
            "an instant without a time zone",
            Box::new(|t| t["meta"]["lastUpdated"] = json!("2026-11-26T02:00:00")),
        ),
        (
            "a dateTime with a space",
            Box::new(|t| t["authoredOn"] = json!("2026-11-26 02:00:00Z")),
        ),
        (
            "two owners",
            Box::new(|t| t["owner"] = json!([t["owner"].clone(), t["owner"].clone()])),
        ),
        (
            "a malformed reference",
            Box::new(|t| t["for"] = json!({ "reference": "Patient 9990000018" })),
        ),
        (
            "an unknown element",
            Box::new(|t| t["nhsNumber"] = json!(NHS_1)),
        ),
        (
            "lastModified before authoredOn",
            Box::new(|t| t["lastModified"] = json!("2020-01-01T00:00:00Z")),
        ),
    ];
    for (what, breaks) in breakages {
        let mut bad = good.clone();
        breaks(&mut bad);
        assert!(
            !fhir_problems(&bad).is_empty(),
            "the validator accepted {what}"
        );
    }
}

async fn deliveries(app: &TestApp, token: &str, status: &str) -> Vec<Value> {
    let (s, b) = app
        .get(&format!("/api/v1/record-deliveries?status={status}"), token)
        .await;
    assert_eq!(s, 200, "{b}");
    b["deliveries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_completed_task_reaches_the_record_once_after_a_failed_attempt() {
    let epr = FhirServer::start().await;
    epr.fail_next(1, 500);
    let base = epr.base_url();
    let app = TestApp::spawn_draining(|c| c.record_server(&base, Some("Bearer epr-secret"))).await;
    let w = Ward::with(app).await;
    let app = &w.app;
    let id = app
        .raised(&w.nurse.token, "Medicine FY1 night", json!({}))
        .await;
    complete(app, &id, &w.amy).await;

    app.drain().await;
    assert_eq!(epr.requests(), 1, "the first attempt fails");
    assert!(
        deliveries(app, &w.manager.token, "pending")
            .await
            .first()
            .is_some_and(|d| d["attempts"] == 1 && d["last_error"].is_string()),
        "the failure is recorded"
    );
    let pending = deliveries(app, &w.manager.token, "pending").await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["task_id"], id.as_str());
    assert!(
        pending[0]["last_error"].as_str().unwrap().contains("500"),
        "{pending:?}"
    );
    assert!(epr.received().is_empty());
    let (s, _) = app.get("/api/v1/record-deliveries", &w.amy.token).await;
    assert_eq!(s, 403, "clinicians do not watch deliveries");

    app.advance(10); // past the first back-off
    app.drain().await;
    assert!(!epr.received().is_empty(), "the retry is delivered");
    assert_eq!(
        deliveries(app, &w.manager.token, "delivered").await.len(),
        1,
        "the delivery is recorded"
    );
    assert!(deliveries(app, &w.manager.token, "pending,sending,failed")
        .await
        .is_empty());

    // Delivered once: time passing sends nothing more.
    app.advance(3600);
    app.drain().await;
    assert_eq!(epr.requests(), 2, "one failure, one delivery");
    let got = epr.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.authorization.as_deref(), Some("Bearer epr-secret"));
    assert_eq!(r.content_type.as_deref(), Some("application/fhir+json"));
    let bundle = &r.bundle;
    assert_valid(bundle);
    assert_eq!(bundle["type"], "transaction");
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 1 + 3, "the Task and a Provenance per event");
    assert_eq!(
        entries[0]["request"],
        json!({ "method": "PUT", "url": format!("Task/{id}") })
    );
    assert_eq!(entries[0]["fullUrl"], format!("{base}/Task/{id}"));
    let task = &entries[0]["resource"];
    assert_eq!(task["status"], "completed");
    assert_eq!(
        task["output"][0]["valueCodeableConcept"]["coding"][0]["code"],
        "done"
    );
    assert_eq!(task["for"]["identifier"]["value"], NHS_1);
    for e in &entries[1..] {
        assert_eq!(e["resource"]["resourceType"], "Provenance");
        assert_eq!(
            e["resource"]["target"][0]["reference"],
            format!("Task/{id}")
        );
        assert_eq!(e["request"]["method"], "PUT");
    }
    assert_eq!(epr.versions(&format!("Task/{id}")), 1);
    assert_eq!(epr.resource_count(), 4);
}

#[tokio::test]
async fn a_refused_delivery_stays_visible_as_failed_until_it_is_delivered() {
    let epr = FhirServer::start().await;
    epr.fail_next(1, 422);
    let base = epr.base_url();
    let w = Ward::with(TestApp::spawn_draining(|c| c.record_server(&base, None)).await).await;
    let app = &w.app;
    let id = app
        .raised(&w.nurse.token, "Medicine FY1 night", json!({}))
        .await;
    let (s, _) = app
        .act(
            &id,
            "cancel",
            &w.nurse.token,
            json!({ "reason": "Patient discharged" }),
        )
        .await;
    assert_eq!(s, 200);

    app.drain().await;
    assert_eq!(deliveries(app, &w.nurse.token, "failed").await.len(), 1);
    let failed = deliveries(app, &w.nurse.token, "failed").await;
    assert!(failed[0]["last_error"].as_str().unwrap().contains("422"));
    let (_, listed) = app.get("/api/v1/record-deliveries", &w.nurse.token).await;
    assert_eq!(
        listed["deliveries"].as_array().unwrap().len(),
        1,
        "undelivered by default"
    );
    assert_eq!(listed["configured"], true);

    // Not before the longest back-off.
    app.advance(200);
    assert_eq!(app.drain().await, (0, 0));
    app.advance(200); // past the longest back-off: a failed row is still retried
    app.drain().await;
    assert_eq!(epr.received().len(), 1, "it is delivered in the end");
    assert!(
        deliveries(app, &w.nurse.token, "failed").await.is_empty(),
        "and no longer listed as failed"
    );
    let bundle = &epr.received()[0].bundle;
    assert_valid(bundle);
    let task = &bundle["entry"][0]["resource"];
    assert_eq!(task["status"], "cancelled");
    assert_eq!(task["statusReason"]["text"], "Patient discharged");
    assert!(epr.received()[0].authorization.is_none());
}

#[tokio::test]
async fn without_a_record_server_nothing_is_queued() {
    let w = Ward::new().await;
    let app = &w.app;
    let id = app
        .raised(&w.nurse.token, "Medicine FY1 night", json!({}))
        .await;
    complete(app, &id, &w.amy).await;
    let (s, b) = app
        .get(
            "/api/v1/record-deliveries?status=pending,sending,delivered,failed",
            &w.manager.token,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["configured"], false);
    assert!(b["deliveries"].as_array().unwrap().is_empty());
    let rows = app
        .write(|c, _| {
            use bleepless::store::schema::outbox;
            use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
            Ok(outbox::table
                .filter(outbox::kind.eq("record"))
                .count()
                .get_result::<i64>(c)?)
        })
        .await;
    assert_eq!(rows, 0);
    let (s, _) = app
        .get("/api/v1/record-deliveries?status=lost", &w.manager.token)
        .await;
    assert_eq!(s, 400);
}
