-- A month's spend is now the sum of its lags in lag_spend, so apply_spend writes one table fewer. Spend applied
-- before lag_spend existed (migration 002 added it without a backfill) is in month_spend only: what a month
-- held there beyond its lags moves to spend_before_lags, which adds to the month's total but, its lag being
-- unknown, not to the paid triangle, as before. Settlement instances of an earlier version write month_spend:
-- stop them before this migration runs.
LOCK TABLE {schema}.month_spend, {schema}.lag_spend IN SHARE MODE;
CREATE TABLE {schema}.spend_before_lags (
    contract_id text NOT NULL,
    service_month date NOT NULL,
    amount numeric(20, 6) NOT NULL,
    PRIMARY KEY (contract_id, service_month)
);
INSERT INTO {schema}.spend_before_lags (contract_id, service_month, amount)
SELECT m.contract_id, m.service_month, m.amount - coalesce(l.amount, 0)
FROM {schema}.month_spend m
LEFT JOIN (SELECT contract_id, service_month, sum(amount) AS amount FROM {schema}.lag_spend GROUP BY 1, 2) l
    ON l.contract_id = m.contract_id AND l.service_month = m.service_month
WHERE m.amount <> coalesce(l.amount, 0);
DROP TABLE {schema}.month_spend;
