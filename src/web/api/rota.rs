//! The rota: shifts, patterns, imports and gaps for whoever plans it (admins); taking the
//! bleep, busy and confirming a hand-over for whoever holds one; calendar feeds.
use crate::app::rota::{self, Arrival, HandOver, NewSlot};
use crate::app::rota_plan::{self, Gap, NewPattern, Report};
use crate::domain::Permission;
use crate::error::{AppError, AppResult};
use crate::outbox::links::Purpose;
use crate::store::audit::{self, Action as AuditAction, Actor, Entry};
use crate::store::directory::{self, Role, Staff};
use crate::store::rota::{self as store, Busy, PatternRow, Shift};
use crate::store::DbConnection;
use crate::web::auth::{client_address, Caller};
use crate::web::errors::ErrorBody;
use crate::web::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

fn admin(staff: &Staff, what: &str) -> AppResult<()> {
    if staff.can(Permission::Admin) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!("only an admin may {what}")))
    }
}

fn role(c: &mut DbConnection, key: &str) -> AppResult<Role> {
    directory::find_role(c, key)?
        .ok_or_else(|| AppError::NotFound(format!("no on-call role {key:?}")))
}

fn person(c: &mut DbConnection, field: &str, key: &str) -> AppResult<Staff> {
    directory::find_staff(c, key).map_err(|e| AppError::Unprocessable(format!("{field}: {e}")))
}

fn rota_changed(
    c: &mut DbConnection,
    by: &Staff,
    client: &str,
    subject: Option<&str>,
    detail: serde_json::Value,
    now: DateTime<Utc>,
) -> AppResult<()> {
    audit::record(
        c,
        Entry {
            actor: Actor::Staff(&by.id),
            action: AuditAction::RotaChanged,
            subject,
            detail,
            client: Some(client),
        },
        now,
    )
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RotaQuery {
    /// A role's id or name (all roles if absent).
    role: Option<String>,
    /// From (RFC 3339 or local `2026-12-24 20:00`); now if absent.
    from: Option<String>,
    /// Days to show from `from` (1 to 62; 7 if absent).
    days: Option<i64>,
}

/// A shift with the names a reader needs.
#[derive(Serialize, ToSchema)]
pub struct ShiftLine {
    #[serde(flatten)]
    pub shift: Shift,
    pub role: String,
    pub staff: Option<String>,
    pub replaces_name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ShiftList {
    pub shifts: Vec<ShiftLine>,
}

fn lines(c: &mut DbConnection, shifts: Vec<Shift>) -> AppResult<Vec<ShiftLine>> {
    let ids: Vec<&str> = shifts
        .iter()
        .flat_map(|s| [s.staff_id.as_deref(), s.replaces.as_deref()])
        .flatten()
        .collect();
    let names = directory::staff_names(c, &ids)?;
    let roles: Vec<&str> = shifts.iter().map(|s| s.role_id.as_str()).collect();
    let role_names = directory::role_names(c, &roles)?;
    Ok(shifts
        .into_iter()
        .map(|s| ShiftLine {
            role: role_names.get(&s.role_id).cloned().unwrap_or_default(),
            staff: s.staff_id.as_ref().and_then(|i| names.get(i).cloned()),
            replaces_name: s.replaces.as_ref().and_then(|i| names.get(i).cloned()),
            shift: s,
        })
        .collect())
}

/// The rota: shifts and overrides overlapping a window, by start.
#[utoipa::path(get, path = "/api/v1/rota", tag = "rota", params(RotaQuery),
    responses(
        (status = 200, description = "The shifts", body = ShiftList),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 422, description = "A bad time or number of days", body = ErrorBody),
    ))]
pub(super) async fn list_shifts(
    state: web::Data<AppState>,
    _caller: Caller,
    q: web::Query<RotaQuery>,
) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let zone = state.app.policy.zone;
    let from = match &q.from {
        Some(f) => zone
            .parse_time(f)
            .map_err(|e| AppError::Unprocessable(format!("from: {e}")))?,
        None => state.clock.now(),
    };
    let days = q.days.unwrap_or(7);
    if !(1..=62).contains(&days) {
        return Err(AppError::Unprocessable(format!(
            "days is {days}: show 1 to 62 days"
        )));
    }
    let shifts = state
        .store
        .read(move |c| {
            let roles = match &q.role {
                Some(k) => Some(vec![role(c, k)?.id]),
                None => None,
            };
            let s = store::shifts(c, roles.as_deref(), from, from + Duration::days(days))?;
            lines(c, s)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ShiftList { shifts }))
}

