//! The audit log: who did what to staff, bleeps, passwords, tokens and settings, and every
//! refused or throttled sign-in. Append-only: this module only inserts and reads, and the
//! database refuses updates and deletes (see `store::migrate`).
use super::schema::audit_log;
use super::{from_db, new_id, to_db, DbConnection};
use crate::domain::coded_enum;
use crate::error::AppResult;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;

coded_enum!(
    /// What was done; a fixed set, so that a reader can filter on it.
    Action, "audit action" {
        StaffAdded => "staff_added",
        StaffDeactivated => "staff_deactivated",
        PasswordSet => "password_set",
        TokenReissued => "token_reissued",
        HandedOver => "handed_over",
        RotaChanged => "rota_changed",
        RoleAllowed => "role_allowed",
        EscalationSet => "escalation_set",
        RoleAdded => "role_added",
        WardAdded => "ward_added",
        SignInFailed => "sign_in_failed",
        SignInLocked => "sign_in_locked",
        SignedIn => "signed_in",
        IdentityBound => "identity_bound",
        PermissionsSet => "permissions_set",
    }
);

/// Who acted: a member of staff, or the operator at the command line.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    Staff(&'a str),
    CommandLine,
    /// Someone not (yet) signed in: a sign-in attempt.
    Anonymous,
}

/// One entry to write. `subject` is the id (or, for a sign-in, the email) acted on; `detail`
/// never holds a password, token or patient data.
pub struct Entry<'a> {
    pub actor: Actor<'a>,
    pub action: Action,
    pub subject: Option<&'a str>,
    pub detail: Value,
    /// The client's address, for actions that came over HTTP.
    pub client: Option<&'a str>,
}

pub fn record(conn: &mut DbConnection, e: Entry<'_>, now: DateTime<Utc>) -> AppResult<()> {
    let (actor, detail) = match e.actor {
        Actor::Staff(id) => (Some(id), e.detail),
        Actor::CommandLine => (None, with(e.detail, "via", "command line")),
        Actor::Anonymous => (None, e.detail),
    };
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::id.eq(new_id()),
            audit_log::at.eq(to_db(now)),
            audit_log::actor_id.eq(actor),
            audit_log::action.eq(e.action.code()),
            audit_log::subject.eq(e.subject),
            audit_log::detail.eq(detail.to_string()),
            audit_log::client.eq(e.client),
        ))
        .execute(conn)?;
    Ok(())
}

fn with(mut detail: Value, key: &str, value: &str) -> Value {
    if !detail.is_object() {
        detail = Value::Object(Default::default());
    }
    detail[key] = Value::String(value.to_string());
    detail
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor: Option<super::events::Person>,
    pub action: String,
    pub subject: Option<String>,
    pub detail: Value,
    pub client: Option<String>,
}

type Row = (
    String,
    NaiveDateTime,
    Option<String>,
    String,
    Option<String>,
    String,
    Option<String>,
);

/// The newest entries first, at most `limit`, optionally of one action only.
pub fn list(
    conn: &mut DbConnection,
    limit: i64,
    action: Option<&str>,
) -> AppResult<Vec<AuditEntry>> {
    let mut q = audit_log::table
        .select((
            audit_log::id,
            audit_log::at,
            audit_log::actor_id,
            audit_log::action,
            audit_log::subject,
            audit_log::detail,
            audit_log::client,
        ))
        .into_boxed();
    if let Some(a) = action {
        q = q.filter(audit_log::action.eq(a.to_string()));
    }
    let rows: Vec<Row> = q
        .order((audit_log::at.desc(), audit_log::id.desc()))
        .limit(limit)
        .load(conn)?;
    let ids: Vec<&str> = rows.iter().filter_map(|r| r.2.as_deref()).collect();
    let names = super::directory::staff_names(conn, &ids)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, at, actor, action, subject, detail, client)| AuditEntry {
                id,
                at: from_db(at),
                actor: actor.map(|a| super::events::Person {
                    name: names.get(&a).cloned().unwrap_or_default(),
                    id: a,
                }),
                action,
                subject,
                detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
                client,
            },
        )
        .collect())
}
