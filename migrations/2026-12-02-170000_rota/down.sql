DELETE FROM outbox WHERE kind = 'notice';
CREATE TABLE outbox_prev (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    destination TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    task_id TEXT NOT NULL REFERENCES tasks (id),
    task_version BIGINT NOT NULL,
    level INTEGER NOT NULL,
    recipient_id TEXT REFERENCES staff (id),
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    due_at TIMESTAMP NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
INSERT INTO outbox_prev SELECT id, kind, destination, dedupe_key, task_id, task_version, level,
    recipient_id, status, attempts, due_at, lease_owner, lease_until, last_error, created_at,
    sent_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_prev RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (status, due_at);
CREATE INDEX outbox_by_task ON outbox (task_id, status);
CREATE INDEX outbox_by_status_created ON outbox (status, created_at);
DELETE FROM settings WHERE name IN ('rota_applied_until', 'directory_changed_at');
ALTER TABLE staff DROP COLUMN busy_reason;
ALTER TABLE staff DROP COLUMN busy_until;
ALTER TABLE role_holdings DROP COLUMN confirmed_at;
ALTER TABLE role_holdings DROP COLUMN source;
DROP TABLE role_eligibility;
DROP TABLE rota_shifts;
DROP TABLE rota_patterns;
