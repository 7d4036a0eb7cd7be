-- Rules set over the API for one contract (they add to, or replace by id, the defaults of the rules file).
CREATE TABLE {schema}.contract_rules (
    contract_id text PRIMARY KEY,
    rules jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- When each contract last received spend, for "no claims for N days".
CREATE TABLE {schema}.contract_activity (
    contract_id text PRIMARY KEY,
    lines_applied bigint NOT NULL,
    last_spend_at timestamptz NOT NULL,
    last_sequence bigint NOT NULL
);
-- Submitted and rejected claim lines per hour, for the rejected-claim rate.
CREATE TABLE {schema}.claim_counts (
    hour timestamptz PRIMARY KEY,
    submitted bigint NOT NULL DEFAULT 0,
    rejected bigint NOT NULL DEFAULT 0
);
CREATE INDEX deliveries_alert_order ON {schema}.deliveries (contract_id, rule, created_at) WHERE status = 'pending';
