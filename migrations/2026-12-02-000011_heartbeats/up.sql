-- What the service's own loops last did, for /healthz and the operator: the escalation
-- tick's last run (by any instance), the auditor's repairs. One row per name, overwritten.
CREATE TABLE heartbeats (
    name TEXT PRIMARY KEY NOT NULL,
    at TIMESTAMP NOT NULL,
    instance TEXT NOT NULL,
    count BIGINT NOT NULL
);
