-- The dashboard shows the latest failed deliveries. Ordered by creation among all failed
-- rows, they were found by reading and sorting every failed row ever kept, on each
-- dashboard read; this index holds the failed rows alone, in the order shown. A query
-- must say status = 'failed' as a literal for the databases to use it. (The leading
-- status column is what makes SQLite's planner choose it over notifications_due.)
CREATE INDEX notifications_failed ON notifications (status, created_at) WHERE status = 'failed';
