-- A delivery is leased while its request is in flight, so no transaction stays open across an HTTP post: a
-- lease that runs out (the process died mid-post) makes the delivery due again.
ALTER TABLE {schema}.deliveries ADD COLUMN leased_until timestamptz;
