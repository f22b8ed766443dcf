//! The rota's commands: the automatic hand-over at each shift boundary, taking the bleep,
//! busy, confirming a hand-over, and shifts added by hand. Who holds a bleep is derived
//! from the rota (DESIGN.md decision 10); a hand-over or a take stands until the next
//! boundary of that role's rota.
use super::Ctx;
use crate::domain::rota::{check_span, holders_at, overlap, Slot, MAX_SHIFT};
use crate::domain::{Status, Task};
use crate::error::{AppError, AppResult};
use crate::store::directory::{self, Role, Staff};
use crate::store::events::{self, NewEventRow};
use crate::store::outbox::{self, Addressee, NewDelivery};
use crate::store::rota::{self as store, NewShift, Shift, StartHolding};
use crate::store::{tasks, to_db, DbConnection};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;

mod quiet;
pub use quiet::{RotaQuiet, QUIET_AT_MOST};

/// One role changing hands: who arrived, who left, and the open tasks it carried.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HandOver {
    pub role_id: String,
    pub role: String,
    pub arriving: Vec<String>,
    pub leaving: Vec<String>,
    /// Unacknowledged tasks of the role, now notified to whoever arrived.
    pub renotified: Vec<String>,
}

/// Applies every boundary of the rota since it was last applied, up to `ctx.now`: each
/// role whose shifts started or ended since then is held by whoever the rota names now.
/// Cheap when nothing is due (one statement on PostgreSQL: the mark and two index ranges). Runs inside whichever command
/// comes first after a boundary (the tick, a raise, an acknowledgement), so a task raised
/// one second after a boundary reaches the incoming holder even before the next tick.
/// The roles changing at a boundary are handed over together, with a fixed number of
/// statements however many they are (a boundary of the whole hospital is one hand-over).
pub fn catch_up(conn: &mut DbConnection, ctx: &Ctx) -> AppResult<Vec<HandOver>> {
    match due(conn, ctx.now)? {
        Some((last, roles)) => apply(conn, ctx, last, roles),
        None => Ok(Vec::new()),
    }
}

/// [`catch_up`] inside a command about something else (a raise, an acknowledgement, a
/// take). Applying the boundaries happens in a savepoint, so a rota that cannot be applied
/// is logged (and left for the tick, which says so on every run) and never stops a task
/// being raised or acted on; the common case, nothing due, costs no savepoint.
pub fn catch_up_in_passing(conn: &mut DbConnection, ctx: &Ctx) -> AppResult<()> {
    use diesel::Connection;
    if ctx.rota.is_quiet(ctx.now) {
        return Ok(());
    }
    // Read before the rota is: a change this process makes from now on is noticed.
    let changes = store::shifts_changed();
    match due(conn, ctx.now)? {
        Some((last, roles)) => {
            if let Err(e) = conn.transaction(|c| apply(c, ctx, last, roles)) {
                tracing::error!(error = %e, "the rota could not be applied; the command goes on without it");
            }
        }
        None => {
            let next = store::next_boundary(conn, ctx.now)?;
            ctx.rota.learn(ctx.now, next, changes);
        }
    }
    Ok(())
}

/// When the rota was last applied, and the roles whose shifts started or ended since;
/// `None` when nothing is due.
type Due = (Option<DateTime<Utc>>, Vec<String>);

fn due(conn: &mut DbConnection, now: DateTime<Utc>) -> AppResult<Option<Due>> {
    let (last, changing) = store::due_roles(conn, now)?;
    let roles = match last {
        Some(a) if a >= now => return Ok(None),
        Some(_) => changing,
        // The first time: every role the rota covers now.
        None => store::roles_on_rota(conn, now, now + Duration::seconds(1))?,
    };
    if roles.is_empty() && last.is_some() {
        return Ok(None);
    }
    Ok(Some((last, roles)))
}

