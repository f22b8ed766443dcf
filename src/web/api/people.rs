//! People and bleeps: who I am, wards, roles and their holders, hand-over, staff, the
//! audit log, passwords.
use super::views::{AuditLog, HandedOver, Me, RoleLine, RoleRef, Roles, StaffList, Wards};
use crate::app::roles::HandedBy;
use crate::domain::timeline::Person;
use crate::domain::Permission;
use crate::error::{AppError, AppResult};
use crate::store::audit::{self, Action as AuditAction, Actor, Entry};
use crate::store::directory;
use crate::store::directory::{Deactivated, Role};
use crate::store::sessions;
use crate::store::throttle::{self, Bucket};
use crate::web::auth::Caller;
use crate::web::auth::{client_address, SESSION_COOKIE};
use crate::web::errors::ErrorBody;
use crate::web::AppState;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

/// The caller, and the bleeps they hold now.
#[utoipa::path(get, path = "/api/v1/me", tag = "people",
    responses((status = 200, description = "The caller", body = Me)))]
pub(super) async fn me(
    state: web::Data<AppState>,
    Caller(staff): Caller,
) -> AppResult<HttpResponse> {
    let id = staff.id.clone();
    let roles = state
        .store
        .read(move |c| {
            let held = directory::roles_held_by(c, &id)?;
            let refs: Vec<&str> = held.iter().map(String::as_str).collect();
            let names = directory::role_names(c, &refs)?;
            Ok(held
                .into_iter()
                .map(|r| RoleRef {
                    name: names.get(&r).cloned().unwrap_or_default(),
                    id: r,
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(HttpResponse::Ok().json(Me {
        staff,
        holds: roles,
    }))
}

/// The wards' names.
#[utoipa::path(get, path = "/api/v1/wards", tag = "people",
    responses((status = 200, description = "The wards", body = Wards)))]
pub(super) async fn list_wards(
    state: web::Data<AppState>,
    _caller: Caller,
) -> AppResult<HttpResponse> {
    let wards = state.store.read(directory::list_wards).await?;
    Ok(HttpResponse::Ok().json(Wards { wards }))
}

/// The on-call roles (bleeps), with their escalation and who holds them.
#[utoipa::path(get, path = "/api/v1/roles", tag = "people",
    responses((status = 200, description = "The on-call roles", body = Roles)))]
pub(super) async fn list_roles(
    state: web::Data<AppState>,
    _caller: Caller,
) -> AppResult<HttpResponse> {
    let roles = state
        .store
        .read(|c| {
            let roles = directory::list_roles(c)?;
            let mut out = Vec::new();
            for r in roles {
                let holders = directory::current_holders(c, &r.id)?;
                let refs: Vec<&str> = holders.iter().map(String::as_str).collect();
                let names = directory::staff_names(c, &refs)?;
                let held_by: Vec<Person> = holders
                    .iter()
                    .map(|h| Person {
                        id: h.clone(),
                        name: names.get(h).cloned().unwrap_or_default(),
                    })
                    .collect();
                out.push(RoleLine {
                    id: r.id,
                    name: r.name,
                    escalates_to: r.escalates_to,
                    held_by,
                });
            }
            Ok(out)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Roles { roles }))
}

/// Who takes the bleep.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct HandOverBody {
    /// A member of staff's id.
    to: String,
    /// Hold it together with the present holders rather than instead of them.
    #[serde(default)]
    share: bool,
}

/// Hands an on-call role (a bleep) to a member of staff.
#[utoipa::path(post, path = "/api/v1/roles/{id}/hand-over", tag = "people",
    params(("id" = String, Path, description = "The role's id or name")),
    request_body = HandOverBody,
    responses(
        (status = 200, description = "Who holds the role now", body = HandedOver),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 422, description = "No such member of staff, or they may not hold a bleep", body = ErrorBody),
    ))]
