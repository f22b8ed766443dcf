//! Receipts: a phone's word that it put a push on screen. With the push service's word that
//! it took the push (`push_subscriptions.last_success_at`) and the acknowledgement, they say
//! per person and device whether a bleep was delivered, seen and answered.
use super::events::{append_event, NewEvent};
use super::outbox::BY_ID;
use super::schema::{delivery_receipts, outbox, push_subscriptions, staff};
use super::sql::{load_by_ids, on_backend, Sql};
use super::{from_db, to_db, DbConnection};
use crate::domain::delivery::{silent, Delivery, Kind, SHOW_WITHIN};
use crate::error::{AppError, AppResult};
use crate::store::stamp::Stamp;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;
use serde::Serialize;
use serde_json::json;

/// What recording a receipt did.
#[derive(Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The first report of this push on this device.
    New { task_id: String, staff_id: String },
    /// Reported before (a service worker may report twice): nothing changed.
    Again,
}

/// Why a text waiting for this person on this task is not needed.
const SEEN: &str = "seen on a device before the text was due";

/// Records that the push `outbox_id` was shown on `device_id`. The first time a person is
/// seen to have a task on screen while it waits for them, the task's timeline says so;
/// a text message waiting for them on that task is no longer needed.
pub fn record_shown(
    conn: &mut DbConnection,
    outbox_id: &str,
    device_id: &str,
    now: DateTime<Utc>,
) -> AppResult<Recorded> {
    let row: Option<(String, Option<String>, String)> = outbox::table
        .find(outbox_id)
        .select((outbox::task_id, outbox::recipient_id, outbox::kind))
        .first(conn)
        .optional()?;
    let Some((task_id, Some(staff_id), kind)) = row else {
        return Err(AppError::NotFound(
            "no such notification: it may have been removed".into(),
        ));
    };
    if kind != Kind::Push.code() {
        return Err(AppError::Unprocessable(format!(
            "only a push can be reported as shown, not a {kind}"
        )));
    }
    let inserted = on_backend!(conn, |c| diesel::insert_into(delivery_receipts::table)
        .values((
            delivery_receipts::outbox_id.eq(outbox_id),
            delivery_receipts::device_id.eq(device_id),
            delivery_receipts::task_id.eq(&task_id),
            delivery_receipts::staff_id.eq(&staff_id),
            delivery_receipts::shown_at.eq(to_db(now)),
        ))
        .on_conflict_do_nothing()
        .execute(c)?);
    if inserted == 0 {
        return Ok(Recorded::Again);
    }
    diesel::update(
        push_subscriptions::table
            .find(device_id)
            .filter(push_subscriptions::staff_id.eq(&staff_id)),
    )
    .set(push_subscriptions::last_shown_at.eq(to_db(now)))
    .execute(conn)?;
    cancel_texts(conn, &task_id, &staff_id)?;
    let before: i64 = delivery_receipts::table
        .filter(delivery_receipts::task_id.eq(&task_id))
        .filter(delivery_receipts::staff_id.eq(&staff_id))
        .count()
        .get_result(conn)?;
    if before == 1 && touch_if_waiting(conn, &task_id, now)? {
        append_event(
            conn,
            &task_id,
            now,
            NewEvent {
                actor: Some(&staff_id),
                kind: "seen",
                from: None,
                to: None,
                detail: Some(json!({ "device_id": device_id })),
            },
        )?;
    }
    Ok(Recorded::New { task_id, staff_id })
}

/// Marks the task changed if it still waits to be acknowledged, which locks its row (the
/// lock orders timeline writers, see [`append_event`]) and tells open pages. Seen after
/// that is no part of the task's story.
fn touch_if_waiting(conn: &mut DbConnection, task_id: &str, now: DateTime<Utc>) -> AppResult<bool> {
    const TOUCH: &str = "UPDATE tasks SET updated_at = ? WHERE id = ? AND status = 'requested'";
    let n = on_backend!(conn, |c| Sql::new(TOUCH)
        .bind::<Stamp, _>(to_db(now))
        .bind::<Text, _>(task_id)
        .execute(c)?);
    Ok(n == 1)
}