/// Hands each of these roles to whoever the rota names at `ctx.now`, and marks the rota
/// applied up to then.
fn apply(
    conn: &mut DbConnection,
    ctx: &Ctx,
    last: Option<DateTime<Utc>>,
    roles: Vec<String>,
) -> AppResult<Vec<HandOver>> {
    let now = ctx.now;
    // Another instance's transaction applying the same boundaries wins; this one leaves it.
    if !store::advance_applied(conn, last, now)? {
        return Ok(Vec::new());
    }
    let slots = store::slots(conn, &roles, now, now + Duration::seconds(1))?;
    let mut found = store::roles_by_ids(conn, &roles)?;
    let mut wants = Vec::with_capacity(roles.len());
    for role_id in roles {
        let wanted = holders_at(slots.get(&role_id).map_or(&[][..], |s| s), now);
        let role = found
            .remove(&role_id)
            .ok_or_else(|| AppError::NotFound(format!("no on-call role {role_id}")))?;
        wants.push((role, wanted));
    }
    hand_over(conn, ctx, &wants, "rota", None)
}

/// Makes `wanted` the role's holders: ends the others' holdings, starts the newcomers',
/// re-notifies the role's unacknowledged tasks to them, and tells both sides.
pub(super) fn hand_to(
    conn: &mut DbConnection,
    ctx: &Ctx,
    role: &Role,
    wanted: &[String],
    source: &str,
    by: Option<&str>,
) -> AppResult<Option<HandOver>> {
    let wants = [(role.clone(), wanted.to_vec())];
    Ok(hand_over(conn, ctx, &wants, source, by)?.pop())
}

/// One role changing hands: its current holdings, who arrives and who leaves.
struct Change<'a> {
    role: &'a Role,
    /// The role's current holdings: (holding id, holder).
    current: Vec<(String, String)>,
    arriving: Vec<String>,
    leaving: Vec<String>,
}

/// Which of these roles change hands, and how: the people the rota names who may not hold
/// a bleep (or are unknown) are passed over, with a warning.
fn changes<'a>(
    conn: &mut DbConnection,
    wants: &'a [(Role, Vec<String>)],
) -> AppResult<Vec<Change<'a>>> {
    let ids: Vec<String> = wants.iter().map(|(r, _)| r.id.clone()).collect();
    let mut current: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (holding, role, staff) in store::holdings_now(conn, &ids)? {
        current.entry(role).or_default().push((holding, staff));
    }
    let named: Vec<&str> = wants
        .iter()
        .flat_map(|(_, w)| w.iter().map(String::as_str))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut people = HashMap::new();
    for chunk in named.chunks(1000) {
        people.extend(directory::staff_by_ids(conn, chunk)?);
    }
    let mut out = Vec::new();
    for (role, wanted) in wants {
        let current = current.remove(&role.id).unwrap_or_default();
        let holds = |id: &String| current.iter().any(|(_, s)| s == id);
        let mut arriving = Vec::new();
        for id in wanted.iter().filter(|w| !holds(w)) {
            match people.get(id).map(|s: &Staff| s.may_hold_bleep()) {
                Some(Ok(())) => arriving.push(id.clone()),
                Some(Err(why)) => {
                    tracing::warn!(role = %role.name, staff_id = %id, "the rota names someone who may not hold a bleep: {why}")
                }
                None => {
                    tracing::warn!(role = %role.name, staff_id = %id, "the rota names someone unknown")
                }
            }
        }
        let leaving: Vec<String> = current
            .iter()
            .map(|(_, s)| s)
            .filter(|c| !wanted.contains(c))
            .cloned()
            .collect();
        if !arriving.is_empty() || !leaving.is_empty() {
            out.push(Change {
                role,
                current,
                arriving,
                leaving,
            });
        }
    }
    Ok(out)
}

