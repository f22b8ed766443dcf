//! The rota on the pages: the "Your bleeps" part of My bleeps (what you hold, what was just
//! handed to you, busy, taking the bleep), and the admin's rota page (cover gaps, import
//! with a check first, who may hold each bleep, the week ahead).
use super::{ok, see_other, PageError, PageResult, PageUser};
use crate::app::rota::{self, Arrival};
use crate::app::rota_plan::{self, Report};
use crate::domain::Permission;
use crate::error::AppError;
use crate::store::audit::{self, Action as AuditAction, Actor, Entry};
use crate::store::directory;
use crate::store::rota as store;
use crate::web::auth::client_address;
use crate::web::AppState;
use actix_web::{web, HttpRequest};
use askama::Template;
use chrono::Duration;
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/me/take/{role}", web::post().to(take))
        .route("/me/busy", web::post().to(busy))
        .route("/me/hand-over/confirm", web::post().to(confirm))
        .route("/admin/rota", web::get().to(admin_rota))
        .service(
            web::resource("/admin/rota/import")
                // A month's rota pasted into the form is larger than a task.
                .app_data(web::FormConfig::default().limit(1024 * 1024))
                .route(web::post().to(import)),
        )
        .route("/admin/rota/allow", web::post().to(allow));
}

#[derive(Template)]
#[template(path = "me_bleeps.html")]
struct Bleeps {
    csrf: String,
    holds: String,
    holds_any: bool,
    arrivals: Vec<Arrival>,
    busy_until: Option<String>,
    takeable: Vec<(String, String)>,
}

