-- Per contract: how many members have spend, its total and its sum of squares, kept by apply_spend in the
-- statement that changes member_spend, so a position reads one row instead of aggregating every member's
-- (that aggregate was the largest part of a position pass's read). Settlement instances of an earlier
-- version do not keep it: stop them before this migration runs.
CREATE TABLE {schema}.member_stats (
    contract_id text PRIMARY KEY,
    members bigint NOT NULL,
    total numeric(30, 6) NOT NULL,
    sum_of_squares numeric(60, 12) NOT NULL
);
LOCK TABLE {schema}.member_spend IN SHARE MODE;
INSERT INTO {schema}.member_stats (contract_id, members, total, sum_of_squares)
SELECT contract_id, count(*), sum(amount), sum(amount * amount) FROM {schema}.member_spend GROUP BY contract_id;
