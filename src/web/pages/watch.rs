//! The bed manager's escalation dashboard and the admin page.
use super::{ok, see_other, PageError, PageResult, PageUser};
use crate::app::roles::{self, HandedBy};
use crate::app::staff;
use crate::domain::{Permission, Priority};
use crate::error::AppError;
use crate::store::audit::{self, Action as AuditAction, Actor, Entry};
use crate::store::dashboard;
use crate::store::directory;
use crate::web::api::views;
use crate::web::auth::client_address;
use crate::web::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use serde_json::json;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard", web::get().to(dashboard_page))
        .route("/dashboard/fragment", web::get().to(dashboard_fragment))
        .route("/admin", web::get().to(admin))
        .route("/admin/hand-over", web::post().to(hand_over))
        .route("/admin/escalate", web::post().to(escalate))
        .route("/admin/roles", web::post().to(add_role))
        .route("/admin/wards", web::post().to(add_ward))
        .route("/admin/staff/deactivate", web::post().to(deactivate));
}

const WATCHERS: &[Permission] = &[
    Permission::BedManager,
    Permission::Coordinator,
    Permission::Admin,
];

pub struct LateRow {
    id: String,
    priority: String,
    ward: String,
    bed: String,
    category: String,
    level: i32,
    /// "2 min 40 s overdue": seconds under a minute, never "0 min".
    overdue: String,
    who: String,
    seen: String,
}

pub struct WardRow {
    ward: String,
    by_priority: [i64; 4],
    requested: i64,
    accepted: i64,
    in_progress: i64,
    ack_times: String,
}

pub struct Bar {
    x: usize,
    y: i64,
    h: i64,
    hour: u32,
    n: i64,
    label: bool,
}

#[derive(Template)]
#[template(path = "dashboard_fragment.html")]
struct DashboardFragment {
    late: Vec<LateRow>,
    wards: Vec<WardRow>,
    bars: Vec<Bar>,
    escalations_total: i64,
    chart_label: String,
    /// Failed deliveries by cause, with the people concerned.
    failed: Vec<super::board::FailedGroup>,
    /// Each bleep holder's open work, the longest wait first.
    workload: Vec<super::board::Workload>,
    /// Phones whose push service takes bleeps they never show: (who, what is wrong).
    silent: Vec<(String, String)>,
    /// Bleeps nobody is on the rota for in the next 24 hours, as read.
    uncovered: Vec<String>,
    /// Who is busy now: (who, until, why).
    busy: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Option<super::Nav>,
    fragment: String,
    zone: &'static str,
}

fn duration(secs: Option<i64>) -> String {
    match secs {
        None => "–".into(),
        Some(s) if s < 120 => format!("{s} s"),
        Some(s) => format!("{} min", s / 60),
    }
}

/// One ward's line of the dashboard.
fn ward_row(w: dashboard::WardLine) -> WardRow {
    WardRow {
        ack_times: if w.acknowledged_24h == 0 {
            "–".into()
        } else {
            format!(
                "{} / {} ({} tasks)",
                duration(w.ack_median),
                duration(w.ack_p90),
                w.acknowledged_24h
            )
        },
        ward: w.ward,
        by_priority: w.by_priority,
        requested: w.requested,
        accepted: w.accepted,
        in_progress: w.in_progress,
    }
}

/// The escalations-per-hour chart: its bars, the total, and what a screen reader says of it.
fn escalation_chart(per_hour: &[(u32, i64)]) -> (Vec<Bar>, i64, String) {
    let max = per_hour.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let bars = per_hour
        .iter()
        .enumerate()
        .map(|(i, (hour, n))| {
            let h = n * 100 / max;
            Bar {
                x: i * 20,
                y: 110 - h,
                h,
                hour: *hour,
                n: *n,
                label: i % 3 == 0,
            }
        })
        .collect();
    let total: i64 = per_hour.iter().map(|(_, n)| n).sum();
    let busiest = per_hour
        .iter()
        .max_by_key(|(_, n)| *n)
        .filter(|(_, n)| *n > 0);
    let chart_label = match busiest {
        Some((h, n)) => format!("{total} in all; most at {h}:00 ({n})"),
        None => "none".into(),
    };
    (bars, total, chart_label)
}

