CREATE TABLE {schema}.contracts (
    contract_id text PRIMARY KEY,
    version integer NOT NULL,
    state jsonb NOT NULL
);
CREATE TABLE {schema}.quality (
    contract_id text NOT NULL,
    performance_year integer NOT NULL,
    version integer NOT NULL,
    quality_score numeric(12, 10) NOT NULL,
    quality_standard text NOT NULL,
    PRIMARY KEY (contract_id, performance_year)
);
CREATE TABLE {schema}.member_spend (
    contract_id text NOT NULL,
    member_id text NOT NULL,
    enrollment_type text NOT NULL,
    amount numeric(20, 6) NOT NULL,
    PRIMARY KEY (contract_id, member_id)
);
CREATE TABLE {schema}.month_spend (
    contract_id text NOT NULL,
    service_month date NOT NULL,
    amount numeric(20, 6) NOT NULL,
    lines bigint NOT NULL,
    PRIMARY KEY (contract_id, service_month)
);
CREATE TABLE {schema}.activity (
    contract_id text PRIMARY KEY,
    lines bigint NOT NULL,
    as_of date,
    last_spend_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {schema}.positions (
    contract_id text PRIMARY KEY,
    sequence bigint NOT NULL,
    position jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
