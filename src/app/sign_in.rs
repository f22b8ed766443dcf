//! Signing in with the trust's identity provider: which staff record a provider account is,
//! binding it on the first sign-in, and a browser session for it.
use crate::domain::Permission;
use crate::error::AppResult;
use crate::store::audit::{self, Action, Actor, Entry};
use crate::store::directory::Staff;
use crate::store::{identities, sessions, DbConnection};
use chrono::{DateTime, Utc};

/// Who the provider says this is.
pub struct Vouched<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    /// The configured identifying claim's value (an email, or an SDS user id).
    pub key: Option<&'a str>,
    pub by_sds_user_id: bool,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    /// The permissions the provider's claim maps to, when a claim decides them.
    pub permissions: Option<Vec<Permission>>,
    pub client: &'a str,
}

/// What a sign-in through the provider came to.
pub enum Outcome {
    /// Signed in: the session cookie's token.
    Started { staff: Staff, token: String },
    /// The provider knows them; Bleepless does not, and may not make a record.
    NoRecord,
    /// Their staff record is no longer active.
    Inactive,
}

/// Finds (by binding, else by claim, else by making one when `create_unknown`) the staff
/// record, binds the provider account on first sign-in, and starts a session. One
/// transaction.
pub fn sign_in(
    conn: &mut DbConnection,
    who: &Vouched<'_>,
    create_unknown: bool,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let staff = match identities::staff_by_identity(conn, who.issuer, who.subject)? {
        Some(s) => s,
        None => {
            let found = match who.key {
                Some(k) => identities::staff_by_claim(conn, who.by_sds_user_id, k)?,
                None => None,
            };
            let staff = match found {
                Some(s) => s,
                None if create_unknown => {
                    let name = who.name.or(who.email).unwrap_or("New member of staff");
                    let s = identities::add_unprivileged(conn, name, who.email, now)?;
                    record(conn, who, Action::StaffAdded, &s.id, now)?;
                    s
                }
                None => return Ok(Outcome::NoRecord),
            };
            identities::bind(conn, who.issuer, who.subject, &staff.id, now)?;
            record(conn, who, Action::IdentityBound, &staff.id, now)?;
            staff
        }
    };
    if !staff.active {
        return Ok(Outcome::Inactive);
    }
    let mut staff = staff;
    if let Some(p) = &who.permissions {
        let mut p = p.clone();
        p.sort();
        p.dedup();
        if p != staff.roles {
            identities::set_permissions(conn, &staff.id, &p)?;
            record(conn, who, Action::PermissionsSet, &staff.id, now)?;
            staff.roles = p;
        }
    }
    let (token, _csrf) = sessions::start(conn, &staff.id, now)?;
    record(conn, who, Action::SignedIn, &staff.id, now)?;
    Ok(Outcome::Started { staff, token })
}

fn record(
    conn: &mut DbConnection,
    who: &Vouched<'_>,
    action: Action,
    staff_id: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    audit::record(
        conn,
        Entry {
            actor: Actor::Staff(staff_id),
            action,
            subject: Some(staff_id),
            detail: serde_json::json!({ "via": "identity provider", "issuer": who.issuer }),
            client: Some(who.client),
        },
        now,
    )
}
