//! Tasks and their events as FHIR R4 (4.0.1) resources: pure functions from a
//! [`TaskRecord`] to JSON. The README's "Patient record (FHIR R4)" section is the table of
//! this mapping; keep the two together.
//!
//! People and on-call roles are referenced logically (by identifier, with a display name),
//! because Bleepless serves no Practitioner resources and the record server has none of ours.
use super::TaskRecord;
use crate::domain::timeline::Event;
use crate::domain::{Assignee, Task};
use crate::domain::{Category, OutcomeCode, Status};
use crate::store::directory::ODS_SITE_SYSTEM;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

pub const FHIR_JSON: &str = "application/fhir+json";
pub const FHIR_VERSION: &str = "4.0.1";
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
const DATA_OPERATION: &str = "http://terminology.hl7.org/CodeSystem/v3-DataOperation";
const PARTICIPANT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
const SNOMED: &str = "http://snomed.info/sct";
/// SNOMED CT UK: "Royal College of Physicians NEWS2 (National Early Warning Score 2) total score".
const NEWS2_SCTID: &str = "1104051000000101";

/// The ids of the code systems we define, each served at `/fhir/CodeSystem/{id}`.
pub const CODE_SYSTEMS: &[&str] = &[
    "task-category",
    "task-outcome",
    "task-output",
    "task-event",
    "escalation-level",
];

/// Our identifier and code system URIs live under the configured system base (by default
/// the service's public address): `{system_base}/fhir/Id/task`,
/// `{system_base}/fhir/CodeSystem/task-category`, …
pub fn system(base: &str, path: &str) -> String {
    format!("{base}/fhir/{path}")
}

/// A FHIR `instant` (also a valid `dateTime`): UTC with `Z`, fractions only when present.
pub fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Is this a FHIR logical id (`[A-Za-z0-9\-\.]{1,64}`)?
pub fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

pub fn category_label(c: Category) -> &'static str {
    match c {
        Category::Review => "Clinical review",
        Category::Cannula => "Cannula",
        Category::Bloods => "Blood tests",
        Category::Fluids => "IV fluids",
        Category::Prescription => "Prescription",
        Category::Other => "Other",
    }
}

pub(super) fn escalation_label(level: i32) -> String {
    if level <= 0 {
        "Not escalated".to_string()
    } else {
        format!("Escalated to level {level}")
    }
}

/// An assignee as events record it: `{"role": id}` or `{"staff": id}`.
pub fn assignee_from(v: &Value) -> Option<Assignee> {
    if let Some(r) = v.get("role").and_then(Value::as_str) {
        return Some(Assignee::Role(r.to_string()));
    }
    v.get("staff")
        .and_then(Value::as_str)
        .map(|s| Assignee::Staff(s.to_string()))
}

/// The assignees an event names (raised: the first; reassigned: the old and the new).
pub fn assignees_in(e: &Event) -> Vec<Assignee> {
    let Some(d) = &e.detail else {
        return Vec::new();
    };
    ["assignee", "from", "to"]
        .iter()
        .filter_map(|k| d.get(*k).and_then(assignee_from))
        .collect()
}