async fn render_dashboard(state: &AppState) -> Result<String, PageError> {
    let ctx = state.app.ctx();
    let (now, zone) = (ctx.now, ctx.policy.zone);
    let figures = state.store.figures.clone();
    let (d, late_views, (names, places), silent, (uncovered, busy), workload) = state
        .store
        .read(move |c| {
            let rota = (
                crate::app::rota_plan::coming_gaps(c, &ctx, 24)?,
                crate::store::rota::busy(c, now)?,
            );
            let silent = crate::store::receipts::silent_devices(c, now)?;
            let d = dashboard::load(c, now, &figures)?;
            let late_views = views(c, d.late.iter().map(|l| l.task.clone()).collect(), now)?;
            let ids: Vec<&str> = d.failed.iter().map(|f| f.recipient_id.as_str()).collect();
            let names = directory::staff_names(c, &ids)?;
            let mut places = std::collections::HashMap::new();
            for f in &d.failed {
                if !places.contains_key(&f.task_id) {
                    let t = crate::store::tasks::get(c, &f.task_id)?;
                    places.insert(f.task_id.clone(), format!("{}, bed {}", t.ward, t.bed));
                }
            }
            let workload = super::board::workload(c, now)?;
            Ok((d, late_views, (names, places), silent, rota, workload))
        })
        .await?;
    let late = d
        .late
        .iter()
        .zip(late_views)
        .map(|(l, v)| LateRow {
            id: v.id.clone(),
            priority: v.priority.code().into(),
            ward: v.ward,
            bed: v.bed,
            category: v.category.code().into(),
            level: l.task.escalation_level,
            overdue: super::time::due(l.task.ack_deadline, now),
            seen: super::card::seen_line(&v.seen_by, &zone, now),
            who: v.assignee.name,
        })
        .collect();
    let (bars, total, chart_label) = escalation_chart(&d.escalations_per_hour);
    DashboardFragment {
        late,
        wards: d.wards.into_iter().map(ward_row).collect(),
        bars,
        escalations_total: total,
        chart_label,
        uncovered: uncovered.into_iter().map(|g| g.text).collect(),
        busy: busy
            .into_iter()
            .map(|b| {
                (
                    b.name,
                    zone.short(b.until, now),
                    b.reason.unwrap_or_default(),
                )
            })
            .collect(),
        silent: silent
            .into_iter()
            .map(|s| {
                let shown = match s.last_shown_at {
                    Some(t) => format!("last showed one at {}", zone.short(t, now)),
                    None => "has never shown one".into(),
                };
                let took = zone.short(s.last_accepted_at, now);
                (
                    s.name,
                    format!("its phone took a bleep at {took} and {shown}"),
                )
            })
            .collect(),
        failed: super::board::failed_groups(&d.failed, &names, &places, &zone, now),
        workload,
    }
    .render()
    .map_err(|e| AppError::Internal(format!("template: {e}")).into())
}

async fn dashboard_page(state: web::Data<AppState>, user: PageUser) -> PageResult {
    user.require(WATCHERS, "The escalation dashboard")?;
    let fragment = render_dashboard(&state).await?;
    ok(&DashboardPage {
        nav: user.nav(),
        fragment,
        zone: state.app.policy.zone.name(),
    })
}

async fn dashboard_fragment(state: web::Data<AppState>, user: PageUser) -> PageResult {
    user.require(WATCHERS, "The escalation dashboard")?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(render_dashboard(&state).await?))
}

pub struct RoleRow {
    id: String,
    name: String,
    holders: String,
    next: String,
    /// Who may be handed it: active clinicians, and of them only those listed for it when
    /// an admin has listed anyone (the same rule as the hand-over itself).
    eligible: Vec<(String, String)>,
}

