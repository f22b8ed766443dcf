//! Test harness: the real service on a random port, over a fresh database per test — a
//! SQLite file by default, a new PostgreSQL database when TEST_DATABASE_URL is set.
use bleepless::clock::{Clock, ManualClock};
use bleepless::config::{Config, DatabaseUrl};
use bleepless::store::{directory, Store};
use bleepless::Application;
use chrono::{Duration, TimeZone, Utc};
use diesel::{Connection, PgConnection, RunQueryDsl};
use serde_json::{json, Value};
use std::sync::Arc;

/// Valid check-digit NHS numbers from the 999 test range.
pub const NHS_1: &str = "9990000018";
pub const WARD: &str = "Ward 5";

pub enum TestDb {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub fn create() -> (TestDb, DatabaseUrl) {
        match std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            Some(admin_url) => {
                let name = format!("bleepless_t_{}", uuid::Uuid::new_v4().simple());
                let mut c = PgConnection::establish(&admin_url)
                    .unwrap_or_else(|e| panic!("TEST_DATABASE_URL: cannot connect: {e}"));
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut c)
                    .expect("create test database");
                let base = admin_url.rsplit_once('/').expect("url has a database").0;
                let url = format!("{base}/{name}");
                (
                    TestDb::Postgres { admin_url, name },
                    DatabaseUrl::Postgres(url),
                )
            }
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("bleepless.db");
                (TestDb::Sqlite { _dir: dir }, DatabaseUrl::Sqlite(path))
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name } = self {
            if let Ok(mut c) = PgConnection::establish(admin_url) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c);
            }
        }
    }
}

pub struct Person {
    pub id: String,
    pub name: String,
    pub token: String,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub store: Store,
    pub db_url: DatabaseUrl,
    pub config: Config,
    handle: actix_web::dev::ServerHandle,
    others: Vec<actix_web::dev::ServerHandle>,
    /// The instance's tick and outbox worker, when the test runs them itself.
    due: Option<bleepless::DueWork>,
    _db: TestDb,
}

