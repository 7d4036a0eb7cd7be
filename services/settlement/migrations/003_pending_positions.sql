-- Contracts whose state changed since their position was last published. Consumers mark them in the
-- transaction that changes the state; a loop recomputes and publishes them, so a backlog of spend batches
-- costs one recompute per contract rather than one per batch. `mark` counts the marks: a pass removes a
-- row only if no mark came after the one it read.
CREATE TABLE {schema}.pending_positions (
    contract_id text PRIMARY KEY,
    mark bigint NOT NULL DEFAULT 1,
    marked_at timestamptz NOT NULL DEFAULT now()
);
