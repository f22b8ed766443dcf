//! The staff commands: deactivating a leaver.
use super::Ctx;
use crate::error::AppResult;
use crate::store::audit::{self, Action, Actor, Entry};
use crate::store::directory::{self, Deactivated};
use crate::store::sessions;
use crate::store::DbConnection;
use serde_json::json;

/// A leaver: inactive from now, with their sessions, API token, push devices and bleeps
/// ended in this one transaction, and who did it in the audit log.
pub fn deactivate(
    c: &mut DbConnection,
    ctx: &Ctx,
    staff_id: &str,
    by: Actor<'_>,
    client: Option<&str>,
) -> AppResult<Deactivated> {
    let mut done = directory::deactivate(c, staff_id, ctx.now)?;
    done.sessions_ended = sessions::end_sessions(c, staff_id, None)?;
    audit::record(
        c,
        Entry {
            actor: by,
            action: Action::StaffDeactivated,
            subject: Some(&done.staff.id),
            detail: json!({
                "name": done.staff.name,
                "sessions_ended": done.sessions_ended,
                "devices_removed": done.devices_removed,
                "bleeps_released": done.bleeps_released,
            }),
            client,
        },
        ctx.now,
    )?;
    Ok(done)
}
