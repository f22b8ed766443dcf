ALTER TABLE push_subscriptions DROP COLUMN last_shown_at;
DROP TABLE delivery_receipts;
ALTER TABLE staff DROP COLUMN mobile;
