DROP INDEX tasks_by_updated;
DROP INDEX task_events_by_kind;
DROP INDEX tasks_by_raiser;
DROP INDEX tasks_by_acknowledged;
DROP INDEX tasks_by_status_raised;
