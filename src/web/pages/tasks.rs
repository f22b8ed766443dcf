//! The coordinator's task form and raised list, and the clinician's "my bleeps" page.
use super::card::{self, Card};
use super::{ok, see_other, PageError, PageResult, PageUser};
use crate::app::recipients::escalation_roles;
use crate::app::tasks::{self as commands, Command};
use crate::domain::task::{required_text, MAX_BED, MAX_DESCRIPTION, MAX_TEXT};
use crate::domain::{Category, NhsNumber, OutcomeCode, Permission, Priority, Status};
use crate::domain::{NewTask, News2};
use crate::error::AppError;
use crate::store::directory;
use crate::store::events;
use crate::store::tasks::{self, Filter};
use crate::web::api::{views, TaskView};
use crate::web::AppState;
use actix_web::{web, HttpResponse};
use askama::Template;

use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tasks/new", web::get().to(new_form))
        .route("/tasks/new", web::post().to(raise))
        .route("/tasks/raised", web::get().to(raised))
        .route("/tasks/raised/fragment", web::get().to(raised_fragment))
        .route("/me", web::get().to(me))
        .route("/me/fragment", web::get().to(me_fragment))
        .route("/me/mobile", web::post().to(set_mobile))
        .route("/me/tasks/{id}/comment", web::post().to(comment))
        .route("/me/tasks/{id}/{action}", web::post().to(act));
}

fn minutes(secs: u32) -> String {
    if secs.is_multiple_of(60) {
        let m = secs / 60;
        format!("{m} minute{}", if m == 1 { "" } else { "s" })
    } else {
        format!("{secs} seconds")
    }
}

#[derive(Default, Deserialize)]
pub struct TaskForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    nhs_number: String,
    #[serde(default)]
    ward: String,
    #[serde(default)]
    bed: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    news2: String,
    #[serde(default)]
    assignee: String,
}

pub struct PriorityChoice {
    code: &'static str,
    label: &'static str,
    target: String,
}

pub struct RoleChoice {
    id: String,
    name: String,
    holders: String,
}

pub struct PersonChoice {
    id: String,
    name: String,
}

#[derive(Template)]
#[template(path = "task_new.html")]
struct NewTaskPage {
    nav: Option<super::Nav>,
    csrf: String,
    form: TaskForm,
    errors: Vec<(&'static str, String)>,
    wards: Vec<String>,
    categories: &'static [Category],
    priorities: Vec<PriorityChoice>,
    roles: Vec<RoleChoice>,
    clinicians: Vec<PersonChoice>,
}

impl NewTaskPage {
    fn error_for(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, e)| e.as_str())
    }
}

