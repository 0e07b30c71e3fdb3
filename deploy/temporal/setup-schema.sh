#!/bin/sh
# One-shot job (temporalio/admin-tools): creates or upgrades Temporal's schema in the
# `temporal` and `temporal_visibility` databases made by deploy/postgres/init-databases.sh.
# Safe to run again: setup-schema skips a database already past 0.0 and update-schema only
# applies versions newer than the stored one, which is also how a Temporal upgrade migrates.
set -eu

: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
SCHEMA_DIR=${SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" \
        -p "${DB_PORT:-5432}" "$@"
}

for db in temporal temporal_visibility; do
    case $db in
        temporal) versioned="$SCHEMA_DIR/temporal/versioned" ;;
        *) versioned="$SCHEMA_DIR/visibility/versioned" ;;
    esac
    echo "schema of $db: setting up"
    sql_tool --db "$db" setup-schema -v 0.0
    sql_tool --db "$db" update-schema -d "$versioned"
done
echo "Temporal schema is up to date"
