//! How a clinician is reached: their devices (their browsers' push subscriptions) and their
//! mobile number for text messages.
use super::directory::{Staff, StaffRow};
use super::schema::push_subscriptions;
use super::sql::{on_backend, Sql};
use super::{new_id, to_db, DbConnection};
use crate::error::{AppError, AppResult};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = push_subscriptions)]
pub struct Device {
    pub id: String,
    pub staff_id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub user_agent: Option<String>,
    #[serde(skip)]
    pub created_at: NaiveDateTime,
    #[serde(skip)]
    pub last_success_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    #[serde(skip)]
    pub last_shown_at: Option<NaiveDateTime>,
}

/// Refuses a new device to someone who already has `max_devices` (renewing one they have is
/// not a new device). Call in the transaction that then calls [`subscribe`].
pub fn room_for_device(
    conn: &mut DbConnection,
    staff_id: &str,
    endpoint: &str,
    max_devices: i64,
) -> AppResult<()> {
    let mine = push_subscriptions::table.filter(push_subscriptions::staff_id.eq(staff_id));
    let renewal: i64 = mine
        .filter(push_subscriptions::endpoint.eq(endpoint))
        .count()
        .get_result(conn)?;
    let registered: i64 = mine.count().get_result(conn)?;
    if renewal == 0 && registered >= max_devices {
        return Err(AppError::conflict(
            format!(
                "you already have {registered} devices registered, the most allowed: remove one \
                 you no longer use (DELETE /api/v1/push-subscriptions/{{id}})"
            ),
            serde_json::Value::Null,
        ));
    }
    Ok(())
}