pub(super) async fn hand_over(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(staff): Caller,
    id: web::Path<String>,
    body: web::Json<HandOverBody>,
) -> AppResult<HttpResponse> {
    let role_key = id.into_inner();
    let HandOverBody { to: to_key, share } = body.into_inner();
    let client = client_address(&req, &state);
    let result = state
        .app
        .run(move |c, ctx| {
            let role = directory::find_role(c, &role_key)?
                .ok_or_else(|| AppError::NotFound(format!("no on-call role {role_key:?}")))?;
            let to = directory::staff_by_id(c, &to_key)?.ok_or_else(|| {
                AppError::Unprocessable(format!("to: no member of staff with id {to_key:?}"))
            })?;
            crate::app::roles::hand_over(c, ctx, &role, &to, share, HandedBy::Staff(&staff))?;
            audit::record(
                c,
                Entry {
                    actor: Actor::Staff(&staff.id),
                    action: AuditAction::HandedOver,
                    subject: Some(&role.id),
                    detail: json!({ "role": role.name, "to": to.id, "share": share }),
                    client: Some(&client),
                },
                ctx.now,
            )?;
            Ok(HandedOver {
                role,
                held_by: Person {
                    id: to.id,
                    name: to.name,
                },
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(result))
}

/// Every member of staff.
#[utoipa::path(get, path = "/api/v1/staff", tag = "people",
    responses((status = 200, description = "The staff", body = StaffList)))]
pub(super) async fn list_staff(
    state: web::Data<AppState>,
    _caller: Caller,
) -> AppResult<HttpResponse> {
    let staff = state.store.read(directory::list_staff).await?;
    Ok(HttpResponse::Ok().json(StaffList { staff }))
}

/// Where a role's tasks escalate to.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EscalateBody {
    /// The next role (id or name), or null to end the chain here.
    to: Option<String>,
}

/// Sets the role a role's unanswered tasks escalate to (admins only).
#[utoipa::path(post, path = "/api/v1/roles/{id}/escalate", tag = "people",
    params(("id" = String, Path, description = "The role's id or name")),
    request_body = EscalateBody,
    responses(
        (status = 200, description = "The role as it is now", body = Role),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such role", body = ErrorBody),
        (status = 422, description = "No such next role, or the chain would loop", body = ErrorBody),
    ))]
pub(super) async fn set_escalation(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(staff): Caller,
    id: web::Path<String>,
    body: web::Json<EscalateBody>,
) -> AppResult<HttpResponse> {
    if !staff.can(Permission::Admin) {
        return Err(AppError::Forbidden(
            "only an admin may change escalation chains".into(),
        ));
    }
    let key = id.into_inner();
    let to = body.into_inner().to;
    let (client, now) = (client_address(&req, &state), state.clock.now());
    let role = state
        .store
        .write(move |c| {
            let role = directory::find_role(c, &key)?
                .ok_or_else(|| AppError::NotFound(format!("no on-call role {key:?}")))?;
            let next = match &to {
                Some(n) => Some(directory::find_role(c, n)?.ok_or_else(|| {
                    AppError::Unprocessable(format!("to: no on-call role {n:?}"))
                })?),
                None => None,
            };
            directory::set_escalation(c, &role, next.as_ref())?;
            audit::record(
                c,
                Entry {
                    actor: Actor::Staff(&staff.id),
                    action: AuditAction::EscalationSet,
                    subject: Some(&role.id),
                    detail: json!({ "role": role.name, "to": next.as_ref().map(|n| &n.name) }),
                    client: Some(&client),
                },
                now,
            )?;
            directory::role_by_id(c, &role.id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(role))
}

/// Deactivates a leaver: their sessions, API token, devices and bleeps end at once.
#[utoipa::path(post, path = "/api/v1/staff/{id}/deactivate", tag = "people",
    params(("id" = String, Path, description = "The member of staff's id")),
    responses(
        (status = 200, description = "What was ended", body = Deactivated),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such member of staff", body = ErrorBody),
        (status = 409, description = "Already inactive", body = ErrorBody),
        (status = 422, description = "An admin cannot deactivate themselves", body = ErrorBody),
    ))]
