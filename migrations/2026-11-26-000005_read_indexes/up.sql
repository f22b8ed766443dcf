-- Reads that must stay fast with millions of finished tasks stored: open tasks newest first
-- (lists, "my bleeps", the dashboard), acknowledgements of the last 24 hours (dashboard),
-- a coordinator's raised tasks, and escalations by time (dashboard).
CREATE INDEX tasks_by_status_raised ON tasks (status, raised_at, id);
CREATE INDEX tasks_by_acknowledged ON tasks (acknowledged_at);
CREATE INDEX tasks_by_raiser ON tasks (raised_by, raised_at);
CREATE INDEX task_events_by_kind ON task_events (kind, at);
