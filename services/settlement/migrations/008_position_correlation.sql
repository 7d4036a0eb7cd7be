-- The correlation id of the latest change that marked a contract (a load's id, or the submitting event's): the
-- position published for the mark carries it, so a claim line can be followed to its position and alerts.
ALTER TABLE {schema}.pending_positions ADD COLUMN correlation_id text;
