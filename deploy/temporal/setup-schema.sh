#!/bin/sh
# One-shot job (temporalio/admin-tools): create Temporal's persistence and visibility databases
# on PostgreSQL and bring both schemas to the version this admin-tools release ships.
# Safe to run on every `docker-compose up`: it creates only what is missing, and update-schema
# applies only the versions a database does not have yet.
set -eu

: "${SQL_HOST:?SQL_HOST is required}"
: "${SQL_USER:?SQL_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required}"
# temporal-sql-tool reads SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER and SQL_PASSWORD itself,
# which keeps the password off the command line.
export SQL_PLUGIN=postgres12 SQL_PORT="${SQL_PORT:-5432}" SQL_HOST SQL_USER SQL_PASSWORD
export PGPASSWORD="$SQL_PASSWORD"
SCHEMA_ROOT=/etc/temporal/schema/postgresql/v12

query() {
    psql --host "$SQL_HOST" --port "$SQL_PORT" --username "$SQL_USER" --dbname "$1" \
        --tuples-only --no-align --set ON_ERROR_STOP=1 --command "$2"
}

attempt=1
until query postgres "SELECT 1" >/dev/null 2>&1; do
    if [ "$attempt" -ge 60 ]; then
        echo "PostgreSQL at $SQL_HOST:$SQL_PORT did not accept $SQL_USER" >&2
        exit 1
    fi
    attempt=$((attempt + 1))
    sleep 2
done

setup() {
    db="$1"
    schema="$2"
    if [ "$(query postgres "SELECT 1 FROM pg_database WHERE datname = '$db'")" != "1" ]; then
        echo "creating database $db"
        temporal-sql-tool --db "$db" create
    fi
    if [ "$(query "$db" "SELECT to_regclass('public.schema_version') IS NOT NULL")" != "t" ]; then
        echo "initialising schema versioning in $db"
        temporal-sql-tool --db "$db" setup-schema -v 0.0
    fi
    echo "updating $db to the newest schema"
    temporal-sql-tool --db "$db" update-schema -d "$SCHEMA_ROOT/$schema/versioned"
}

setup "${TEMPORAL_DB:-temporal}" temporal
setup "${TEMPORAL_VISIBILITY_DB:-temporal_visibility}" visibility
echo "Temporal schemas are ready"
