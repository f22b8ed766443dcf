//! The bleep follows the rota: shifts in the hospital's local time across a clock change,
//! the automatic hand-over at each boundary (to the second), taking the bleep, busy,
//! cover gaps, imports and calendar feeds. The clock moves; nothing sleeps.
use crate::escalation::{notifications, payload, register};
use crate::helpers::*;
use crate::support::push_service::PushService;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Who the API says holds the role now, by name.
async fn holders(app: &TestApp, role: &str, token: &str) -> Vec<String> {
    let (s, body) = app.get("/api/v1/roles", token).await;
    assert_eq!(s, 200, "{body}");
    let r = body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == role)
        .expect("the role is listed")
        .clone();
    let mut names: Vec<String> = r["held_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// The bleep's holder-to-be takes it.
async fn take(w: &Ward, who: &Person) -> (u16, Value) {
    let path = format!("/api/v1/roles/{}/take", w.fy1);
    w.app.post(&path, &who.token, json!({})).await
}

/// Moves the clock to `t`, runs the tick, and says who holds the role then.
async fn tick_at(w: &Ward, t: &str) -> Vec<String> {
    w.app.clock.set(at(t));
    w.app.drain().await;
    holders(&w.app, &w.fy1, &w.nurse.token).await
}

/// A GET with no credentials (a calendar app has none).
async fn fetch(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap()
}

/// Reads a feed as a phone's calendar would: its address, then an independent iCalendar
/// parser.
async fn subscribe(app: &TestApp, feed: &Value) -> ical::parser::ical::component::IcalCalendar {
    let url = feed["url"].as_str().expect("a feed address");
    let path = url
        .split_once("/calendar/")
        .map(|(_, c)| format!("/calendar/{c}"))
        .expect("a calendar address");
    let res = fetch(app, &path).await;
    assert_eq!(res.status(), 200);
    let kind = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("text/calendar"), "{kind}");
    let text = res.text().await.unwrap();
    ical::IcalParser::new(text.as_bytes())
        .next()
        .expect("one calendar")
        .expect("it parses")
}

