#!/bin/sh
# Runs once, on the first start of the `postgresql` container (an empty data volume), from
# /docker-entrypoint-initdb.d: one role and database for the app, one role owning Temporal's
# two databases, so neither can touch the other's tables.
#
# Databases are created here rather than by the schema job because CREATE DATABASE is not
# idempotent, while the schema job runs again on every `docker compose up`.
set -eu

: "${POSTGRES_USER:?}"
: "${JOURNEYS_DB_PASSWORD:?set JOURNEYS_DB_PASSWORD in .env}"
: "${TEMPORAL_DB_PASSWORD:?set TEMPORAL_DB_PASSWORD in .env}"

# Passwords go in as psql variables (:'name' quotes them), never spliced into the SQL text.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v journeys_password="$JOURNEYS_DB_PASSWORD" \
    -v temporal_password="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE journeys LOGIN PASSWORD :'journeys_password';
CREATE DATABASE journeys OWNER journeys;

CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;

-- Temporal's visibility schema wants btree_gin; create it as superuser so the temporal role
-- needs no extra rights.
\connect temporal_visibility
CREATE EXTENSION IF NOT EXISTS btree_gin;
SQL
