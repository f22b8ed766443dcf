//! `/fhir/Task` and `/fhir/Provenance` search: the parameters, the paging cursor, and the
//! query they make.
use super::error::FhirError;
use crate::domain::NhsNumber;
use crate::error::AppResult;
use crate::fhir::{self, mapping, TaskRecord};
use crate::store::schema::tasks;
use crate::store::{to_db, DbConnection};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;

/// What `owner=` names.
#[derive(Debug, Clone)]
enum Owner {
    Staff(String),
    Role(String),
    Either(String),
}

#[derive(Debug, Clone, Copy)]
enum Bound {
    /// updated_at >= t
    From(NaiveDateTime),
    /// updated_at < t
    Before(NaiveDateTime),
}

#[derive(Debug, Clone, Default)]
pub(super) struct TaskSearch {
    nhs_number: Option<String>,
    id: Option<String>,
    statuses: Option<Vec<String>>,
    owner: Option<Owner>,
    updated: Vec<Bound>,
    count: i64,
    /// Where this page starts: after the task raised at that time with that id (newest
    /// first). Raising time and id never change, so a task updated during a walk through
    /// the pages is neither skipped nor repeated.
    after: Option<(NaiveDateTime, String)>,
    /// The parameters as given (without _cursor), for the paging links.
    echo: Vec<(String, String)>,
}

/// `_cursor`: the raising time in nanoseconds (as precise as the database keeps it) and the
/// id of the last task of a page.
fn cursor(raised_at: NaiveDateTime, id: &str) -> String {
    let nanos = raised_at
        .and_utc()
        .timestamp_nanos_opt()
        .unwrap_or(i64::MAX);
    format!("{nanos}_{id}")
}

pub(super) fn parse_cursor(value: &str) -> Result<(NaiveDateTime, String), FhirError> {
    value
        .split_once('_')
        .and_then(|(nanos, id)| {
            let t = DateTime::from_timestamp_nanos(nanos.parse().ok()?);
            mapping::is_id(id).then(|| (t.naive_utc(), id.to_string()))
        })
        .ok_or_else(|| {
            FhirError::invalid(format!(
                "_cursor {value:?} is not one of ours: follow the Bundle's next link"
            ))
        })
}

/// Every search parameter `/fhir/Task` answers; the CapabilityStatement declares each.
pub const TASK_SEARCH_PARAMS: &[&str] = &[
    "patient",
    "subject",
    "identifier",
    "_id",
    "status",
    "owner",
    "_lastUpdated",
    "_count",
    "_cursor",
];

const TASK_STATUSES: &[&str] = &[
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
];

fn parse_nhs(value: &str) -> Result<String, FhirError> {
    NhsNumber::parse(value)
        .map(|n| n.as_str().to_string())
        .map_err(|e| FhirError::invalid(format!("patient: {e}")))
}

/// `_lastUpdated`: an optional prefix, then a date or a dateTime; a partial date is a range.
fn parse_last_updated(value: &str) -> Result<Vec<Bound>, FhirError> {
    let bad = || {
        FhirError::invalid(format!(
            "_lastUpdated {value:?}: give a prefix (eq, gt, ge, lt, le) and a date such as 2026-11-26 or 2026-11-26T02:00:00Z"
        ))
    };
    let (prefix, text) = match value.get(..2) {
        Some(p) if p.bytes().all(|b| b.is_ascii_lowercase()) => (p, &value[2..]),
        _ => ("eq", value),
    };
    let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    let (start, end) = match text.len() {
        4 => {
            let y: i32 = text.parse().map_err(|_| bad())?;
            let s = NaiveDate::from_ymd_opt(y, 1, 1).ok_or_else(bad)?;
            let e = NaiveDate::from_ymd_opt(y + 1, 1, 1).ok_or_else(bad)?;
            (
                s.and_time(Default::default()),
                e.and_time(Default::default()),
            )
        }
        7 => {
            let s = day(&format!("{text}-01")).ok_or_else(bad)?;
            let e = s
                .checked_add_months(chrono::Months::new(1))
                .ok_or_else(bad)?;
            (
                s.and_time(Default::default()),
                e.and_time(Default::default()),
            )
        }
        10 => {
            let s = day(text).ok_or_else(bad)?;
            (
                s.and_time(Default::default()),
                (s + Duration::days(1)).and_time(Default::default()),
            )
        }
        _ => {
            let t = DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| bad())?;
            let step = if text.contains('.') {
                Duration::microseconds(1)
            } else {
                Duration::seconds(1)
            };
            (to_db(t), to_db(t + step))
        }
    };
    Ok(match prefix {
        "eq" => vec![Bound::From(start), Bound::Before(end)],
        "ge" => vec![Bound::From(start)],
        "gt" => vec![Bound::From(end)],
        "lt" => vec![Bound::Before(start)],
        "le" => vec![Bound::Before(end)],
        other => {
            return Err(FhirError::invalid(format!(
                "_lastUpdated: the prefix {other:?} is not supported (use eq, gt, ge, lt or le)"
            )))
        }
    })
}

