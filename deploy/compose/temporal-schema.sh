#!/bin/sh
# The schema job (temporalio/admin-tools): creates Temporal's two PostgreSQL databases when missing and brings both
# schemas up to the version this admin-tools release ships. Safe to run again: an upgrade of the Temporal images
# runs it first, and update-schema applies only the versions a database lacks. setup-schema -v 0.0 only creates the
# version tables, and leaves a database that already has a newer version alone.
#
# Environment (temporal-sql-tool reads the SQL_* variables itself): SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER,
# SQL_PASSWORD; TEMPORAL_DATABASE and TEMPORAL_VISIBILITY_DATABASE name the databases.
set -eu

: "${SQL_HOST:?set SQL_HOST}"
: "${SQL_USER:?set SQL_USER}"
: "${SQL_PASSWORD:?set SQL_PASSWORD}"
SCHEMA_ROOT=/etc/temporal/schema/postgresql/v12

echo "waiting for PostgreSQL at ${SQL_HOST}:${SQL_PORT:-5432}"
tries=0
until nc -z -w 5 "$SQL_HOST" "${SQL_PORT:-5432}"; do
  tries=$((tries + 1))
  [ "$tries" -lt 60 ] || { echo "PostgreSQL did not answer" >&2; exit 1; }
  sleep 2
done

setup() { # database schema-folder
  # create-database fails on a database that exists (the role may also lack CREATEDB when an operator made the
  # databases beforehand); setup-schema below then fails loudly if the database really is missing.
  temporal-sql-tool --db "$1" create-database >/dev/null 2>&1 && echo "created database $1" || echo "database $1 exists"
  temporal-sql-tool --db "$1" setup-schema -v 0.0
  temporal-sql-tool --db "$1" update-schema -d "$SCHEMA_ROOT/$2/versioned"
}

setup "${TEMPORAL_DATABASE:-temporal}" temporal
setup "${TEMPORAL_VISIBILITY_DATABASE:-temporal_visibility}" visibility
echo "Temporal schemas are up to date"
