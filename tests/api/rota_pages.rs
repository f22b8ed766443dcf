//! The rota on the pages: "Your bleeps" on My bleeps follows a hand-over (and says so on
//! the open page's change stream), confirm, busy and take; the admin's rota page checks an
//! import before it changes anything; the dashboard names uncovered and busy bleeps; the
//! command line plans a rota.
use crate::helpers::*;
use crate::pages::{client, listen, next_event, sign_in};
use crate::rota::spring_rota;
use chrono::{DateTime, Utc};
use serde_json::json;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// GETs a page with a session cookie; its body.
async fn page(app: &TestApp, session: &str, path: &str) -> String {
    let res = client()
        .get(format!("{}{path}", app.base))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.text().await.unwrap()
}

/// POSTs a page's form; the redirect's status and the body.
async fn submit(app: &TestApp, session: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let res = client()
        .post(format!("{}{path}", app.base))
        .header("cookie", session)
        .form(form)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn my_bleeps_follows_the_hand_over_and_offers_confirm_busy_and_take() {
    let (w, _admin) = spring_rota().await;
    let app = &w.app;
    app.clock.set(at("2027-03-26T20:00:00Z"));
    app.drain().await;
    let waiting = app
        .raised(&w.nurse.token, &w.fy1, json!({ "bed": "4" }))
        .await;
    let mut amys_page = listen(app, &w.amy).await;
    let short = std::time::Duration::from_millis(1500);
    assert_eq!(next_event(&mut amys_page, short).await, None);

    app.clock.set(at("2027-03-27T08:00:00Z"));
    app.drain().await;
    assert_eq!(
        next_event(&mut amys_page, std::time::Duration::from_secs(10))
            .await
            .as_deref(),
        Some("change"),
        "the outgoing holder's open page hears of the hand-over"
    );
    let (ben, ben_csrf) = sign_in(app, &w.ben).await;
    let (amy, amy_csrf) = sign_in(app, &w.amy).await;
    let mine = page(app, &ben, "/me/fragment").await;
    assert!(mine.contains("You hold: Medicine FY1 night."), "{mine}");
    assert!(
        mine.contains("You now hold Medicine FY1 night until 20:00"),
        "{mine}"
    );
    assert!(
        mine.contains(&format!("href=\"#task-{waiting}\"")),
        "{mine}"
    );
    let theirs = page(app, &amy, "/me/fragment").await;
    assert!(theirs.contains("You hold no bleep right now."), "{theirs}");
    assert!(
        !theirs.contains("/me/tasks/"),
        "no action is offered on Ben's task: {theirs}"
    );
    assert!(
        theirs.contains("Take Medicine FY1 night"),
        "Amy is listed for it: {theirs}"
    );

    let (s, _) = submit(
        app,
        &ben,
        "/me/hand-over/confirm",
        &[("csrf", &ben_csrf), ("role", &w.fy1)],
    )
    .await;
    assert_eq!(s, 303);
    let mine = page(app, &ben, "/me/fragment").await;
    assert!(!mine.contains("You now hold"), "{mine}");

    let (s, _) = submit(
        app,
        &ben,
        "/me/busy",
        &[
            ("csrf", &ben_csrf),
            ("minutes", "30"),
            ("reason", "in resus"),
        ],
    )
    .await;
    assert_eq!(s, 303);
    let mine = page(app, &ben, "/me/fragment").await;
    assert!(mine.contains("You are busy until 08:30"), "{mine}");
    let (nurse, _) = sign_in(app, &w.nurse).await;
    let board = page(app, &nurse, "/dashboard/fragment").await;
    assert!(
        board.contains("<strong>Dr Ben Hughes</strong> until 08:30: in resus"),
        "{board}"
    );
    let (s, body) = submit(
        app,
        &ben,
        "/me/busy",
        &[("csrf", &ben_csrf), ("minutes", "soon")],
    )
    .await;
    assert_eq!(s, 422, "{body}");

    let (s, _) = submit(
        app,
        &amy,
        &format!("/me/take/{}", w.fy1),
        &[("csrf", &amy_csrf)],
    )
    .await;
    assert_eq!(s, 303);
    let theirs = page(app, &amy, "/me/fragment").await;
    assert!(theirs.contains("You hold: Medicine FY1 night."), "{theirs}");
    let mine = page(app, &ben, "/me/fragment").await;
    assert!(mine.contains("You hold no bleep right now."), "{mine}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rota_page_checks_an_import_before_it_changes_anything() {
    let (w, admin) = spring_rota().await;
    let app = &w.app;
    app.clock.set(at("2027-03-28T07:00:00Z"));
    let (session, csrf) = sign_in(app, &admin).await;
    let rota = page(app, &session, "/admin/rota").await;
    assert!(
        rota.contains("Medicine FY1 night uncovered Sun 28 Mar 20:00–Mon 29 Mar 08:00"),
        "{rota}"
    );
    let admin_page = page(app, &session, "/admin").await;
    assert!(
        admin_page.contains("Medicine FY1 night uncovered Sun 28 Mar 20:00"),
        "{admin_page}"
    );
    let board = page(app, &session, "/dashboard/fragment").await;
    assert!(
        board.contains("Medicine FY1 night uncovered Sun 28 Mar 20:00"),
        "{board}"
    );
    let bad = "Night FY1,dramypatel@example.nhs.uk,2027-03-28 20:00,2027-03-29 08:00";
    let (s, body) = submit(
        app,
        &session,
        "/admin/rota/import",
        &[("csrf", &csrf), ("csv", bad), ("mode", "import")],
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        body.contains("Nothing was imported: 1 problem to put right first."),
        "{body}"
    );
    assert!(
        body.contains("Line 1, role: &#34;Night FY1&#34; is not an on-call role"),
        "{body}"
    );
    assert!(
        body.contains("Night FY1,dramypatel"),
        "the lines are kept to put right: {body}"
    );
    let good = "Medicine FY1 night,dramypatel@example.nhs.uk,2027-03-28 20:00,2027-03-29 08:00";
    let (_, body) = submit(
        app,
        &session,
        "/admin/rota/import",
        &[("csrf", &csrf), ("csv", good), ("mode", "check")],
    )
    .await;
    assert!(
        body.contains("All 1 lines are right: nothing was changed yet."),
        "{body}"
    );
    assert!(page(app, &session, "/admin/rota")
        .await
        .contains("uncovered Sun 28 Mar"));
    let (_, body) = submit(
        app,
        &session,
        "/admin/rota/import",
        &[("csrf", &csrf), ("csv", good), ("mode", "import")],
    )
    .await;
    assert!(body.contains("Imported 1 shifts."), "{body}");
    assert!(
        body.contains("Every bleep is covered for the next 24 hours."),
        "{body}"
    );
    let (s, _) = submit(
        app,
        &session,
        "/admin/rota/import",
        &[("csrf", "forged"), ("csv", good)],
    )
    .await;
    assert_eq!(s, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_line_lists_who_may_hold_adds_a_pattern_imports_and_reports_gaps() {
    use crate::cli::{bleepless, db_arg};
    let w = Ward::new().await;
    let db = db_arg(&w.app.db_url);
    // The command line runs on the wall clock: tomorrow's nights.
    let tomorrow = (Utc::now() + chrono::Duration::days(1)).date_naive();
    let (from, to) = (
        tomorrow.to_string(),
        (tomorrow + chrono::Duration::days(1)).to_string(),
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "role,staff email,start,end\nMedicine FY1 night,nobody@example.nhs.uk,2030-01-01 20:00,2030-01-02 08:00\n").unwrap();
    let bad = bad.display().to_string();
    let runs = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            let mut all = vec!["--database", db.as_str()];
            all.extend_from_slice(args);
            bleepless(&all)
        };
        vec![
            run(&[
                "role",
                "allow",
                "Medicine FY1 night",
                "--staff",
                "drbenhughes@example.nhs.uk",
            ]),
            run(&[
                "role",
                "allow",
                "Medicine FY1 night",
                "--staff",
                "grace@nowhere.example",
            ]),
            run(&[
                "rota",
                "pattern",
                "Medicine FY1 night",
                "--staff",
                "drbenhughes@example.nhs.uk",
                "--starts",
                "20:00",
                "--ends",
                "08:00",
                "--from",
                &from,
                "--to",
                &to,
            ]),
            run(&["rota", "import", &bad, "--dry-run"]),
            run(&[
                "rota",
                "shift",
                "Medicine FY1 night",
                "--staff",
                "drbenhughes@example.nhs.uk",
                "--start",
                "2027-03-28 01:30",
                "--end",
                "2027-03-28 08:00",
            ]),
            run(&["rota", "gaps", "--hours", "72"]),
        ]
    })
    .await
    .unwrap();
    let [allow, unknown, pattern, import, gone, gaps] = &runs[..] else {
        unreachable!()
    };
    assert!(
        allow.0
            && allow
                .1
                .contains("Dr Ben Hughes may hold Medicine FY1 night"),
        "{allow:?}"
    );
    assert!(
        !unknown.0 && unknown.2.contains("grace@nowhere.example"),
        "{unknown:?}"
    );
    assert!(
        pattern.0 && pattern.1.contains("daily 20:00–08:00"),
        "{pattern:?}"
    );
    assert!(!import.0, "{import:?}");
    assert!(
        import
            .1
            .contains("line 2, staff: \"nobody@example.nhs.uk\" is nobody on the staff list"),
        "{import:?}"
    );
    assert!(
        import.2.contains("nothing imported: 1 problems"),
        "{import:?}"
    );
    assert!(
        !gone.0 && gone.2.contains("--start: 2027-03-28 01:30 does not exist"),
        "{gone:?}"
    );
    assert!(
        gaps.0 && gaps.1.contains("Medicine FY1 night uncovered"),
        "{gaps:?}"
    );
    let path = format!("/api/v1/rota?from={tomorrow}%2000:00&days=3");
    let (_, rota) = w.app.get(&path, &w.nurse.token).await;
    assert_eq!(rota["shifts"].as_array().unwrap().len(), 2, "{rota}");
}
