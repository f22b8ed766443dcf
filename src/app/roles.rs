//! The on-call roles' commands: handing a bleep over (by an admin, or its holder), which
//! stands until the role's rota next changes hands.
use super::Ctx;
use crate::domain::Permission;
use crate::error::{AppError, AppResult};
use crate::store::directory::{self, Role, Staff};
use crate::store::DbConnection;

/// Who asks for a hand-over: a member of staff (an admin, or a current holder handing it
/// on), or the operator at the command line.
pub enum HandedBy<'a> {
    Staff(&'a Staff),
    Operator,
}

/// Hands `role` to `to`, or adds them as a holder when `share`.
pub fn hand_over(
    conn: &mut DbConnection,
    ctx: &Ctx,
    role: &Role,
    to: &Staff,
    share: bool,
    by: HandedBy,
) -> AppResult<()> {
    let by_id = match by {
        HandedBy::Staff(who) => {
            let holds_it = directory::current_holders(conn, &role.id)?.contains(&who.id);
            if !(who.can(Permission::Admin) || holds_it) {
                return Err(AppError::Forbidden(
                    "only an admin or the current holder may hand over a bleep".into(),
                ));
            }
            Some(who.id.as_str())
        }
        HandedBy::Operator => None,
    };
    super::rota::may_hold(conn, role, to)?;
    super::rota::catch_up_in_passing(conn, ctx)?;
    let mut wanted = if share {
        directory::current_holders(conn, &role.id)?
    } else {
        Vec::new()
    };
    if !wanted.contains(&to.id) {
        wanted.push(to.id.clone());
    }
    super::rota::hand_to(conn, ctx, role, &wanted, "hand-over", by_id)?;
    Ok(())
}