fn detail_str(e: &Event, key: &str) -> Option<String> {
    e.detail
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The task as it stood right after event `upto`, replayed from the event log. Fields that
/// never change (patient, ward, bed, category, description, priority) come from the row; the
/// acknowledge window is the one the row's deadline was computed with.
pub fn snapshot(rec: &TaskRecord, upto: i32) -> Task {
    let cur = &rec.task;
    let window_from = rec
        .events
        .iter()
        .rev()
        .find(|e| e.kind == "reassigned")
        .map(|e| e.at)
        .unwrap_or(cur.raised_at);
    let window = cur.ack_deadline - window_from;
    let mut t = cur.clone();
    t.status = Status::Requested;
    t.acknowledged_by = None;
    t.acknowledged_at = None;
    t.started_at = None;
    t.ended_at = None;
    t.outcome = None;
    t.status_reason = None;
    t.escalation_level = 0;
    t.ack_deadline = cur.raised_at + window;
    t.updated_at = cur.raised_at;
    for e in rec.events.iter().filter(|e| e.seq <= upto) {
        match e.kind.as_str() {
            "raised" => {
                if let Some(a) = e.detail.as_ref().and_then(|d| d.get("assignee")) {
                    t.assignee = assignee_from(a).unwrap_or(t.assignee);
                }
            }
            "acknowledged" => {
                t.acknowledged_by = e.actor.as_ref().map(|p| p.id.clone());
                t.acknowledged_at = Some(e.at);
            }
            "started" => t.started_at = Some(e.at),
            "completed" => {
                let o = e.detail.as_ref().and_then(|d| d.get("outcome"));
                let code = o
                    .and_then(|o| o.get("code"))
                    .and_then(Value::as_str)
                    .and_then(|c| OutcomeCode::parse(c).ok());
                let text = o
                    .and_then(|o| o.get("text"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                t.outcome = code.map(|c| (c, text.to_string()));
                t.ended_at = Some(e.at);
            }
            "cancelled" | "declined" => {
                t.status_reason = detail_str(e, "reason");
                t.ended_at = Some(e.at);
            }
            "reassigned" => {
                if let Some(a) = e.detail.as_ref().and_then(|d| d.get("to")) {
                    t.assignee = assignee_from(a).unwrap_or(t.assignee);
                }
                t.acknowledged_by = None;
                t.acknowledged_at = None;
                t.started_at = None;
                t.ended_at = None;
                t.status_reason = detail_str(e, "reason");
                t.escalation_level = 0;
                t.ack_deadline = e.at + window;
            }
            "escalated" => {
                if let Some(l) = e
                    .detail
                    .as_ref()
                    .and_then(|d| d.get("level"))
                    .and_then(Value::as_i64)
                {
                    t.escalation_level = l as i32;
                }
            }
            _ => {}
        }
        if let Some(s) = e.to_status.as_deref().and_then(|s| Status::parse(s).ok()) {
            t.status = s;
        }
        t.updated_at = e.at;
    }
    t
}

/// A person by their national identifier (GMC, NMC, SDS) when they have one, else ours.
fn practitioner(rec: &TaskRecord, base: &str, id: &str) -> Value {
    let identifier = match rec.national_ids.get(id).and_then(|n| n.preferred()) {
        Some((sys, value)) => json!({ "system": sys, "value": value }),
        None => json!({ "system": system(base, "Id/staff"), "value": id }),
    };
    let mut r = json!({ "type": "Practitioner", "identifier": identifier });
    if let Some(name) = rec.staff.get(id).filter(|n| !n.is_empty()) {
        r["display"] = json!(name);
    }
    r
}

fn assignee_ref(rec: &TaskRecord, base: &str, a: &Assignee) -> Value {
    match a {
        Assignee::Staff(s) => practitioner(rec, base, s),
        Assignee::Role(r) => {
            let mut v = json!({
                "type": "PractitionerRole",
                "identifier": { "system": system(base, "Id/oncall-role"), "value": r },
            });
            if let Some(name) = rec.roles.get(r).filter(|n| !n.is_empty()) {
                v["display"] = json!(name);
            }
            v
        }
    }
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

/// The Task resource for the task as it stood after event `seq`.
fn task_resource(rec: &TaskRecord, t: &Task, seq: i32, base: &str) -> Value {
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("Task"));
    r.insert("id".into(), json!(t.id));
    r.insert(
        "meta".into(),
        json!({ "versionId": seq.to_string(), "lastUpdated": instant(t.updated_at) }),
    );
    r.insert(
        "identifier".into(),
        json!([{ "use": "official", "system": system(base, "Id/task"), "value": t.id }]),
    );
    r.insert("status".into(), json!(t.status.code()));
    if let Some(reason) = &t.status_reason {
        r.insert("statusReason".into(), json!({ "text": reason }));
    }
    r.insert("businessStatus".into(), business_status(t, base));
    r.insert("intent".into(), json!("order"));
    r.insert("priority".into(), json!(t.priority.code()));
    r.insert("code".into(), task_code(t, base));
    r.insert("description".into(), json!(t.description));
    r.insert(
        "for".into(),
        json!({ "type": "Patient", "identifier": { "system": NHS_NUMBER_SYSTEM, "value": t.nhs_number } }),
    );
    if let Some(p) = execution_period(t) {
        r.insert("executionPeriod".into(), p);
    }
    r.insert("authoredOn".into(), json!(instant(t.raised_at)));
    r.insert("lastModified".into(), json!(instant(t.updated_at)));
    r.insert("requester".into(), practitioner(rec, base, &t.raised_by));
    r.insert("owner".into(), owner(rec, t, base));
    r.insert("location".into(), location(rec, t, base));
    let notes = notes(rec, seq, base);
    if !notes.is_empty() {
        r.insert("note".into(), json!(notes));
    }
    r.insert(
        "restriction".into(),
        json!({ "period": { "end": instant(t.ack_deadline) } }),
    );
    if let Some(input) = input(t) {
        r.insert("input".into(), input);
    }
    if let Some(output) = output(t, base) {
        r.insert("output".into(), output);
    }
    Value::Object(r)
}

/// `Task.businessStatus`: the escalation level.
fn business_status(t: &Task, base: &str) -> Value {
    let level = escalation_label(t.escalation_level);
    json!({
        "coding": [coding(&system(base, "CodeSystem/escalation-level"), &t.escalation_level.to_string(), &level)],
        "text": level,
    })
}

/// `Task.code`: the category.
fn task_code(t: &Task, base: &str) -> Value {
    json!({
        "coding": [coding(&system(base, "CodeSystem/task-category"), t.category.code(), category_label(t.category))],
        "text": category_label(t.category),
    })
}

/// `Task.executionPeriod`: from acknowledgement (or start) to the end, once acknowledged.
fn execution_period(t: &Task) -> Option<Value> {
    let start = t.acknowledged_at.or(t.started_at)?;
    let mut p = json!({ "start": instant(start) });
    if let Some(end) = t.ended_at {
        p["end"] = json!(instant(end));
    }
    Some(p)
}

/// `Task.owner`: who acknowledged the task or, before that, its assignee.
fn owner(rec: &TaskRecord, t: &Task, base: &str) -> Value {
    match &t.acknowledged_by {
        Some(who) => practitioner(rec, base, who),
        None => assignee_ref(rec, base, &t.assignee),
    }
}

/// `Task.location`: the ward (assigned by its site's ODS code, when known) and bed.
fn location(rec: &TaskRecord, t: &Task, base: &str) -> Value {
    let mut ward = json!({ "system": system(base, "Id/ward"), "value": t.ward });
    if let Some(ods) = &rec.ward_ods_code {
        // The ward's name is ours; the site it is on is the NHS's (ODS).
        ward["assigner"] = json!({
            "type": "Organization",
            "identifier": { "system": ODS_SITE_SYSTEM, "value": ods },
        });
    }
    json!({
        "type": "Location",
        "identifier": ward,
        "display": format!("{}, bed {}", t.ward, t.bed),
    })
}

/// `Task.note`: the comments made up to event `seq`.
fn notes(rec: &TaskRecord, seq: i32, base: &str) -> Vec<Value> {
    rec.events
        .iter()
        .filter(|e| e.seq <= seq && e.kind == "commented")
        .map(|e| {
            let text = detail_str(e, "text").unwrap_or_default();
            match &e.actor {
                Some(p) => json!({
                    "authorReference": practitioner(rec, base, &p.id),
                    "time": instant(e.at),
                    "text": text,
                }),
                None => json!({ "authorString": "Bleepless", "time": instant(e.at), "text": text }),
            }
        })
        .collect()
}

/// `Task.input`: the NEWS2 score, when given.
fn input(t: &Task) -> Option<Value> {
    let n = t.news2?;
    Some(json!([{
        "type": { "coding": [{ "system": SNOMED, "code": NEWS2_SCTID }], "text": "NEWS2 total score" },
        "valueInteger": n,
    }]))
}

/// `Task.output`: the outcome, once completed.
fn output(t: &Task, base: &str) -> Option<Value> {
    let (Status::Completed, Some((code, text))) = (t.status, &t.outcome) else {
        return None;
    };
    Some(json!([{
        "type": {
            "coding": [coding(&system(base, "CodeSystem/task-output"), "outcome", "Outcome")],
            "text": "Outcome",
        },
        "valueCodeableConcept": {
            "coding": [coding(&system(base, "CodeSystem/task-outcome"), code.code(), code.label())],
            // FHIR allows no empty string: an outcome given by its code alone reads as it.
            "text": if text.is_empty() { code.label() } else { text.as_str() },
        },
    }]))
}

/// The last event's number: the task's current FHIR version.
pub fn current_version(rec: &TaskRecord) -> i32 {
    rec.events.last().map(|e| e.seq).unwrap_or(1)
}

/// The Task as it is now.
pub fn task(rec: &TaskRecord, base: &str) -> Value {
    task_resource(rec, &rec.task, current_version(rec), base)
}

/// The Task as it was right after event `seq` (its FHIR version `seq`), if there is one.
pub fn task_version(rec: &TaskRecord, seq: i32, base: &str) -> Option<Value> {
    if seq == current_version(rec) {
        return Some(task(rec, base));
    }
    rec.events
        .iter()
        .any(|e| e.seq == seq)
        .then(|| task_resource(rec, &snapshot(rec, seq), seq, base))
}

pub fn event_label(kind: &str) -> &str {
    match kind {
        "raised" => "Task raised",
        "acknowledged" => "Acknowledged",
        "started" => "Started",
        "completed" => "Completed",
        "cancelled" => "Cancelled",
        "declined" => "Declined",
        "reassigned" => "Reassigned",
        "commented" => "Comment added",
        "escalated" => "Escalated (nobody acknowledged in time)",
        "escalation_skipped" => "Escalation passed over a role nobody holds",
        "seen" => "Seen on a phone (the notification was shown)",
        other => other,
    }
}

pub fn provenance_id(task_id: &str, seq: i32) -> String {
    format!("{task_id}-{seq}")
}

/// Who did what, when: one Provenance per event. Its target is the Task version the event
/// made (`versioned`), or the Task itself (for a record server with its own version numbers).
pub fn provenance(rec: &TaskRecord, e: &Event, base: &str, versioned: bool) -> Value {
    let id = &rec.task.id;
    let target = if versioned {
        format!("Task/{id}/_history/{}", e.seq)
    } else {
        format!("Task/{id}")
    };
    let (op, op_display) = if e.kind == "raised" {
        ("CREATE", "create")
    } else {
        ("UPDATE", "revise")
    };
    let mut text = event_label(&e.kind).to_string();
    if let (Some(from), Some(to)) = (&e.from_status, &e.to_status) {
        text = format!("{text} ({from} → {to})");
    }
    let (role, role_display) = if matches!(e.kind.as_str(), "raised" | "commented") {
        ("author", "Author")
    } else {
        ("performer", "Performer")
    };
    let who = match &e.actor {
        Some(p) => practitioner(rec, base, &p.id),
        None => json!({
            "type": "Device",
            "identifier": { "system": system(base, "Id/device"), "value": "bleepless-escalation" },
            "display": "Bleepless escalation scheduler",
        }),
    };
    json!({
        "resourceType": "Provenance",
        "id": provenance_id(id, e.seq),
        "target": [{ "reference": target }],
        "occurredDateTime": instant(e.at),
        "recorded": instant(e.at),
        "activity": {
            "coding": [
                coding(DATA_OPERATION, op, op_display),
                coding(&system(base, "CodeSystem/task-event"), &e.kind, event_label(&e.kind)),
            ],
            "text": text,
        },
        "agent": [{
            "type": { "coding": [coding(PARTICIPANT_TYPE, role, role_display)] },
            "who": who,
        }],
    })
}

/// Every version of the task, newest first, as a `history` Bundle: systems under `base`,
/// URLs under `public_url`.
pub fn history(rec: &TaskRecord, base: &str, public_url: &str) -> Value {
    let id = &rec.task.id;
    let full_url = format!("{public_url}/fhir/Task/{id}");
    let entries: Vec<Value> = rec
        .events
        .iter()
        .rev()
        .filter_map(|e| {
            let resource = task_version(rec, e.seq, base)?;
            let (request, status) = if e.kind == "raised" {
                (json!({ "method": "POST", "url": "Task" }), "201 Created")
            } else {
                (
                    json!({ "method": "PUT", "url": format!("Task/{id}") }),
                    "200 OK",
                )
            };
            Some(json!({
                "fullUrl": full_url,
                "resource": resource,
                "request": request,
                "response": {
                    "status": status,
                    "etag": format!("W/\"{}\"", e.seq),
                    "lastModified": instant(e.at),
                },
            }))
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "history",
        "total": entries.len(),
        "link": [{ "relation": "self", "url": format!("{full_url}/_history") }],
        "entry": entries,
    })
}

/// A `searchset` Bundle of (fullUrl, resource) matches.
pub fn searchset(matches: Vec<(String, Value)>, total: i64, links: &[(&str, String)]) -> Value {
    let mut b = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links.iter().map(|(rel, url)| json!({ "relation": rel, "url": url })).collect::<Vec<_>>(),
    });
    if !matches.is_empty() {
        b["entry"] = matches
            .into_iter()
            .map(|(full_url, resource)| {
                json!({ "fullUrl": full_url, "resource": resource, "search": { "mode": "match" } })
            })
            .collect();
    }
    b
}

/// What the record server receives: the Task and a Provenance per event, each by PUT with
/// our id, so that sending the same Bundle again changes nothing. The patient as an
/// identifier only; see [`transaction_with`].
pub fn transaction(rec: &TaskRecord, base: &str, record_base: &str) -> Value {
    transaction_with(rec, base, record_base, false)
}

/// [`transaction`], where `conditional_patient` also gives the patient as a conditional
/// reference (`Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|…`), which the record
/// server resolves to its own Patient, so that it links the Task to the patient's record.
pub fn transaction_with(
    rec: &TaskRecord,
    base: &str,
    record_base: &str,
    conditional_patient: bool,
) -> Value {
    let id = &rec.task.id;
    let mut task = task(rec, base);
    if let Some(o) = task.as_object_mut() {
        // The record server keeps its own versions.
        o.remove("meta");
    }
    if conditional_patient {
        task["for"]["reference"] = json!(patient_search(&rec.task.nhs_number));
    }
    let mut entries = vec![json!({
        "fullUrl": format!("{record_base}/Task/{id}"),
        "resource": task,
        "request": { "method": "PUT", "url": format!("Task/{id}") },
    })];
    for e in &rec.events {
        let pid = provenance_id(id, e.seq);
        entries.push(json!({
            "fullUrl": format!("{record_base}/Provenance/{pid}"),
            "resource": provenance(rec, e, base, false),
            "request": { "method": "PUT", "url": format!("Provenance/{pid}") },
        }));
    }
    json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries })
}