/// A shift, or an override (swap, cover, sickness), to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ShiftBody {
    /// The role's id or name.
    role: String,
    /// Who holds it (id, email or name); absent for an override that takes someone off.
    staff: Option<String>,
    /// For an override: whom it replaces for its span.
    replaces: Option<String>,
    /// Local time (`2026-12-24 20:00`) or RFC 3339 with an offset.
    start: String,
    end: String,
    note: Option<String>,
}

/// Adds a shift or an override (admins). If it covers now, the bleep changes hands at once.
#[utoipa::path(post, path = "/api/v1/rota/shifts", tag = "rota", request_body = ShiftBody,
    responses(
        (status = 201, description = "The shift", body = Shift),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 409, description = "The person is already on the rota then", body = ErrorBody),
        (status = 422, description = "A bad time, a reversed shift, or someone who may not hold the role", body = ErrorBody),
    ))]
pub(super) async fn add_shift(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(by): Caller,
    body: web::Json<ShiftBody>,
) -> AppResult<HttpResponse> {
    admin(&by, "change the rota")?;
    let b = body.into_inner();
    let zone = state.app.policy.zone;
    let starts = zone
        .parse_time(&b.start)
        .map_err(|e| AppError::Unprocessable(format!("start: {e}")))?;
    let ends = zone
        .parse_time(&b.end)
        .map_err(|e| AppError::Unprocessable(format!("end: {e}")))?;
    let client = client_address(&req, &state);
    let shift = state
        .app
        .run(move |c, ctx| {
            let r = role(c, &b.role)?;
            let staff = b
                .staff
                .as_deref()
                .map(|k| person(c, "staff", k))
                .transpose()?;
            let replaces = b
                .replaces
                .as_deref()
                .map(|k| person(c, "replaces", k))
                .transpose()?;
            let note = b
                .note
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty());
            if note.as_ref().is_some_and(|n| n.chars().count() > 200) {
                return Err(AppError::Unprocessable(
                    "note is longer than 200 characters".into(),
                ));
            }
            let s = rota::add_slot(
                c,
                ctx,
                NewSlot {
                    role: &r,
                    staff: staff.as_ref(),
                    replaces: replaces.as_ref(),
                    starts,
                    ends,
                    note,
                },
            )?;
            rota_changed(
                c,
                &by,
                &client,
                Some(&r.id),
                json!({ "added": s.id }),
                ctx.now,
            )?;
            Ok(s)
        })
        .await?;
    Ok(HttpResponse::Created().json(shift))
}

/// Removes a shift (admins). If it covered now, the bleep changes hands at once.
#[utoipa::path(delete, path = "/api/v1/rota/shifts/{id}", tag = "rota",
    params(("id" = String, Path, description = "The shift's id")),
    responses(
        (status = 200, description = "The shift removed", body = Shift),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such shift", body = ErrorBody),
    ))]
pub(super) async fn remove_shift(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(by): Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    admin(&by, "change the rota")?;
    let id = id.into_inner();
    let client = client_address(&req, &state);
    let shift = state
        .app
        .run(move |c, ctx| {
            let s = rota::remove_slot(c, ctx, &id)?;
            rota_changed(
                c,
                &by,
                &client,
                Some(&s.role_id),
                json!({ "removed": s.id }),
                ctx.now,
            )?;
            Ok(s)
        })
        .await?;
    Ok(HttpResponse::Ok().json(shift))
}

/// A recurring pattern: these days, from `starts` to `ends` local time (an end at or before
/// the start is the next morning), from `first_day` to `last_day`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PatternBody {
    role: String,
    staff: String,
    /// `daily`, `weekdays`, `weekends` or days such as `Mon,Wed,Fri`.
    weekdays: String,
    /// `20:00`
    starts: String,
    /// `08:00`
    ends: String,
    /// `2026-12-01`
    first_day: String,
    last_day: String,
}

#[derive(Serialize, ToSchema)]
pub struct PatternAdded {
    pub pattern: PatternRow,
}

/// Adds a recurring pattern as its shifts (admins): all of them or, on any clash or a time
/// a clock change removes or doubles, none.
#[utoipa::path(post, path = "/api/v1/rota/patterns", tag = "rota", request_body = PatternBody,
    responses(
        (status = 201, description = "The pattern", body = PatternAdded),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 409, description = "A shift clashes with one already on the rota", body = ErrorBody),
        (status = 422, description = "A bad day, time or pattern", body = ErrorBody),
    ))]
