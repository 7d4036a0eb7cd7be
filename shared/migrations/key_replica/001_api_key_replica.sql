-- The API keys a service accepts: a replica of keys.v1 (shared/auth.py); hashes only. Applied to the schema of
-- every service that calls ServiceRuntime.secure().
CREATE TABLE {schema}.api_key_replica (
    key_id text PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL,
    key_hash text NOT NULL,
    revoked boolean NOT NULL DEFAULT false
);
CREATE INDEX api_key_replica_hash ON {schema}.api_key_replica (key_hash);
