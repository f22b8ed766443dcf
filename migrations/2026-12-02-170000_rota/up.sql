-- The rota: who holds each on-call role from when to when. Times are instants (UTC); they
-- are entered and shown in the hospital's local time. A shift from a recurring pattern
-- names its pattern. An override (a swap, cover, sickness) replaces one person for its
-- window: `staff_id` covers for `replaces`, or with no `staff_id` takes them off.
CREATE TABLE rota_patterns (
    id TEXT PRIMARY KEY NOT NULL,
    role_id TEXT NOT NULL REFERENCES oncall_roles (id),
    staff_id TEXT NOT NULL REFERENCES staff (id),
    weekdays TEXT NOT NULL,
    starts TEXT NOT NULL,
    ends TEXT NOT NULL,
    first_day TEXT NOT NULL,
    last_day TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE rota_shifts (
    id TEXT PRIMARY KEY NOT NULL,
    role_id TEXT NOT NULL REFERENCES oncall_roles (id),
    staff_id TEXT REFERENCES staff (id),
    replaces TEXT REFERENCES staff (id),
    starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP NOT NULL,
    pattern_id TEXT REFERENCES rota_patterns (id),
    note TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX rota_shifts_by_role ON rota_shifts (role_id, starts_at);
CREATE INDEX rota_shifts_by_staff ON rota_shifts (staff_id, starts_at);
CREATE INDEX rota_shifts_starts ON rota_shifts (starts_at);
CREATE INDEX rota_shifts_ends ON rota_shifts (ends_at);

-- Which roles a person may hold: only these can be taken by them or handed to them.
CREATE TABLE role_eligibility (
    role_id TEXT NOT NULL REFERENCES oncall_roles (id),
    staff_id TEXT NOT NULL REFERENCES staff (id),
    granted_at TIMESTAMP NOT NULL,
    PRIMARY KEY (role_id, staff_id)
);
CREATE INDEX role_eligibility_by_staff ON role_eligibility (staff_id);

-- How a holding began (rota, take, hand-over) and when its holder confirmed what they
-- inherited.
ALTER TABLE role_holdings ADD COLUMN source TEXT;
ALTER TABLE role_holdings ADD COLUMN confirmed_at TIMESTAMP;

-- Busy ("in resus"): new tasks and escalations pass this person by until then.
ALTER TABLE staff ADD COLUMN busy_until TIMESTAMP;
ALTER TABLE staff ADD COLUMN busy_reason TEXT;

-- How far the rota has been applied (an instant, empty before the first time), and when
-- who holds what last changed (open pages refresh on it). Made here so that instances
-- only ever update them.
INSERT INTO settings (name, value, created_at) VALUES ('rota_applied_until', '', CURRENT_TIMESTAMP);
INSERT INTO settings (name, value, created_at) VALUES ('directory_changed_at', '', CURRENT_TIMESTAMP);

-- A notice (a bleep handed to someone) goes through the one outbox too, and is about no
-- one task: its task_id is empty, so the outbox's task_id no longer references tasks.
-- SQLite cannot drop a constraint, so the table is rebuilt the same way on both backends,
-- every row kept with its id.
CREATE TABLE outbox_next (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    destination TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    task_id TEXT NOT NULL,
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
INSERT INTO outbox_next (id, kind, destination, dedupe_key, task_id, task_version, level,
                         recipient_id, status, attempts, due_at, lease_owner, lease_until,
                         last_error, created_at, sent_at)
SELECT id, kind, destination, dedupe_key, task_id, task_version, level, recipient_id, status,
       attempts, due_at, lease_owner, lease_until, last_error, created_at, sent_at
FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_next RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (status, due_at);
CREATE INDEX outbox_by_task ON outbox (task_id, status);
CREATE INDEX outbox_by_status_created ON outbox (status, created_at);