/// An error as FHIR says errors are: an OperationOutcome. `code` is from
/// http://hl7.org/fhir/ValueSet/issue-type.
pub fn operation_outcome(code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "diagnostics": diagnostics }],
    })
}

/// The conditional reference that finds a patient by NHS number on a FHIR server.
pub fn patient_search(nhs_number: &str) -> String {
    format!("Patient?identifier={NHS_NUMBER_SYSTEM}|{nhs_number}")
}

/// What `/fhir` serves, and nothing more.
pub fn capability_statement(base: &str, date: DateTime<Utc>) -> Value {
    let param =
        |name: &str, ty: &str, doc: &str| json!({ "name": name, "type": ty, "documentation": doc });
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(date),
        "publisher": "Bleepless",
        "kind": "instance",
        "software": { "name": "Bleepless", "version": env!("CARGO_PKG_VERSION") },
        "implementation": {
            "description": "Bleepless clinical tasks (replacing pagers) as FHIR R4 Task and Provenance, read-only",
            "url": format!("{base}/fhir"),
        },
        "fhirVersion": FHIR_VERSION,
        "format": [FHIR_JSON, "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Read-only. Unknown search parameters are refused with 400 (strict handling).",
            "security": {
                "cors": false,
                "description": "Every request except GET /fhir/metadata and GET /fhir/CodeSystem/{id} needs Authorization: Bearer <token>, the same API token as /api/v1.",
            },
            "resource": [
                {
                    "type": "Task",
                    "versioning": "versioned",
                    "readHistory": true,
                    "updateCreate": false,
                    "interaction": [
                        { "code": "read" },
                        { "code": "vread" },
                        { "code": "history-instance", "documentation": "One version per event of the task's timeline" },
                        { "code": "search-type" },
                    ],
                    "searchParam": [
                        param("patient", "reference", "The patient's NHS number: 9990000018, Patient/9990000018, or with patient:identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018"),
                        param("subject", "reference", "The same as patient (Task.for): subject=9990000018 or subject:identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018"),
                        param("identifier", "token", "The task's id, optionally with the system {base}/fhir/Id/task"),
                        param("_id", "token", "The task's logical id"),
                        param("status", "token", "Task status codes, comma-separated"),
                        param("owner", "reference", "Practitioner/{staff id} or PractitionerRole/{role id}: who acknowledged the task or, before that, its assignee"),
                        param("_lastUpdated", "date", "With eq, gt, ge, lt or le; may be given twice for a range"),
                        param("_count", "number", "Page size, 0 to 100 (default 20)"),
                        param("_cursor", "string", "Where the page starts (opaque): follow the Bundle's next link. Pages run newest raised first, so a task updated during a walk is neither skipped nor repeated"),
                    ],
                },
                {
                    "type": "Provenance",
                    "interaction": [{ "code": "read" }, { "code": "search-type" }],
                    "searchParam": [
                        param("target", "reference", "Task/{id} (required): one Provenance per event of the task"),
                    ],
                },
                {
                    "type": "CodeSystem",
                    "documentation": format!("Our code systems, needing no token: {}", CODE_SYSTEMS.iter().map(|id| format!("CodeSystem/{id}")).collect::<Vec<_>>().join(", ")),
                    "interaction": [{ "code": "read" }],
                },
            ],
        }],
    })
}
