-- Portable SQL for SQLite and PostgreSQL: ids are text (UUIDs), times are UTC TIMESTAMPs.
CREATE TABLE staff (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    email TEXT,
    permissions TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    active BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE wards (
    name TEXT PRIMARY KEY NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE oncall_roles (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    escalates_to TEXT REFERENCES oncall_roles (id),
    created_at TIMESTAMP NOT NULL
);

-- The rota: who held which bleep from when until when. Rows are closed, never deleted.
CREATE TABLE role_holdings (
    id TEXT PRIMARY KEY NOT NULL,
    role_id TEXT NOT NULL REFERENCES oncall_roles (id),
    staff_id TEXT NOT NULL REFERENCES staff (id),
    handed_over_by TEXT REFERENCES staff (id),
    held_from TIMESTAMP NOT NULL,
    held_until TIMESTAMP
);
CREATE INDEX role_holdings_by_role ON role_holdings (role_id, held_until);
CREATE INDEX role_holdings_by_staff ON role_holdings (staff_id, held_until);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY NOT NULL,
    nhs_number TEXT NOT NULL,
    ward TEXT NOT NULL REFERENCES wards (name),
    bed TEXT NOT NULL,
    category TEXT NOT NULL,
    description TEXT NOT NULL,
    priority TEXT NOT NULL,
    news2 INTEGER,
    status TEXT NOT NULL,
    assignee_role_id TEXT REFERENCES oncall_roles (id),
    assignee_staff_id TEXT REFERENCES staff (id),
    raised_by TEXT NOT NULL REFERENCES staff (id),
    raised_at TIMESTAMP NOT NULL,
    ack_deadline TIMESTAMP NOT NULL,
    acknowledged_by TEXT REFERENCES staff (id),
    acknowledged_at TIMESTAMP,
    started_at TIMESTAMP,
    ended_at TIMESTAMP,
    outcome_code TEXT,
    outcome_text TEXT,
    status_reason TEXT,
    escalation_level INTEGER NOT NULL,
    next_escalation_at TIMESTAMP,
    version BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX tasks_by_raised ON tasks (raised_at, id);
CREATE INDEX tasks_by_status ON tasks (status, ack_deadline);
CREATE INDEX tasks_by_ward ON tasks (ward, status);
CREATE INDEX tasks_by_escalation ON tasks (next_escalation_at);
CREATE INDEX tasks_by_patient ON tasks (nhs_number);

-- Append-only: the timeline, the audit trail and (later) FHIR Provenance.
CREATE TABLE task_events (
    task_id TEXT NOT NULL REFERENCES tasks (id),
    seq INTEGER NOT NULL,
    at TIMESTAMP NOT NULL,
    actor_id TEXT REFERENCES staff (id),
    kind TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT,
    detail TEXT,
    PRIMARY KEY (task_id, seq)
);
CREATE INDEX task_events_by_time ON task_events (at);