/// Starts one more instance of the service on the given database and clock.
async fn start(config: Config, clock: ManualClock) -> Application {
    tokio::task::spawn_blocking(move || {
        let shared: Arc<dyn Clock> = Arc::new(clock);
        Application::build(config, shared)
    })
    .await
    .unwrap()
    .expect("app builds")
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Starts the service with a test configuration that `adjust` may change.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let (db, url) = TestDb::create();
        Self::spawn_on(db, url, false, adjust).await
    }

    /// Starts the service without its background loops: the test moves the clock and calls
    /// [`TestApp::drain`] to run the tick and the outbox to completion.
    pub async fn spawn_draining(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let (db, url) = TestDb::create();
        Self::spawn_on(db, url, true, adjust).await
    }

    /// Starts the service on a database made by the caller.
    pub async fn spawn_on(
        db: TestDb,
        url: DatabaseUrl,
        draining: bool,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap());
        let mut config = Config::for_tests(url.clone());
        // The tests' push service listens on loopback: allowed by this explicit setting only.
        config.push.allow_endpoints = vec!["http://127.0.0.1".into()];
        adjust(&mut config);
        let app = start(config.clone(), clock.clone()).await;
        let base = format!("http://{}", app.addr);
        let store = app.state.store.clone();
        let handle = app.handle();
        let due = if draining {
            let (server, due) = app.serve_only();
            tokio::spawn(server);
            Some(due)
        } else {
            tokio::spawn(app.run());
            None
        };
        let t = TestApp {
            base,
            client: reqwest::Client::new(),
            clock,
            store,
            db_url: url,
            config,
            handle,
            others: Vec::new(),
            due,
            _db: db,
        };
        t.write(|c, now| directory::add_ward(c, WARD, now).map(|_| ()))
            .await;
        t.write(|c, now| directory::add_ward(c, "Ward 6", now).map(|_| ()))
            .await;
        t
    }

    /// Another instance sharing this one's database and clock (as behind a load balancer).
    pub async fn another_instance(&mut self) -> String {
        let app = start(self.config.clone(), self.clock.clone()).await;
        let base = format!("http://{}", app.addr);
        self.others.push(app.handle());
        tokio::spawn(app.run());
        base
    }

    /// Another instance that serves requests only, its tick and dispatcher not running: what
    /// it queues is left for the other instances' dispatchers to find.
    pub async fn another_instance_serving_only(&mut self) -> String {
        let app = start(self.config.clone(), self.clock.clone()).await;
        let base = format!("http://{}", app.addr);
        self.others.push(app.handle());
        let (server, _due) = app.serve_only();
        tokio::spawn(server);
        base
    }

    /// Stops this instance (server, scheduler and dispatcher) and starts a fresh one on the
    /// same database: a restart.
    pub async fn restart_after(&mut self, down_for_secs: i64) {
        self.handle.stop(true).await;
        self.advance(down_for_secs);
        let app = start(self.config.clone(), self.clock.clone()).await;
        self.base = format!("http://{}", app.addr);
        self.handle = app.handle();
        tokio::spawn(app.run());
    }

    /// Runs the due work (the tick, then every delivery due) to completion, for an app
    /// started with [`TestApp::spawn_draining`]. Returns (tasks escalated, deliveries tried).
    pub async fn drain(&self) -> (usize, usize) {
        let due = self
            .due
            .as_ref()
            .expect("drain needs TestApp::spawn_draining");
        due.drain().await.expect("the due work runs")
    }

    /// Waits (in real time, briefly) until `check` holds: the background loops act on
    /// their own after the clock moves.
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..200 {
            if check().await {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("timed out waiting until {what}");
    }

    /// Runs a store call directly, as the operator's CLI would.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(
                &mut bleepless::store::DbConnection,
                chrono::DateTime<Utc>,
            ) -> Result<T, bleepless::error::AppError>
            + Send
            + 'static,
    ) -> T {
        let store = self.store.clone();
        let now = self.clock.now();
        tokio::task::spawn_blocking(move || store.write_now(|c| f(c, now)))
            .await
            .unwrap()
            .expect("store call")
    }

    pub async fn staff(&self, name: &str, roles: &str) -> Person {
        let (name, roles) = (name.to_string(), roles.to_string());
        let email = format!(
            "{}@example.nhs.uk",
            name.to_lowercase().replace([' ', '.'], "")
        );
        let (s, token) = self
            .write(move |c, now| directory::add_staff(c, &name, Some(&email), &roles, now))
            .await;
        Person {
            id: s.id,
            name: s.name,
            token,
        }
    }

    /// An on-call role held by the given people.
    /// Sets, as `admin` through the API, that role `from` escalates to role `to`.
    pub async fn escalates_to(&self, from: &str, to: &str, admin: &Person) {
        let (s, b) = self
            .post(
                &format!("/api/v1/roles/{from}/escalate"),
                &admin.token,
                json!({ "to": to }),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }

    pub async fn role(&self, name: &str, holders: &[&Person]) -> String {
        let name = name.to_string();
        let ids: Vec<String> = holders.iter().map(|p| p.id.clone()).collect();
        self.write(move |c, now| {
            let r = directory::add_role(c, &name, now)?;
            for id in ids {
                let s = directory::staff_by_id(c, &id)?.expect("staff");
                directory::hand_over(c, &r, &s, true, None, now)?;
            }
            Ok(r.id)
        })
        .await
    }

    pub fn advance(&self, secs: i64) {
        self.clock.advance(Duration::seconds(secs));
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        read(res).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        read(res).await
    }

    /// Raises a task for the assignee, with any fields of `over` replacing the defaults.
    pub async fn raise(&self, token: &str, assignee: &str, over: Value) -> (u16, Value) {
        let mut body = json!({
            "nhs_number": NHS_1,
            "ward": WARD,
            "bed": "12",
            "category": "cannula",
            "description": "Cannula tissued; IV antibiotics due at 22:00",
            "priority": "urgent",
            "assignee": assignee,
        });
        if let (Some(b), Some(o)) = (body.as_object_mut(), over.as_object()) {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        self.post("/api/v1/tasks", token, body).await
    }

    /// Raises a task that must succeed, and returns its id.
    pub async fn raised(&self, token: &str, assignee: &str, over: Value) -> String {
        let (status, body) = self.raise(token, assignee, over).await;
        assert_eq!(status, 201, "raise failed: {body}");
        body["id"].as_str().expect("id").to_string()
    }

    pub async fn act(&self, id: &str, action: &str, token: &str, body: Value) -> (u16, Value) {
        self.post(&format!("/api/v1/tasks/{id}/{action}"), token, body)
            .await
    }

    /// How many tasks exist, read straight from the database.
    pub async fn task_count(&self) -> i64 {
        use bleepless::store::schema::tasks;
        use diesel::QueryDsl;
        self.write(|c, _| Ok(tasks::table.count().get_result::<i64>(c)?))
            .await
    }

    pub async fn event_count(&self) -> i64 {
        use bleepless::store::schema::task_events;
        use diesel::QueryDsl;
        self.write(|c, _| Ok(task_events::table.count().get_result::<i64>(c)?))
            .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        for h in &self.others {
            drop(h.stop(false));
        }
    }
}

pub async fn read(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| {
        panic!("status {status} content-type {ct:?}: body is not JSON: {text}")
    });
    (status, body)
}

/// A standard cast: a coordinator, two FY1s sharing the night bleep, a bed manager.
pub struct Ward {
    pub app: TestApp,
    pub nurse: Person,
    pub amy: Person,
    pub ben: Person,
    pub manager: Person,
    pub fy1: String,
}

impl Ward {
    pub async fn new() -> Ward {
        Self::with(TestApp::spawn().await).await
    }

    /// A ward on an instance whose tick and outbox run only when the test drains them.
    pub async fn draining() -> Ward {
        Self::with(TestApp::spawn_draining(|_| {}).await).await
    }

    pub async fn with(app: TestApp) -> Ward {
        let nurse = app.staff("Sister Grace Okafor", "coordinator").await;
        let amy = app.staff("Dr Amy Patel", "clinician").await;
        let ben = app.staff("Dr Ben Hughes", "clinician").await;
        let manager = app.staff("Maria Santos", "bed_manager").await;
        let fy1 = app.role("Medicine FY1 night", &[&amy]).await;
        Ward {
            app,
            nurse,
            amy,
            ben,
            manager,
            fy1,
        }
    }
}

/// The kinds of a task's timeline events, in order, from its JSON view.
pub fn kinds(task: &serde_json::Value) -> Vec<String> {
    task["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}
