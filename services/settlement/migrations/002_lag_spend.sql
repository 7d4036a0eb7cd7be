-- The paid triangle: spend by service month and months of lag until payment, for completion estimates.
CREATE TABLE {schema}.lag_spend (
    contract_id text NOT NULL,
    service_month date NOT NULL,
    lag integer NOT NULL,
    amount numeric(20, 6) NOT NULL,
    PRIMARY KEY (contract_id, service_month, lag)
);
