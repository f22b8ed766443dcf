//! A small believable hospital, for trying Bleepless out.
use crate::app::roles::{hand_over, HandedBy};
use crate::app::Ctx;
use crate::error::AppResult;
use crate::store::{directory, DbConnection};
use chrono::{DateTime, Utc};

pub struct DemoLogin {
    pub name: String,
    pub email: String,
    pub roles: String,
    pub token: String,
}

/// Fills an empty database with wards, staff and on-call roles. Returns None if staff already
/// exist, so that demo data is never mixed into a real directory.
/// Everyone gets the same fresh random password, printed once.
pub fn fill(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
) -> AppResult<Option<(Vec<DemoLogin>, String)>> {
    let ctx = Ctx {
        now,
        policy: Default::default(),
        rota: Default::default(),
        recent: Default::default(),
    };
    if !directory::list_staff(conn)?.is_empty() {
        return Ok(None);
    }
    for w in [
        "Ward 5 (Acute Medicine)",
        "Ward 6 (Respiratory)",
        "Ward 7 (Care of the Elderly)",
        "Ward 8 (Surgery)",
    ] {
        directory::add_ward(conn, w, now)?;
    }
    let people = [
        (
            "Sister Grace Okafor",
            "grace.okafor@example.nhs.uk",
            "coordinator",
        ),
        (
            "Charge Nurse Tom Reilly",
            "tom.reilly@example.nhs.uk",
            "coordinator",
        ),
        ("Dr Amy Patel", "amy.patel@example.nhs.uk", "clinician"),
        ("Dr Ben Hughes", "ben.hughes@example.nhs.uk", "clinician"),
        ("Dr Chloe Evans", "chloe.evans@example.nhs.uk", "clinician"),
        ("Dr Dan Wright", "dan.wright@example.nhs.uk", "clinician"),
        // The clinical site manager holds the site bleep: only clinicians hold bleeps.
        (
            "Maria Santos",
            "maria.santos@example.nhs.uk",
            "bed_manager,clinician",
        ),
        ("Sam Admin", "sam.admin@example.nhs.uk", "admin"),
    ];
    let password = crate::store::sessions::random_token()[..16].to_string();
    let mut logins = Vec::new();
    let mut ids = Vec::new();
    for (name, email, roles) in people {
        let (staff, token) = directory::add_staff(conn, name, Some(email), roles, now)?;
        crate::store::sessions::set_password(conn, &staff.id, &password)?;
        ids.push(staff);
        logins.push(DemoLogin {
            name: name.into(),
            email: email.into(),
            roles: roles.into(),
            token,
        });
    }
    let rota = [
        ("Medicine FY1 night", 2),
        ("Medicine FY1 day", 3),
        ("Medicine SHO night", 4),
        ("Medicine registrar night", 5),
        ("Site manager", 6),
    ];
    // Who may hold each bleep: the four doctors the FY1 bleeps, the senior two the SHO's,
    // Dan the registrar's, Maria the site bleep.
    let may_hold: [&[usize]; 5] = [&[2, 3, 4, 5], &[2, 3, 4, 5], &[4, 5], &[5], &[6]];
    let mut roles = Vec::new();
    for ((role, holder), listed) in rota.into_iter().zip(may_hold) {
        let r = directory::add_role(conn, role, now)?;
        for &i in listed {
            crate::store::rota::allow(conn, &r.id, &ids[i].id, now)?;
        }
        hand_over(conn, &ctx, &r, &ids[holder], false, HandedBy::Operator)?;
        roles.push(r);
    }
    // FY1 → SHO → registrar → site manager, day and night.
    for (from, to) in [(0, 2), (1, 2), (2, 3), (3, 4)] {
        directory::set_escalation(conn, &roles[from], Some(&roles[to]))?;
    }
    Ok(Some((logins, password)))
}
