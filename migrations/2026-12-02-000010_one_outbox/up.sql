-- One outbox for every outgoing delivery: a push or an email to a person about a task at an
-- escalation level, a version of a task for a patient-record server, and the kinds that come
-- next. `kind` says how it is sent and which retry policy applies; `destination` says where
-- (the record server's name; empty for a person's devices and mailbox, found from the
-- recipient). Rows waiting in the two outboxes it replaces move across with their ids,
-- attempts, leases and due times, so nothing waiting is lost.
CREATE TABLE outbox (
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

-- Notifications keep their key; the task version they were queued at is inside it.
INSERT INTO outbox (id, kind, destination, dedupe_key, task_id, task_version, level,
                    recipient_id, status, attempts, due_at, lease_owner, lease_until,
                    last_error, created_at, sent_at)
SELECT id, channel, '', dedupe_key, task_id, 0, level, recipient_id, status, attempts,
       due_at, lease_owner, lease_until, last_error, created_at, sent_at
FROM notifications;

-- Record deliveries: 'delivered' is 'sent'; 'failed' (which was still retried) is 'failing'.
INSERT INTO outbox (id, kind, destination, dedupe_key, task_id, task_version, level,
                    recipient_id, status, attempts, due_at, lease_owner, lease_until,
                    last_error, created_at, sent_at)
SELECT id, 'record', 'record', 'record:' || id, task_id, task_version, 0, NULL,
       CASE status WHEN 'delivered' THEN 'sent' WHEN 'failed' THEN 'failing' ELSE status END,
       attempts, due_at, lease_owner, lease_until, last_error, created_at, delivered_at
FROM record_deliveries;

DROP TABLE notifications;
DROP TABLE record_deliveries;

CREATE INDEX outbox_due ON outbox (status, due_at);
CREATE INDEX outbox_by_task ON outbox (task_id, status);
-- The latest failed deliveries (dashboard); see migration 000006 on partial indexes.
CREATE INDEX outbox_by_status_created ON outbox (status, created_at);
