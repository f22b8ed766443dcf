ALTER TABLE wards DROP COLUMN ods_site_code;
ALTER TABLE staff DROP COLUMN sds_user_id;
ALTER TABLE staff DROP COLUMN nmc_pin;
ALTER TABLE staff DROP COLUMN gmc_number;