pub(super) fn parse_task_search(
    params: Vec<(String, String)>,
    base: &str,
) -> Result<TaskSearch, FhirError> {
    let mut s = TaskSearch {
        count: 20,
        ..TaskSearch::default()
    };
    let mut seen: Vec<String> = Vec::new();
    for (k, v) in params {
        if k != "_lastUpdated" && seen.contains(&k) {
            return Err(FhirError::invalid(format!("give {k} once")));
        }
        seen.push(k.clone());
        let v = v.trim().to_string();
        if v.is_empty() {
            return Err(FhirError::invalid(format!("{k} has no value")));
        }
        match k.as_str() {
            "patient" | "subject" => {
                let n = v.strip_prefix("Patient/").unwrap_or(&v);
                s.nhs_number = Some(parse_nhs(n)?);
            }
            "patient:identifier" | "subject:identifier" => {
                s.nhs_number = Some(parse_patient_identifier(&k, &v)?);
            }
            "identifier" | "_id" => s.id = Some(parse_task_id(&v, base)?),
            "status" => s.statuses = Some(parse_statuses(&v)?),
            "owner" => s.owner = Some(parse_owner(&v)?),
            "_lastUpdated" => s.updated.extend(parse_last_updated(&v)?),
            "_count" => s.count = parse_count(&v)?,
            "_cursor" => {
                s.after = Some(parse_cursor(&v)?);
                continue;
            }
            other => {
                return Err(FhirError::invalid(format!(
                    "search parameter {other:?} is not supported for Task; supported: {}",
                    TASK_SEARCH_PARAMS.join(", ")
                )))
            }
        }
        s.echo.push((k, v));
    }
    Ok(s)
}

/// `patient:identifier` (or `subject:identifier`): an NHS number, optionally with its system.
fn parse_patient_identifier(k: &str, v: &str) -> Result<String, FhirError> {
    let n = match v.split_once('|') {
        Some((sys, n)) if sys == mapping::NHS_NUMBER_SYSTEM || sys.is_empty() => n,
        Some((sys, _)) => {
            return Err(FhirError::invalid(format!(
                "{k}: the identifier system must be {} (not {sys:?})",
                mapping::NHS_NUMBER_SYSTEM
            )))
        }
        None => v,
    };
    parse_nhs(n)
}

/// `identifier` or `_id`: a task's id, optionally with our task identifier system.
fn parse_task_id(v: &str, base: &str) -> Result<String, FhirError> {
    let id = match v.split_once('|') {
        Some((sys, id)) if sys.is_empty() || sys == mapping::system(base, "Id/task") => id,
        Some((sys, _)) => {
            return Err(FhirError::invalid(format!(
                "identifier: tasks are identified in the system {} (not {sys:?})",
                mapping::system(base, "Id/task")
            )))
        }
        None => v,
    };
    Ok(id.to_string())
}

/// `status`: FHIR Task status codes, comma-separated.
fn parse_statuses(v: &str) -> Result<Vec<String>, FhirError> {
    let list: Vec<String> = v.split(',').map(|c| c.trim().to_string()).collect();
    for c in &list {
        if !TASK_STATUSES.contains(&c.as_str()) {
            return Err(FhirError::invalid(format!(
                "status {c:?} is not a FHIR Task status: expected one of {}",
                TASK_STATUSES.join(", ")
            )));
        }
    }
    Ok(list)
}

/// `owner`: `Practitioner/{staff id}`, `PractitionerRole/{role id}`, or a bare id (either).
fn parse_owner(v: &str) -> Result<Owner, FhirError> {
    Ok(if let Some(id) = v.strip_prefix("Practitioner/") {
        Owner::Staff(id.to_string())
    } else if let Some(id) = v.strip_prefix("PractitionerRole/") {
        Owner::Role(id.to_string())
    } else if v.contains('/') {
        return Err(FhirError::invalid(format!(
            "owner {v:?}: give Practitioner/{{staff id}} or PractitionerRole/{{role id}}"
        )));
    } else {
        Owner::Either(v.to_string())
    })
}

/// `_count`: the page size, 0 to 100.
fn parse_count(v: &str) -> Result<i64, FhirError> {
    v.parse::<i64>()
        .ok()
        .filter(|n| (0..=100).contains(n))
        .ok_or_else(|| {
            FhirError::invalid(format!("_count {v:?}: give a whole number from 0 to 100"))
        })
}

