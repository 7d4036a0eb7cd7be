-- The phi role (reads of rejected records' originals) came after this table: keys of that role could not be
-- created through the API (the check refused them and the request failed).
ALTER TABLE {schema}.api_keys DROP CONSTRAINT IF EXISTS api_keys_role_check;
ALTER TABLE {schema}.api_keys ADD CONSTRAINT api_keys_role_check CHECK (role IN ('viewer', 'editor', 'admin', 'phi'));
