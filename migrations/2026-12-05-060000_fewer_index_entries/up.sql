-- Fewer index entries written for each event and each change of a task (BENCHMARKS.md,
-- twenty-second round).
--
-- Only a waiting task has a next escalation time (acknowledging, finishing or cancelling
-- clears it). Kept to those tasks, the tick's index is not written when an acknowledged
-- task is started or completed: SQLite writes a partial index's entries only for rows in
-- it, and PostgreSQL only inserts those. `next_escalation_at <= ?` and `IS NOT NULL`, which
-- the tick and the heartbeat read with, imply the condition on both backends.
DROP INDEX tasks_by_escalation;
CREATE INDEX tasks_by_escalation ON tasks (status, next_escalation_at)
    WHERE next_escalation_at IS NOT NULL;
-- No statement reads the timeline by time alone.
DROP INDEX task_events_by_time;
-- Only escalations are read by kind and time (the dashboard's escalations per hour, and
-- /metrics' count). The reads name the kind as a literal, not a bound value: only then
-- does either backend's planner know a partial index serves them.
DROP INDEX task_events_by_kind;
CREATE INDEX task_events_escalated ON task_events (at) WHERE kind = 'escalated';