pub struct StaffRow {
    id: String,
    name: String,
    email: String,
    roles: String,
    active: bool,
}

pub struct AuditRow {
    at: String,
    actor: String,
    action: String,
    subject: String,
    client: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    nav: Option<super::Nav>,
    csrf: String,
    message: Option<String>,
    roles: Vec<RoleRow>,
    staff: Vec<StaffRow>,
    audit: Vec<AuditRow>,
    policy: Vec<(String, String)>,
    schedule: String,
    wards: String,
    /// Bleeps nobody is on the rota for in the next 24 hours.
    gaps: Vec<String>,
}

#[derive(Deserialize)]
struct AdminQuery {
    done: Option<String>,
}

crate::domain::coded_enum!(
    /// What the admin page says after a change. The link carries only a code, so a crafted
    /// link cannot make the page say anything else; an unknown code says nothing.
    Done, "admin message" {
        HandedOver => "handed-over",
        EscalationSet => "escalation-set",
        RoleAdded => "role-added",
        WardAdded => "ward-added",
        Deactivated => "deactivated",
    }
);

impl Done {
    fn text(self) -> &'static str {
        match self {
            Done::HandedOver => "The bleep was handed over: see who holds it below.",
            Done::EscalationSet => "The escalation chain was changed.",
            Done::RoleAdded => "The on-call role was added.",
            Done::WardAdded => "The ward was added.",
            Done::Deactivated => {
                "The member of staff was deactivated: their sessions, API token, devices and bleeps have ended."
            }
        }
    }

    fn message(code: &str) -> Option<String> {
        Done::parse(code).ok().map(|d| d.text().to_string())
    }
}

