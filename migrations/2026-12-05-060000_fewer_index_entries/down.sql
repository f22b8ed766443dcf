DROP INDEX task_events_escalated;
CREATE INDEX task_events_by_kind ON task_events (kind, at);
CREATE INDEX task_events_by_time ON task_events (at);
DROP INDEX tasks_by_escalation;
CREATE INDEX tasks_by_escalation ON tasks (status, next_escalation_at);
