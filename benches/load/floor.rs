//! The HTTP floor of the load bench (`--floor`): the least any HTTP service on this machine
//! must do for the workload, served in place of Bleepless so the ratio to the raw limit that
//! an HTTP service can reach here is measured, not argued.
//!
//! A floor instance is this bench binary run as `--floor-server --database URL --bind ADDR`
//! (started, proxied, killed and measured exactly as the service's instances are). It is an
//! actix-web server with the service's two workers and pool of eight that, per request:
//!
//! - **raise** (`POST /api/v1/tasks`): parses the JSON body and writes the task, its
//!   `raised` event and its push with the service's own one statement
//!   (`store::raised::write` through `Store::write_one`: on PostgreSQL no `BEGIN` or
//!   `COMMIT`, on SQLite a savepoint of the writer's group commit), then answers 201 with
//!   the task's id;
//! - **acknowledge, start, complete** (`POST /api/v1/tasks/{id}/{action}`): takes the task
//!   from this process's memory (the caller's connection always reaches the same instance),
//!   decides the change with the domain's rule and writes it with the service's one
//!   statement (`store::tasks::save_change`: the conditional update, its event and the end
//!   of the chasing), then answers 200 with the id and the new status;
//! - **list and dashboard** (`GET`): answers an empty JSON list or object, reading nothing.
//!
//! It reads nothing at all from the database: no token (every request is taken as the
//! nurse's or the doctor's), no task, no timeline, no list or dashboard, and it sends
//! nothing (its pushes stay queued). Each request is one HTTP exchange and at most one
//! statement: on PostgreSQL one round trip, fewer than the raw loop's own (`raw.rs`, a
//! transaction a step with `BEGIN` and `COMMIT`); on SQLite the service's group commit.
//! Whatever Bleepless does, it does at least this.
use bleepless::domain::task::Policy;
use bleepless::domain::transition::Change;
use bleepless::domain::{Assignee, OutcomeCode, Task};
use bleepless::error::{AppError, AppResult};
use bleepless::store::outbox;
use bleepless::store::{new_id, raised, tasks, DbConnection, Store};
use chrono::Utc;
use std::collections::HashMap;
use std::sync::Mutex;

/// What every request shares: the database, the people the rows name, the tasks in flight.
struct Floor {
    store: Store,
    policy: Policy,
    people: crate::raw::People,
    tasks: Mutex<HashMap<String, Task>>,
}

fn bad(e: impl std::fmt::Display) -> actix_web::Error {
    actix_web::error::ErrorInternalServerError(e.to_string())
}

/// Writes a raised task (bed from the body) with its event and push, in one statement.
fn raise(c: &mut DbConnection, f: &Floor, bed: String) -> AppResult<Task> {
    let now = Utc::now();
    let new = crate::raw::new_task(&f.people.role, bed)?;
    let role = Assignee::Role(f.people.role.clone());
    let task = Task::raised(new_id(), new, role, &f.people.nurse, now, &f.policy);
    let mut rows = Vec::new();
    outbox::notifications(&task, &f.people.holder, &f.policy, now, &mut rows);
    raised::write(c, &task, &rows)?;
    Ok(task)
}

/// Decides and writes one status change of a task in flight, in one statement.
fn change(c: &mut DbConnection, f: &Floor, task: &Task, to: Change) -> AppResult<Task> {
    let now = Utc::now();
    let (next, event) = crate::raw::decided(&f.people.doctor, task, &to, now, &f.policy)?;
    match tasks::save_change(c, &next, task, now, event, None)? {
        Some(_) => Ok(next),
        None => Err(AppError::Internal(
            "the task changed under the floor".into(),
        )),
    }
}

async fn raise_task(
    f: actix_web::web::Data<Floor>,
    body: actix_web::web::Json<serde_json::Value>,
) -> actix_web::Result<actix_web::HttpResponse> {
    let bed = body["bed"].as_str().unwrap_or("1").to_string();
    let f2 = f.clone();
    let task = f
        .store
        .write_one(move |c| raise(c, &f2, bed))
        .await
        .map_err(bad)?;
    let id = task.id.clone();
    f.tasks.lock().unwrap().insert(id.clone(), task);
    Ok(actix_web::HttpResponse::Created().json(serde_json::json!({ "id": id })))
}

async fn act(
    f: actix_web::web::Data<Floor>,
    path: actix_web::web::Path<(String, String)>,
    body: actix_web::web::Bytes,
) -> actix_web::Result<actix_web::HttpResponse> {
    let (id, action) = path.into_inner();
    let to = match action.as_str() {
        "acknowledge" => Change::Acknowledge,
        "start" => Change::Start,
        "complete" => {
            let b: serde_json::Value = serde_json::from_slice(&body).map_err(bad)?;
            Change::Complete {
                code: OutcomeCode::parse(b["outcome"]["code"].as_str().unwrap_or("done"))
                    .map_err(bad)?,
                text: b["outcome"]["text"].as_str().unwrap_or("").to_string(),
            }
        }
        other => return Err(actix_web::error::ErrorNotFound(other.to_string())),
    };
    let Some(task) = f.tasks.lock().unwrap().get(&id).cloned() else {
        return Err(actix_web::error::ErrorNotFound(id));
    };
    let f2 = f.clone();
    let next = f
        .store
        .write_one(move |c| change(c, &f2, &task, to))
        .await
        .map_err(bad)?;
    let mut held = f.tasks.lock().unwrap();
    if action == "complete" {
        held.remove(&id);
    } else {
        held.insert(id.clone(), next.clone());
    }
    drop(held);
    Ok(actix_web::HttpResponse::Ok().json(serde_json::json!({ "id": id, "status": next.status })))
}

/// Serves the floor until killed: `--floor-server --database URL --bind ADDR`.
pub fn serve(argv: &[String]) {
    let value = |flag: &str| {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1))
            .unwrap_or_else(|| crate::common::stop(&format!("--floor-server needs {flag}")))
            .clone()
    };
    let (database, bind) = (value("--database"), value("--bind"));
    let url = bleepless::config::DatabaseUrl::parse(&database).unwrap_or_else(|e| {
        crate::common::stop(&format!("--database: {e}"));
    });
    let store = Store::open(&url, 8).expect("open the floor's database");
    let people = crate::raw::people(&store);
    let floor = actix_web::web::Data::new(Floor {
        store,
        policy: Policy::default(),
        people,
        tasks: Mutex::new(HashMap::new()),
    });
    actix_web::rt::System::new().block_on(async move {
        use actix_web::{web, App, HttpResponse, HttpServer};
        HttpServer::new(move || {
            App::new()
                .app_data(floor.clone())
                .route("/api/v1/tasks", web::post().to(raise_task))
                .route("/api/v1/tasks/{id}/{action}", web::post().to(act))
                .route(
                    "/api/v1/tasks",
                    web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!([])) }),
                )
                .route(
                    "/api/v1/dashboard",
                    web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!({})) }),
                )
        })
        .workers(2)
        .bind(&bind)
        .expect("bind the floor's address")
        .run()
        .await
        .expect("the floor's server")
    });
}