pub(super) async fn deactivate_staff(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(admin): Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    if !admin.can(Permission::Admin) {
        return Err(AppError::Forbidden(
            "only an admin may deactivate staff".into(),
        ));
    }
    let id = id.into_inner();
    if id == admin.id {
        return Err(AppError::Unprocessable(
            "you cannot deactivate yourself: ask another admin".into(),
        ));
    }
    let client = client_address(&req, &state);
    let done = state
        .app
        .run(move |c, ctx| {
            crate::app::staff::deactivate(c, ctx, &id, Actor::Staff(&admin.id), Some(&client))
        })
        .await?;
    Ok(HttpResponse::Ok().json(done))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditParams {
    /// Only entries of this action, e.g. `sign_in_failed`.
    action: Option<String>,
    /// 1 to 1000; 100 when not given.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// The audit log, newest first: for admins.
#[utoipa::path(get, path = "/api/v1/audit", tag = "people",
    params(AuditParams),
    responses(
        (status = 200, description = "Audit entries, newest first", body = AuditLog),
        (status = 400, description = "A parameter is not valid", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
pub(super) async fn audit_log(
    state: web::Data<AppState>,
    Caller(staff): Caller,
    params: web::Query<AuditParams>,
) -> AppResult<HttpResponse> {
    if !staff.can(Permission::Admin) {
        return Err(AppError::Forbidden("the audit log is for admins".into()));
    }
    let p = params.into_inner();
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit is {limit}; give 1 to 1000"
        )));
    }
    let action = match p.action {
        Some(a) => Some(
            AuditAction::parse(a.trim())
                .map_err(|e| AppError::BadRequest(format!("action: {e}")))?,
        ),
        None => None,
    };
    let entries = state
        .store
        .read(move |c| audit::list(c, limit, action.map(AuditAction::code)))
        .await?;
    Ok(HttpResponse::Ok().json(AuditLog { entries }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// Changes the caller's own password: the current one must be given (counted like a
/// sign-in attempt), and every other session of theirs ends.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "people",
    request_body = PasswordBody,
    responses(
        (status = 204, description = "Changed; the caller's other sessions have ended"),
        (status = 403, description = "The current password is not right", body = ErrorBody),
        (status = 422, description = "The new password will not do, or the caller has no password", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords", body = ErrorBody,
            headers(("Retry-After" = i64, description = "Seconds to wait"))),
    ))]
pub(super) async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    Caller(staff): Caller,
    body: web::Json<PasswordBody>,
) -> AppResult<HttpResponse> {
    let PasswordBody {
        current_password,
        new_password,
    } = body.into_inner();
    // A new password that will not do is refused before anything is counted.
    sessions::check_new_password(&new_password)?;
    let email = staff.email.clone().ok_or_else(|| {
        AppError::Unprocessable("you have no email address, so no password: ask an admin".into())
    })?;
    let (now, client) = (state.clock.now(), client_address(&req, &state));
    let limits = &state.config.security;
    let window =
        chrono::Duration::from_std(limits.lockout).unwrap_or(chrono::Duration::minutes(15));
    let account = Bucket::account(&email, limits.failures_per_account);
    let counted = {
        let (account, email) = (account.clone(), email.clone());
        state
            .store
            .write(move |c| {
                let buckets = [account];
                if let Some(wait) = throttle::locked_for(c, &buckets, now)? {
                    return Ok(Err(wait));
                }
                throttle::attempt(c, &buckets, window, now)?;
                Ok(Ok(sessions::password_of(c, &email)?.map(|(_, hash)| hash)))
            })
            .await?
    };
    let hash = match counted {
        Ok(hash) => hash,
        Err(wait) => {
            let mut res = AppError::TooManyRequests(format!(
                "too many wrong passwords: try again in {} minutes",
                (wait.num_seconds() + 59) / 60
            ))
            .error_response();
            res.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                wait.num_seconds().max(1).into(),
            );
            return Ok(res);
        }
    };
    let checked = web::block(move || {
        let right = sessions::verify_password(hash.as_deref(), &current_password);
        (right, right.then(|| sessions::hash_password(&new_password)))
    })
    .await
    .map_err(|e| AppError::Internal(format!("password check: {e}")))?;
    let keep = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
    let ended = state
        .store
        .write(move |c| {
            let (subject, action) = match &checked {
                (true, _) => (staff.id.as_str(), AuditAction::PasswordSet),
                (false, _) => (email.as_str(), AuditAction::SignInFailed),
            };
            let entry = Entry {
                actor: Actor::Staff(&staff.id),
                action,
                subject: Some(subject),
                detail: json!({ "via": "password change" }),
                client: Some(&client),
            };
            let (true, Some(new_hash)) = checked else {
                audit::record(c, entry, now)?;
                return Ok(Err(()));
            };
            let new_hash = new_hash?;
            sessions::store_password(c, &staff.id, &new_hash, keep.as_deref())?;
            throttle::clear(c, &account)?;
            audit::record(c, entry, now)?;
            Ok(Ok(()))
        })
        .await?;
    ended.map_err(|()| AppError::Forbidden("the current password is not right".into()))?;
    Ok(HttpResponse::NoContent().finish())
}
