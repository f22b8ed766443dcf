-- Back to two outboxes: notifications, and record deliveries.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    task_id TEXT NOT NULL REFERENCES tasks (id),
    level INTEGER NOT NULL,
    recipient_id TEXT NOT NULL REFERENCES staff (id),
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    due_at TIMESTAMP NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE INDEX notifications_due ON notifications (status, due_at);
CREATE INDEX notifications_by_task ON notifications (task_id, status);
CREATE INDEX notifications_by_status_created ON notifications (status, created_at);
INSERT INTO notifications
SELECT id, dedupe_key, task_id, level, recipient_id, kind, status, attempts, due_at,
       lease_owner, lease_until, last_error, created_at, sent_at
FROM outbox WHERE kind IN ('push', 'email');

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
INSERT INTO record_deliveries
SELECT id, task_id, task_version,
       CASE status WHEN 'sent' THEN 'delivered' WHEN 'failing' THEN 'failed' ELSE status END,
       attempts, due_at, lease_owner, lease_until, last_error, created_at, sent_at
FROM outbox WHERE kind = 'record';

DROP TABLE outbox;
