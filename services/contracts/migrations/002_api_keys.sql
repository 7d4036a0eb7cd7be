-- API keys: only the SHA-256 of each key is kept (keys are 256-bit random, so a slow hash adds nothing).
CREATE TABLE {schema}.api_keys (
    key_id text PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    key_hash text NOT NULL UNIQUE,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    revoked_by text
);
