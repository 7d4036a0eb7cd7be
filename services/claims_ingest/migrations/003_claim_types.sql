-- The claim types whose spend counts in the contract (from the attribution event); NULL: every type, as
-- assignments recorded before the contracts service sent them counted.
ALTER TABLE {schema}.assignments ADD COLUMN claim_types text[];
