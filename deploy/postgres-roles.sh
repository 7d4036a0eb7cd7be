#!/bin/sh
# PostgreSQL's first start (docker-entrypoint-initdb.d): one login role per service, owning its own schema and
# nothing else; all may record their migrations in public.acoflow_migrations. Passwords come from the
# environment (PG_<SERVICE>_PASSWORD), never from the repository.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
CREATE TABLE IF NOT EXISTS public.acoflow_migrations (
    schema_name text NOT NULL,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, name)
);
SQL
for service in contracts claims_ingest settlement notifications; do
  password_var="PG_$(echo "$service" | tr '[:lower:]' '[:upper:]')_PASSWORD"
  password=$(eval "printf '%s' \"\${$password_var:?set $password_var}\"")
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role="$service" -v password="$password" -v database="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE SCHEMA :"role" AUTHORIZATION :"role";
GRANT CONNECT ON DATABASE :"database" TO :"role";
GRANT USAGE ON SCHEMA public TO :"role";
GRANT SELECT, INSERT ON public.acoflow_migrations TO :"role";
SQL
done