pub(super) async fn add_pattern(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(by): Caller,
    body: web::Json<PatternBody>,
) -> AppResult<HttpResponse> {
    admin(&by, "change the rota")?;
    let b = body.into_inner();
    let client = client_address(&req, &state);
    let pattern = state
        .app
        .run(move |c, ctx| {
            let r = role(c, &b.role)?;
            let staff = person(c, "staff", &b.staff)?;
            let p = rota_plan::add_pattern(
                c,
                ctx,
                NewPattern {
                    role: &r,
                    staff: &staff,
                    weekdays: &b.weekdays,
                    starts: &b.starts,
                    ends: &b.ends,
                    first_day: &b.first_day,
                    last_day: &b.last_day,
                },
            )?;
            rota_changed(
                c,
                &by,
                &client,
                Some(&r.id),
                json!({ "pattern": p.id }),
                ctx.now,
            )?;
            Ok(p)
        })
        .await?;
    Ok(HttpResponse::Created().json(PatternAdded { pattern }))
}

/// The largest rota import accepted.
const MAX_IMPORT: usize = 4 * 1024 * 1024;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ImportQuery {
    /// Check and report only; change nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Imports a rota from CSV (admins): one shift a line, `role, staff email, start, end`,
/// and optionally whom the line replaces; a header line is allowed. All or nothing: any
/// problem refuses the whole file, with every problem named by line and field.
#[utoipa::path(post, path = "/api/v1/rota/import", tag = "rota", params(ImportQuery),
    request_body(content = String, content_type = "text/csv"),
    responses(
        (status = 200, description = "What was imported, or in a dry run what would be", body = Report),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 413, description = "Too many lines", body = ErrorBody),
        (status = 415, description = "Not text", body = ErrorBody),
        (status = 422, description = "Nothing imported: error.report is the report, naming each problem by line and field", body = ErrorBody),
    ))]
pub(super) async fn import(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(by): Caller,
    q: web::Query<ImportQuery>,
    mut body: web::Payload,
) -> AppResult<HttpResponse> {
    admin(&by, "import a rota")?;
    let ct = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(ct.starts_with("text/csv") || ct.starts_with("text/plain")) {
        return Err(AppError::UnsupportedMediaType(
            "send the rota as text/csv".into(),
        ));
    }
    // A month's rota is larger than the API's usual limit: read up to MAX_IMPORT here.
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
        let chunk =
            chunk.map_err(|e| AppError::BadRequest(format!("the rota could not be read: {e}")))?;
        if bytes.len() + chunk.len() > MAX_IMPORT {
            return Err(AppError::PayloadTooLarge(format!(
                "a rota import is at most {} MB; split it by month",
                MAX_IMPORT / 1024 / 1024
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| AppError::BadRequest("the rota is not UTF-8 text".into()))?;
    let dry_run = q.dry_run;
    let client = client_address(&req, &state);
    let report = state
        .app
        .run(move |c, ctx| {
            let r = rota_plan::import(c, ctx, &text, dry_run)?;
            if r.imported {
                rota_changed(
                    c,
                    &by,
                    &client,
                    None,
                    json!({ "imported": r.shifts }),
                    ctx.now,
                )?;
            }
            Ok(r)
        })
        .await?;
    let Some(first) = report.problems.first() else {
        return Ok(HttpResponse::Ok().json(report));
    };
    // The one error shape, with the whole report in it.
    let message = format!(
        "the rota was not imported: {} problem{}; the first is line {}, {}: {}",
        report.problems.len(),
        if report.problems.len() == 1 { "" } else { "s" },
        first.line,
        first.field,
        first.message
    );
    Ok(HttpResponse::UnprocessableEntity()
        .json(json!({ "error": { "code": "invalid", "message": message, "report": report } })))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct GapsQuery {
    /// How far ahead to look, in hours (1 to 168; 24 if absent).
    hours: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Gaps {
    pub gaps: Vec<Gap>,
}

/// Cover gaps: the periods ahead when a role has nobody on its rota.
#[utoipa::path(get, path = "/api/v1/rota/gaps", tag = "rota", params(GapsQuery),
    responses(
        (status = 200, description = "The gaps, soonest first", body = Gaps),
        (status = 422, description = "A bad number of hours", body = ErrorBody),
    ))]
pub(super) async fn gaps(
    state: web::Data<AppState>,
    _caller: Caller,
    q: web::Query<GapsQuery>,
) -> AppResult<HttpResponse> {
    let hours = q.hours.unwrap_or(24);
    if !(1..=168).contains(&hours) {
        return Err(AppError::Unprocessable(format!(
            "hours is {hours}: look 1 to 168 hours ahead"
        )));
    }
    let ctx = state.app.ctx();
    let gaps = state
        .store
        .read(move |c| rota_plan::coming_gaps(c, &ctx, hours))
        .await?;
    Ok(HttpResponse::Ok().json(Gaps { gaps }))
}

/// Takes the bleep at the start of a shift: the caller holds the role from now, and its
/// previous holders are told. Only for a role an admin listed the caller for.
#[utoipa::path(post, path = "/api/v1/roles/{id}/take", tag = "rota",
    params(("id" = String, Path, description = "The role's id or name")),
    responses(
        (status = 200, description = "The bleep changed hands", body = HandOver),
        (status = 403, description = "Not listed for this role", body = ErrorBody),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 409, description = "The caller already holds it alone", body = ErrorBody),
    ))]
