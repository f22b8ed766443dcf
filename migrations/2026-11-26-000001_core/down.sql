DROP TABLE task_events;
DROP TABLE tasks;
DROP TABLE role_holdings;
DROP TABLE oncall_roles;
DROP TABLE wards;
DROP TABLE staff;