/// Registers a device, or (the same endpoint again, from the same person) renews its keys.
/// An endpoint registered by someone else is refused, not moved: it may be their phone.
pub fn subscribe(
    conn: &mut DbConnection,
    staff_id: &str,
    endpoint: &str,
    p256dh: &str,
    auth: &str,
    user_agent: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<String> {
    let existing: Option<(String, String)> = push_subscriptions::table
        .filter(push_subscriptions::endpoint.eq(endpoint))
        .select((push_subscriptions::id, push_subscriptions::staff_id))
        .get_result(conn)
        .optional()?;
    if let Some((id, owner)) = existing {
        if owner != staff_id {
            return Err(AppError::conflict(
                "this push endpoint is registered to another member of staff: they (or an admin \
                 deactivating them) must remove it first",
                serde_json::Value::Null,
            ));
        }
        diesel::update(push_subscriptions::table.find(&id))
            .set((
                push_subscriptions::p256dh.eq(p256dh),
                push_subscriptions::auth.eq(auth),
                push_subscriptions::user_agent.eq(user_agent),
                push_subscriptions::last_error.eq(None::<String>),
            ))
            .execute(conn)?;
        return Ok(id);
    }
    let id = new_id();
    diesel::insert_into(push_subscriptions::table)
        .values((
            push_subscriptions::id.eq(&id),
            push_subscriptions::staff_id.eq(staff_id),
            push_subscriptions::endpoint.eq(endpoint),
            push_subscriptions::p256dh.eq(p256dh),
            push_subscriptions::auth.eq(auth),
            push_subscriptions::user_agent.eq(user_agent),
            push_subscriptions::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(id)
}

pub fn devices(conn: &mut DbConnection, staff_id: &str) -> AppResult<Vec<Device>> {
    Ok(push_subscriptions::table
        .filter(push_subscriptions::staff_id.eq(staff_id))
        .order(push_subscriptions::created_at.asc())
        .select(Device::as_select())
        .load(conn)?)
}

/// The registered devices of several members of staff, by staff id.
pub fn devices_of(
    conn: &mut DbConnection,
    staff_ids: &[&str],
) -> AppResult<std::collections::HashMap<String, Vec<Device>>> {
    let mut out: std::collections::HashMap<String, Vec<Device>> = Default::default();
    if staff_ids.is_empty() {
        return Ok(out);
    }
    let rows: Vec<Device> = push_subscriptions::table
        .filter(push_subscriptions::staff_id.eq_any(staff_ids))
        .order(push_subscriptions::created_at.asc())
        .select(Device::as_select())
        .load(conn)?;
    for d in rows {
        out.entry(d.staff_id.clone()).or_default().push(d);
    }
    Ok(out)
}

pub fn unsubscribe(conn: &mut DbConnection, staff_id: &str, id: &str) -> AppResult<()> {
    let n = diesel::delete(
        push_subscriptions::table
            .filter(push_subscriptions::id.eq(id))
            .filter(push_subscriptions::staff_id.eq(staff_id)),
    )
    .execute(conn)?;
    if n == 0 {
        return Err(AppError::NotFound(format!("you have no device {id}")));
    }
    Ok(())
}

/// Forgets every device whose endpoint `refused` says no to; returns how many.
pub fn forget_devices_where(
    conn: &mut DbConnection,
    refused: impl Fn(&str) -> bool,
) -> AppResult<usize> {
    let all: Vec<(String, String)> = push_subscriptions::table
        .select((push_subscriptions::id, push_subscriptions::endpoint))
        .load(conn)?;
    let ids: Vec<&str> = all
        .iter()
        .filter(|(_, endpoint)| refused(endpoint))
        .map(|(id, _)| id.as_str())
        .collect();
    for chunk in ids.chunks(500) {
        diesel::delete(push_subscriptions::table.filter(push_subscriptions::id.eq_any(chunk)))
            .execute(conn)?;
    }
    Ok(ids.len())
}

/// A push service said the subscription is gone (404/410): forget the device.
pub fn forget_device(conn: &mut DbConnection, id: &str) -> AppResult<()> {
    diesel::delete(push_subscriptions::table.find(id)).execute(conn)?;
    Ok(())
}

pub fn device_result(
    conn: &mut DbConnection,
    id: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    use crate::store::stamp::Stamp;
    use diesel::sql_types::Text;
    // By hand, so that each is prepared once per connection (see `store::sql`).
    const DELIVERED: &str =
        "UPDATE push_subscriptions SET last_success_at = ?, last_error = NULL WHERE id = ?";
    const FAILED: &str = "UPDATE push_subscriptions SET last_error = ? WHERE id = ?";
    match error {
        None => on_backend!(conn, |c| Sql::new(DELIVERED)
            .bind::<Stamp, _>(to_db(now))
            .bind::<Text, _>(id)
            .execute(c)?),
        Some(e) => on_backend!(conn, |c| Sql::new(FAILED)
            .bind::<Text, _>(e)
            .bind::<Text, _>(id)
            .execute(c)?),
    };
    Ok(())
}

/// Sets (or with `None` removes) a member of staff's mobile number, already in E.164.
pub fn set_mobile(conn: &mut DbConnection, staff_id: &str, mobile: Option<&str>) -> AppResult<()> {
    use super::schema::staff;
    let n = diesel::update(staff::table.find(staff_id))
        .set(staff::mobile.eq(mobile))
        .execute(conn)?;
    if n == 0 {
        return Err(AppError::NotFound(format!(
            "no member of staff {staff_id:?}"
        )));
    }
    Ok(())
}

/// The mobile numbers of these staff, for those that have one.
pub fn mobiles(
    conn: &mut DbConnection,
    ids: &[&str],
) -> AppResult<std::collections::HashMap<String, String>> {
    use super::schema::staff;
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(String, Option<String>)> = staff::table
        .filter(staff::id.eq_any(ids))
        .select((staff::id, staff::mobile))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, m)| m.map(|m| (id, m)))
        .collect())
}

/// These people, each with their registered devices (oldest first), in one read: what
/// notifications to them need. Someone not found is left out.
pub fn staff_with_devices(
    conn: &mut DbConnection,
    ids: &[&str],
) -> AppResult<HashMap<String, (Staff, Vec<Device>)>> {
    use super::schema::{push_subscriptions as devices, staff};
    let mut out: HashMap<String, (Staff, Vec<Device>)> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let rows: Vec<(StaffRow, Option<Device>)> = staff::table
        .left_join(devices::table.on(devices::staff_id.eq(staff::id)))
        .filter(staff::id.eq_any(ids))
        .order((staff::id, devices::created_at.asc()))
        .select((StaffRow::as_select(), Option::<Device>::as_select()))
        .load(conn)?;
    for (person, device) in rows {
        let (_, theirs) = out
            .entry(person.id.clone())
            .or_insert_with(|| (Staff::from(person), Vec::new()));
        theirs.extend(device);
    }
    Ok(out)
}
