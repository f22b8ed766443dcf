//! The pages through HTTP: sign-in, sessions, CSRF, and the task form's errors.
use crate::helpers::*;
use bleepless::store::sessions;
use serde_json::json;

pub const PASSWORD: &str = "correct horse battery";

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_string())
}

pub fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .expect("hidden field")
        + name.len()
        + 15;
    html[at..].split('"').next().unwrap().to_string()
}

/// Signs in through the login form; returns the session cookie and the page CSRF token.
pub async fn sign_in(app: &TestApp, who: &Person) -> (String, String) {
    let id = who.id.clone();
    app.write(move |c, _| sessions::set_password(c, &id, PASSWORD))
        .await;
    let c = client();
    let form = c.get(format!("{}/login", app.base)).send().await.unwrap();
    let login_cookie = cookie(&form, "bleepless_login").unwrap();
    let csrf = hidden(&form.text().await.unwrap(), "csrf");
    let email = format!(
        "{}@example.nhs.uk",
        who.name.to_lowercase().replace([' ', '.'], "")
    );
    let res = c
        .post(format!("{}/login", app.base))
        .header("cookie", &login_cookie)
        .form(&[
            ("email", email.as_str()),
            ("password", PASSWORD),
            ("csrf", &csrf),
            ("next", "/me"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let session = cookie(&res, "bleepless_session").expect("session cookie");
    let set = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(" | ");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    let home = c
        .get(format!("{}/", app.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    let landing = home.headers()["location"].to_str().unwrap().to_string();
    let page = c
        .get(format!("{}{landing}", app.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    let page_csrf = hidden(&page.text().await.unwrap(), "csrf");
    (session, page_csrf)
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_send_strangers_to_sign_in() {
    let w = Ward::new().await;
    let res = client()
        .get(format!("{}/me", w.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login?next=/me");
    let res = client()
        .get(format!("{}/dashboard", w.app.base))
        .header("cookie", "bleepless_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_needs_the_password_and_the_forms_own_token() {
    let w = Ward::new().await;
    let app = &w.app;
    let id = w.amy.id.clone();
    app.write(move |c, _| sessions::set_password(c, &id, PASSWORD))
        .await;
    let c = client();
    let form = c.get(format!("{}/login", app.base)).send().await.unwrap();
    let login_cookie = cookie(&form, "bleepless_login").unwrap();
    let csrf = hidden(&form.text().await.unwrap(), "csrf");
    let post = |password: &'static str, csrf: String| {
        c.post(format!("{}/login", app.base))
            .header("cookie", &login_cookie)
            .form(&[
                ("email", "dramypatel@example.nhs.uk"),
                ("password", password),
                ("csrf", &csrf),
            ])
            .send()
    };
    let wrong = post("not the password", csrf.clone()).await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("do not match"));
    let forged = post(PASSWORD, "forged".into()).await.unwrap();
    assert_eq!(forged.status(), 403);
    assert!(cookie(&forged, "bleepless_session").is_none());
    let ok = post(PASSWORD, csrf).await.unwrap();
    assert_eq!(ok.status(), 303);
    assert!(cookie(&ok, "bleepless_session").is_some());
    // Passwords are checked for length when set.
    let id = w.ben.id.clone();
    let short = tokio::task::spawn_blocking({
        let store = app.store.clone();
        move || store.write_now(|c| sessions::set_password(c, &id, "short"))
    })
    .await
    .unwrap();
    assert!(short.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_changes_nothing_without_its_csrf_token() {
    let w = Ward::new().await;
    let app = &w.app;
    let (session, csrf) = sign_in(app, &w.nurse).await;
    let body = json!({ "nhs_number": NHS_1, "ward": WARD, "bed": "1", "category": "bloods",
                       "description": "FBC", "priority": "routine", "assignee": w.fy1 });
    let url = format!("{}/api/v1/tasks", app.base);
    let without = client()
        .post(&url)
        .header("cookie", &session)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (s, err) = read(without).await;
    assert_eq!(s, 403, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("X-CSRF-Token"));
    assert_eq!(app.task_count().await, 0);
    let with = client()
        .post(&url)
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 201);
    // Reading needs no token.
    let list = client()
        .get(&url)
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    // A form with a forged token is refused too.
    let form = client()
        .post(format!("{}/tasks/new", app.base))
        .header("cookie", &session)
        .form(&[
            ("csrf", "forged"),
            ("nhs_number", NHS_1),
            ("ward", WARD),
            ("bed", "2"),
            ("category", "bloods"),
            ("description", "U&E"),
            ("priority", "routine"),
            ("assignee", &w.fy1),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 403);
    assert_eq!(app.task_count().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_task_form_names_each_problem_and_keeps_what_was_typed() {
    let w = Ward::new().await;
    let app = &w.app;
    let (session, csrf) = sign_in(app, &w.nurse).await;
    let res = client()
        .post(format!("{}/tasks/new", app.base))
        .header("cookie", &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("nhs_number", "999 000 0019"),
            ("ward", WARD),
            ("bed", ""),
            ("category", "fluids"),
            ("description", "Maintenance fluids <overnight>"),
            ("priority", "urgent"),
            ("news2", "25"),
            ("assignee", &w.fy1),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("check digit"), "NHS number error shown");
    assert!(html.contains("Enter the bed"), "bed error shown");
    assert!(html.contains("0 to 20"), "NEWS2 error shown");
    assert!(
        html.contains("value=\"999 000 0019\""),
        "typed NHS number kept"
    );
    assert!(
        html.contains("Maintenance fluids &#60;overnight&#62;")
            || html.contains("Maintenance fluids &lt;overnight&gt;"),
        "description kept, escaped"
    );
    assert!(
        html.contains("value=\"urgent\" aria-describedby=\"priority-urgent-hint\" checked"),
        "priority kept: its radio checked"
    );
    // The NHS error summary: a link to each field with a problem.
    assert!(html.contains("There is a problem"), "error summary");
    for field in ["nhs_number", "bed", "news2"] {
        assert!(
            html.contains(&format!("<a href=\"#{field}\">")),
            "{field} linked"
        );
    }
    assert_eq!(app.task_count().await, 0);

    let ok = client()
        .post(format!("{}/tasks/new", app.base))
        .header("cookie", &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("nhs_number", "999 000 0018"),
            ("ward", WARD),
            ("bed", "9"),
            ("category", "fluids"),
            ("description", "Maintenance fluids"),
            ("priority", "urgent"),
            ("news2", ""),
            ("assignee", &w.fy1),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    assert!(ok.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/tasks/raised?raised="));
    assert_eq!(app.task_count().await, 1);
}

/// Opens the change stream of the pages (`/events`) as this person.
pub(crate) async fn listen(app: &TestApp, who: &Person) -> reqwest::Response {
    let res = app
        .client
        .get(format!("{}/events", app.base))
        .bearer_auth(&who.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    res
}

/// The name of the next event on a change stream within `wait`, skipping keep-alives;
/// `None` if none comes.
pub(crate) async fn next_event(
    stream: &mut reqwest::Response,
    wait: std::time::Duration,
) -> Option<String> {
    let until = tokio::time::Instant::now() + wait;
    loop {
        let chunk = tokio::time::timeout_at(until, stream.chunk()).await.ok()?;
        let chunk = chunk.expect("the stream stays readable")?;
        let text = String::from_utf8_lossy(&chunk).to_string();
        let event = text
            .lines()
            .find(|l| l.starts_with("event: ") && *l != "event: alive");
        if let Some(line) = event {
            return Some(line["event: ".len()..].to_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_open_page_hears_of_a_change_and_of_nothing_else() {
    let w = Ward::new().await;
    let app = &w.app;
    let short = std::time::Duration::from_millis(1500);
    let long = std::time::Duration::from_secs(10);
    // A stranger, or a forged token, gets a 401 that says so, not a stream.
    for token in [None, Some("forged")] {
        let mut req = app.client.get(format!("{}/events", app.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let (status, body) = read(req.send().await.unwrap()).await;
        assert_eq!(status, 401, "{body}");
        let says = body["error"]["message"].as_str().unwrap_or_default();
        assert!(says.contains("sign in") || says.contains("token"), "{body}");
    }
    let mut board = listen(app, &w.manager).await;
    let mut list = listen(app, &w.nurse).await;
    // Where each page starts is not a change.
    assert_eq!(next_event(&mut board, short).await, None);
    assert_eq!(next_event(&mut list, short).await, None);

    app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    assert_eq!(
        next_event(&mut board, long).await.as_deref(),
        Some("change")
    );
    assert_eq!(next_event(&mut list, long).await.as_deref(), Some("change"));
    // Said once, not again on every poll.
    assert_eq!(next_event(&mut board, short).await, None);

    // With every page closed the poller stops; a page opened later is still told.
    drop((board, list));
    tokio::time::sleep(short).await;
    let mut later = listen(app, &w.amy).await;
    assert_eq!(next_event(&mut later, short).await, None);
    app.advance(60);
    app.raised(&w.nurse.token, &w.fy1, json!({})).await;
    assert_eq!(
        next_event(&mut later, long).await.as_deref(),
        Some("change")
    );
}
