DROP TABLE audit_log;
DROP TABLE sign_in_throttle;
ALTER TABLE sessions DROP COLUMN last_seen_at;