pub(super) async fn take(
    state: web::Data<AppState>,
    Caller(who): Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let key = id.into_inner();
    let h = state
        .app
        .run(move |c, ctx| {
            let r = role(c, &key)?;
            rota::take(c, ctx, &who, &r)
        })
        .await?;
    Ok(HttpResponse::Ok().json(h))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AllowBody {
    /// A member of staff (id, email or name).
    staff: String,
    /// False to take them off the list.
    #[serde(default = "yes")]
    allowed: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize, ToSchema)]
pub struct Allowed {
    pub role: Role,
    /// Who may hold it (empty: anyone who may hold a bleep, until an admin lists people).
    pub allowed: Vec<crate::domain::timeline::Person>,
}

fn allowed_of(c: &mut DbConnection, r: Role) -> AppResult<Allowed> {
    let ids = store::allowed(c, &r.id)?;
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let names = directory::staff_names(c, &refs)?;
    let mut allowed: Vec<_> = ids
        .iter()
        .map(|i| crate::domain::timeline::Person {
            id: i.clone(),
            name: names.get(i).cloned().unwrap_or_default(),
        })
        .collect();
    allowed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Allowed { role: r, allowed })
}

/// Who may hold a role.
#[utoipa::path(get, path = "/api/v1/roles/{id}/allowed", tag = "rota",
    params(("id" = String, Path, description = "The role's id or name")),
    responses(
        (status = 200, description = "Who may hold it", body = Allowed),
        (status = 404, description = "No such role", body = ErrorBody),
    ))]
pub(super) async fn list_allowed(
    state: web::Data<AppState>,
    _caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let key = id.into_inner();
    let a = state
        .store
        .read(move |c| {
            let r = role(c, &key)?;
            allowed_of(c, r)
        })
        .await?;
    Ok(HttpResponse::Ok().json(a))
}

/// Lists (or unlists) a person as one who may hold a role (admins): only they can take
/// it, be handed it or be put on its rota.
#[utoipa::path(post, path = "/api/v1/roles/{id}/allowed", tag = "rota",
    params(("id" = String, Path, description = "The role's id or name")),
    request_body = AllowBody,
    responses(
        (status = 200, description = "Who may hold it now", body = Allowed),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 422, description = "No such person, or they may not hold a bleep", body = ErrorBody),
    ))]
pub(super) async fn set_allowed(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(by): Caller,
    id: web::Path<String>,
    body: web::Json<AllowBody>,
) -> AppResult<HttpResponse> {
    admin(&by, "say who may hold a role")?;
    let key = id.into_inner();
    let b = body.into_inner();
    let client = client_address(&req, &state);
    let a = state
        .app
        .run(move |c, ctx| {
            let r = role(c, &key)?;
            let who = person(c, "staff", &b.staff)?;
            if b.allowed {
                who.may_hold_bleep().map_err(AppError::Unprocessable)?;
                store::allow(c, &r.id, &who.id, ctx.now)?;
            } else {
                store::disallow(c, &r.id, &who.id)?;
            }
            audit::record(
                c,
                Entry {
                    actor: Actor::Staff(&by.id),
                    action: AuditAction::RoleAllowed,
                    subject: Some(&r.id),
                    detail: json!({ "role": r.name, "staff": who.id, "allowed": b.allowed }),
                    client: Some(&client),
                },
                ctx.now,
            )?;
            allowed_of(c, r)
        })
        .await?;
    Ok(HttpResponse::Ok().json(a))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BusyBody {
    /// For how long, 1 to 240 minutes; 0 ends it now.
    minutes: i64,
    /// What keeps you ("in resus"), shown on the dashboard.
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BusyNow {
    /// Until when new bleeps pass you by (none: not busy).
    pub busy_until: Option<DateTime<Utc>>,
}

/// Marks the caller busy: new tasks and escalations go to co-holders or on up the chain
/// until it ends (by itself, or with minutes 0).
#[utoipa::path(put, path = "/api/v1/me/busy", tag = "rota", request_body = BusyBody,
    responses(
        (status = 200, description = "Busy until", body = BusyNow),
        (status = 422, description = "A bad number of minutes or too long a reason", body = ErrorBody),
    ))]
