//! Calendar feeds (iCalendar, RFC 5545) of the rota at secret addresses: a phone's
//! calendar subscribes to a person's shifts or a role's. The address is a code signed with
//! the link secret for the person or the role, so it needs no session (a calendar app has
//! none) and cannot be made up; anyone holding it can read the shifts in it.
use crate::domain::icalendar::{calendar, Event};
use crate::error::{AppError, AppResult};
use crate::outbox::links::Purpose;
use crate::store::directory;
use crate::store::rota::{self, Shift};
use crate::web::errors::ErrorBody;
use crate::web::AppState;
use actix_web::{web, HttpResponse};
use chrono::Duration;

/// The feed's address for a person or a role.
pub fn address(state: &AppState, purpose: Purpose, id: &str) -> AppResult<String> {
    let code = state
        .links
        .seal(purpose, &[id])
        .ok_or_else(|| AppError::NotFound("this has no calendar".into()))?;
    Ok(format!("{}/calendar/{code}.ics", state.config.public_url))
}

/// Days of the past a feed still shows, and days ahead.
const PAST_DAYS: i64 = 14;
const AHEAD_DAYS: i64 = 120;

/// A rota as a calendar a phone subscribes to: a person's shifts, or a role's.
#[utoipa::path(get, path = "/calendar/{code}", tag = "rota",
    security(()),
    params(("code" = String, Path, description = "The feed's secret code (with .ics)")),
    responses(
        (status = 200, description = "The calendar", content_type = "text/calendar", body = String),
        (status = 404, description = "No such feed", body = ErrorBody),
    ))]
pub(super) async fn feed(
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> AppResult<HttpResponse> {
    let code = code.into_inner();
    let code = code.strip_suffix(".ics").unwrap_or(&code).to_string();
    let (staff, role) = (
        state.links.open(Purpose::StaffCalendar, &code, 1).ok(),
        state.links.open(Purpose::RoleCalendar, &code, 1).ok(),
    );
    let now = state.clock.now();
    let (from, to) = (
        now - Duration::days(PAST_DAYS),
        now + Duration::days(AHEAD_DAYS),
    );
    let body = state
        .store
        .read(move |c| {
            let (name, shifts, of_person): (String, Vec<Shift>, bool) = match (staff, role) {
                (Some(s), _) => {
                    let who = directory::staff_by_id(c, &s[0])?
                        .ok_or_else(|| AppError::NotFound("no such calendar".into()))?;
                    (
                        format!("Bleepless: {}", who.name),
                        rota::shifts_of_staff(c, &who.id, from, to)?,
                        true,
                    )
                }
                (None, Some(r)) => {
                    let role = directory::role_by_id(c, &r[0])
                        .map_err(|_| AppError::NotFound("no such calendar".into()))?;
                    let s = rota::shifts(c, Some(std::slice::from_ref(&role.id)), from, to)?;
                    (format!("Bleepless: {}", role.name), s, false)
                }
                (None, None) => return Err(AppError::NotFound("no such calendar".into())),
            };
            let people: Vec<&str> = shifts
                .iter()
                .flat_map(|s| [s.staff_id.as_deref(), s.replaces.as_deref()])
                .flatten()
                .collect();
            let names = directory::staff_names(c, &people)?;
            let roles: Vec<&str> = shifts.iter().map(|s| s.role_id.as_str()).collect();
            let role_names = directory::role_names(c, &roles)?;
            let name_of = |id: &Option<String>| {
                id.as_ref()
                    .and_then(|i| names.get(i).cloned())
                    .unwrap_or_else(|| "nobody".into())
            };
            let events: Vec<Event> = shifts
                .iter()
                .map(|s| {
                    let role = role_names.get(&s.role_id).cloned().unwrap_or_default();
                    let who = name_of(&s.staff_id);
                    let summary = if of_person { role.clone() } else { who.clone() };
                    let mut description = format!("{who} holds {role}");
                    if s.replaces.is_some() {
                        description.push_str(&format!(", instead of {}", name_of(&s.replaces)));
                    }
                    if let Some(n) = &s.note {
                        description.push_str(&format!(". {n}"));
                    }
                    Event {
                        uid: format!("{}@bleepless", s.id),
                        starts: s.starts_at,
                        ends: s.ends_at,
                        summary,
                        description,
                    }
                })
                .collect();
            Ok(calendar(&name, &events, now))
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/calendar; charset=utf-8")
        .insert_header(("Cache-Control", "private, max-age=300"))
        .body(body))
}
