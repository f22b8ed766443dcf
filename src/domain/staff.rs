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