/// Hands each of these roles to the holders wanted for it, all in a fixed number of
/// statements: the holdings ended and started, each role's unacknowledged tasks re-sent
/// to whoever arrived (with a `handed_over` event), and notices to both sides.
fn hand_over(
    conn: &mut DbConnection,
    ctx: &Ctx,
    wants: &[(Role, Vec<String>)],
    source: &str,
    by: Option<&str>,
) -> AppResult<Vec<HandOver>> {
    let changes = changes(conn, wants)?;
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let (mut ending, mut starting) = (Vec::new(), Vec::new());
    for c in &changes {
        ending.extend(
            c.current
                .iter()
                .filter(|(_, s)| c.leaving.contains(s))
                .map(|(h, _)| h.clone()),
        );
        starting.extend(
            c.arriving
                .iter()
                .map(|s| StartHolding::new(&c.role.id, s, source, by, ctx.now)),
        );
    }
    store::end_holdings(conn, &ending, ctx.now)?;
    store::start_holdings(conn, &starting)?;
    store::touch_directory(conn, ctx.now)?;
    let roles: Vec<String> = changes.iter().map(|c| c.role.id.clone()).collect();
    let open = store::open_for_roles(conn, &roles)?;
    let arrivals: Vec<String> = changes
        .iter()
        .flat_map(|c| c.arriving.iter().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let refs: Vec<&str> = arrivals.iter().map(String::as_str).collect();
    let coming = store::slots_naming(conn, &refs, ctx.now, ctx.now + MAX_SHIFT * 2)?;
    let addresses: HashMap<String, Addressee> = outbox::addresses(conn, &arrivals)?
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect();
    let waiting: HashMap<&str, Vec<&Task>> = changes
        .iter()
        .map(|c| {
            let tasks = open.get(&c.role.id).map_or(&[][..], |t| t);
            let w = tasks.iter().filter(|t| t.status == Status::Requested);
            (c.role.id.as_str(), w.collect())
        })
        .collect();
    let ids: Vec<&str> = waiting.values().flatten().map(|t| t.id.as_str()).collect();
    let mut seqs = events::last_seqs(conn, &ids)?;
    let (mut rows, mut queued) = (Vec::new(), Vec::<NewDelivery>::new());
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        let (role, waiting) = (c.role, &waiting[c.role.id.as_str()]);
        let to: Vec<Addressee> = (c.arriving.iter())
            .filter_map(|id| addresses.get(id).cloned())
            .collect();
        let renotified = inherit(ctx, &c, waiting, &to, &mut seqs, &mut rows, &mut queued);
        let slots = coming.get(&role.id).map_or(&[][..], |s| s);
        notice_hand_over(ctx, &c, slots, waiting.len(), &mut queued);
        if c.current.len() + c.arriving.len() == c.leaving.len() {
            tracing::warn!(role = %role.name, "no one holds the bleep now");
        }
        tracing::info!(role = %role.name, arriving = c.arriving.len(), leaving = c.leaving.len(), source, tasks = renotified.len(), "bleep changed hands");
        out.push(HandOver {
            role_id: role.id.clone(),
            role: role.name.clone(),
            arriving: c.arriving,
            leaving: c.leaving,
            renotified,
        });
    }
    events::insert_events(conn, &rows)?;
    outbox::insert(conn, &queued)?;
    Ok(out)
}

/// The role's unacknowledged tasks go to whoever arrived, each with a `handed_over`
/// event; acknowledged ones stay with whoever acknowledged them. Returns the ids re-sent.
fn inherit(
    ctx: &Ctx,
    c: &Change,
    waiting: &[&Task],
    to: &[Addressee],
    seqs: &mut HashMap<String, i32>,
    rows: &mut Vec<NewEventRow>,
    queued: &mut Vec<NewDelivery>,
) -> Vec<String> {
    for t in waiting {
        let seq = seqs.entry(t.id.clone()).or_insert(0);
        *seq += 1;
        let detail = json!({ "role": c.role.name, "to": c.arriving, "from": c.leaving });
        rows.push(NewEventRow {
            task_id: t.id.clone(),
            seq: *seq,
            at: to_db(ctx.now),
            actor_id: None,
            kind: "handed_over",
            from_status: None,
            to_status: None,
            detail: Some(detail.to_string()),
        });
        outbox::handed_over(t, to, &ctx.policy, ctx.now, *seq, queued);
        tracing::info!(task_id = %t.id, role = %c.role.name, "task handed over with its bleep");
    }
    waiting.iter().map(|t| t.id.clone()).collect()
}

