DROP INDEX tasks_by_role;
