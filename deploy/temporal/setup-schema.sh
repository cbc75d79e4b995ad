#!/bin/sh
# Temporal's own databases on our PostgreSQL: created when missing, their schema set up and
# brought to the version this admin-tools image carries. The steps are those of Temporal's
# compose files (temporalio/samples-server, compose/scripts/setup-postgres.sh); every one is
# idempotent (an existing database is kept, applied versions are skipped), so this runs at
# every `docker compose up`, and after an image upgrade it migrates Temporal's schema before
# the new server starts. temporal-sql-tool reads the password from SQL_PASSWORD.
set -eu

: "${POSTGRES_SEEDS:?set POSTGRES_SEEDS (the PostgreSQL host)}"
: "${POSTGRES_USER:?set POSTGRES_USER}"
: "${SQL_PASSWORD:?set SQL_PASSWORD (the PostgreSQL password)}"
PORT=${DB_PORT:-5432}
SCHEMA_DIR=${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}

sql_tool() {
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$PORT" -u "$POSTGRES_USER" "$@"
}

for pair in "${DBNAME:-temporal}:temporal" "${VISIBILITY_DBNAME:-temporal_visibility}:visibility"; do
  database=${pair%%:*}
  schema=${pair##*:}
  echo "temporal schema: $database ($schema)"
  sql_tool --db "$database" create
  sql_tool --db "$database" setup-schema -v 0.0
  sql_tool --db "$database" update-schema -d "$SCHEMA_DIR/$schema/versioned"
done
echo "temporal schema: up to date"
