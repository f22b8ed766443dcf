-- Security hardening (issue 14): idle session timeout, sign-in throttling, and an
-- append-only audit log of admin and security-relevant actions.
ALTER TABLE sessions ADD COLUMN last_seen_at TIMESTAMP;
UPDATE sessions SET last_seen_at = created_at;

-- Failed sign-ins per bucket ("account:<email>" or "address:<ip>") in the current window.
CREATE TABLE sign_in_throttle (
    bucket TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    window_start TIMESTAMP NOT NULL,
    locked_until TIMESTAMP
);

-- Only ever inserted into: no code path updates or deletes a row.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY NOT NULL,
    at TIMESTAMP NOT NULL,
    actor_id TEXT,
    action TEXT NOT NULL,
    subject TEXT,
    detail TEXT NOT NULL,
    client TEXT
);
CREATE INDEX audit_log_by_time ON audit_log (at, id);
