//! The one outbox: rows waiting in the two outboxes it replaced survive the migration, the
//! record holds what Bleepless holds, and a second record server is configuration.
use crate::helpers::*;
use crate::support::fhir_server::FhirServer;
use bleepless::store::directory::hash_token;
use bleepless::store::{DatabaseUrl, DbConnection, MultiBackend, MIGRATIONS};
use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::Connection;
use diesel_migrations::MigrationHarness;
use serde_json::{json, Value};

async fn complete(app: &TestApp, id: &str, doctor: &Person) {
    let (s, b) = app.act(id, "acknowledge", &doctor.token, json!({})).await;
    assert_eq!(s, 200, "{b}");
    let done = json!({ "outcome": { "code": "done", "text": "Re-sited 20G left forearm" } });
    let (s, b) = app.act(id, "complete", &doctor.token, done).await;
    assert_eq!(s, 200, "{b}");
}

fn without_meta(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("meta");
    }
    v
}

/// The record's copy of the task, and ours, side by side.
async fn record_and_ours(app: &TestApp, epr: &FhirServer, id: &str, token: &str) -> (Value, Value) {
    let theirs = epr
        .resource(&format!("Task/{id}"))
        .unwrap_or_else(|| panic!("the record has no Task/{id}"));
    let (s, ours) = app.get(&format!("/fhir/Task/{id}"), token).await;
    assert_eq!(s, 200, "{ours}");
    (without_meta(theirs), without_meta(ours))
}

