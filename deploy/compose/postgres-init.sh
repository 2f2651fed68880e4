#!/bin/sh
# Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d): a role and database for the
# Gitspaces API, and a role for Temporal that creates its own two databases (the schema job). Neither is a superuser
# and neither can open the other's databases. Changing a password later: ALTER ROLE … PASSWORD, then the .env.
set -eu

: "${GITSPACES_DB_PASSWORD:?set GITSPACES_DB_PASSWORD}"
: "${TEMPORAL_DB_PASSWORD:?set TEMPORAL_DB_PASSWORD}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v gitspaces_password="$GITSPACES_DB_PASSWORD" -v temporal_password="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE gitspaces LOGIN PASSWORD :'gitspaces_password';
CREATE DATABASE gitspaces OWNER gitspaces;
REVOKE ALL ON DATABASE gitspaces FROM PUBLIC;
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
SQL