type Backend = <DbConnection as diesel::Connection>::Backend;

fn filtered(s: &TaskSearch) -> tasks::BoxedQuery<'static, Backend> {
    let mut q = tasks::table.into_boxed();
    if let Some(n) = &s.nhs_number {
        q = q.filter(tasks::nhs_number.eq(n.clone()));
    }
    if let Some(id) = &s.id {
        q = q.filter(tasks::id.eq(id.clone()));
    }
    if let Some(list) = &s.statuses {
        q = q.filter(tasks::status.eq_any(list.clone()));
    }
    match s.owner.clone() {
        Some(Owner::Staff(x)) => {
            q = q.filter(
                tasks::acknowledged_by
                    .eq(x.clone())
                    .or(tasks::acknowledged_by
                        .is_null()
                        .and(tasks::assignee_staff_id.eq(x))),
            )
        }
        Some(Owner::Role(x)) => {
            q = q.filter(
                tasks::acknowledged_by
                    .is_null()
                    .and(tasks::assignee_role_id.eq(x)),
            )
        }
        Some(Owner::Either(x)) => {
            q = q.filter(
                tasks::acknowledged_by
                    .eq(x.clone())
                    .or(tasks::acknowledged_by.is_null().and(
                        tasks::assignee_staff_id
                            .eq(x.clone())
                            .or(tasks::assignee_role_id.eq(x)),
                    )),
            )
        }
        None => {}
    }
    for b in &s.updated {
        q = match *b {
            Bound::From(t) => q.filter(tasks::updated_at.ge(t)),
            Bound::Before(t) => q.filter(tasks::updated_at.lt(t)),
        };
    }
    q
}

/// One page of tasks (newest raised first, after the cursor), how many match in all, and
/// whether there is a next page.
pub(super) fn page(
    c: &mut DbConnection,
    search: &TaskSearch,
) -> AppResult<(i64, Vec<TaskRecord>, bool)> {
    let total: i64 = filtered(search).count().get_result(c)?;
    let mut q = filtered(search);
    if let Some((t, id)) = search.after.clone() {
        q = q.filter(
            tasks::raised_at
                .lt(t)
                .or(tasks::raised_at.eq(t).and(tasks::id.lt(id))),
        );
    }
    // One more than the page, to know whether there is a next one.
    let mut ids: Vec<String> = if search.count == 0 {
        Vec::new()
    } else {
        q.select(tasks::id)
            .order((tasks::raised_at.desc(), tasks::id.desc()))
            .limit(search.count + 1)
            .load(c)?
    };
    let more = ids.len() as i64 > search.count;
    ids.truncate(search.count as usize);
    let records = ids
        .iter()
        .map(|id| fhir::load(c, id))
        .collect::<AppResult<Vec<_>>>()?;
    Ok((total, records, more))
}

/// The Bundle's links: `self`, `first`, and `next` when there is more (`last` is this
/// page's last task).
pub(super) fn links(
    s: &TaskSearch,
    base: &str,
    more: bool,
    last: Option<&TaskRecord>,
) -> Vec<(&'static str, String)> {
    let page = |after: Option<String>| {
        let mut pairs = s.echo.clone();
        if !pairs.iter().any(|(k, _)| k == "_count") {
            pairs.push(("_count".into(), s.count.to_string()));
        }
        if let Some(c) = after {
            pairs.push(("_cursor".into(), c));
        }
        format!(
            "{base}/fhir/Task?{}",
            pairs
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect::<Vec<_>>()
                .join("&")
        )
    };
    let this = s.after.as_ref().map(|(t, id)| cursor(*t, id));
    let mut links = vec![("self", page(this)), ("first", page(None))];
    if let (true, Some(last)) = (more, last) {
        links.push((
            "next",
            page(Some(cursor(to_db(last.task.raised_at), &last.task.id))),
        ));
    }
    links
}

/// Percent-encodes a query string key or value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `Task/{id}`, `Task/{id}/_history/{n}`, a full URL to either, or a bare id.
pub(super) fn parse_target(value: &str, base: &str) -> Result<(String, Option<i32>), FhirError> {
    let v = value
        .strip_prefix(&format!("{base}/fhir/"))
        .unwrap_or(value);
    let v = v.strip_prefix("Task/").unwrap_or(v);
    let (id, version) = match v.split_once("/_history/") {
        Some((id, n)) => (
            id,
            Some(n.parse::<i32>().map_err(|_| {
                FhirError::invalid(format!("target {value:?}: the version is not a number"))
            })?),
        ),
        None => (v, None),
    };
    if !mapping::is_id(id) {
        return Err(FhirError::invalid(format!(
            "target {value:?}: give Task/{{id}} (only Task targets are recorded)"
        )));
    }
    Ok((id.to_string(), version))
}
