//! The patient record: every task and its outcome as FHIR R4 resources, served under `/fhir`
//! (by the web layer's handlers, in `src/web/fhir/`) and delivered to the trust's FHIR server
//! through the outbox (`src/outbox/record.rs`). The resources themselves are made by [`mapping`]
//! (and [`code_systems`]), which are pure; [`load`] reads one task's record.
pub mod code_systems;
pub mod mapping;

use crate::domain::timeline::Event;
use crate::domain::{Assignee, Task};
use crate::error::AppResult;
use crate::store::directory;
use crate::store::events;
use crate::store::tasks;
use crate::store::DbConnection;
use std::collections::HashMap;

/// A task with everything its FHIR resources are made from: the row, its events, and the
/// names of the people and roles they mention.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub task: Task,
    /// Oldest first.
    pub events: Vec<Event>,
    pub staff: HashMap<String, String>,
    pub roles: HashMap<String, String>,
    /// National identifiers of the staff it mentions, for those that have any.
    pub national_ids: HashMap<String, directory::NationalIds>,
    /// The ODS code of the site the task's ward is on.
    pub ward_ods_code: Option<String>,
}

/// Reads one task's record (one snapshot: call inside one transaction for consistency).
pub fn load(conn: &mut DbConnection, id: &str) -> AppResult<TaskRecord> {
    let task = tasks::get(conn, id)?;
    let events = events::timeline(conn, id)?;
    let mut staff_ids: Vec<String> = vec![task.raised_by.clone()];
    let mut role_ids: Vec<String> = Vec::new();
    let named = events.iter().flat_map(mapping::assignees_in);
    for a in std::iter::once(task.assignee.clone()).chain(named) {
        match a {
            Assignee::Role(r) => role_ids.push(r),
            Assignee::Staff(s) => staff_ids.push(s),
        }
    }
    if let Some(a) = &task.acknowledged_by {
        staff_ids.push(a.clone());
    }
    staff_ids.extend(
        events
            .iter()
            .filter_map(|e| e.actor.as_ref().map(|p| p.id.clone())),
    );
    let s: Vec<&str> = staff_ids.iter().map(String::as_str).collect();
    let national_ids = directory::national_ids(conn, &s)?;
    let ward_ods_code = directory::ward_ods_code(conn, &task.ward)?;
    let r: Vec<&str> = role_ids.iter().map(String::as_str).collect();
    let mut staff = directory::staff_names(conn, &s)?;
    for e in &events {
        if let Some(p) = &e.actor {
            staff.insert(p.id.clone(), p.name.clone());
        }
    }
    let roles = directory::role_names(conn, &r)?;
    Ok(TaskRecord {
        task,
        events,
        staff,
        roles,
        national_ids,
        ward_ods_code,
    })
}
