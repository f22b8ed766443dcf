//! Staff, wards, on-call roles ("bleeps") and who holds them.
use super::schema::{oncall_roles, role_holdings, staff, wards};
use super::{from_db, new_id, to_db, DbConnection};
use crate::domain::staff::{format_permissions, parse_permissions};
use crate::domain::task::required_text;
use crate::domain::Permission;
use crate::error::{AppError, AppResult};
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

mod lookup;
use lookup::names_by_id;
pub use lookup::{assignee_lookup, names, AssigneeLookup, Lookup};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Staff {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub roles: Vec<Permission>,
    pub active: bool,
}

impl Staff {
    pub fn can(&self, p: Permission) -> bool {
        self.active && self.roles.contains(&p)
    }

    /// Whether this person may hold a bleep and do clinical tasks: see
    /// [`crate::domain::staff::may_hold_bleep`]. The error says who and why.
    pub fn may_hold_bleep(&self) -> Result<(), String> {
        crate::domain::staff::may_hold_bleep(self.active, &self.roles).map_err(|why| {
            format!(
                "{} {why}: only an active clinician may hold a bleep",
                self.name
            )
        })
    }

    /// Bed managers, coordinators and admins watch the wards: the dashboard and the
    /// delivery reports are theirs.
    pub fn watches_wards(&self) -> bool {
        self.can(Permission::BedManager)
            || self.can(Permission::Coordinator)
            || self.can(Permission::Admin)
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = staff)]
pub(super) struct StaffRow {
    pub(super) id: String,
    name: String,
    email: Option<String>,
    permissions: String,
    active: bool,
}

impl From<StaffRow> for Staff {
    fn from(r: StaffRow) -> Self {
        staff_of(r.id, r.name, r.email, &r.permissions, r.active)
    }
}

/// A member of staff from their row's columns, however a statement read them.
pub(super) fn staff_of(
    id: String,
    name: String,
    email: Option<String>,
    permissions: &str,
    active: bool,
) -> Staff {
    Staff {
        id,
        name,
        email,
        // Stored by us, so valid; an unreadable list grants nothing rather than failing.
        roles: parse_permissions(permissions).unwrap_or_default(),
        active,
    }
}

