DROP INDEX notifications_failed;