/// Cancels the texts waiting for this person on this task.
fn cancel_texts(conn: &mut DbConnection, task_id: &str, staff_id: &str) -> AppResult<usize> {
    Ok(diesel::update(
        outbox::table
            .filter(outbox::task_id.eq(task_id))
            .filter(outbox::recipient_id.eq(staff_id))
            .filter(outbox::kind.eq(Kind::Text.code()))
            .filter(outbox::status.eq(Delivery::Pending.code())),
    )
    .set((
        outbox::status.eq(Delivery::Cancelled.code()),
        outbox::last_error.eq(SEEN),
    ))
    .execute(conn)?)
}

/// Sends now the texts waiting for these people about these tasks, as (task, person) pairs:
/// their push failed. One statement however many pairs. A text already tried is left to its
/// own retry time (a provider's `Retry-After` is honoured). Returns the texts now due, as
/// (task, text) ids, for the workers to claim by id.
pub fn texts_now(
    conn: &mut DbConnection,
    failed: &[(&str, &str)],
    now: DateTime<Utc>,
) -> AppResult<Vec<(String, String)>> {
    // Found by task (`outbox_by_task`), then matched by task and person together.
    // The status written as `BY_ID`: named plainly, SQLite read every pending row due later
    // by the `outbox_due` index instead (`EXPLAIN QUERY PLAN`), every text still waiting.
    let now_sql = format!(
        "UPDATE outbox SET due_at = ? \
         WHERE task_id IN IDS AND {BY_ID} = 'pending' AND kind = 'text' AND attempts = 0 \
         AND due_at > ? AND task_id || ' ' || recipient_id IN IDS \
         RETURNING task_id, id"
    );
    #[derive(diesel::QueryableByName)]
    struct Due {
        #[diesel(sql_type = Text)]
        task_id: String,
        #[diesel(sql_type = Text)]
        id: String,
    }
    let mut tasks: Vec<&str> = failed.iter().map(|(task, _)| *task).collect();
    tasks.sort_unstable();
    tasks.dedup();
    let pairs: Vec<String> = failed.iter().map(|(t, p)| format!("{t} {p}")).collect();
    let pairs: Vec<&str> = pairs.iter().map(String::as_str).collect();
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Due> = on_backend!(conn, |c| Sql::with_ids(&now_sql)
        .bind::<Stamp, _>(to_db(now))
        .bind_ids(&tasks)
        .bind::<Stamp, _>(to_db(now))
        .bind_ids(&pairs)
        .load(c)?);
    Ok(rows.into_iter().map(|r| (r.task_id, r.id)).collect())
}

/// Who has had each of these tasks on screen, as (task, person) pairs: for texts about to
/// go out.
pub fn seen(
    conn: &mut DbConnection,
    task_ids: &[&str],
) -> AppResult<std::collections::HashSet<(String, String)>> {
    let mut out = std::collections::HashSet::new();
    for chunk in task_ids.chunks(500) {
        let rows: Vec<(String, String)> = delivery_receipts::table
            .filter(delivery_receipts::task_id.eq_any(chunk))
            .select((delivery_receipts::task_id, delivery_receipts::staff_id))
            .distinct()
            .load(conn)?;
        out.extend(rows);
    }
    Ok(out)
}

/// A person who had a task on screen, and when first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Sighting {
    pub staff_id: String,
    pub name: String,
    pub at: DateTime<Utc>,
}