/// Who may be handed a bleep, by the rule the hand-over itself applies.
fn eligible(
    c: &mut crate::store::DbConnection,
    role: &directory::Role,
    people: &[directory::Staff],
) -> Result<Vec<(String, String)>, AppError> {
    let mut out = Vec::new();
    for s in people {
        match crate::app::rota::may_hold(c, role, s) {
            Ok(()) => out.push((s.id.clone(), s.name.clone())),
            Err(AppError::Unprocessable(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

async fn admin(
    state: web::Data<AppState>,
    user: PageUser,
    q: web::Query<AdminQuery>,
) -> PageResult {
    user.require(&[Permission::Admin], "The admin page")?;
    let ctx = state.app.ctx();
    let (roles, staff, wards, audit, gaps) = state
        .store
        .read(move |c| {
            let all = directory::list_roles(c)?;
            let people = directory::list_staff(c)?;
            let mut roles = Vec::new();
            for r in &all {
                let holders = directory::current_holders(c, &r.id)?;
                let refs: Vec<&str> = holders.iter().map(String::as_str).collect();
                let mut names: Vec<String> =
                    directory::staff_names(c, &refs)?.into_values().collect();
                names.sort();
                roles.push(RoleRow {
                    eligible: eligible(c, r, &people)?,
                    id: r.id.clone(),
                    name: r.name.clone(),
                    holders: if names.is_empty() {
                        "no one".into()
                    } else {
                        names.join(", ")
                    },
                    next: r
                        .escalates_to
                        .as_ref()
                        .and_then(|n| all.iter().find(|o| &o.id == n))
                        .map(|o| o.name.clone())
                        .unwrap_or_default(),
                });
            }
            let staff = people
                .into_iter()
                .map(|s| StaffRow {
                    active: s.active,
                    roles: s
                        .roles
                        .iter()
                        .map(|r| r.code())
                        .collect::<Vec<_>>()
                        .join(", "),
                    id: s.id,
                    name: s.name,
                    email: s.email.unwrap_or_default(),
                })
                .collect();
            let audit = audit::list(c, 50, None)?
                .into_iter()
                .map(|e| AuditRow {
                    at: ctx
                        .policy
                        .zone
                        .local(e.at)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string(),
                    actor: match e.actor {
                        Some(p) if !p.name.is_empty() => p.name,
                        Some(p) => p.id,
                        None => e.detail["via"].as_str().unwrap_or("–").to_string(),
                    },
                    action: e.action.replace('_', " "),
                    subject: e.subject.unwrap_or_default(),
                    client: e.client.unwrap_or_default(),
                })
                .collect();
            let gaps = crate::app::rota_plan::coming_gaps(c, &ctx, 24)?
                .into_iter()
                .map(|g| g.text)
                .collect();
            let wards = directory::list_wards(c)?.join(", ");
            Ok((roles, staff, wards, audit, gaps))
        })
        .await?;
    let targets = state.config.policy.ack_seconds;
    ok(&AdminPage {
        nav: user.nav(),
        csrf: user.0.csrf.clone(),
        message: q.into_inner().done.as_deref().and_then(Done::message),
        roles,
        staff,
        audit,
        policy: Priority::ALL
            .iter()
            .map(|p| (p.label().to_string(), format!("{} s", targets.seconds(*p))))
            .collect(),
        schedule: state.config.schedule.to_string(),
        wards,
        gaps,
    })
}

fn done(what: Done) -> PageResult {
    see_other(&format!("/admin?done={}", what.code()))
}

/// A change asked for on the admin page, by an admin, with the form's own CSRF token.
struct AdminChange {
    by: String,
    now: chrono::DateTime<chrono::Utc>,
    client: String,
}

impl AdminChange {
    fn of(
        user: &PageUser,
        what: &str,
        csrf: &str,
        state: &AppState,
        req: &HttpRequest,
    ) -> Result<AdminChange, PageError> {
        user.require(&[Permission::Admin], what)?;
        user.check_csrf(csrf)?;
        Ok(AdminChange {
            by: user.0.staff.id.clone(),
            now: state.clock.now(),
            client: client_address(req, state),
        })
    }
}

/// An audit entry for a change made on the admin page.
fn entry<'a>(
    by: &'a str,
    action: AuditAction,
    subject: &'a str,
    detail: serde_json::Value,
    client: &'a str,
) -> Entry<'a> {
    Entry {
        actor: Actor::Staff(by),
        action,
        subject: Some(subject),
        detail,
        client: Some(client),
    }
}

#[derive(Deserialize)]
struct HandOverForm {
    csrf: String,
    role: String,
    to: String,
    share: Option<String>,
    /// "yes" once the admin has seen who hands over to whom.
    #[serde(default)]
    confirm: String,
}

#[derive(Template)]
#[template(path = "admin_confirm.html")]
struct HandOverConfirm {
    nav: Option<super::Nav>,
    csrf: String,
    question: String,
    role: String,
    to: String,
    share: bool,
}

async fn hand_over(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: PageUser,
    f: web::Form<HandOverForm>,
) -> PageResult {
    let f = f.into_inner();
    let AdminChange { by, now: _, client } =
        AdminChange::of(&user, "Handing over bleeps", &f.csrf, &state, &req)?;
    let admin = user.0.staff.clone();
    if f.confirm != "yes" {
        let (role, to, share) = (f.role.clone(), f.to.clone(), f.share.is_some());
        let question = state
            .store
            .read(move |c| {
                let role = directory::role_by_id(c, &role)?;
                let to = directory::staff_by_id(c, &to)?
                    .ok_or_else(|| AppError::Unprocessable("choose a member of staff".into()))?;
                crate::app::rota::may_hold(c, &role, &to)?;
                let held = directory::current_holders(c, &role.id)?;
                let refs: Vec<&str> = held.iter().map(String::as_str).collect();
                let mut now: Vec<String> =
                    directory::staff_names(c, &refs)?.into_values().collect();
                now.sort();
                Ok(format!(
                    "Hand {} over to {}?{}",
                    role.name,
                    to.name,
                    match (now.is_empty(), share) {
                        (true, _) => " Nobody holds it now.".to_string(),
                        (false, true) => format!(" {} will keep it too.", now.join(", ")),
                        (false, false) => format!(" {} will no longer hold it.", now.join(", ")),
                    }
                ))
            })
            .await?;
        return ok(&HandOverConfirm {
            nav: user.nav(),
            csrf: user.0.csrf.clone(),
            question,
            role: f.role,
            to: f.to,
            share,
        });
    }
    state
        .app
        .run(move |c, ctx| {
            let role = directory::role_by_id(c, &f.role)?;
            let to = directory::staff_by_id(c, &f.to)?
                .ok_or_else(|| AppError::Unprocessable("choose a member of staff".into()))?;
            let share = f.share.is_some();
            roles::hand_over(c, ctx, &role, &to, share, HandedBy::Staff(&admin))?;
            let detail = json!({ "role": role.name, "to": to.id, "share": share });
            audit::record(
                c,
                entry(&by, AuditAction::HandedOver, &role.id, detail, &client),
                ctx.now,
            )
        })
        .await?;
    done(Done::HandedOver)
}

#[derive(Deserialize)]
struct EscalateForm {
    csrf: String,
    role: String,
    next: String,
}

async fn escalate(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: PageUser,
    f: web::Form<EscalateForm>,
) -> PageResult {
    let f = f.into_inner();
    let AdminChange { by, now, client } =
        AdminChange::of(&user, "Escalation chains", &f.csrf, &state, &req)?;
    state
        .store
        .write(move |c| {
            let role = directory::role_by_id(c, &f.role)?;
            let next = match f.next.as_str() {
                "" => None,
                id => Some(directory::role_by_id(c, id)?),
            };
            directory::set_escalation(c, &role, next.as_ref())?;
            let detail = json!({ "role": role.name, "to": next.map(|n| n.name) });
            audit::record(
                c,
                entry(&by, AuditAction::EscalationSet, &role.id, detail, &client),
                now,
            )
        })
        .await?;
    done(Done::EscalationSet)
}

#[derive(Deserialize)]
struct NameForm {
    csrf: String,
    name: String,
}

async fn add_role(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: PageUser,
    f: web::Form<NameForm>,
) -> PageResult {
    let f = f.into_inner();
    let AdminChange { by, now, client } =
        AdminChange::of(&user, "Adding roles", &f.csrf, &state, &req)?;
    state
        .store
        .write(move |c| {
            let role = directory::add_role(c, &f.name, now)?;
            let detail = json!({ "name": role.name });
            audit::record(
                c,
                entry(&by, AuditAction::RoleAdded, &role.id, detail, &client),
                now,
            )
        })
        .await?;
    done(Done::RoleAdded)
}

async fn add_ward(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: PageUser,
    f: web::Form<NameForm>,
) -> PageResult {
    let f = f.into_inner();
    let AdminChange { by, now, client } =
        AdminChange::of(&user, "Adding wards", &f.csrf, &state, &req)?;
    state
        .store
        .write(move |c| {
            let ward = directory::add_ward(c, &f.name, now)?;
            audit::record(
                c,
                entry(&by, AuditAction::WardAdded, &ward, json!({}), &client),
                now,
            )
        })
        .await?;
    done(Done::WardAdded)
}

#[derive(Deserialize)]
struct StaffForm {
    csrf: String,
    staff: String,
}

/// A leaver: deactivated, with their sessions, API token, devices and bleeps ended at once.
async fn deactivate(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: PageUser,
    f: web::Form<StaffForm>,
) -> PageResult {
    let f = f.into_inner();
    let AdminChange { by, now: _, client } =
        AdminChange::of(&user, "Deactivating staff", &f.csrf, &state, &req)?;
    if f.staff == by {
        return Err(AppError::Unprocessable(
            "you cannot deactivate yourself: ask another admin".into(),
        )
        .into());
    }
    state
        .app
        .run(move |c, ctx| staff::deactivate(c, ctx, &f.staff, Actor::Staff(&by), Some(&client)))
        .await?;
    done(Done::Deactivated)
}
