-- Constant per dataset ('FTTH' for INC): it stays in raw.
ALTER TABLE tickets.inc DROP COLUMN service_type;