pub fn hash_token(token: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(token.as_bytes()) {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "blp_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn check_email(email: &str) -> AppResult<String> {
    let e = email.trim();
    let ok = e.len() <= 254
        && !e.chars().any(char::is_whitespace)
        && matches!(e.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.'));
    if ok {
        Ok(e.to_string())
    } else {
        Err(AppError::Unprocessable(format!(
            "email {e:?} is not an email address"
        )))
    }
}

/// Adds a member of staff and returns them with their new API token (shown once, stored hashed).
pub fn add_staff(
    conn: &mut DbConnection,
    name: &str,
    email: Option<&str>,
    roles: &str,
    now: DateTime<Utc>,
) -> AppResult<(Staff, String)> {
    let name = required_text("name", name, 200).map_err(AppError::Unprocessable)?;
    let email = email.map(check_email).transpose()?;
    let roles = parse_permissions(roles).map_err(AppError::Unprocessable)?;
    if let Some(e) = &email {
        let taken: i64 = staff::table
            .filter(staff::email.eq(e))
            .count()
            .get_result(conn)?;
        if taken > 0 {
            return Err(AppError::conflict(
                format!("a member of staff with email {e} already exists"),
                serde_json::Value::Null,
            ));
        }
    }
    let token = new_token();
    let id = new_id();
    diesel::insert_into(staff::table)
        .values((
            staff::id.eq(&id),
            staff::name.eq(&name),
            staff::email.eq(&email),
            staff::permissions.eq(format_permissions(&roles)),
            staff::token_hash.eq(hash_token(&token)),
            staff::active.eq(true),
            staff::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok((
        Staff {
            id,
            name,
            email,
            roles,
            active: true,
        },
        token,
    ))
}

/// Replaces a member of staff's API token; the old one stops working at once.
pub fn reissue_token(conn: &mut DbConnection, staff_id: &str) -> AppResult<String> {
    let token = new_token();
    let n = diesel::update(staff::table.find(staff_id))
        .set(staff::token_hash.eq(hash_token(&token)))
        .execute(conn)?;
    if n == 0 {
        return Err(AppError::NotFound(format!("no member of staff {staff_id}")));
    }
    Ok(token)
}

pub fn staff_by_token(conn: &mut DbConnection, token: &str) -> AppResult<Option<Staff>> {
    Ok(staff::table
        .filter(staff::token_hash.eq(hash_token(token)))
        .filter(staff::active.eq(true))
        .select(StaffRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Staff::from))
}

pub fn staff_by_id(conn: &mut DbConnection, id: &str) -> AppResult<Option<Staff>> {
    Ok(staff::table
        .find(id)
        .select(StaffRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Staff::from))
}

/// Several members of staff by id, in one query.
pub fn staff_by_ids(conn: &mut DbConnection, ids: &[&str]) -> AppResult<HashMap<String, Staff>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(staff::table
        .filter(staff::id.eq_any(ids))
        .select(StaffRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|r| {
            let s = Staff::from(r);
            (s.id.clone(), s)
        })
        .collect())
}

/// Finds a member of staff by id, email or exact name (for the command line).
pub fn find_staff(conn: &mut DbConnection, key: &str) -> AppResult<Staff> {
    if let Some(s) = staff_by_id(conn, key)? {
        return Ok(s);
    }
    let found: Vec<StaffRow> = staff::table
        .filter(staff::email.eq(key).or(staff::name.eq(key)))
        .select(StaffRow::as_select())
        .load(conn)?;
    match found.len() {
        0 => Err(AppError::NotFound(format!(
            "no member of staff has the id, email or name {key:?}"
        ))),
        1 => Ok(found.into_iter().next().map(Staff::from).expect("one row")),
        n => Err(AppError::Unprocessable(format!(
            "{n} members of staff are called {key:?}: use the id or email"
        ))),
    }
}

pub fn list_staff(conn: &mut DbConnection) -> AppResult<Vec<Staff>> {
    Ok(staff::table
        .order(staff::name.asc())
        .select(StaffRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Staff::from)
        .collect())
}

/// Names of the given staff, for showing who did what.
pub fn staff_names(conn: &mut DbConnection, ids: &[&str]) -> AppResult<HashMap<String, String>> {
    names_by_id(conn, "staff", ids)
}

pub fn add_ward(conn: &mut DbConnection, name: &str, now: DateTime<Utc>) -> AppResult<String> {
    let name = required_text("ward name", name, 100).map_err(AppError::Unprocessable)?;
    if ward_exists(conn, &name)? {
        return Err(AppError::conflict(
            format!("ward {name:?} already exists"),
            serde_json::Value::Null,
        ));
    }
    diesel::insert_into(wards::table)
        .values((wards::name.eq(&name), wards::created_at.eq(to_db(now))))
        .execute(conn)?;
    Ok(name)
}

pub fn ward_exists(conn: &mut DbConnection, name: &str) -> AppResult<bool> {
    let n: i64 = wards::table
        .filter(wards::name.eq(name))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub fn list_wards(conn: &mut DbConnection) -> AppResult<Vec<String>> {
    Ok(wards::table
        .order(wards::name.asc())
        .select(wards::name)
        .load(conn)?)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub escalates_to: Option<String>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = oncall_roles)]
struct RoleRow {
    id: String,
    name: String,
    escalates_to: Option<String>,
}

impl From<RoleRow> for Role {
    fn from(r: RoleRow) -> Self {
        Role {
            id: r.id,
            name: r.name,
            escalates_to: r.escalates_to,
        }
    }
}

pub fn add_role(conn: &mut DbConnection, name: &str, now: DateTime<Utc>) -> AppResult<Role> {
    let name = required_text("role name", name, 200).map_err(AppError::Unprocessable)?;
    let taken: i64 = oncall_roles::table
        .filter(oncall_roles::name.eq(&name))
        .count()
        .get_result(conn)?;
    if taken > 0 {
        return Err(AppError::conflict(
            format!("an on-call role called {name:?} already exists"),
            serde_json::Value::Null,
        ));
    }
    let id = new_id();
    diesel::insert_into(oncall_roles::table)
        .values((
            oncall_roles::id.eq(&id),
            oncall_roles::name.eq(&name),
            oncall_roles::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(Role {
        id,
        name,
        escalates_to: None,
    })
}

/// Finds an on-call role by id or exact name.
pub fn find_role(conn: &mut DbConnection, key: &str) -> AppResult<Option<Role>> {
    Ok(oncall_roles::table
        .filter(oncall_roles::id.eq(key).or(oncall_roles::name.eq(key)))
        .select(RoleRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Role::from))
}

pub fn role_by_id(conn: &mut DbConnection, id: &str) -> AppResult<Role> {
    oncall_roles::table
        .find(id)
        .select(RoleRow::as_select())
        .get_result(conn)
        .map(Role::from)
        .map_err(|_| AppError::NotFound(format!("no on-call role {id}")))
}

pub fn list_roles(conn: &mut DbConnection) -> AppResult<Vec<Role>> {
    Ok(oncall_roles::table
        .order(oncall_roles::name.asc())
        .select(RoleRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Role::from)
        .collect())
}

pub fn role_names(conn: &mut DbConnection, ids: &[&str]) -> AppResult<HashMap<String, String>> {
    names_by_id(conn, "oncall_roles", ids)
}

/// Staff ids of whoever holds the role now.
pub fn current_holders(conn: &mut DbConnection, role_id: &str) -> AppResult<Vec<String>> {
    Ok(role_holdings::table
        .filter(role_holdings::role_id.eq(role_id))
        .filter(role_holdings::held_until.is_null())
        .select(role_holdings::staff_id)
        .load(conn)?)
}

/// Ids of the roles a member of staff holds now.
pub fn roles_held_by(conn: &mut DbConnection, staff_id: &str) -> AppResult<Vec<String>> {
    Ok(role_holdings::table
        .filter(role_holdings::staff_id.eq(staff_id))
        .filter(role_holdings::held_until.is_null())
        .select(role_holdings::role_id)
        .load(conn)?)
}

#[derive(Debug, Clone, Serialize)]
pub struct Holding {
    pub staff_id: String,
    pub held_from: DateTime<Utc>,
    pub held_until: Option<DateTime<Utc>>,
}

/// The rota of one role, newest first.
pub fn holdings(conn: &mut DbConnection, role_id: &str) -> AppResult<Vec<Holding>> {
    Ok(role_holdings::table
        .filter(role_holdings::role_id.eq(role_id))
        .order((role_holdings::held_from.desc(), role_holdings::id.desc()))
        .select((
            role_holdings::staff_id,
            role_holdings::held_from,
            role_holdings::held_until,
        ))
        .load::<(String, NaiveDateTime, Option<NaiveDateTime>)>(conn)?
        .into_iter()
        .map(|(staff_id, from, until)| Holding {
            staff_id,
            held_from: from_db(from),
            held_until: until.map(from_db),
        })
        .collect())
}

/// Hands the bleep over: whoever held it stops (unless `share`, when `to` joins them), and
/// `to` holds it from now. Recorded in the rota.
pub fn hand_over(
    conn: &mut DbConnection,
    role: &Role,
    to: &Staff,
    share: bool,
    by: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    to.may_hold_bleep().map_err(AppError::Unprocessable)?;
    let current = role_holdings::table
        .filter(role_holdings::role_id.eq(&role.id))
        .filter(role_holdings::held_until.is_null());
    if share {
        let already: i64 = current
            .filter(role_holdings::staff_id.eq(&to.id))
            .count()
            .get_result(conn)?;
        if already > 0 {
            return Ok(());
        }
    } else {
        diesel::update(current)
            .set(role_holdings::held_until.eq(Some(to_db(now))))
            .execute(conn)?;
    }
    diesel::insert_into(role_holdings::table)
        .values((
            role_holdings::id.eq(new_id()),
            role_holdings::role_id.eq(&role.id),
            role_holdings::staff_id.eq(&to.id),
            role_holdings::handed_over_by.eq(by),
            role_holdings::held_from.eq(to_db(now)),
            role_holdings::source.eq("hand-over"),
        ))
        .execute(conn)?;
    super::rota::touch_directory(conn, now)?;
    tracing::info!(role = %role.name, staff_id = %to.id, share, "bleep handed over");
    Ok(())
}

/// Sets (or with None clears) the role a role escalates to. Refuses a loop.
pub fn set_escalation(conn: &mut DbConnection, role: &Role, next: Option<&Role>) -> AppResult<()> {
    if let Some(next) = next {
        let mut at = Some(next.clone());
        let mut steps = 0;
        while let Some(r) = at {
            if r.id == role.id {
                return Err(AppError::Unprocessable(format!(
                    "{} already escalates (through its chain) to {}: that would make a loop",
                    next.name, role.name
                )));
            }
            steps += 1;
            if steps > 32 {
                break;
            }
            at = match r.escalates_to {
                Some(id) => Some(role_by_id(conn, &id)?),
                None => None,
            };
        }
    }
    diesel::update(oncall_roles::table.find(&role.id))
        .set(oncall_roles::escalates_to.eq(next.map(|n| n.id.clone())))
        .execute(conn)?;
    Ok(())
}

/// What deactivating a leaver ended.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Deactivated {
    pub staff: Staff,
    pub sessions_ended: usize,
    pub devices_removed: usize,
    /// Names of the bleeps they held, which now have one holder fewer.
    pub bleeps_released: Vec<String>,
}

/// A leaver: inactive from now, with every session, the API token, their push devices and
/// their bleeps ended at once, in one transaction.
pub fn deactivate(
    conn: &mut DbConnection,
    staff_id: &str,
    now: DateTime<Utc>,
) -> AppResult<Deactivated> {
    use super::schema::push_subscriptions;
    let mut staff = staff_by_id(conn, staff_id)?
        .ok_or_else(|| AppError::NotFound(format!("no member of staff {staff_id}")))?;
    if !staff.active {
        return Err(AppError::conflict(
            format!("{} is already inactive", staff.name),
            serde_json::Value::Null,
        ));
    }
    // A token nobody was given: the old one stops working, and no new one is shown.
    diesel::update(staff::table.find(staff_id))
        .set((
            staff::active.eq(false),
            staff::token_hash.eq(hash_token(&new_token())),
        ))
        .execute(conn)?;
    let devices_removed =
        diesel::delete(push_subscriptions::table.filter(push_subscriptions::staff_id.eq(staff_id)))
            .execute(conn)?;
    let held = roles_held_by(conn, staff_id)?;
    let refs: Vec<&str> = held.iter().map(String::as_str).collect();
    let mut bleeps_released: Vec<String> = role_names(conn, &refs)?.into_values().collect();
    bleeps_released.sort();
    diesel::update(
        role_holdings::table
            .filter(role_holdings::staff_id.eq(staff_id))
            .filter(role_holdings::held_until.is_null()),
    )
    .set(role_holdings::held_until.eq(Some(to_db(now))))
    .execute(conn)?;
    staff.active = false;
    tracing::info!(staff_id = %staff.id, devices_removed, "member of staff deactivated");
    Ok(Deactivated {
        staff,
        // Sessions are the sessions table's: the command ends them (`app::staff`).
        sessions_ended: 0,
        devices_removed,
        bleeps_released,
    })
}

/// Identifier systems of the national registers (UK Core).
pub const GMC_SYSTEM: &str = "https://fhir.hl7.org.uk/Id/gmc-number";
pub const NMC_SYSTEM: &str = "https://fhir.hl7.org.uk/Id/nmc-number";
pub const SDS_USER_SYSTEM: &str = "https://fhir.nhs.uk/Id/sds-user-id";
pub const ODS_SITE_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-site-code";

/// A member of staff's optional national identifiers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NationalIds {
    /// General Medical Council reference number: 7 digits.
    pub gmc: Option<String>,
    /// Nursing and Midwifery Council PIN: 2 digits, a letter, 4 digits, a letter.
    pub nmc: Option<String>,
    /// Spine Directory Service user id (the smartcard's): 12 digits.
    pub sds: Option<String>,
}

impl NationalIds {
    /// Checks and normalises each given identifier; an error names the bad one.
    pub fn parse(gmc: Option<&str>, nmc: Option<&str>, sds: Option<&str>) -> AppResult<Self> {
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        let check = |what: &str, v: Option<&str>, ok: &dyn Fn(&str) -> bool, form: &str| {
            v.map(|v| v.trim().to_ascii_uppercase())
                .map(|v| {
                    if ok(&v) {
                        Ok(v)
                    } else {
                        Err(AppError::Unprocessable(format!(
                            "{what} {v:?} is not valid: give {form}"
                        )))
                    }
                })
                .transpose()
        };
        let nmc_form = |s: &str| {
            let b = s.as_bytes();
            b.len() == 8
                && b[..2].iter().all(u8::is_ascii_digit)
                && b[2].is_ascii_uppercase()
                && b[3..7].iter().all(u8::is_ascii_digit)
                && b[7].is_ascii_uppercase()
        };
        Ok(NationalIds {
            gmc: check("GMC number", gmc, &|s| digits(s, 7), "7 digits")?,
            nmc: check(
                "NMC PIN",
                nmc,
                &nmc_form,
                "2 digits, a letter, 4 digits and a letter, such as 12A3456B",
            )?,
            sds: check("SDS user id", sds, &|s| digits(s, 12), "12 digits")?,
        })
    }

    /// The one identifier a reference to this person carries: the professional register
    /// first (GMC, then NMC), then the SDS user id.
    pub fn preferred(&self) -> Option<(&'static str, String)> {
        None.or_else(|| self.gmc.clone().map(|v| (GMC_SYSTEM, v)))
            .or_else(|| self.nmc.clone().map(|v| (NMC_SYSTEM, v)))
            .or_else(|| self.sds.clone().map(|v| (SDS_USER_SYSTEM, v)))
    }
}

/// Sets a member of staff's national identifiers (the given ones; others are kept).
pub fn set_national_ids(
    conn: &mut DbConnection,
    staff_id: &str,
    ids: &NationalIds,
) -> AppResult<()> {
    if let Some(v) = &ids.gmc {
        diesel::update(staff::table.find(staff_id))
            .set(staff::gmc_number.eq(v))
            .execute(conn)?;
    }
    if let Some(v) = &ids.nmc {
        diesel::update(staff::table.find(staff_id))
            .set(staff::nmc_pin.eq(v))
            .execute(conn)?;
    }
    if let Some(v) = &ids.sds {
        diesel::update(staff::table.find(staff_id))
            .set(staff::sds_user_id.eq(v))
            .execute(conn)?;
    }
    Ok(())
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = staff)]
struct NationalIdRow {
    id: String,
    gmc_number: Option<String>,
    nmc_pin: Option<String>,
    sds_user_id: Option<String>,
}

/// National identifiers of the given staff, for those that have any.
pub fn national_ids(
    conn: &mut DbConnection,
    ids: &[&str],
) -> AppResult<HashMap<String, NationalIds>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<NationalIdRow> = staff::table
        .filter(staff::id.eq_any(ids))
        .select(NationalIdRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let ids = NationalIds {
                gmc: r.gmc_number,
                nmc: r.nmc_pin,
                sds: r.sds_user_id,
            };
            (r.id, ids)
        })
        .filter(|(_, n)| n.preferred().is_some())
        .collect())
}

/// An ODS site code: 3 to 10 letters and digits, upper case.
pub fn parse_ods_code(code: &str) -> AppResult<String> {
    let c = code.trim().to_ascii_uppercase();
    if (3..=10).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(c)
    } else {
        Err(AppError::Unprocessable(format!(
            "ODS site code {code:?} is not valid: give 3 to 10 letters and digits, such as RJ122"
        )))
    }
}

/// Sets the ODS code of the site a ward is on.
pub fn set_ward_ods_code(conn: &mut DbConnection, ward: &str, code: &str) -> AppResult<()> {
    let n = diesel::update(wards::table.find(ward))
        .set(wards::ods_site_code.eq(code))
        .execute(conn)?;
    if n == 0 {
        return Err(AppError::NotFound(format!("no ward {ward:?}")));
    }
    Ok(())
}

/// The ODS code of the site a ward is on, if known.
pub fn ward_ods_code(conn: &mut DbConnection, ward: &str) -> AppResult<Option<String>> {
    Ok(wards::table
        .find(ward)
        .select(wards::ods_site_code)
        .get_result::<Option<String>>(conn)
        .optional()?
        .flatten())
}
