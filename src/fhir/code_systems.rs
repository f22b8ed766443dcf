//! Our code systems (task category, outcome, output type, event, escalation level) as FHIR
//! CodeSystem resources, each served at `/fhir/CodeSystem/{id}`. Pure, like [`super::mapping`].
use super::mapping::{category_label, escalation_label, event_label, system};
use crate::domain::{Category, OutcomeCode};
use serde_json::{json, Value};

/// The kinds of event a task's timeline holds (the `task-event` code system).
const EVENT_KINDS: &[&str] = &[
    "raised",
    "acknowledged",
    "started",
    "completed",
    "cancelled",
    "declined",
    "reassigned",
    "commented",
    "escalated",
    "escalation_skipped",
    "seen",
];

/// Escalation levels listed in the `escalation-level` code system; level n is always
/// "Escalated to level n", so the list is a fragment.
const LISTED_LEVELS: i32 = 5;

/// The ids of the code systems we define (named with the mapping, which lists them in the
/// CapabilityStatement).
pub use super::mapping::CODE_SYSTEMS;

/// One of our code systems as a CodeSystem resource, if `id` names one.
pub fn code_system(id: &str, base: &str) -> Option<Value> {
    let pairs = |list: Vec<(String, String)>| -> Vec<Value> {
        list.into_iter()
            .map(|(code, display)| json!({ "code": code, "display": display }))
            .collect()
    };
    let (name, title, description, content, concepts) = match id {
        "task-category" => (
            "TaskCategory",
            "Bleepless task category",
            "What kind of clinical work a task asks for (Task.code).",
            "complete",
            pairs(
                Category::ALL
                    .iter()
                    .map(|c| (c.code().to_string(), category_label(*c).to_string()))
                    .collect(),
            ),
        ),
        "task-outcome" => (
            "TaskOutcome",
            "Bleepless task outcome",
            "How a completed task ended (Task.output.valueCodeableConcept).",
            "complete",
            pairs(
                OutcomeCode::ALL
                    .iter()
                    .map(|c| (c.code().to_string(), c.label().to_string()))
                    .collect(),
            ),
        ),
        "task-output" => (
            "TaskOutput",
            "Bleepless task output type",
            "The kinds of Task.output Bleepless records.",
            "complete",
            pairs(vec![("outcome".into(), "Outcome".into())]),
        ),
        "task-event" => (
            "TaskEvent",
            "Bleepless task event",
            "What happened to a task, one code per kind of event in its timeline (Provenance.activity).",
            "complete",
            pairs(
                EVENT_KINDS
                    .iter()
                    .map(|k| (k.to_string(), event_label(k).to_string()))
                    .collect(),
            ),
        ),
        "escalation-level" => (
            "EscalationLevel",
            "Bleepless escalation level",
            "How many times a task has escalated because nobody acknowledged it (Task.businessStatus): 0 is not escalated, n is escalated to level n.",
            "fragment",
            pairs(
                (0..=LISTED_LEVELS)
                    .map(|l| (l.to_string(), escalation_label(l)))
                    .collect(),
            ),
        ),
        _ => return None,
    };
    Some(json!({
        "resourceType": "CodeSystem",
        "id": id,
        "url": system(base, &format!("CodeSystem/{id}")),
        "version": env!("CARGO_PKG_VERSION"),
        "name": name,
        "title": title,
        "status": "active",
        "publisher": "Bleepless",
        "description": description,
        "caseSensitive": true,
        "content": content,
        "count": concepts.len(),
        "concept": concepts,
    }))
}
