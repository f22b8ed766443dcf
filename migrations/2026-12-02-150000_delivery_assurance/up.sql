-- Delivery assurance: a mobile number for text messages, and receipts from the phones.
ALTER TABLE staff ADD COLUMN mobile TEXT;

-- What each device said of each push it got: shown (the service worker put it on screen).
-- One row per push and device; the first report wins.
CREATE TABLE delivery_receipts (
    outbox_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    staff_id TEXT NOT NULL,
    shown_at TIMESTAMP NOT NULL,
    PRIMARY KEY (outbox_id, device_id)
);
CREATE INDEX delivery_receipts_task ON delivery_receipts (task_id, staff_id, shown_at);

-- When a device last showed a push: with last_success_at (a push service took one), a
-- device whose pushes are taken but never shown can be told apart.
ALTER TABLE push_subscriptions ADD COLUMN last_shown_at TIMESTAMP;
