-- The dashboard shows the latest failed deliveries. Ordered by creation among all failed
-- rows, they were found by reading and sorting every failed row ever kept, on each
-- dashboard read. Not a partial index (WHERE status = 'failed'): to judge whether one
-- serves a statement with `status = ?`, SQLite plans with the bound value and marks the
-- statement to be prepared again whenever that parameter is bound again, which made
-- every statement on notifications that filters by status be prepared anew on each call.
CREATE INDEX notifications_by_status_created ON notifications (status, created_at);
