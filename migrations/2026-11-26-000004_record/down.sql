DROP TABLE record_deliveries;