/// Who had each of these tasks on screen, first sighting per person, earliest first: one
/// statement, with the names, prepared once per connection.
pub fn sightings(
    conn: &mut DbConnection,
    task_ids: &[&str],
) -> AppResult<std::collections::HashMap<String, Vec<Sighting>>> {
    const FIRSTS: &str = "SELECT r.task_id, r.staff_id, s.name, min(r.shown_at) AS at \
         FROM delivery_receipts r LEFT JOIN staff s ON s.id = r.staff_id \
         WHERE r.task_id IN IDS GROUP BY r.task_id, r.staff_id, s.name";
    #[derive(QueryableByName)]
    struct First {
        #[diesel(sql_type = diesel::sql_types::Text)]
        task_id: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        staff_id: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        name: Option<String>,
        #[diesel(sql_type = crate::store::stamp::Stamp)]
        at: chrono::NaiveDateTime,
    }
    let mut out: std::collections::HashMap<String, Vec<Sighting>> = Default::default();
    for chunk in task_ids.chunks(500) {
        for f in load_by_ids::<First>(conn, FIRSTS, chunk)? {
            out.entry(f.task_id).or_default().push(Sighting {
                name: f.name.unwrap_or_default(),
                staff_id: f.staff_id,
                at: from_db(f.at),
            });
        }
    }
    for list in out.values_mut() {
        list.sort_by_key(|s| s.at);
    }
    Ok(out)
}

/// A device whose push service takes pushes that it never shows: a dead iPhone web app
/// subscription, a phone with notifications turned off for the browser.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SilentDevice {
    pub device_id: String,
    pub staff_id: String,
    pub name: String,
    pub user_agent: Option<String>,
    pub last_accepted_at: DateTime<Utc>,
    pub last_shown_at: Option<DateTime<Utc>>,
}

/// Devices that take pushes they do not show ([`crate::domain::delivery::silent`]).
pub fn silent_devices(conn: &mut DbConnection, now: DateTime<Utc>) -> AppResult<Vec<SilentDevice>> {
    type Row = (
        String,
        String,
        String,
        Option<String>,
        Option<chrono::NaiveDateTime>,
        Option<chrono::NaiveDateTime>,
    );
    let rows: Vec<Row> = push_subscriptions::table
        .inner_join(staff::table.on(staff::id.eq(push_subscriptions::staff_id)))
        .filter(push_subscriptions::last_success_at.lt(to_db(now - SHOW_WITHIN)))
        .select((
            push_subscriptions::id,
            push_subscriptions::staff_id,
            staff::name,
            push_subscriptions::user_agent,
            push_subscriptions::last_success_at,
            push_subscriptions::last_shown_at,
        ))
        .order(staff::name.asc())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(device_id, staff_id, name, user_agent, accepted, shown)| {
            let accepted = from_db(accepted?);
            let shown = shown.map(from_db);
            silent(Some(accepted), shown, now).then_some(SilentDevice {
                device_id,
                staff_id,
                name,
                user_agent,
                last_accepted_at: accepted,
                last_shown_at: shown,
            })
        })
        .collect())
}

/// A device's report that it showed a push.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShownOn {
    pub device_id: String,
    pub at: DateTime<Utc>,
}

/// Which devices showed each of these pushes, and when: with the push service's word and
/// the acknowledgement, the story per person and device.
pub fn shown_on(
    conn: &mut DbConnection,
    outbox_ids: &[&str],
) -> AppResult<std::collections::HashMap<String, Vec<ShownOn>>> {
    let mut out: std::collections::HashMap<String, Vec<ShownOn>> = Default::default();
    for chunk in outbox_ids.chunks(500) {
        let rows: Vec<(String, String, chrono::NaiveDateTime)> = delivery_receipts::table
            .filter(delivery_receipts::outbox_id.eq_any(chunk))
            .select((
                delivery_receipts::outbox_id,
                delivery_receipts::device_id,
                delivery_receipts::shown_at,
            ))
            .order(delivery_receipts::shown_at.asc())
            .load(conn)?;
        for (push, device_id, at) in rows {
            out.entry(push).or_default().push(ShownOn {
                device_id,
                at: from_db(at),
            });
        }
    }
    Ok(out)
}
