-- Optional national identifiers, so that the record links staff and wards to what the
-- NHS already knows: a doctor's GMC number, a nurse's NMC PIN, anyone's SDS user id
-- (smartcard), and the ODS code of the site a ward is on. Portable SQL.
ALTER TABLE staff ADD COLUMN gmc_number TEXT;
ALTER TABLE staff ADD COLUMN nmc_pin TEXT;
ALTER TABLE staff ADD COLUMN sds_user_id TEXT;
ALTER TABLE wards ADD COLUMN ods_site_code TEXT;
