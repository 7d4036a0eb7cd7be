-- Spend batches sent and not yet confirmed by settlement (spend.acks.v1): re-sent, as they are, until they are.
-- `contracts` holds each contract's amount in the batch, for `acoflow reconcile`.
CREATE TABLE {schema}.unconfirmed_spend (
    event_id uuid PRIMARY KEY,
    key text NOT NULL,
    value bytea NOT NULL,
    contracts jsonb NOT NULL,
    deltas integer NOT NULL,
    first_sent_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz NOT NULL DEFAULT now(),
    sends integer NOT NULL DEFAULT 1
);
CREATE INDEX unconfirmed_spend_sent ON {schema}.unconfirmed_spend (sent_at);
