//! An independent judge of FHIR R4 (4.0.1) JSON, kept apart from the code under test: it uses
//! nothing of Bleepless.
//!
//! The structure is checked by `fhirbolt`'s R4 models in strict mode: unknown elements,
//! missing mandatory elements, types, and cardinality (a list where one value is allowed),
//! nested resources in Bundles included. `fhirbolt` does not check codes, primitive formats
//! or invariants, so this module adds, from the R4 specification: the codes of the required
//! value sets our resources use, the date, dateTime and instant formats (the specification's
//! regular expressions), the formats of ids, references and Bundle fullUrls, and the
//! invariants bdl-1, bdl-2, bdl-3, bdl-4, bdl-8, inv-1 (Task) and per-1 (Period).
#![allow(dead_code)]

use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use regex::Regex;
use serde_json::Value;
use std::sync::LazyLock;

/// What is wrong with a resource (empty: valid R4).
pub fn problems(v: &Value) -> Vec<String> {
    let mut judge = Judge::default();
    let Some(rt) = v.get("resourceType").and_then(Value::as_str) else {
        return vec!["no resourceType".into()];
    };
    let strict = DeserializationConfig {
        mode: DeserializationMode::Strict,
    };
    match fhirbolt::json::from_json_value::<fhirbolt::model::r4::Resource>(v.clone(), Some(strict))
    {
        Ok(_) => {}
        Err(e) => judge.errors.push(format!("{rt}: R4 model (strict): {e}")),
    }
    judge.resource(v, false);
    judge.errors
}

/// Required bindings in R4 (http://hl7.org/fhir/R4/), by element path.
fn required(path: &str) -> Option<&'static [&'static str]> {
    Some(match path {
        "Task.status" => &[
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
        ],
        "Task.intent" => &[
            "unknown",
            "proposal",
            "plan",
            "order",
            "original-order",
            "reflex-order",
            "filler-order",
            "instance-order",
            "option",
        ],
        "Task.priority" => &["routine", "urgent", "asap", "stat"],
        "Bundle.type" => &[
            "document",
            "message",
            "transaction",
            "transaction-response",
            "batch",
            "batch-response",
            "history",
            "searchset",
            "collection",
        ],
        "Bundle.entry.search.mode" => &["match", "include", "outcome"],
        "Bundle.entry.request.method" => &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"],
        "OperationOutcome.issue.severity" => &["fatal", "error", "warning", "information"],
        "OperationOutcome.issue.code" => &[
            "invalid",
            "structure",
            "required",
            "value",
            "invariant",
            "security",
            "login",
            "unknown",
            "expired",
            "forbidden",
            "suppressed",
            "processing",
            "not-supported",
            "duplicate",
            "multiple-matches",
            "not-found",
            "deleted",
            "too-long",
            "code-invalid",
            "extension",
            "too-costly",
            "business-rule",
            "conflict",
            "transient",
            "lock-error",
            "no-store",
            "exception",
            "timeout",
            "incomplete",
            "throttled",
            "informational",
        ],
        "CapabilityStatement.status" | "CodeSystem.status" => {
            &["draft", "active", "retired", "unknown"]
        }
        "CapabilityStatement.kind" => &["instance", "capability", "requirements"],
        "CapabilityStatement.fhirVersion" => &["4.0.0", "4.0.1"],
        "CapabilityStatement.rest.mode" => &["client", "server"],
        "CapabilityStatement.rest.resource.versioning" => {
            &["no-version", "versioned", "versioned-update"]
        }
        "CapabilityStatement.rest.resource.interaction.code" => &[
            "read",
            "vread",
            "update",
            "patch",
            "delete",
            "history-instance",
            "history-type",
            "create",
            "search-type",
        ],
        "CapabilityStatement.rest.resource.searchParam.type" => &[
            "number",
            "date",
            "string",
            "token",
            "reference",
            "composite",
            "quantity",
            "uri",
            "special",
        ],
        "CapabilityStatement.rest.resource.type" => &[
            "Task",
            "Provenance",
            "Patient",
            "Practitioner",
            "PractitionerRole",
            "Location",
            "Device",
            "CodeSystem",
        ],
        "CodeSystem.content" => &[
            "not-present",
            "example",
            "fragment",
            "complete",
            "supplement",
        ],
        "CodeSystem.hierarchyMeaning" => &["grouped-by", "is-a", "part-of", "classified-with"],
        _ => return None,
    })
}

/// Required bindings on data types, wherever they appear: (the element holding the type, key).
fn required_in_type(parent: &str, key: &str) -> Option<&'static [&'static str]> {
    Some(match (parent, key) {
        ("identifier", "use") => &["usual", "official", "temp", "secondary", "old"],
        ("narrative" | "text", "status") => &["generated", "extensions", "additional", "empty"],
        _ => return None,
    })
}

const YEAR: &str = "([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)";
const TIME: &str = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?";
const ZONE: &str = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))";

fn full(re: &str) -> Regex {
    Regex::new(&format!("^(?:{re})$")).expect("a valid pattern")
}

static DATE_TIME: LazyLock<Regex> = LazyLock::new(|| {
    full(&format!(
        "{YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T{TIME}{ZONE})?)?)?"
    ))
});
static INSTANT: LazyLock<Regex> = LazyLock::new(|| {
    full(&format!(
        "{YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T{TIME}{ZONE}"
    ))
});
static ID: LazyLock<Regex> = LazyLock::new(|| full(r"[A-Za-z0-9\-\.]{1,64}"));
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    full(
        r"((http|https)://([A-Za-z0-9\-\\\.:%$]*/)+)?[A-Z][A-Za-z]+/[A-Za-z0-9\-\.]{1,64}(/_history/[A-Za-z0-9\-\.]{1,64})?",
    )
});
/// A conditional reference (http.html#trules): allowed only inside a transaction or batch.
static CONDITIONAL: LazyLock<Regex> =
    LazyLock::new(|| full(r"[A-Z][A-Za-z]+\?[A-Za-z_][A-Za-z0-9_\-:.]*=\S+"));
