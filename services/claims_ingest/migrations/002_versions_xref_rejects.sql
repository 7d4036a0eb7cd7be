-- Part D final action: versions of one claim share a group; only the greatest rank counts.
ALTER TABLE {schema}.claim_lines ADD COLUMN version_group text;
ALTER TABLE {schema}.claim_lines ADD COLUMN version_rank text;
ALTER TABLE {schema}.claim_lines ADD COLUMN superseded boolean NOT NULL DEFAULT false;
CREATE INDEX claim_lines_group ON {schema}.claim_lines (member_id, version_group) WHERE version_group IS NOT NULL;
-- A payer's retired member ids and the newest id each leads to (kept resolved: no chains to walk).
CREATE TABLE {schema}.member_xref (
    payer text NOT NULL,
    previous_id text NOT NULL,
    current_id text NOT NULL,
    effective_date date,
    PRIMARY KEY (payer, previous_id)
);
CREATE INDEX member_xref_current ON {schema}.member_xref (payer, current_id);
-- Everything on claims.rejected.v1, for `acoflow rejects list` and `replay`.
CREATE TABLE {schema}.rejects (
    event_id uuid PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    source_topic text NOT NULL,
    source text NOT NULL,
    reasons jsonb NOT NULL,
    original text NOT NULL,
    original_encoding text NOT NULL,
    original_size bigint,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'replayed')),
    replayed_at timestamptz
);
CREATE INDEX rejects_open ON {schema}.rejects (received_at) WHERE status = 'open';
