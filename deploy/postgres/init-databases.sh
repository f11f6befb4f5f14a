#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d).
# One role per tenant of this server: Temporal creates its own two databases (so it may create
# databases); ReleaseGate gets its ledger database and nothing else.
set -eu

: "${TEMPORAL_DB_PASSWORD:?TEMPORAL_DB_PASSWORD is required}"
: "${RELEASEGATE_DB_PASSWORD:?RELEASEGATE_DB_PASSWORD is required}"

# Passwords go in as psql variables (quoted by psql), never spliced into the SQL text.
psql --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --set temporal_password="$TEMPORAL_DB_PASSWORD" \
    --set releasegate_password="$RELEASEGATE_DB_PASSWORD" <<'SQL'
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
CREATE ROLE releasegate LOGIN PASSWORD :'releasegate_password';
CREATE DATABASE releasegate OWNER releasegate;
REVOKE ALL ON DATABASE releasegate FROM PUBLIC;
SQL