static ABSOLUTE: LazyLock<Regex> =
    LazyLock::new(|| full(r"(https?://\S+|urn:uuid:[0-9a-f\-]{36}|urn:oid:[0-9.]+)"));

/// The primitive type of an element, by its name (and the element around it) in the
/// resources judged here: Task, Provenance, Bundle, CapabilityStatement, CodeSystem.
fn temporal(path: &str, key: &str) -> Option<(&'static str, &'static Regex)> {
    match key {
        "lastUpdated" | "recorded" | "timestamp" | "issued" => Some(("instant", &INSTANT)),
        "lastModified" if path.ends_with(".response") => Some(("instant", &INSTANT)),
        "lastModified" | "authoredOn" | "occurredDateTime" | "date" | "time" | "start" | "end"
        | "valueDateTime" => Some(("dateTime", &DATE_TIME)),
        _ => None,
    }
}

#[derive(Default)]
struct Judge {
    errors: Vec<String>,
}

impl Judge {
    fn resource(&mut self, res: &Value, in_transaction: bool) {
        let rt = res
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if let Some(id) = res.get("id") {
            if !id.as_str().is_some_and(|s| ID.is_match(s)) {
                self.errors.push(format!("{rt}.id: {id} is not a FHIR id"));
            }
        }
        if rt == "Task" {
            if let (Some(a), Some(m)) = (
                res.get("authoredOn").and_then(Value::as_str),
                res.get("lastModified").and_then(Value::as_str),
            ) {
                if m < a {
                    self.errors
                        .push("Task: inv-1: lastModified is before authoredOn".into());
                }
            }
        }
        let mut transaction = in_transaction;
        if rt == "Bundle" {
            let btype = res.get("type").and_then(Value::as_str).unwrap_or("");
            transaction = matches!(btype, "transaction" | "batch");
            if res.get("total").is_some() && !matches!(btype, "searchset" | "history") {
                self.errors
                    .push("Bundle: bdl-1: total only in a searchset or history".into());
            }
            let entries = res.get("entry").and_then(Value::as_array);
            for (i, e) in entries.into_iter().flatten().enumerate() {
                let at = format!("Bundle.entry[{i}]");
                if e.get("search").is_some() && btype != "searchset" {
                    self.errors
                        .push(format!("{at}: bdl-2: search only in a searchset"));
                }
                // bdl-3 and bdl-4: which Bundle types need a request, and which a response.
                let rules = [
                    ("bdl-3", "request", &["batch", "transaction", "history"]),
                    (
                        "bdl-4",
                        "response",
                        &["batch-response", "transaction-response", "history"],
                    ),
                ];
                for (rule, element, types) in rules {
                    let needed = types.contains(&btype);
                    if needed != e.get(element).is_some() {
                        let how = if needed { "required" } else { "not allowed" };
                        self.errors
                            .push(format!("{at}: {rule}: {element} is {how} in a {btype}"));
                    }
                }
                if let Some(url) = e.get("fullUrl").and_then(Value::as_str) {
                    if url.contains("/_history/") {
                        self.errors
                            .push(format!("{at}: bdl-8: fullUrl is version specific"));
                    }
                    if !ABSOLUTE.is_match(url) {
                        self.errors
                            .push(format!("{at}: fullUrl {url:?} is not an absolute URL"));
                    }
                }
            }
        }
        let lower = rt.to_ascii_lowercase();
        self.walk(res, &rt, &lower, transaction);
    }

    fn walk(&mut self, value: &Value, path: &str, parent_key: &str, in_transaction: bool) {
        match value {
            Value::Array(items) => {
                for item in items {
                    self.walk(item, path, parent_key, in_transaction);
                }
            }
            Value::Object(map) => {
                if map.contains_key("resourceType") && path.contains('.') {
                    self.resource(value, in_transaction);
                    return;
                }
                for (key, v) in map {
                    let p = format!("{path}.{key}");
                    let codes = required(&p).or_else(|| required_in_type(parent_key, key));
                    if let Some(codes) = codes {
                        let all: Vec<&Value> = match v {
                            Value::Array(a) => a.iter().collect(),
                            one => vec![one],
                        };
                        for c in all {
                            if !c.as_str().is_some_and(|s| codes.contains(&s)) {
                                self.errors
                                    .push(format!("{p}: {c} is not in the required value set"));
                            }
                        }
                    }
                    if let (Some((ty, re)), Some(s)) = (temporal(path, key), v.as_str()) {
                        if !re.is_match(s) {
                            self.errors.push(format!("{p}: {s:?} is not a FHIR {ty}"));
                        }
                    }
                    if key == "reference" {
                        if let Some(s) = v.as_str() {
                            let ok = s.starts_with('#')
                                || REFERENCE.is_match(s)
                                || ABSOLUTE.is_match(s)
                                || (in_transaction && CONDITIONAL.is_match(s));
                            if !ok {
                                self.errors
                                    .push(format!("{p}: {s:?} is not a valid reference"));
                            }
                        }
                    }
                    if matches!(key.as_str(), "executionPeriod" | "period") {
                        if let (Some(a), Some(b)) = (
                            v.get("start").and_then(Value::as_str),
                            v.get("end").and_then(Value::as_str),
                        ) {
                            if a > b {
                                self.errors.push(format!("{p}: per-1: start is after end"));
                            }
                        }
                    }
                    self.walk(v, &p, &key.to_ascii_lowercase(), in_transaction);
                }
            }
            _ => {}
        }
    }
}
