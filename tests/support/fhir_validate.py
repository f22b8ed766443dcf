#!/usr/bin/env python3
"""Validates one FHIR R4 (4.0.1) JSON resource read from standard input.

Prints each problem on its own line and exits 1 when there is any, 0 when the resource is valid.

The structure is checked by an independent R4 model library, SMART on FHIR's `fhirclient`
4.x (`pip install fhirclient==4.4.0`, models generated from FHIR 4.0.1) in strict mode:
unknown elements, types, cardinality (a list where one value is allowed, or a missing
mandatory element), nested resources in Bundles, and the date, dateTime and instant
formats (by the specification's regular expressions).

fhirclient does not check codes or invariants, so this script adds, from the R4
specification: the codes of the required value sets our resources use, the formats of ids,
references and Bundle fullUrls, and the invariants bdl-1, bdl-2, bdl-3, bdl-4, bdl-8, inv-1
(Task) and per-1 (Period).
"""
import json
import re
import sys

from fhirclient.models import fhirabstractbase, fhirelementfactory

# Required bindings in R4 (http://hl7.org/fhir/R4/), by element path.
REQUIRED = {
    "Task.status": {"draft", "requested", "received", "accepted", "rejected", "ready",
                    "cancelled", "in-progress", "on-hold", "failed", "completed",
                    "entered-in-error"},
    "Task.intent": {"unknown", "proposal", "plan", "order", "original-order", "reflex-order",
                    "filler-order", "instance-order", "option"},
    "Task.priority": {"routine", "urgent", "asap", "stat"},
    "Bundle.type": {"document", "message", "transaction", "transaction-response", "batch",
                    "batch-response", "history", "searchset", "collection"},
    "Bundle.entry.search.mode": {"match", "include", "outcome"},
    "Bundle.entry.request.method": {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"},
    "OperationOutcome.issue.severity": {"fatal", "error", "warning", "information"},
    "OperationOutcome.issue.code": {
        "invalid", "structure", "required", "value", "invariant", "security", "login",
        "unknown", "expired", "forbidden", "suppressed", "processing", "not-supported",
        "duplicate", "multiple-matches", "not-found", "deleted", "too-long", "code-invalid",
        "extension", "too-costly", "business-rule", "conflict", "transient", "lock-error",
        "no-store", "exception", "timeout", "incomplete", "throttled", "informational"},
    "CapabilityStatement.status": {"draft", "active", "retired", "unknown"},
    "CapabilityStatement.kind": {"instance", "capability", "requirements"},
    "CapabilityStatement.fhirVersion": {"4.0.0", "4.0.1"},
    "CapabilityStatement.rest.mode": {"client", "server"},
    "CapabilityStatement.rest.resource.versioning": {"no-version", "versioned",
                                                     "versioned-update"},
    "CapabilityStatement.rest.resource.interaction.code": {
        "read", "vread", "update", "patch", "delete", "history-instance", "history-type",
        "create", "search-type"},
    "CapabilityStatement.rest.resource.searchParam.type": {
        "number", "date", "string", "token", "reference", "composite", "quantity", "uri",
        "special"},
    "CapabilityStatement.rest.resource.type": {"Task", "Provenance", "Patient",
                                               "Practitioner", "PractitionerRole",
                                               "Location", "Device"},
}
# Required bindings on data types, wherever they appear.
REQUIRED_IN_TYPE = {
    ("identifier", "use"): {"usual", "official", "temp", "secondary", "old"},
    ("narrative", "status"): {"generated", "extensions", "additional", "empty"},
}

ID = re.compile(r"[A-Za-z0-9\-\.]{1,64}")
REFERENCE = re.compile(
    r"((http|https)://([A-Za-z0-9\-\\\.:%$]*/)+)?[A-Z][A-Za-z]+/[A-Za-z0-9\-\.]{1,64}"
    r"(/_history/[A-Za-z0-9\-\.]{1,64})?")
ABSOLUTE = re.compile(r"(https?://\S+|urn:uuid:[0-9a-f\-]{36}|urn:oid:[0-9.]+)")

errors = []


def walk(value, path, parent_key):
    if isinstance(value, list):
        for item in value:
            walk(item, path, parent_key)
        return
    if not isinstance(value, dict):
        return
    if "resourceType" in value and path.count(".") > 0:
        check_resource(value)
        return
    for key, v in value.items():
        p = f"{path}.{key}"
        if p in REQUIRED and v not in REQUIRED[p]:
            errors.append(f"{p}: {v!r} is not in the required value set")
        if (parent_key, key) in REQUIRED_IN_TYPE and v not in REQUIRED_IN_TYPE[(parent_key, key)]:
            errors.append(f"{p}: {v!r} is not in the required value set")
        if key == "reference" and isinstance(v, str):
            if not (v.startswith("#") or REFERENCE.fullmatch(v) or ABSOLUTE.fullmatch(v)):
                errors.append(f"{p}: {v!r} is not a valid reference")
        if key in ("executionPeriod", "period") and isinstance(v, dict):
            if "start" in v and "end" in v and v["start"] > v["end"]:
                errors.append(f"{p}: per-1: start is after end")
        walk(v, p, key.lower())


def check_resource(res):
    rt = res.get("resourceType")
    if "id" in res and not (isinstance(res["id"], str) and ID.fullmatch(res["id"])):
        errors.append(f"{rt}.id: {res['id']!r} is not a FHIR id")
    if rt == "Task" and "authoredOn" in res and "lastModified" in res:
        if res["lastModified"] < res["authoredOn"]:
            errors.append("Task: inv-1: lastModified is before authoredOn")
    if rt == "Bundle":
        btype = res.get("type")
        if "total" in res and btype not in ("searchset", "history"):
            errors.append("Bundle: bdl-1: total only in a searchset or history")
        for i, e in enumerate(res.get("entry", [])):
            where = f"Bundle.entry[{i}]"
            if "search" in e and btype != "searchset":
                errors.append(f"{where}: bdl-2: search only in a searchset")
            needs_request = btype in ("batch", "transaction", "history")
            if needs_request != ("request" in e):
                errors.append(f"{where}: bdl-3: request is {'required' if needs_request else 'not allowed'} in a {btype}")
            needs_response = btype in ("batch-response", "transaction-response", "history")
            if needs_response != ("response" in e):
                errors.append(f"{where}: bdl-4: response is {'required' if needs_response else 'not allowed'} in a {btype}")
            full = e.get("fullUrl")
            if full is not None:
                if "/_history/" in full:
                    errors.append(f"{where}: bdl-8: fullUrl is version specific")
                if not ABSOLUTE.fullmatch(full):
                    errors.append(f"{where}: fullUrl {full!r} is not an absolute URL")
    walk({k: v for k, v in res.items()}, rt, rt.lower() if rt else "")


def main():
    try:
        data = json.load(sys.stdin)
    except ValueError as e:
        print(f"not JSON: {e}")
        return 1
    rt = data.get("resourceType") if isinstance(data, dict) else None
    if not rt:
        print("no resourceType")
        return 1
    try:
        made = fhirelementfactory.FHIRElementFactory.instantiate(rt, data)
        if type(made).__name__ != rt:
            errors.append(f"resourceType {rt!r} is not an R4 resource")
    except fhirabstractbase.FHIRValidationError as e:
        errors.extend(str(e).splitlines())
    except Exception as e:  # an unknown resourceType, for one
        errors.append(f"{type(e).__name__}: {e}")
    check_resource(data)
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