/// The names a task's notifications went to.
async fn reached(app: &TestApp, id: &str, token: &str) -> Vec<String> {
    let mut names: Vec<String> = notifications(app, id, token)
        .await
        .iter()
        .map(|n| n["recipient"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

async fn allow(app: &TestApp, admin: &Person, role: &str, who: &Person) {
    let (s, body) = app
        .post(
            &format!("/api/v1/roles/{role}/allowed"),
            &admin.token,
            json!({ "staff": who.id }),
        )
        .await;
    assert_eq!(s, 200, "{body}");
}

async fn pattern(app: &TestApp, admin: &Person, role: &str, who: &Person, p: Value) {
    let mut body = json!({ "role": role, "staff": who.id });
    body.as_object_mut()
        .unwrap()
        .extend(p.as_object().unwrap().clone());
    let (s, out) = app.post("/api/v1/rota/patterns", &admin.token, body).await;
    assert_eq!(s, 201, "{out}");
}

async fn import(app: &TestApp, admin: &Person, csv: &str, dry_run: bool) -> (u16, Value) {
    let res = app
        .client
        .post(format!("{}/api/v1/rota/import?dry_run={dry_run}", app.base))
        .bearer_auth(&admin.token)
        .header("Content-Type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap();
    read(res).await
}

/// Amy works the nights of Friday 26 and Saturday 27 March 2027, Ben the days of Saturday
/// and Sunday; the clocks go forward at 01:00 GMT on Sunday 28 March.
pub(crate) async fn spring_rota() -> (Ward, Person) {
    let w = Ward::draining().await;
    let admin = w.app.staff("Sam Admin", "admin").await;
    w.app.clock.set(at("2027-03-26T12:00:00Z"));
    allow(&w.app, &admin, &w.fy1, &w.amy).await;
    allow(&w.app, &admin, &w.fy1, &w.ben).await;
    let nights = json!({ "weekdays": "daily", "starts": "20:00", "ends": "08:00",
        "first_day": "2027-03-26", "last_day": "2027-03-27" });
    pattern(&w.app, &admin, &w.fy1, &w.amy, nights).await;
    let days = json!({ "weekdays": "Sat,Sun", "starts": "08:00", "ends": "20:00",
        "first_day": "2027-03-27", "last_day": "2027-03-28" });
    pattern(&w.app, &admin, &w.fy1, &w.ben, days).await;
    (w, admin)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bleep_changes_hands_at_each_boundary_to_the_second_across_a_clock_change() {
    let (w, admin) = spring_rota().await;
    let app = &w.app;
    // Friday noon: nobody is on the rota yet; Amy holds the bleep she was handed until the
    // rota's next boundary.
    app.drain().await;
    assert_eq!(holders(app, &w.fy1, &w.nurse.token).await, ["Dr Amy Patel"]);

    assert_eq!(tick_at(&w, "2027-03-26T20:00:00Z").await, ["Dr Amy Patel"]);

    // Saturday 07:59:59 GMT: still Amy's; a task raised now is hers.
    assert_eq!(tick_at(&w, "2027-03-27T07:59:59Z").await, ["Dr Amy Patel"]);
    let early = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    assert_eq!(reached(app, &early, &w.nurse.token).await, ["Dr Amy Patel"]);

    // 08:00:01, before any tick: the next task is Ben's, and the waiting one follows him.
    app.clock.set(at("2027-03-27T08:00:01Z"));
    let late = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    assert_eq!(reached(app, &late, &w.nurse.token).await, ["Dr Ben Hughes"]);
    assert_eq!(
        holders(app, &w.fy1, &w.nurse.token).await,
        ["Dr Ben Hughes"]
    );
    assert_eq!(
        reached(app, &early, &w.nurse.token).await,
        ["Dr Amy Patel", "Dr Ben Hughes"],
        "the task waiting at 08:00 is sent to the incoming holder"
    );
    let (_, timeline) = app
        .get(&format!("/api/v1/tasks/{early}"), &w.nurse.token)
        .await;
    assert!(
        timeline["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "handed_over"),
        "{timeline}"
    );
    // Amy went home: she may no longer acknowledge what is now Ben's.
    let (s, _) = app.act(&late, "acknowledge", &w.amy.token, json!({})).await;
    assert_eq!(s, 403);

    // Saturday night spans the clock change: 20:00 GMT to 08:00 BST is 11 hours.
    let (_, rota) = app
        .get(
            &format!("/api/v1/rota?role={}&from=2027-03-27%2012:00&days=2", w.fy1),
            &admin.token,
        )
        .await;
    let night = rota["shifts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["starts_at"] == "2027-03-27T20:00:00Z")
        .expect("Saturday night")
        .clone();
    assert_eq!(night["ends_at"], "2027-03-28T07:00:00Z", "08:00 BST");
    app.clock.set(at("2027-03-27T19:59:59Z"));
    app.drain().await;
    assert_eq!(
        holders(app, &w.fy1, &w.nurse.token).await,
        ["Dr Ben Hughes"]
    );
    assert_eq!(tick_at(&w, "2027-03-27T20:00:00Z").await, ["Dr Amy Patel"]);
    assert_eq!(tick_at(&w, "2027-03-28T06:59:59Z").await, ["Dr Amy Patel"]);
    app.clock.set(at("2027-03-28T07:00:00Z"));
    app.drain().await;
    assert_eq!(
        holders(app, &w.fy1, &w.nurse.token).await,
        ["Dr Ben Hughes"]
    );

    // Sunday's day ends at 20:00 BST with nobody after it: a gap, reported ahead of time.
    let (s, gaps) = app.get("/api/v1/rota/gaps?hours=24", &admin.token).await;
    assert_eq!(s, 200, "{gaps}");
    let g = gaps["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["role_id"] == w.fy1.as_str())
        .expect("the night is uncovered")
        .clone();
    assert_eq!(g["from"], "2027-03-28T19:00:00Z");
    assert_eq!(
        g["text"],
        "Medicine FY1 night uncovered Sun 28 Mar 20:00–Mon 29 Mar 08:00"
    );
    assert!(tick_at(&w, "2027-03-28T19:00:00Z").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_incoming_holder_is_told_and_confirms_what_they_inherit() {
    let push = PushService::start().await;
    let (w, admin) = spring_rota().await;
    let app = &w.app;
    // Amy covers the end of Ben's Saturday day: his time on the bleep ends at 15:00, and
    // what he is told on arriving says so.
    let cover = json!({ "role": w.fy1, "staff": w.amy.id, "replaces": w.ben.id,
        "start": "2027-03-27 15:00", "end": "2027-03-27 20:00", "note": "cover" });
    let (s, b) = app.post("/api/v1/rota/shifts", &admin.token, cover).await;
    assert_eq!(s, 201, "{b}");
    let (amy_phone, ben_phone) = (push.new_subscription(), push.new_subscription());
    register(app, &w.amy, &amy_phone).await;
    register(app, &w.ben, &ben_phone).await;
    app.clock.set(at("2027-03-26T20:00:00Z"));
    app.drain().await;
    let (s, _) = app
        .post("/api/v1/me/hand-over/confirm", &w.amy.token, json!({}))
        .await;
    assert_eq!(s, 200);
    app.clock.set(at("2027-03-27T07:30:00Z"));
    let waiting = app
        .raised(&w.nurse.token, &w.fy1, json!({ "bed": "4" }))
        .await;
    let taken = app
        .raised(&w.nurse.token, &w.fy1, json!({ "bed": "9" }))
        .await;
    let (s, _) = app
        .act(&taken, "acknowledge", &w.amy.token, json!({}))
        .await;
    assert_eq!(s, 200);
    app.drain().await;
    let before = push.received().len();

    app.clock.set(at("2027-03-27T08:00:00Z"));
    app.drain().await;
    let got = push.received()[before..].to_vec();
    let notice_to = |phone: &str| {
        got.iter()
            .filter(|r| r.endpoint == phone)
            .map(payload)
            .find(|p| p["notice"] == true)
            .unwrap_or_else(|| panic!("a notice to {phone}: {got:?}"))
    };
    let ben = notice_to(&ben_phone.endpoint);
    assert_eq!(ben["title"], "You now hold Medicine FY1 night until 15:00");
    assert_eq!(ben["body"], "1 task is waiting for you: open My bleeps.");
    let amy = notice_to(&amy_phone.endpoint);
    assert_eq!(amy["title"], "You no longer hold Medicine FY1 night");
    assert!(
        got.iter()
            .filter(|r| r.endpoint == ben_phone.endpoint)
            .map(payload)
            .any(|p| p["task_id"] == waiting.as_str()),
        "the waiting task is pushed to Ben"
    );

    let (s, list) = app.get("/api/v1/me/hand-over", &w.ben.token).await;
    assert_eq!(s, 200, "{list}");
    let a = &list["arrivals"][0];
    assert_eq!(a["headline"], "You now hold Medicine FY1 night until 15:00");
    assert_eq!(a["waiting"][0]["task_id"], waiting.as_str());
    assert_eq!(a["acknowledged"][0]["task_id"], taken.as_str());
    assert_eq!(a["acknowledged"][0]["acknowledged_by"], "Dr Amy Patel");
    let (s, _) = app
        .post(
            "/api/v1/me/hand-over/confirm",
            &w.ben.token,
            json!({ "role": w.fy1 }),
        )
        .await;
    assert_eq!(s, 200);
    let (s, again) = app
        .post("/api/v1/me/hand-over/confirm", &w.ben.token, json!({}))
        .await;
    assert_eq!(s, 409, "{again}");
    assert!(again["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nothing is waiting"));
    // Amy keeps what she acknowledged.
    let (s, _) = app.act(&taken, "start", &w.amy.token, json!({})).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_those_listed_may_take_the_bleep_and_the_previous_holder_is_told() {
    let w = Ward::draining().await;
    let app = &w.app;
    let admin = app.staff("Sam Admin", "admin").await;
    let (s, body) = take(&w, &w.ben).await;
    assert_eq!(s, 403, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not listed"));
    allow(app, &admin, &w.fy1, &w.ben).await;
    let id = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let (s, body) = take(&w, &w.ben).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["leaving"][0], w.amy.id.as_str());
    assert_eq!(body["renotified"][0], id.as_str());
    assert_eq!(
        holders(app, &w.fy1, &w.nurse.token).await,
        ["Dr Ben Hughes"]
    );
    let (s, _) = take(&w, &w.ben).await;
    assert_eq!(s, 409);
    // A list exists now: the admin cannot hand the bleep to someone not on it.
    let (s, body) = app
        .post(
            &format!("/api/v1/roles/{}/hand-over", w.fy1),
            &admin.token,
            json!({ "to": w.amy.id }),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("may not hold"));
    // A coordinator may not be listed at all.
    let (s, _) = app
        .post(
            &format!("/api/v1/roles/{}/allowed", w.fy1),
            &admin.token,
            json!({ "staff": w.nurse.id }),
        )
        .await;
    assert_eq!(s, 422);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bleep_handed_back_sends_its_waiting_task_again_and_the_rota_keeps_applying() {
    let (w, _admin) = spring_rota().await;
    let app = &w.app;
    app.clock.set(at("2027-03-26T20:00:00Z"));
    app.drain().await;
    let waiting = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    app.drain().await;
    let pushes_to_amy = |list: &[Value]| {
        list.iter()
            .filter(|n| n["recipient"]["name"] == "Dr Amy Patel" && n["channel"] == "push")
            .count()
    };
    let first = pushes_to_amy(&notifications(app, &waiting, &w.nurse.token).await);
    assert!(first >= 1, "Amy was bleeped");
    // Ben takes the bleep for a few seconds, then Amy takes it back: the task, still
    // waiting at the same level, is sent to her again rather than colliding with the
    // first sending.
    app.clock.set(at("2027-03-26T20:00:05Z"));
    let (s, body) = take(&w, &w.ben).await;
    assert_eq!(s, 200, "{body}");
    app.clock.set(at("2027-03-26T20:00:10Z"));
    let (s, body) = take(&w, &w.amy).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["renotified"][0], waiting.as_str(), "{body}");
    app.drain().await;
    let again = pushes_to_amy(&notifications(app, &waiting, &w.nurse.token).await);
    assert_eq!(
        again,
        first + 1,
        "Amy is bleeped again for what she inherits"
    );
    // The rota's next boundary is still applied by the tick.
    assert_eq!(tick_at(&w, "2027-03-27T08:00:00Z").await, ["Dr Ben Hughes"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn busy_passes_new_bleeps_to_the_co_holder_then_up_the_chain_and_ends_by_itself() {
    let w = Ward::draining().await;
    let app = &w.app;
    let admin = app.staff("Sam Admin", "admin").await;
    let site_manager = app.staff("Maria Clinical", "bed_manager,clinician").await;
    let site = app.role("Site manager", &[&site_manager]).await;
    app.escalates_to(&w.fy1, &site, &admin).await;
    app.post(
        &format!("/api/v1/roles/{}/hand-over", w.fy1),
        &w.amy.token,
        json!({ "to": w.ben.id, "share": true }),
    )
    .await;
    let put = |who: &Person, body: Value| {
        let req = app
            .client
            .put(format!("{}/api/v1/me/busy", app.base))
            .bearer_auth(&who.token)
            .json(&body);
        async move { read(req.send().await.unwrap()).await }
    };
    let (s, body) = put(&w.amy, json!({ "minutes": 30, "reason": "in resus" })).await;
    assert_eq!(s, 200, "{body}");
    let one = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    assert_eq!(reached(app, &one, &w.nurse.token).await, ["Dr Ben Hughes"]);
    let (_, busy) = app.get("/api/v1/busy", &w.nurse.token).await;
    assert_eq!(busy["busy"][0]["name"], "Dr Amy Patel");
    assert_eq!(busy["busy"][0]["reason"], "in resus");

    let (s, _) = put(&w.ben, json!({ "minutes": 10 })).await;
    assert_eq!(s, 200);
    let two = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    assert_eq!(reached(app, &two, &w.nurse.token).await, ["Maria Clinical"]);
    let (_, t) = app
        .get(&format!("/api/v1/tasks/{two}"), &w.nurse.token)
        .await;
    assert_eq!(t["escalation_level"], 1, "passed on at once: {t}");

    let (s, body) = put(&w.ben, json!({ "minutes": 241 })).await;
    assert_eq!(s, 422);
    assert!(body["error"]["message"].as_str().unwrap().contains("240"));

    app.advance(31 * 60);
    let three = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    assert_eq!(
        reached(app, &three, &w.nurse.token).await,
        ["Dr Amy Patel", "Dr Ben Hughes"],
        "busy ended by itself"
    );
    let (_, busy) = app.get("/api/v1/busy", &w.nurse.token).await;
    assert_eq!(busy["busy"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rota_import_is_all_or_nothing_and_names_each_problem_by_line_and_field() {
    let w = Ward::draining().await;
    let app = &w.app;
    let admin = app.staff("Sam Admin", "admin").await;
    app.clock.set(at("2027-03-20T12:00:00Z"));
    let bad = format!(
        "role,staff email,start,end\n\
         Medicine FY1 night,dramypatel@example.nhs.uk,2027-03-22 20:00,2027-03-23 08:00\n\
         Cardiology FY1,dramypatel@example.nhs.uk,2027-03-23 20:00,2027-03-24 08:00\n\
         Medicine FY1 night,nobody@example.nhs.uk,2027-03-23 20:00,2027-03-24 08:00\n\
         Medicine FY1 night,drbenhughes@example.nhs.uk,2027-03-25 08:00,2027-03-24 20:00\n\
         Medicine FY1 night,drbenhughes@example.nhs.uk,2027-03-28 01:30,2027-03-28 08:00\n\
         Medicine FY1 night,drbenhughes@example.nhs.uk,2026-10-25 01:30,2026-10-25 08:00\n\
         Medicine FY1 night,dramypatel@example.nhs.uk,2027-03-23 07:00,2027-03-23 12:00\n\
         Medicine FY1 night,{}\n",
        "drbenhughes@example.nhs.uk,2027-03-29 20:00"
    );
    let (s, body) = import(app, &admin, &bad, false).await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the rota was not imported: 7 problems"),
        "{body}"
    );
    let report = body["error"]["report"].clone();
    let problems: Vec<(u64, String)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["line"].as_u64().unwrap(),
                p["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = |line: u64, field: &str| {
        assert!(
            problems.contains(&(line, field.to_string())),
            "line {line} {field}: {report}"
        )
    };
    expect(3, "role");
    expect(4, "staff");
    expect(5, "end");
    expect(6, "start");
    expect(7, "start");
    expect(8, "start");
    expect(9, "line");
    assert_eq!(report["unknown_people"], json!(["nobody@example.nhs.uk"]));
    let twice = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["line"] == 7)
        .unwrap();
    assert!(
        twice["message"].as_str().unwrap().contains("happens twice"),
        "{twice}"
    );
    assert_eq!(report["imported"], false);
    let (_, rota) = app
        .get("/api/v1/rota?from=2027-03-20%2000:00&days=14", &admin.token)
        .await;
    assert_eq!(rota["shifts"], json!([]), "nothing partly imported");

    let good = "Medicine FY1 night,dramypatel@example.nhs.uk,2027-03-22 20:00,2027-03-23 08:00\n\
                Medicine FY1 night,drbenhughes@example.nhs.uk,2027-03-23 20:00,2027-03-24 08:00\n";
    let (s, dry) = import(app, &admin, good, true).await;
    assert_eq!(s, 200, "{dry}");
    assert_eq!(
        (dry["shifts"].as_u64(), dry["imported"].as_bool()),
        (Some(2), Some(false))
    );
    assert_eq!(
        dry["gaps"][0]["text"],
        "Medicine FY1 night uncovered Tue 23 Mar 08:00–20:00"
    );
    let (_, rota) = app
        .get("/api/v1/rota?from=2027-03-20%2000:00&days=14", &admin.token)
        .await;
    assert_eq!(rota["shifts"], json!([]), "a dry run changes nothing");
    let (s, done) = import(app, &admin, good, false).await;
    assert_eq!((s, done["imported"].as_bool()), (200, Some(true)), "{done}");
    let (_, rota) = app
        .get("/api/v1/rota?from=2027-03-20%2000:00&days=14", &admin.token)
        .await;
    assert_eq!(rota["shifts"].as_array().unwrap().len(), 2);
    assert_eq!(rota["shifts"][1]["staff"], "Dr Ben Hughes");
    // The same again clashes with what is now on the rota.
    let (s, again) = import(app, &admin, good, false).await;
    assert_eq!(s, 422);
    assert!(again["error"]["report"]["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("two shifts at once"));
    let (s, _) = import(app, &w.nurse, good, true).await;
    assert_eq!(s, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn calendar_feeds_are_icalendar_at_secret_addresses() {
    let (w, admin) = spring_rota().await;
    let app = &w.app;
    let (s, feed) = app.get("/api/v1/me/calendar", &w.amy.token).await;
    assert_eq!(s, 200, "{feed}");
    let amy = subscribe(app, &feed).await;
    let prop = |e: &ical::parser::ical::component::IcalEvent, name: &str| {
        e.properties
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.clone())
            .unwrap_or_default()
    };
    assert_eq!(amy.events.len(), 2, "Amy's two nights");
    let starts: Vec<String> = amy.events.iter().map(|e| prop(e, "DTSTART")).collect();
    assert_eq!(starts, ["20270326T200000Z", "20270327T200000Z"]);
    assert_eq!(prop(&amy.events[1], "DTEND"), "20270328T070000Z");
    assert_eq!(prop(&amy.events[0], "SUMMARY"), "Medicine FY1 night");

    let (_, role_feed) = app
        .get(&format!("/api/v1/roles/{}/calendar", w.fy1), &admin.token)
        .await;
    let role = subscribe(app, &role_feed).await;
    assert_eq!(role.events.len(), 4, "two nights and two days");
    assert_eq!(prop(&role.events[1], "SUMMARY"), "Dr Ben Hughes");
    assert_eq!(fetch(app, "/calendar/not-a-feed.ics").await.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_shifts_are_refused_with_what_was_wrong() {
    let w = Ward::draining().await;
    let app = &w.app;
    let admin = app.staff("Sam Admin", "admin").await;
    app.clock.set(at("2027-03-20T12:00:00Z"));
    let post = |body: Value| app.post("/api/v1/rota/shifts", &admin.token, body);
    let (s, b) = post(json!({ "role": w.fy1, "staff": w.amy.id, "start": "2027-03-22 20:00", "end": "2027-03-22 08:00" })).await;
    assert_eq!(s, 422);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ends before it starts"),
        "{b}"
    );
    let (s, b) = post(json!({ "role": w.fy1, "staff": w.amy.id, "start": "2027-03-28 01:15", "end": "2027-03-28 09:00" })).await;
    assert_eq!(s, 422);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("start: 2027-03-28 01:15 does not exist"),
        "{b}"
    );
    let (s, _) = post(json!({ "role": "No such role", "staff": w.amy.id, "start": "2027-03-22 20:00", "end": "2027-03-23 08:00" })).await;
    assert_eq!(s, 404);
    let (s, b) = post(json!({ "role": w.fy1, "staff": w.nurse.id, "start": "2027-03-22 20:00", "end": "2027-03-23 08:00" })).await;
    assert_eq!(s, 422, "a coordinator may not hold a bleep: {b}");
    let (s, shift) = post(json!({ "role": w.fy1, "staff": w.amy.id, "start": "2027-03-22 20:00", "end": "2027-03-23 08:00" })).await;
    assert_eq!(s, 201, "{shift}");
    let (s, b) = post(json!({ "role": w.fy1, "staff": w.amy.id, "start": "2027-03-23 07:00", "end": "2027-03-23 10:00" })).await;
    assert_eq!(s, 409, "{b}");
    // Cover for Amy's night by Ben is an override, not a clash.
    let (s, b) = post(json!({ "role": w.fy1, "staff": w.ben.id, "replaces": w.amy.id, "start": "2027-03-22 23:00", "end": "2027-03-23 08:00", "note": "swap" })).await;
    assert_eq!(s, 201, "{b}");
    app.clock.set(at("2027-03-23T00:00:00Z"));
    app.drain().await;
    assert_eq!(
        holders(app, &w.fy1, &w.nurse.token).await,
        ["Dr Ben Hughes"]
    );
    let id = shift["id"].as_str().unwrap();
    let del = app
        .client
        .delete(format!("{}/api/v1/rota/shifts/{id}", app.base))
        .bearer_auth(&w.amy.token)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 403);
    let (s, b) = app
        .post(
            "/api/v1/rota/patterns",
            &admin.token,
            json!({
        "role": w.fy1, "staff": w.ben.id, "weekdays": "Sun", "starts": "01:30", "ends": "09:00",
        "first_day": "2027-03-22", "last_day": "2027-03-29" }),
        )
        .await;
    assert_eq!(s, 422);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2027-03-28"),
        "{b}"
    );
}
