use super::coded_enum;

coded_enum!(
    /// What a member of staff may do in Bleepless (not an on-call role: those are "bleeps").
    Permission, "staff role" {
        Coordinator => "coordinator",
        Clinician => "clinician",
        BedManager => "bed_manager",
        Admin => "admin",
    }
);

/// Parses a comma-separated list such as `coordinator,clinician`.
pub fn parse_permissions(list: &str) -> Result<Vec<Permission>, String> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p = Permission::parse(part)?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err(format!(
            "give at least one staff role: {}",
            Permission::ALL
                .iter()
                .map(|p| p.code())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.sort();
    Ok(out)
}

pub fn format_permissions(list: &[Permission]) -> String {
    list.iter().map(|p| p.code()).collect::<Vec<_>>().join(",")
}

/// Who may hold a bleep, and so acknowledge, start and complete clinical tasks: an active
/// clinician. Coordinators, bed managers and admins raise, watch and arrange the work; they
/// do not do it. The reason, when not, completes "… cannot hold a bleep".
pub fn may_hold_bleep(active: bool, permissions: &[Permission]) -> Result<(), &'static str> {
    if !active {
        return Err("is no longer active");
    }
    if !permissions.contains(&Permission::Clinician) {
        return Err("is not a clinician");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_active_clinicians_may_hold_a_bleep() {
        use Permission::*;
        assert!(may_hold_bleep(true, &[Clinician]).is_ok());
        assert!(may_hold_bleep(true, &[BedManager, Clinician]).is_ok());
        assert!(may_hold_bleep(false, &[Clinician]).is_err());
        for other in [Coordinator, BedManager, Admin] {
            assert!(may_hold_bleep(true, &[other]).is_err(), "{other}");
        }
    }
}
