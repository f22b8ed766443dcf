-- Settings the service makes for itself on first start (VAPID keys, link-signing secret).
CREATE TABLE settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- A clinician's devices: one row per browser push subscription.
CREATE TABLE push_subscriptions (
    id TEXT PRIMARY KEY NOT NULL,
    staff_id TEXT NOT NULL REFERENCES staff (id),
    endpoint TEXT NOT NULL UNIQUE,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    user_agent TEXT,
    created_at TIMESTAMP NOT NULL,
    last_success_at TIMESTAMP,
    last_error TEXT
);
CREATE INDEX push_subscriptions_by_staff ON push_subscriptions (staff_id);

-- The outbox: one row per (task, escalation level, recipient, channel), written in the
-- same transaction as the change that causes it. dedupe_key makes "exactly once" a
-- constraint, not a hope.
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

-- One-click acknowledge links that have been used (they work once).
CREATE TABLE used_ack_links (
    notification_id TEXT PRIMARY KEY NOT NULL,
    used_at TIMESTAMP NOT NULL
);
