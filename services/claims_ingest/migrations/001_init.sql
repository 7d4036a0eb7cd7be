CREATE TABLE {schema}.claim_lines (
    line_key text PRIMARY KEY,
    member_id text NOT NULL,
    payer text NOT NULL,
    claim_type text NOT NULL,
    service_date date NOT NULL,
    paid_date date NOT NULL,
    amount numeric(20, 6) NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX claim_lines_member ON {schema}.claim_lines (member_id, payer);
CREATE TABLE {schema}.assignments (
    member_id text NOT NULL,
    contract_id text NOT NULL,
    payer text NOT NULL,
    contract_version integer NOT NULL,
    periods jsonb NOT NULL,
    PRIMARY KEY (member_id, contract_id)
);
-- What spend each line has contributed to each contract; generation counts re-attributions.
CREATE TABLE {schema}.emitted (
    line_key text NOT NULL,
    contract_id text NOT NULL,
    member_id text NOT NULL,
    generation integer NOT NULL,
    active boolean NOT NULL,
    amount numeric(20, 6) NOT NULL,
    PRIMARY KEY (line_key, contract_id)
);
CREATE INDEX emitted_member ON {schema}.emitted (member_id, contract_id);
