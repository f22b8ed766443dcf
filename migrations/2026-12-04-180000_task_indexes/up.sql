-- Fewer entries written for each change of a task, and the tick's read by its own index.
--
-- The due tasks were read by tasks_by_status (status, ack_deadline): every waiting task,
-- then sorted (SQLite's `EXPLAIN QUERY PLAN`: `SEARCH tasks USING INDEX tasks_by_status
-- (status=?)`, `USE TEMP B-TREE FOR ORDER BY`), 100,000 rows for each 2,000 read with that
-- many waiting. Keyed by status then time, the due are read in order and no further.
DROP INDEX tasks_by_escalation;
CREATE INDEX tasks_by_escalation ON tasks (status, next_escalation_at);
-- The overdue list (status, then ack_deadline) is served by tasks_by_status_raised, in the
-- order it is shown, newest raised first; nothing else needs this one.
DROP INDEX tasks_by_status;
-- Only acknowledged tasks are read by when (the dashboard's and /metrics' last 24 hours).
-- On PostgreSQL every change of a task writes an entry in each of its indexes; a waiting
-- task's changes (raised, escalated) no longer write one here. `acknowledged_at >= ?`
-- implies the condition on both backends, so the reads still use it.
DROP INDEX tasks_by_acknowledged;
CREATE INDEX tasks_by_acknowledged ON tasks (acknowledged_at) WHERE acknowledged_at IS NOT NULL;
