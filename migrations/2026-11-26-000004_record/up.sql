-- The record outbox: one row per task to send to the trust's FHIR server (the patient
-- record) once it is completed or cancelled, written in the same transaction as that change.
-- A row stays until it is delivered: `failed` rows are still retried, at the longest back-off.
CREATE TABLE record_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    task_id TEXT NOT NULL REFERENCES tasks (id),
    task_version BIGINT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    due_at TIMESTAMP NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP
);
CREATE INDEX record_deliveries_due ON record_deliveries (status, due_at);
CREATE INDEX record_deliveries_by_task ON record_deliveries (task_id);
