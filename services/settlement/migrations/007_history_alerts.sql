-- Each contract's position over time, one point a day (the day's last), for the console and GET .../history.
CREATE TABLE {schema}.position_history (
    contract_id text NOT NULL,
    day date NOT NULL,
    sequence bigint NOT NULL,
    position jsonb NOT NULL,
    PRIMARY KEY (contract_id, day)
);
-- Alerts raised and resolved by notifications (notifications.v1), shown beside the contract in the console.
CREATE TABLE {schema}.alerts (
    event_id uuid PRIMARY KEY,
    contract_id text NOT NULL,
    alert_id text NOT NULL,
    rule text NOT NULL,
    kind text NOT NULL,
    detail jsonb NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_contract ON {schema}.alerts (contract_id, at);