/// A role's rota from now on, far enough to see where each holder's time ends.
fn coming_slots(conn: &mut DbConnection, ctx: &Ctx, role_id: &str) -> AppResult<Vec<Slot>> {
    let shifts = store::shifts(
        conn,
        Some(&[role_id.to_string()]),
        ctx.now,
        ctx.now + MAX_SHIFT * 2,
    )?;
    Ok(shifts.iter().map(Shift::slot).collect())
}

/// Tells the incoming holders what they now hold and until when (`slots`: the role's
/// slots from now on that name them or replace them), and the outgoing that they no
/// longer hold it: a notice to each one's phones.
fn notice_hand_over(
    ctx: &Ctx,
    c: &Change,
    slots: &[Slot],
    open: usize,
    rows: &mut Vec<NewDelivery>,
) {
    let role = c.role;
    for id in &c.arriving {
        let until = crate::domain::rota::held_until(slots, id, ctx.now)
            .map(|t| format!(" until {}", ctx.policy.zone.short(t, ctx.now)))
            .unwrap_or_default();
        let body = match open {
            0 => "No tasks are waiting.".to_string(),
            1 => "1 task is waiting for you: open My bleeps.".to_string(),
            n => format!("{n} tasks are waiting for you: open My bleeps."),
        };
        let title = format!("You now hold {}{until}", role.name);
        outbox::notice(id, &title, &body, ctx.now, rows);
    }
    for id in &c.leaving {
        let title = format!("You no longer hold {}", role.name);
        outbox::notice(
            id,
            &title,
            "Its new bleeps go to the next holder.",
            ctx.now,
            rows,
        );
    }
}

/// May this person hold this role? They must be able to hold a bleep at all, and, where an
/// admin has listed who may hold the role, be on the list.
pub fn may_hold(conn: &mut DbConnection, role: &Role, who: &Staff) -> AppResult<()> {
    who.may_hold_bleep().map_err(AppError::Unprocessable)?;
    let listed = store::allowed(conn, &role.id)?;
    if !listed.is_empty() && !listed.contains(&who.id) {
        return Err(AppError::Unprocessable(format!(
            "{} may not hold {}: an admin lists who may hold it",
            who.name, role.name
        )));
    }
    Ok(())
}

/// Takes the bleep at the start of a shift: the taker holds it from now (alone), the
/// previous holders are told. Only for a role an admin listed the taker for.
pub fn take(conn: &mut DbConnection, ctx: &Ctx, who: &Staff, role: &Role) -> AppResult<HandOver> {
    who.may_hold_bleep().map_err(AppError::Forbidden)?;
    if !store::allowed(conn, &role.id)?.contains(&who.id) {
        return Err(AppError::Forbidden(format!(
            "{} is not listed to hold {}: ask an admin to add you to it",
            who.name, role.name
        )));
    }
    catch_up_in_passing(conn, ctx)?;
    match hand_to(
        conn,
        ctx,
        role,
        std::slice::from_ref(&who.id),
        "take",
        Some(&who.id),
    )? {
        Some(h) => Ok(h),
        None => Err(AppError::Conflict {
            message: format!("{} already holds {} alone", who.name, role.name),
            detail: json!({ "role_id": role.id }),
        }),
    }
}

/// The longest anyone may be busy at once.
pub const MAX_BUSY_MINUTES: i64 = 240;

/// Marks a holder busy ("in resus") for `minutes`: new tasks and escalations pass them by
/// until then (to co-holders, or on to the next role). `minutes` 0 ends it now.
pub fn set_busy(
    conn: &mut DbConnection,
    ctx: &Ctx,
    who: &Staff,
    minutes: i64,
    reason: Option<&str>,
) -> AppResult<Option<DateTime<Utc>>> {
    if !(0..=MAX_BUSY_MINUTES).contains(&minutes) {
        return Err(AppError::Unprocessable(format!(
            "minutes is {minutes}: busy lasts 1 to {MAX_BUSY_MINUTES} minutes (0 ends it)"
        )));
    }
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > 100) {
        return Err(AppError::Unprocessable(
            "reason is longer than 100 characters".into(),
        ));
    }
    let until = (minutes > 0).then(|| ctx.now + Duration::minutes(minutes));
    store::set_busy(conn, &who.id, until, reason)?;
    store::touch_directory(conn, ctx.now)?;
    tracing::info!(staff_id = %who.id, minutes, "busy set");
    Ok(until)
}

