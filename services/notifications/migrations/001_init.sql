CREATE TABLE {schema}.alert_state (
    contract_id text NOT NULL,
    rule text NOT NULL,
    active boolean NOT NULL,
    last_sequence bigint NOT NULL,
    alert_id text,
    PRIMARY KEY (contract_id, rule)
);
CREATE TABLE {schema}.deliveries (
    id uuid PRIMARY KEY,
    alert_id text NOT NULL,
    contract_id text NOT NULL,
    rule text NOT NULL,
    kind text NOT NULL,
    url text NOT NULL,
    body bytea NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX deliveries_due ON {schema}.deliveries (next_attempt_at) WHERE status = 'pending';
