-- The open tasks of the roles changing hands at a rota boundary are read by role
-- (`store::rota::open_for_roles`); without this each hand-over walked every open task.
CREATE INDEX tasks_by_role ON tasks (assignee_role_id, status);