/// "Your bleeps", at the top of My bleeps' live part: it follows every hand-over by itself.
pub async fn my_bleeps(state: &AppState, user: &PageUser) -> Result<String, PageError> {
    let me = user.0.staff.clone();
    let ctx = state.app.ctx();
    let zone = ctx.policy.zone;
    let csrf = user.0.csrf.clone();
    let page = state
        .store
        .read(move |c| {
            let held = directory::roles_held_by(c, &me.id)?;
            let listed = store::allowed_roles(c, &me.id)?;
            let mut ids: Vec<&str> = held.iter().map(String::as_str).collect();
            ids.extend(listed.iter().map(String::as_str));
            let names = directory::role_names(c, &ids)?;
            let mut holding: Vec<String> =
                held.iter().filter_map(|r| names.get(r).cloned()).collect();
            holding.sort();
            let mut takeable: Vec<(String, String)> = listed
                .iter()
                .filter(|r| !held.contains(r))
                .filter_map(|r| names.get(r).map(|n| (r.clone(), n.clone())))
                .collect();
            takeable.sort_by(|a, b| a.1.cmp(&b.1));
            let busy_until = store::busy(c, ctx.now)?
                .into_iter()
                .find(|b| b.staff_id == me.id)
                .map(|b| zone.short(b.until, ctx.now));
            Ok(Bleeps {
                holds: if holding.is_empty() {
                    "You hold no bleep right now.".into()
                } else {
                    format!("You hold: {}.", holding.join(", "))
                },
                holds_any: !holding.is_empty(),
                arrivals: rota::arrivals(c, &ctx, &me.id)?,
                busy_until,
                takeable,
                csrf,
            })
        })
        .await?;
    page.render()
        .map_err(|e| AppError::Internal(format!("template: {e}")).into())
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn take(
    state: web::Data<AppState>,
    user: PageUser,
    role: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> PageResult {
    user.check_csrf(&form.csrf)?;
    let (key, me) = (role.into_inner(), user.0.staff.clone());
    state
        .app
        .run(move |c, ctx| {
            let r = directory::find_role(c, &key)?
                .ok_or_else(|| AppError::NotFound(format!("no on-call role {key:?}")))?;
            rota::take(c, ctx, &me, &r)
        })
        .await?;
    see_other("/me#my-bleeps")
}

#[derive(Deserialize)]
struct BusyForm {
    csrf: String,
    minutes: String,
    reason: Option<String>,
}

async fn busy(state: web::Data<AppState>, user: PageUser, form: web::Form<BusyForm>) -> PageResult {
    let f = form.into_inner();
    user.check_csrf(&f.csrf)?;
    let minutes: i64 = f.minutes.trim().parse().map_err(|_| {
        PageError::from(AppError::Unprocessable(
            "Choose for how many minutes you are busy.".into(),
        ))
    })?;
    let me = user.0.staff.clone();
    state
        .app
        .run(move |c, ctx| rota::set_busy(c, ctx, &me, minutes, f.reason.as_deref()))
        .await?;
    see_other("/me#my-bleeps")
}

#[derive(Deserialize)]
struct ConfirmForm {
    csrf: String,
    role: String,
}

async fn confirm(
    state: web::Data<AppState>,
    user: PageUser,
    form: web::Form<ConfirmForm>,
) -> PageResult {
    let f = form.into_inner();
    user.check_csrf(&f.csrf)?;
    let me = user.0.staff.clone();
    state
        .app
        .run(move |c, ctx| {
            let r = directory::role_by_id(c, &f.role)?;
            rota::confirm(c, ctx, &me, Some(&r))
        })
        .await?;
    see_other("/me#my-bleeps")
}

/// An import's report, as the admin reads it.
struct ReportView {
    headline: String,
    problems: Vec<String>,
    gaps: Vec<String>,
}

impl From<Report> for ReportView {
    fn from(r: Report) -> ReportView {
        let headline = match (r.problems.len(), r.dry_run, r.imported) {
            (0, _, true) => format!("Imported {} shifts.", r.shifts),
            (0, true, _) => format!(
                "All {} lines are right: nothing was changed yet. Import it to add them.",
                r.lines
            ),
            (n, _, _) => format!(
                "Nothing was imported: {n} problem{} to put right first.",
                if n == 1 { "" } else { "s" }
            ),
        };
        ReportView {
            headline,
            problems: r
                .problems
                .iter()
                .map(|p| format!("Line {}, {}: {}", p.line, p.field, p.message))
                .collect(),
            gaps: r.gaps.into_iter().map(|g| g.text).collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_rota.html")]
struct AdminRota {
    nav: Option<super::Nav>,
    csrf: String,
    zone: &'static str,
    gaps: Vec<String>,
    report: Option<ReportView>,
    csv: String,
    roles: Vec<RoleAllowed>,
    clinicians: Vec<(String, String)>,
    week: Vec<(String, String, String, String)>,
}

struct RoleAllowed {
    id: String,
    name: String,
    allowed: String,
}

async fn rota_page(
    state: &AppState,
    user: &PageUser,
    report: Option<ReportView>,
    csv: String,
) -> PageResult {
    user.require(&[Permission::Admin], "The rota page")?;
    let ctx = state.app.ctx();
    let zone = ctx.policy.zone;
    let (gaps, roles, clinicians, week) = state
        .store
        .read(move |c| {
            let gaps = rota_plan::coming_gaps(c, &ctx, 24)?
                .into_iter()
                .map(|g| g.text)
                .collect();
            let mut roles = Vec::new();
            for r in directory::list_roles(c)? {
                let ids = store::allowed(c, &r.id)?;
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                let mut names: Vec<String> =
                    directory::staff_names(c, &refs)?.into_values().collect();
                names.sort();
                roles.push(RoleAllowed {
                    allowed: if names.is_empty() {
                        "any clinician (nobody listed)".into()
                    } else {
                        names.join(", ")
                    },
                    id: r.id,
                    name: r.name,
                });
            }
            let clinicians = directory::list_staff(c)?
                .into_iter()
                .filter(|s| s.may_hold_bleep().is_ok())
                .map(|s| (s.id, s.name))
                .collect();
            let shifts = store::shifts(c, None, ctx.now, ctx.now + Duration::days(7))?;
            let people: Vec<&str> = shifts
                .iter()
                .filter_map(|s| s.staff_id.as_deref())
                .collect();
            let names = directory::staff_names(c, &people)?;
            let role_ids: Vec<&str> = shifts.iter().map(|s| s.role_id.as_str()).collect();
            let role_names = directory::role_names(c, &role_ids)?;
            let when = |t| zone.local(t).format("%a %-d %b %H:%M").to_string();
            let week = shifts
                .iter()
                .take(500)
                .map(|s| {
                    (
                        role_names.get(&s.role_id).cloned().unwrap_or_default(),
                        s.staff_id
                            .as_ref()
                            .and_then(|i| names.get(i).cloned())
                            .unwrap_or_else(|| "nobody".into()),
                        when(s.starts_at),
                        when(s.ends_at),
                    )
                })
                .collect();
            Ok((gaps, roles, clinicians, week))
        })
        .await?;
    ok(&AdminRota {
        nav: user.nav(),
        csrf: user.0.csrf.clone(),
        zone: zone.name(),
        gaps,
        report,
        csv,
        roles,
        clinicians,
        week,
    })
}

async fn admin_rota(state: web::Data<AppState>, user: PageUser) -> PageResult {
    rota_page(&state, &user, None, String::new()).await
}

#[derive(Deserialize)]
struct ImportForm {
    csrf: String,
    csv: String,
    mode: Option<String>,
}

async fn import(
    state: web::Data<AppState>,
    user: PageUser,
    req: HttpRequest,
    form: web::Form<ImportForm>,
) -> PageResult {
    user.require(&[Permission::Admin], "Importing a rota")?;
    let f = form.into_inner();
    user.check_csrf(&f.csrf)?;
    let dry_run = f.mode.as_deref() != Some("import");
    let (by, client, csv) = (
        user.0.staff.id.clone(),
        client_address(&req, &state),
        f.csv.clone(),
    );
    let report = state
        .app
        .run(move |c, ctx| {
            let r = rota_plan::import(c, ctx, &csv, dry_run)?;
            if r.imported {
                audit::record(
                    c,
                    Entry {
                        actor: Actor::Staff(&by),
                        action: AuditAction::RotaChanged,
                        subject: None,
                        detail: serde_json::json!({ "imported": r.shifts }),
                        client: Some(&client),
                    },
                    ctx.now,
                )?;
            }
            Ok(r)
        })
        .await?;
    let keep = if report.imported {
        String::new()
    } else {
        f.csv
    };
    rota_page(&state, &user, Some(report.into()), keep).await
}

#[derive(Deserialize)]
struct AllowForm {
    csrf: String,
    role: String,
    staff: String,
}

async fn allow(
    state: web::Data<AppState>,
    user: PageUser,
    req: HttpRequest,
    form: web::Form<AllowForm>,
) -> PageResult {
    user.require(&[Permission::Admin], "Saying who may hold a bleep")?;
    let f = form.into_inner();
    user.check_csrf(&f.csrf)?;
    let (by, client) = (user.0.staff.id.clone(), client_address(&req, &state));
    state
        .app
        .run(move |c, ctx| {
            let r = directory::role_by_id(c, &f.role)?;
            let who = directory::staff_by_id(c, &f.staff)?
                .ok_or_else(|| AppError::Unprocessable("no such member of staff".into()))?;
            who.may_hold_bleep().map_err(AppError::Unprocessable)?;
            store::allow(c, &r.id, &who.id, ctx.now)?;
            audit::record(
                c,
                Entry {
                    actor: Actor::Staff(&by),
                    action: AuditAction::RoleAllowed,
                    subject: Some(&r.id),
                    detail: serde_json::json!({ "role": r.name, "staff": who.id, "allowed": true }),
                    client: Some(&client),
                },
                ctx.now,
            )
        })
        .await?;
    see_other("/admin/rota#allowed-h")
}