/// The holder confirms what they inherited (one role, or all).
pub fn confirm(
    conn: &mut DbConnection,
    ctx: &Ctx,
    who: &Staff,
    role: Option<&Role>,
) -> AppResult<usize> {
    let n = store::confirm(conn, &who.id, role.map(|r| r.id.as_str()), ctx.now)?;
    if n == 0 {
        return Err(AppError::Conflict {
            message: "nothing is waiting to be confirmed: no new bleep was handed to you".into(),
            detail: json!({}),
        });
    }
    store::touch_directory(conn, ctx.now)?;
    Ok(n)
}

/// A shift or override to add by hand.
pub struct NewSlot<'a> {
    pub role: &'a Role,
    pub staff: Option<&'a Staff>,
    pub replaces: Option<&'a Staff>,
    pub starts: DateTime<Utc>,
    pub ends: DateTime<Utc>,
    pub note: Option<String>,
}

/// Checks that a person is free for a span: no other shift of theirs overlaps it.
pub fn check_free(
    conn: &mut DbConnection,
    who: &Staff,
    span: (DateTime<Utc>, DateTime<Utc>),
    pending: &[(String, DateTime<Utc>, DateTime<Utc>)],
) -> AppResult<Result<(), String>> {
    for s in store::shifts_of_staff(conn, &who.id, span.0, span.1)? {
        if overlap(span, (s.starts_at, s.ends_at)) {
            return Ok(Err(format!(
                "{} is already on the rota from {} to {}",
                who.name, s.starts_at, s.ends_at
            )));
        }
    }
    for (id, s, e) in pending {
        if id == &who.id && overlap(span, (*s, *e)) {
            return Ok(Err(format!(
                "{} has another shift in this import from {s} to {e}",
                who.name
            )));
        }
    }
    Ok(Ok(()))
}

/// Adds one shift (a person holds the role for a span) or one override (it replaces a
/// person for a span, with someone covering or nobody). If it covers now, the role
/// changes hands at once.
pub fn add_slot(conn: &mut DbConnection, ctx: &Ctx, s: NewSlot) -> AppResult<Shift> {
    check_span(s.starts, s.ends).map_err(AppError::Unprocessable)?;
    if s.staff.is_none() && s.replaces.is_none() {
        return Err(AppError::Unprocessable(
            "a shift needs staff (who holds it), or replaces (whom an override takes off)".into(),
        ));
    }
    if let Some(who) = s.staff {
        may_hold(conn, s.role, who)?;
        if let Err(why) = check_free(conn, who, (s.starts, s.ends), &[])? {
            if s.replaces.is_none() {
                return Err(AppError::Conflict {
                    message: why,
                    detail: json!({ "staff_id": who.id }),
                });
            }
        }
    }
    let mut row = NewShift::new(
        &s.role.id,
        s.staff.map(|w| w.id.as_str()),
        (s.starts, s.ends),
        ctx.now,
    );
    row.replaces = s.replaces.map(|r| r.id.clone());
    row.note = s.note;
    store::add_shifts(conn, std::slice::from_ref(&row))?;
    let shift = store::shifts(
        conn,
        Some(std::slice::from_ref(&s.role.id)),
        s.starts,
        s.ends,
    )?
    .into_iter()
    .find(|x| x.id == row.id)
    .ok_or_else(|| AppError::NotFound("the shift just added".into()))?;
    refresh_if_current(conn, ctx, s.role, (s.starts, s.ends))?;
    Ok(shift)
}

