DROP TABLE used_ack_links;
DROP TABLE notifications;
DROP TABLE push_subscriptions;
DROP TABLE settings;
