CREATE TABLE {schema}.contract_versions (
    contract_id text NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    payer text NOT NULL,
    terms jsonb NOT NULL,
    roster_summary jsonb NOT NULL,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contract_id, version)
);
CREATE TABLE {schema}.roster_members (
    contract_id text NOT NULL,
    version integer NOT NULL,
    member_id text NOT NULL,
    entries jsonb NOT NULL,
    PRIMARY KEY (contract_id, version, member_id)
);
CREATE TABLE {schema}.quality_results (
    contract_id text NOT NULL,
    performance_year integer NOT NULL,
    version integer NOT NULL,
    quality_score numeric(12, 10) NOT NULL,
    quality_standard text NOT NULL,
    recorded_by text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contract_id, performance_year, version)
);
CREATE TABLE {schema}.audit_log (
    id bigserial PRIMARY KEY,
    contract_id text NOT NULL,
    version integer,
    actor text NOT NULL,
    action text NOT NULL,
    changes jsonb NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