/// After the rota of a role changed over a span that includes now, the role is held by
/// whoever it now names.
pub fn refresh_if_current(
    conn: &mut DbConnection,
    ctx: &Ctx,
    role: &Role,
    span: (DateTime<Utc>, DateTime<Utc>),
) -> AppResult<Option<HandOver>> {
    catch_up_in_passing(conn, ctx)?;
    if !(span.0 <= ctx.now && ctx.now < span.1) {
        return Ok(None);
    }
    let slots: Vec<Slot> = store::shifts(
        conn,
        Some(std::slice::from_ref(&role.id)),
        ctx.now,
        ctx.now + Duration::seconds(1),
    )?
    .iter()
    .map(Shift::slot)
    .collect();
    hand_to(conn, ctx, role, &holders_at(&slots, ctx.now), "rota", None)
}

/// Removes a shift; if it covered now, the role changes hands at once.
pub fn remove_slot(conn: &mut DbConnection, ctx: &Ctx, id: &str) -> AppResult<Shift> {
    let Some(s) = store::remove_shift(conn, id)? else {
        return Err(AppError::NotFound(format!("no shift {id:?}")));
    };
    let role = directory::role_by_id(conn, &s.role_id)?;
    refresh_if_current(conn, ctx, &role, (s.starts_at, s.ends_at))?;
    Ok(s)
}

/// A task the incoming holder of a bleep inherits.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Inherited {
    pub task_id: String,
    pub priority: String,
    pub summary: String,
    /// Whoever acknowledged it (it stays with them), or none while it waits for you.
    pub acknowledged_by: Option<String>,
}

/// A bleep newly held and not yet confirmed: what `/me` lists to confirm.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Arrival {
    pub role_id: String,
    pub role: String,
    pub held_from: DateTime<Utc>,
    /// When the rota ends it, if it does.
    pub until: Option<DateTime<Utc>>,
    /// "You now hold Medicine FY1 night until 08:00".
    pub headline: String,
    /// How it came: rota, take or hand-over.
    pub source: Option<String>,
    /// The role's unacknowledged tasks (now notified to you).
    pub waiting: Vec<Inherited>,
    /// The role's acknowledged tasks, which stay with whoever acknowledged them.
    pub acknowledged: Vec<Inherited>,
}

/// The bleeps handed to this person that they have not yet confirmed, with what came with
/// each.
pub fn arrivals(conn: &mut DbConnection, ctx: &Ctx, who: &str) -> AppResult<Vec<Arrival>> {
    let mut out = Vec::new();
    for h in store::unconfirmed(conn, who)? {
        let role = directory::role_by_id(conn, &h.role_id)?;
        let slots = coming_slots(conn, ctx, &role.id)?;
        let until = crate::domain::rota::held_until(&slots, who, ctx.now);
        let open = tasks::open_for_role(conn, &role.id)?;
        let ackers: Vec<&str> = open
            .iter()
            .filter_map(|t| t.acknowledged_by.as_deref())
            .collect();
        let names = directory::staff_names(conn, &ackers)?;
        let (mut waiting, mut acknowledged) = (Vec::new(), Vec::new());
        for t in &open {
            let i = Inherited {
                task_id: t.id.clone(),
                priority: t.priority.to_string(),
                summary: format!("{}: {}, bed {}", t.category, t.ward, t.bed),
                acknowledged_by: t
                    .acknowledged_by
                    .as_ref()
                    .map(|a| names.get(a).cloned().unwrap_or_default()),
            };
            if t.status == Status::Requested {
                waiting.push(i);
            } else {
                acknowledged.push(i);
            }
        }
        let headline = format!(
            "You now hold {}{}",
            role.name,
            until
                .map(|t| format!(" until {}", ctx.policy.zone.short(t, ctx.now)))
                .unwrap_or_default()
        );
        out.push(Arrival {
            role_id: role.id,
            role: role.name,
            held_from: h.held_from,
            until,
            headline,
            source: h.source,
            waiting,
            acknowledged,
        });
    }
    Ok(out)
}
