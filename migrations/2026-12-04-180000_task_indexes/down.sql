DROP INDEX tasks_by_acknowledged;
CREATE INDEX tasks_by_acknowledged ON tasks (acknowledged_at);
CREATE INDEX tasks_by_status ON tasks (status, ack_deadline);
DROP INDEX tasks_by_escalation;
CREATE INDEX tasks_by_escalation ON tasks (next_escalation_at);
