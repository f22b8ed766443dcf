-- Reads that must stay fast with millions of finished tasks stored: open tasks newest first
-- (lists, "my bleeps", the dashboard), acknowledgements of the last 24 hours (dashboard),
-- a coordinator's raised tasks, escalations by time (dashboard), and the latest change
-- (what every open page asks for, through /events, every 0.7 s).
CREATE INDEX tasks_by_status_raised ON tasks (status, raised_at, id);
CREATE INDEX tasks_by_acknowledged ON tasks (acknowledged_at);
CREATE INDEX tasks_by_raiser ON tasks (raised_by, raised_at);
CREATE INDEX task_events_by_kind ON task_events (kind, at);
CREATE INDEX tasks_by_updated ON tasks (updated_at);