async fn form_page(
    state: &AppState,
    user: &PageUser,
    form: TaskForm,
    errors: Vec<(&'static str, String)>,
) -> PageResult {
    let (wards, roles, clinicians) = state
        .store
        .read(|c| {
            let wards = directory::list_wards(c)?;
            let mut roles = Vec::new();
            for r in directory::list_roles(c)? {
                let holders = directory::current_holders(c, &r.id)?;
                let refs: Vec<&str> = holders.iter().map(String::as_str).collect();
                let names = directory::staff_names(c, &refs)?;
                let mut held: Vec<String> = names.into_values().collect();
                held.sort();
                roles.push(RoleChoice {
                    id: r.id,
                    name: r.name,
                    holders: if held.is_empty() {
                        "no one holds it now".into()
                    } else {
                        held.join(", ")
                    },
                });
            }
            let clinicians = directory::list_staff(c)?
                .into_iter()
                .filter(|s| s.can(Permission::Clinician))
                .map(|s| PersonChoice {
                    id: s.id,
                    name: s.name,
                })
                .collect::<Vec<_>>();
            Ok((wards, roles, clinicians))
        })
        .await?;
    let targets = state.config.policy.ack_seconds;
    let status = if errors.is_empty() {
        actix_web::http::StatusCode::OK
    } else {
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(super::html(
        status,
        &NewTaskPage {
            nav: user.nav(),
            csrf: user.0.csrf.clone(),
            form,
            errors,
            wards,
            categories: Category::ALL,
            priorities: Priority::ALL
                .iter()
                .map(|p| PriorityChoice {
                    code: p.code(),
                    label: p.label(),
                    target: minutes(targets.seconds(*p)),
                })
                .collect(),
            roles,
            clinicians,
        },
    ))
}

async fn new_form(state: web::Data<AppState>, user: PageUser) -> PageResult {
    user.require(&[Permission::Coordinator], "Raising tasks")?;
    form_page(&state, &user, TaskForm::default(), Vec::new()).await
}

/// Checks every field, so that all problems are shown at once beside their fields.
fn validate(f: &TaskForm) -> Result<NewTask, Vec<(&'static str, String)>> {
    let mut errors = Vec::new();
    let nhs = match NhsNumber::parse(&f.nhs_number) {
        Ok(n) => Some(n),
        Err(e) => {
            let msg = if f.nhs_number.trim().is_empty() {
                "Enter the patient's NHS number.".to_string()
            } else {
                format!(
                    "{}{}.",
                    e.to_string()[..1].to_uppercase(),
                    &e.to_string()[1..]
                )
            };
            errors.push(("nhs_number", msg));
            None
        }
    };
    if f.ward.trim().is_empty() {
        errors.push(("ward", "Choose the ward.".into()));
    }
    let bed = required_text("bed", &f.bed, MAX_BED)
        .map_err(|_| errors.push(("bed", "Enter the bed (up to 20 characters).".into())))
        .ok();
    let category = Category::parse(&f.category)
        .map_err(|_| errors.push(("category", "Choose what is needed.".into())))
        .ok();
    let priority = Priority::parse(&f.priority)
        .map_err(|_| errors.push(("priority", "Choose a priority.".into())))
        .ok();
    let news2 = match f.news2.trim() {
        "" => None,
        n => match n.parse::<i32>().map(News2::new) {
            Ok(Ok(v)) => Some(v),
            _ => {
                errors.push((
                    "news2",
                    "A NEWS2 score is a whole number from 0 to 20.".into(),
                ));
                None
            }
        },
    };
    let description = required_text("description", &f.description, MAX_DESCRIPTION)
        .map_err(|e| {
            errors.push((
                "description",
                if f.description.trim().is_empty() {
                    "Say what is needed.".into()
                } else {
                    e
                },
            ))
        })
        .ok();
    if f.assignee.trim().is_empty() {
        errors.push(("assignee", "Choose who the task is for.".into()));
    }
    match (nhs, bed, category, priority, description) {
        (Some(nhs_number), Some(bed), Some(category), Some(priority), Some(description))
            if errors.is_empty() =>
        {
            Ok(NewTask {
                nhs_number,
                ward: f.ward.trim().to_string(),
                bed,
                category,
                description,
                priority,
                news2,
                assignee: f.assignee.clone(),
            })
        }
        _ => Err(errors),
    }
}

async fn raise(
    state: web::Data<AppState>,
    user: PageUser,
    form: web::Form<TaskForm>,
) -> PageResult {
    user.require(&[Permission::Coordinator], "Raising tasks")?;
    let form = form.into_inner();
    user.check_csrf(&form.csrf)?;
    let new = match validate(&form) {
        Ok(n) => n,
        Err(errors) => return form_page(&state, &user, form, errors).await,
    };
    let staff = user.0.staff.clone();
    match state
        .app
        .run(move |c, ctx| commands::raise(c, ctx, &staff, new))
        .await
    {
        Ok(task) => see_other(&format!("/tasks/raised?raised={}", task.id)),
        Err(AppError::Unprocessable(msg)) => {
            let field = if msg.starts_with("ward") {
                "ward"
            } else {
                "assignee"
            };
            form_page(&state, &user, form, vec![(field, msg)]).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "tasks_raised_fragment.html")]
struct RaisedFragment {
    tasks: Vec<Card>,
}

#[derive(Template)]
#[template(path = "tasks_raised.html")]
struct RaisedPage {
    nav: Option<super::Nav>,
    just_raised: Option<String>,
    fragment: String,
}

async fn raised_cards(state: &AppState, user: &PageUser) -> Result<String, PageError> {
    let me = user.0.staff.id.clone();
    let now = state.clock.now();
    let list = state
        .store
        .read(move |c| {
            let filter = Filter {
                raised_by: Some(me),
                limit: 100,
                ..Filter::default()
            };
            let (list, _) = tasks::list(c, &filter, now)?;
            let list = views(c, list, now)?;
            with_thread(c, list)
        })
        .await?;
    let zone = state.app.policy.zone;
    RaisedFragment {
        tasks: list
            .into_iter()
            .map(|(v, reached)| Card::new(v, &reached, &zone, now))
            .collect(),
    }
    .render()
    .map_err(|e| AppError::Internal(format!("template: {e}")).into())
}

/// Each task with its timeline (for its thread) and the people its bleeps reached.
fn with_thread(
    c: &mut crate::store::DbConnection,
    list: Vec<TaskView>,
) -> Result<Vec<(TaskView, Vec<String>)>, AppError> {
    let mut out = Vec::with_capacity(list.len());
    for mut v in list {
        v.timeline = Some(events::timeline(c, &v.id)?);
        let reached = card::reached(c, &v)?;
        out.push((v, reached));
    }
    Ok(out)
}

#[derive(Deserialize)]
struct RaisedQuery {
    raised: Option<String>,
}

async fn raised(
    state: web::Data<AppState>,
    user: PageUser,
    q: web::Query<RaisedQuery>,
) -> PageResult {
    user.require(&[Permission::Coordinator], "The raised-tasks list")?;
    let fragment = raised_cards(&state, &user).await?;
    ok(&RaisedPage {
        nav: user.nav(),
        just_raised: q.into_inner().raised,
        fragment,
    })
}

async fn raised_fragment(state: web::Data<AppState>, user: PageUser) -> PageResult {
    user.require(&[Permission::Coordinator], "The raised-tasks list")?;
    Ok(fragment_response(raised_cards(&state, &user).await?))
}

fn fragment_response(html: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(html)
}

#[derive(Template)]
#[template(path = "me_fragment.html")]
struct MeFragment {
    /// "Your bleeps": what you hold, what was handed to you, busy, take the bleep.
    bleeps: String,
    csrf: String,
    tasks: Vec<Card>,
    outcomes: Vec<(&'static str, &'static str)>,
}

#[derive(Template)]
#[template(path = "me.html")]
struct MePage {
    nav: Option<super::Nav>,
    csrf: String,
    fragment: String,
    /// The secret address of the person's shifts as a calendar feed.
    calendar: String,
    /// Where text messages go, as stored (E.164), or empty.
    mobile: String,
}

/// My open tasks: for me, for a bleep I hold, or escalated to a bleep I hold. Stat first,
/// then by deadline.
async fn my_cards(state: &AppState, user: &PageUser) -> Result<String, PageError> {
    let me = user.0.staff.clone();
    let now = state.clock.now();
    let policy = state.config.policy.clone();
    let bleeps = super::rota::my_bleeps(state, user).await?;
    let list = state
        .store
        .read(move |c| {
            let held = directory::roles_held_by(c, &me.id)?;
            let mut ids = held.clone();
            ids.push(me.id.clone());
            let open = vec![Status::Requested, Status::Accepted, Status::InProgress];
            let mine = Filter {
                statuses: open,
                assignees: Some(ids),
                limit: 200,
                ..Filter::default()
            };
            let (mut list, _) = tasks::list(c, &mine, now)?;
            let escalated = Filter {
                statuses: vec![Status::Requested],
                escalated: true,
                limit: 200,
                ..Filter::default()
            };
            for t in tasks::list(c, &escalated, now)?.0 {
                if list.iter().any(|m| m.id == t.id) {
                    continue;
                }
                let chain = escalation_roles(c, &t, policy.fallback_role.as_deref())?;
                if chain
                    .iter()
                    .take(t.escalation_level as usize)
                    .any(|r| held.contains(&r.id))
                {
                    list.push(t);
                }
            }
            list.sort_by_key(|t| (t.priority, t.ack_deadline));
            let list = views(c, list, now)?;
            with_thread(c, list)
        })
        .await?;
    let zone = state.app.policy.zone;
    let html = MeFragment {
        bleeps,
        csrf: user.0.csrf.clone(),
        tasks: list
            .into_iter()
            .map(|(v, reached)| Card::new(v, &reached, &zone, now))
            .collect(),
        outcomes: OutcomeCode::ALL
            .iter()
            .map(|o| (o.code(), o.label()))
            .collect(),
    }
    .render()
    .map_err(|e| PageError::from(AppError::Internal(format!("template: {e}"))))?;
    Ok(html)
}

async fn me(state: web::Data<AppState>, user: PageUser) -> PageResult {
    user.require(
        &[Permission::Clinician, Permission::BedManager],
        "My bleeps",
    )?;
    let fragment = my_cards(&state, &user).await?;
    let calendar = crate::web::calendar::address(
        &state,
        crate::outbox::links::Purpose::StaffCalendar,
        &user.0.staff.id,
    )?;
    let id = user.0.staff.id.clone();
    let mobile = state
        .store
        .read(move |c| crate::store::notifications::mobiles(c, &[id.as_str()]))
        .await?
        .into_values()
        .next()
        .unwrap_or_default();
    ok(&MePage {
        nav: user.nav(),
        csrf: user.0.csrf.clone(),
        fragment,
        calendar,
        mobile,
    })
}

#[derive(Deserialize)]
struct MobileForm {
    csrf: String,
    mobile: String,
}

/// The number a person's text messages go to, from "My bleeps"; empty removes it.
async fn set_mobile(
    state: web::Data<AppState>,
    user: PageUser,
    form: web::Form<MobileForm>,
) -> PageResult {
    let f = form.into_inner();
    user.check_csrf(&f.csrf)?;
    let mobile = match f.mobile.trim() {
        "" => None,
        given => Some(crate::domain::phone::parse_mobile(given).map_err(bad)?),
    };
    let id = user.0.staff.id.clone();
    state
        .store
        .write(move |c| crate::store::notifications::set_mobile(c, &id, mobile.as_deref()))
        .await?;
    see_other("/me#mobile-form")
}

async fn me_fragment(state: web::Data<AppState>, user: PageUser) -> PageResult {
    user.require(
        &[Permission::Clinician, Permission::BedManager],
        "My bleeps",
    )?;
    Ok(fragment_response(my_cards(&state, &user).await?))
}

#[derive(Deserialize)]
struct ActionForm {
    csrf: String,
    outcome_code: Option<String>,
    outcome_text: Option<String>,
    reason: Option<String>,
}

fn bad(msg: impl Into<String>) -> PageError {
    AppError::Unprocessable(msg.into()).into()
}

async fn act(
    state: web::Data<AppState>,
    user: PageUser,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> PageResult {
    let (id, action) = path.into_inner();
    let f = form.into_inner();
    user.check_csrf(&f.csrf)?;
    let command = match action.as_str() {
        "acknowledge" => Command::Acknowledge,
        "start" => Command::Start,
        "complete" => {
            let code = OutcomeCode::parse(f.outcome_code.as_deref().unwrap_or(""))
                .map_err(|_| bad("Choose an outcome."))?;
            // The code alone says enough, except for "unable" and "referred".
            let text = f.outcome_text.as_deref().unwrap_or("").trim().to_string();
            if code.needs_text() && text.is_empty() {
                return Err(bad(format!(
                    "Say why: \"{}\" needs a few words for the coordinator.",
                    code.label()
                )));
            }
            if text.chars().count() > MAX_TEXT {
                return Err(bad("The outcome can be up to 2,000 characters."));
            }
            Command::Complete { code, text }
        }
        "decline" => {
            let reason = required_text("reason", f.reason.as_deref().unwrap_or(""), MAX_TEXT)
                .map_err(|_| {
                    bad("Give a reason: the coordinator needs it to find someone else.")
                })?;
            Command::Decline { reason }
        }
        other => return Err(AppError::NotFound(format!("no action {other:?}")).into()),
    };
    let staff = user.0.staff.clone();
    state
        .app
        .run(move |c, ctx| commands::act(c, ctx, &id, &staff, command))
        .await?;
    see_other("/me")
}

#[derive(Deserialize)]
struct CommentForm {
    csrf: String,
    text: String,
}

async fn comment(
    state: web::Data<AppState>,
    user: PageUser,
    id: web::Path<String>,
    form: web::Form<CommentForm>,
) -> PageResult {
    let f = form.into_inner();
    user.check_csrf(&f.csrf)?;
    let (id, staff) = (id.into_inner(), user.0.staff.clone());
    let back = format!("/me#task-{id}");
    state
        .app
        .run(move |c, ctx| commands::comment(c, ctx, &id, &staff, &f.text))
        .await?;
    see_other(&back)
}