#[tokio::test]
async fn a_comment_after_the_task_reached_the_record_is_delivered_again() {
    let epr = FhirServer::start().await;
    let base = epr.base_url();
    let app = TestApp::spawn_draining(|c| c.record_server(&base, None)).await;
    let w = Ward::with(app).await;
    let app = &w.app;
    let id = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    complete(app, &id, &w.amy).await;
    app.drain().await;
    let task = format!("Task/{id}");
    assert_eq!(epr.versions(&task), 1);
    let (theirs, ours) = record_and_ours(app, &epr, &id, &w.nurse.token).await;
    assert_eq!(theirs, ours);
    assert!(ours.get("note").is_none(), "{ours}");

    let (s, b) = app
        .post(
            &format!("/api/v1/tasks/{id}/comments"),
            &w.nurse.token,
            json!({ "text": "Family informed of the new cannula" }),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    app.drain().await;
    assert_eq!(epr.versions(&task), 2, "the change is delivered again");
    let (theirs, ours) = record_and_ours(app, &epr, &id, &w.nurse.token).await;
    assert_eq!(theirs, ours, "the record holds what Bleepless holds");
    assert_eq!(
        ours["note"][0]["text"],
        "Family informed of the new cannula"
    );

    let (s, b) = app
        .get(
            "/api/v1/record-deliveries?status=delivered",
            &w.manager.token,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let versions: Vec<i64> = b["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["task_version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions.len(), 2, "{b}");
    assert!(versions[0] < versions[1], "{versions:?}");
    // Nothing is left to send: draining again sends nothing.
    assert_eq!(app.drain().await, (0, 0));
    assert_eq!(epr.versions(&task), 2);
}

#[tokio::test]
async fn a_completed_task_carries_no_old_reassign_reason() {
    let epr = FhirServer::start().await;
    let base = epr.base_url();
    let app = TestApp::spawn_draining(|c| c.record_server(&base, None)).await;
    let w = Ward::with(app).await;
    let app = &w.app;
    let id = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    let reassign = json!({ "assignee": w.ben.id, "reason": "Dr Patel is in resus" });
    let (s, b) = app.act(&id, "reassign", &w.nurse.token, reassign).await;
    assert_eq!(s, 200, "{b}");
    complete(app, &id, &w.ben).await;
    app.drain().await;
    let (theirs, ours) = record_and_ours(app, &epr, &id, &w.nurse.token).await;
    assert_eq!(theirs, ours);
    assert!(ours.get("statusReason").is_none(), "{ours}");
    assert_eq!(ours["status"], "completed");
}

#[tokio::test]
async fn a_second_record_server_is_configuration() {
    let (epr, shared_care) = (FhirServer::start().await, FhirServer::start().await);
    let (a, b) = (epr.base_url(), shared_care.base_url());
    let app = TestApp::spawn_draining(|c| {
        c.record_server(&a, None);
        c.record_server(&b, Some("Bearer shared-care"));
    })
    .await;
    let w = Ward::with(app).await;
    let app = &w.app;
    let id = app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    complete(app, &id, &w.amy).await;
    shared_care.fail_next(1, 503);
    app.drain().await;
    let task = format!("Task/{id}");
    assert_eq!(epr.versions(&task), 1);
    assert_eq!(shared_care.versions(&task), 0, "the second server was down");
    let (s, body) = app
        .get("/api/v1/record-deliveries?status=pending", &w.manager.token)
        .await;
    assert_eq!(s, 200, "{body}");
    let pending = body["deliveries"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{body}");
    assert_eq!(pending[0]["destination"], "record-2");
    assert!(pending[0]["last_error"].as_str().unwrap().contains("503"));
    app.advance(10); // past the first back-off
    app.drain().await;
    assert_eq!(shared_care.versions(&task), 1);
    let got = shared_care.received();
    assert_eq!(got[0].authorization.as_deref(), Some("Bearer shared-care"));
    assert_eq!(
        epr.versions(&task),
        1,
        "the first server is not sent it again"
    );
}

/// A database at the schema before the one outbox, with rows waiting in both old outboxes.
fn database_at_the_old_schema(url: &DatabaseUrl) -> DbConnection {
    let mut conn = match url {
        DatabaseUrl::Sqlite(p) => {
            DbConnection::Sqlite(diesel::SqliteConnection::establish(&p.to_string_lossy()).unwrap())
        }
        DatabaseUrl::Postgres(u) => DbConnection::Pg(diesel::PgConnection::establish(u).unwrap()),
    };
    // What diesel's harness makes before its first migration.
    conn.batch_execute(
        "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (\
         version VARCHAR(50) PRIMARY KEY NOT NULL, \
         run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )
    .unwrap();
    let mut old = MigrationSource::<MultiBackend>::migrations(&MIGRATIONS).unwrap();
    old.retain(|m| m.name().to_string().as_str() < "2026-12-02-000010");
    old.sort_by_key(|m| m.name().to_string());
    for m in &old {
        conn.run_migration(m.as_ref()).unwrap();
    }
    conn
}

const NURSE_TOKEN: &str = "blp_old_schema_nurse";

/// Yesterday's rows: a nurse (coordinator) and a doctor, a completed task, and in the two
/// old outboxes a push still to retry, a failed email, and record deliveries pending,
/// failing and delivered.
const OLD_ROWS: &str = "
INSERT INTO staff (id, name, email, permissions, token_hash, password_hash, active, created_at)
VALUES ('nurse', 'Sister Old', 'old@example.nhs.uk', 'coordinator', 'NURSE_HASH', NULL, TRUE,
        '2026-11-26 01:00:00'),
       ('amy', 'Dr Amy Old', 'amy@example.nhs.uk', 'clinician', 'amy-hash', NULL, TRUE,
        '2026-11-26 01:00:00');
INSERT INTO wards (name, created_at) VALUES ('Ward 9', '2026-11-26 01:00:00');
INSERT INTO tasks (id, nhs_number, ward, bed, category, description, priority, news2, status,
                   assignee_role_id, assignee_staff_id, raised_by, raised_at, ack_deadline,
                   acknowledged_by, acknowledged_at, started_at, ended_at, outcome_code,
                   outcome_text, status_reason, escalation_level, next_escalation_at, version,
                   updated_at)
VALUES ('task-1', '9990000018', 'Ward 9', '3', 'bloods', 'FBC', 'urgent', NULL, 'completed',
        NULL, 'amy', 'nurse', '2026-11-26 01:10:00', '2026-11-26 01:25:00', 'amy',
        '2026-11-26 01:12:00', NULL, '2026-11-26 01:20:00', 'done', '', NULL, 0, NULL, 3,
        '2026-11-26 01:20:00');
INSERT INTO task_events (task_id, seq, at, actor_id, kind, from_status, to_status, detail)
VALUES ('task-1', 1, '2026-11-26 01:10:00', 'nurse', 'raised', NULL, 'requested', NULL);
INSERT INTO notifications (id, dedupe_key, task_id, level, recipient_id, channel, status,
                           attempts, due_at, lease_owner, lease_until, last_error, created_at,
                           sent_at)
VALUES ('n-push', 'task-1:1:0:amy:push', 'task-1', 0, 'amy', 'push', 'pending', 2,
        '2026-11-26 01:11:00', NULL, NULL, 'push service answered 503',
        '2026-11-26 01:10:00', NULL),
       ('n-email', 'task-1:1:0:amy:email', 'task-1', 0, 'amy', 'email', 'failed', 8,
        '2026-11-26 01:11:00', NULL, NULL, 'gave up after 8 attempts: 421',
        '2026-11-26 01:10:00', NULL);
INSERT INTO record_deliveries (id, task_id, task_version, status, attempts, due_at,
                               lease_owner, lease_until, last_error, created_at, delivered_at)
VALUES ('r-pending', 'task-1', 3, 'pending', 1, '2026-11-26 01:21:00', NULL, NULL,
        'record server answered 500', '2026-11-26 01:20:00', NULL),
       ('r-failed', 'task-1', 2, 'failed', 9, '2026-11-26 01:25:00', NULL, NULL,
        'record server answered 422 Unprocessable Entity', '2026-11-26 01:15:00', NULL),
       ('r-done', 'task-1', 1, 'delivered', 1, '2026-11-26 01:10:00', NULL, NULL, NULL,
        '2026-11-26 01:10:00', '2026-11-26 01:10:05');
";

#[tokio::test]
async fn rows_waiting_in_both_old_outboxes_move_to_the_one_outbox() {
    let (db, url) = TestDb::create();
    {
        let mut conn = database_at_the_old_schema(&url);
        conn.batch_execute(&OLD_ROWS.replace("NURSE_HASH", &hash_token(NURSE_TOKEN)))
            .unwrap();
    }
    // The service starts on it, and migrates.
    let app = TestApp::spawn_on(db, url, true, |_| {}).await;

    let (s, b) = app
        .get("/api/v1/tasks/task-1/notifications", NURSE_TOKEN)
        .await;
    assert_eq!(s, 200, "{b}");
    let mut got: Vec<(String, String, String, i64)> = b["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let text = |k: &str| n[k].as_str().unwrap().to_string();
            (
                text("id"),
                text("channel"),
                text("status"),
                n["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("n-email".into(), "email".into(), "failed".into(), 8),
            ("n-push".into(), "push".into(), "pending".into(), 2),
        ]
    );
    let (s, b) = app
        .get(
            "/api/v1/record-deliveries?status=pending,failed,delivered",
            NURSE_TOKEN,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut got: Vec<(String, String, i64, i64)> = b["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
                d["attempts"].as_i64().unwrap(),
                d["task_version"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("r-done".into(), "delivered".into(), 1, 1),
            ("r-failed".into(), "failed".into(), 9, 2),
            ("r-pending".into(), "pending".into(), 1, 3),
        ]
    );
    let pending = b["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "r-pending")
        .unwrap()
        .clone();
    assert_eq!(pending["last_error"], "record server answered 500");
    assert_eq!(pending["next_attempt_at"], "2026-11-26T01:21:00Z");
}

/// A raise's push goes at once from the instance that queued it (its dispatcher is rung with
/// the row's id); one queued by an instance whose dispatcher is not running is found and
/// sent by another instance's regular scan, within a few hundred milliseconds.
#[tokio::test(flavor = "multi_thread")]
async fn a_push_queued_where_no_dispatcher_runs_is_sent_by_another_instance() {
    use crate::escalation::{payload, register};
    use crate::support::push_service::PushService;
    let push = PushService::start().await;
    let mut w = Ward::new().await;
    let quiet = w.app.another_instance_serving_only().await;
    let phone = push.new_subscription();
    register(&w.app, &w.amy, &phone).await;
    let mut raised = Vec::new();
    for base in [quiet, w.app.base.clone()] {
        let res = w
            .app
            .client
            .post(format!("{base}/api/v1/tasks"))
            .bearer_auth(&w.nurse.token)
            .json(
                &json!({ "nhs_number": NHS_1, "ward": WARD, "bed": "3", "category": "review",
                           "description": "Review please", "priority": "stat", "assignee": w.fy1 }),
            )
            .send()
            .await
            .unwrap();
        let (s, t) = read(res).await;
        assert_eq!(s, 201, "{t}");
        raised.push(t["id"].as_str().unwrap().to_string());
        let got = push
            .wait_for_received(raised.len(), std::time::Duration::from_secs(5))
            .await;
        assert_eq!(got.len(), raised.len(), "each raise's push arrives");
    }
    let mut pushed: Vec<String> = push
        .received_for(&phone.endpoint)
        .iter()
        .map(|r| payload(r)["task_id"].as_str().unwrap().to_string())
        .collect();
    pushed.sort();
    raised.sort();
    assert_eq!(pushed, raised, "one push for each task, none twice");
}

/// While an instance's dispatcher runs, its commands write the deliveries due at once
/// already leased to it, as its claim would have a few milliseconds later, and hand it the
/// rows themselves: no claim statement, and no other instance can take them meanwhile.
/// Should the instance stop before sending, the lease runs out and another instance's scan
/// takes them. Without a running dispatcher the rows wait to be claimed, as before.
#[tokio::test]
async fn deliveries_due_at_once_are_written_leased_to_the_running_dispatcher() {
    use bleepless::app::App;
    use bleepless::clock::Clock;
    use bleepless::domain::task::Policy;
    use bleepless::store::outbox;
    use bleepless::store::schema::outbox as table;
    use diesel::prelude::*;
    let app = TestApp::spawn_draining(|_| {}).await;
    let amy = app.staff("Amy Patel", "clinician").await;
    let now = app.clock.now();
    let lease = std::time::Duration::from_secs(120);
    let queue = |served: bool| {
        let command = App::new(
            app.store.clone(),
            std::sync::Arc::new(app.clock.clone()),
            Policy::default(),
        );
        if served {
            command.doorbell.served_by("instance-a", lease);
        }
        let to = amy.id.clone();
        async move {
            let id = command
                .run(move |c, ctx| {
                    let mut rows = Vec::new();
                    outbox::notice(&to, "Rota", "You hold a new bleep", ctx.now, &mut rows);
                    outbox::insert(c, &rows)?;
                    Ok(rows.len())
                })
                .await
                .unwrap();
            assert_eq!(id, 1);
            let leased = command.doorbell.take_leased(10);
            let rung = command.doorbell.take(10);
            (leased, rung)
        }
    };
    let state = |id: String| {
        app.write(move |c, _| {
            Ok(table::table
                .find(&id)
                .select((table::status, table::lease_owner, table::attempts))
                .first::<(String, Option<String>, i32)>(c)?)
        })
    };

    let (leased, rung) = queue(true).await;
    assert!(rung.is_empty(), "nothing left to claim");
    let [handed] = &leased[..] else {
        panic!("one row handed over, got {}", leased.len())
    };
    assert!(handed.task.is_none(), "a notice is about no task");
    let row = &handed.row;
    let written = state(row.id.clone()).await;
    assert_eq!(
        written,
        ("sending".to_string(), Some("instance-a".to_string()), 1),
        "written as a claim by instance-a would have left it"
    );
    assert_eq!((row.status.as_str(), row.attempts), ("sending", 1));
    assert_eq!(
        row.lease_until,
        Some(bleepless::store::to_db(
            now + chrono::Duration::seconds(120)
        ))
    );
    let claim = |at: chrono::DateTime<chrono::Utc>| {
        app.write(move |c, _| {
            outbox::claim(c, "instance-b", at, at + chrono::Duration::seconds(120), 10)
        })
    };
    assert!(
        claim(now).await.is_empty(),
        "no other instance takes a leased row"
    );
    let later = now + chrono::Duration::seconds(121);
    let taken = claim(later).await;
    assert_eq!(
        taken
            .iter()
            .map(|r| (&r.id, r.attempts))
            .collect::<Vec<_>>(),
        [(&row.id, 2)],
        "once the lease has run out (its instance stopped) another instance takes it"
    );

    let (leased, rung) = queue(false).await;
    assert!(leased.is_empty(), "no dispatcher here: nothing leased");
    assert_eq!(rung.len(), 1, "its id is rung in, to be claimed");
    assert_eq!(
        state(rung[0].clone()).await,
        ("pending".to_string(), None, 0)
    );
}

/// A status change or a raise that fails to read its answer after its write has still
/// done what it wrote. On PostgreSQL, where each statement commits as it is written, the
/// caller is told of the failure and the deliveries it queued go to the dispatcher at
/// once, not when their lease runs out two minutes later. On SQLite the failure takes the
/// command's savepoint with it: nothing is written, and nothing handed over.
#[tokio::test]
async fn a_failed_answer_read_still_hands_over_what_the_command_wrote() {
    use bleepless::app::App;
    use bleepless::domain::task::Policy;
    use bleepless::error::AppError;
    use bleepless::store::outbox;
    use bleepless::store::schema::outbox as table;
    use diesel::prelude::*;
    let app = TestApp::spawn_draining(|_| {}).await;
    let amy = app.staff("Amy Patel", "clinician").await;
    let command = App::new(
        app.store.clone(),
        std::sync::Arc::new(app.clock.clone()),
        Policy::default(),
    );
    command
        .doorbell
        .served_by("instance-a", std::time::Duration::from_secs(120));
    let to = amy.id.clone();
    let out = command
        .run_whole_then_read(
            move |c, ctx| {
                let mut rows = Vec::new();
                outbox::notice(&to, "Rota", "You hold a new bleep", ctx.now, &mut rows);
                outbox::insert(c, &rows)?;
                Ok(rows.len())
            },
            |_, _| Err::<(), _>(AppError::Unavailable("the answer could not be read".into())),
        )
        .await;
    let Err(AppError::Unavailable(why)) = out else {
        panic!("the caller is told of the failure, got {out:?}")
    };
    assert!(why.contains("could not be read"), "{why}");
    let written: i64 = app
        .write(|c, _| Ok(table::table.count().get_result(c)?))
        .await;
    let handed = command.doorbell.take_leased(10);
    if app.store.is_sqlite() {
        assert_eq!(
            (written, handed.len()),
            (0, 0),
            "nothing written, nothing handed over"
        );
    } else {
        assert_eq!(written, 1, "the command stands");
        assert_eq!(
            handed.len(),
            1,
            "its delivery goes to the dispatcher at once"
        );
    }
}
