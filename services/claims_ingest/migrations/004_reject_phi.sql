-- Originals of rejected records are PHI: purged after the retention period, every read of them audited.
ALTER TABLE {schema}.rejects ADD COLUMN original_purged_at timestamptz;
CREATE TABLE {schema}.reject_reads (
    id bigserial PRIMARY KEY,
    actor text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    event_ids uuid[] NOT NULL
);