pub(super) async fn set_busy(
    state: web::Data<AppState>,
    Caller(who): Caller,
    body: web::Json<BusyBody>,
) -> AppResult<HttpResponse> {
    let b = body.into_inner();
    let busy_until = state
        .app
        .run(move |c, ctx| rota::set_busy(c, ctx, &who, b.minutes, b.reason.as_deref()))
        .await?;
    Ok(HttpResponse::Ok().json(BusyNow { busy_until }))
}

#[derive(Serialize, ToSchema)]
pub struct BusyList {
    pub busy: Vec<Busy>,
}

/// Who is busy now.
#[utoipa::path(get, path = "/api/v1/busy", tag = "rota",
    responses((status = 200, description = "Who is busy, and until when", body = BusyList)))]
pub(super) async fn list_busy(
    state: web::Data<AppState>,
    _caller: Caller,
) -> AppResult<HttpResponse> {
    let now = state.clock.now();
    let busy = state.store.read(move |c| store::busy(c, now)).await?;
    Ok(HttpResponse::Ok().json(BusyList { busy }))
}

#[derive(Serialize, ToSchema)]
pub struct Arrivals {
    pub arrivals: Vec<Arrival>,
}

/// The bleeps handed to the caller and not yet confirmed, with the tasks that came with
/// each.
#[utoipa::path(get, path = "/api/v1/me/hand-over", tag = "rota",
    responses((status = 200, description = "What to confirm", body = Arrivals)))]
pub(super) async fn my_hand_over(
    state: web::Data<AppState>,
    Caller(who): Caller,
) -> AppResult<HttpResponse> {
    let ctx = state.app.ctx();
    let arrivals = state
        .store
        .read(move |c| rota::arrivals(c, &ctx, &who.id))
        .await?;
    Ok(HttpResponse::Ok().json(Arrivals { arrivals }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfirmBody {
    /// One role (id or name); all if absent.
    role: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Confirmed {
    pub confirmed: usize,
}

/// Confirms a hand-over: the caller has seen what they inherited.
#[utoipa::path(post, path = "/api/v1/me/hand-over/confirm", tag = "rota", request_body = ConfirmBody,
    responses(
        (status = 200, description = "How many bleeps were confirmed", body = Confirmed),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 409, description = "Nothing to confirm", body = ErrorBody),
    ))]
pub(super) async fn confirm(
    state: web::Data<AppState>,
    Caller(who): Caller,
    body: web::Json<ConfirmBody>,
) -> AppResult<HttpResponse> {
    let key = body.into_inner().role;
    let confirmed = state
        .app
        .run(move |c, ctx| {
            let r = key.as_deref().map(|k| role(c, k)).transpose()?;
            rota::confirm(c, ctx, &who, r.as_ref())
        })
        .await?;
    Ok(HttpResponse::Ok().json(Confirmed { confirmed }))
}

#[derive(Serialize, ToSchema)]
pub struct Feed {
    /// A secret address: a phone's calendar subscribes to it. Anyone with it can read the
    /// shifts in it, so keep it as you would a password.
    pub url: String,
}

/// The secret calendar (iCalendar) address of the caller's own shifts.
#[utoipa::path(get, path = "/api/v1/me/calendar", tag = "rota",
    responses((status = 200, description = "The feed's address", body = Feed)))]
pub(super) async fn my_calendar(
    state: web::Data<AppState>,
    Caller(who): Caller,
) -> AppResult<HttpResponse> {
    let url = super::super::calendar::address(&state, Purpose::StaffCalendar, &who.id)?;
    Ok(HttpResponse::Ok().json(Feed { url }))
}

/// The secret calendar (iCalendar) address of a role's rota.
#[utoipa::path(get, path = "/api/v1/roles/{id}/calendar", tag = "rota",
    params(("id" = String, Path, description = "The role's id or name")),
    responses(
        (status = 200, description = "The feed's address", body = Feed),
        (status = 404, description = "No such role", body = ErrorBody),
    ))]
pub(super) async fn role_calendar(
    state: web::Data<AppState>,
    _caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let key = id.into_inner();
    let r = state.store.read(move |c| role(c, &key)).await?;
    let url = super::super::calendar::address(&state, Purpose::RoleCalendar, &r.id)?;
    Ok(HttpResponse::Ok().json(Feed { url }))
}
