//! Tests written for gaps found while building the hazard log (docs/safety): mitigations that
//! were in the code but that no test showed working.
use crate::helpers::*;
use bleepless::store::DbConnection;
use diesel::prelude::*;
use serde_json::json;

async fn holders(app: &TestApp, role: &str, token: &str) -> Vec<String> {
    let (s, roles) = app.get("/api/v1/roles", token).await;
    assert_eq!(s, 200, "{roles}");
    roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == role)
        .unwrap()["held_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect()
}

/// H-12: only an admin or a current holder may hand a bleep over, and a member of staff who
/// is no longer active cannot be given one. A refused hand-over changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_bleep_is_handed_over_only_by_its_holder_or_an_admin_and_never_to_a_leaver() {
    let w = Ward::new().await;
    let app = &w.app;
    let admin = app.staff("Sam Admin", "admin").await;
    let path = format!("/api/v1/roles/{}/hand-over", w.fy1);
    // Ben does not hold the bleep: he may not take it, nor may the coordinator give it.
    for who in [&w.ben, &w.nurse, &w.manager] {
        let (s, body) = app.post(&path, &who.token, json!({ "to": w.ben.id })).await;
        assert_eq!(s, 403, "{}: {body}", who.name);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("only an admin or the current holder"),
            "{body}"
        );
    }
    assert_eq!(holders(app, &w.fy1, &w.nurse.token).await, ["Dr Amy Patel"]);

    // A leaver cannot be given the bleep, by an admin or by its holder.
    let leaver = app.staff("Dr Lee Left", "clinician").await;
    let id = leaver.id.clone();
    app.write(move |c, _| {
        use bleepless::store::schema::staff;
        Ok(diesel::update(staff::table.filter(staff::id.eq(&id)))
            .set(staff::active.eq(false))
            .execute(c)?)
    })
    .await;
    for who in [&admin, &w.amy] {
        let (s, body) = app
            .post(&path, &who.token, json!({ "to": leaver.id }))
            .await;
        assert_eq!(s, 422, "{}: {body}", who.name);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no longer active"),
            "{body}"
        );
    }
    assert_eq!(holders(app, &w.fy1, &w.nurse.token).await, ["Dr Amy Patel"]);

    // The holder and an admin may.
    let (s, body) = app
        .post(&path, &w.amy.token, json!({ "to": w.ben.id }))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        holders(app, &w.fy1, &w.nurse.token).await,
        ["Dr Ben Hughes"]
    );
    let (s, body) = app
        .post(&path, &admin.token, json!({ "to": w.amy.id }))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(holders(app, &w.fy1, &w.nurse.token).await, ["Dr Amy Patel"]);
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

/// H-04: a 2xx means the change is on disk: SQLite runs in WAL mode with synchronous=FULL on
/// the store's connections, PostgreSQL with synchronous_commit on.
#[tokio::test(flavor = "multi_thread")]
async fn the_store_commits_to_disk_before_answering() {
    let w = Ward::new().await;
    let settings = w
        .app
        .write(|c, _| {
            let read = |c: &mut DbConnection, sql: &str| -> QueryResult<String> {
                match c {
                    DbConnection::Sqlite(c) => diesel::sql_query(sql).get_result::<Setting>(c),
                    DbConnection::Pg(c) => diesel::sql_query(sql).get_result::<Setting>(c),
                }
                .map(|s| s.value)
            };
            Ok(match c {
                DbConnection::Sqlite(_) => vec![
                    read(
                        c,
                        "SELECT CAST(synchronous AS TEXT) AS value FROM pragma_synchronous",
                    )?,
                    read(c, "SELECT journal_mode AS value FROM pragma_journal_mode")?,
                ],
                DbConnection::Pg(_) => vec![read(
                    c,
                    "SELECT setting AS value FROM pg_settings WHERE name = 'synchronous_commit'",
                )?],
            })
        })
        .await;
    match w.app.db_url {
        bleepless::config::DatabaseUrl::Sqlite(_) => {
            assert_eq!(
                settings,
                ["2", "wal"],
                "synchronous=FULL (2), journal_mode=WAL"
            )
        }
        bleepless::config::DatabaseUrl::Postgres(_) => assert_eq!(settings, ["on"]),
    }
}

/// H-10, a known gap: when the server's clock is stepped backwards (an NTP correction, a
/// resumed virtual machine), escalation must go on at the tick's period. Today the scheduler
/// keeps the next run it worked out before the step and waits for the clock to catch up, so
/// a stat task raised after the step does not escalate. Run it with `--ignored`; remove the
/// `ignore` when the scheduler is fixed, and name this test in docs/safety/hazards.toml.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "known gap H-10: escalation waits for the clock to catch up after a backward step"]
async fn escalation_goes_on_after_the_clock_steps_backwards() {
    use bleepless::clock::Clock;
    let w = Ward::new().await;
    let app = &w.app;
    app.advance(10);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.clock.set(app.clock.now() - chrono::Duration::hours(1));
    let id = app
        .raised(&w.nurse.token, &w.fy1, json!({ "priority": "stat" }))
        .await;
    app.advance(125); // past the stat target, on the clock as it now reads
    app.eventually("the stat task escalates", || async {
        app.get(&format!("/api/v1/tasks/{id}"), &w.nurse.token)
            .await
            .1["escalation_level"]
            != 0
    })
    .await;
}
