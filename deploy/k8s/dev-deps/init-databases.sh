#!/usr/bin/env bash
# Runs once, when a PostgreSQL container initialises an empty data directory
# (/docker-entrypoint-initdb.d, in deploy/compose.yaml and in postgres.yaml here): one role and
# one database per Flotilla service, the database owned by its role, so that no service can
# open another's tables (own data per service).
#
# A service creates its database itself when it may (`CREATE DATABASE`, checked against
# pg_database first); creating them here lets each service log in with a role that has no
# CREATEDB. Databases compare text byte by byte (LC_COLLATE 'C'), as the services create them.
#
# FLOTILLA_SERVICES         services that keep data (storefront and gateway keep none)
# FLOTILLA_DATABASE_PREFIX  databases are <prefix>_<service> (the binary's default: flotilla)
# DB_PASSWORD_<SERVICE>     each role's own password (development values in compose.yaml):
#                           one per role, so one service's URL opens no other's database
set -euo pipefail
prefix=${FLOTILLA_DATABASE_PREFIX:-flotilla}
for service in ${FLOTILLA_SERVICES:?list the services}; do
    variable="DB_PASSWORD_${service^^}"
    password=${!variable:-}
    if [ -z "$password" ]; then
        echo "init-databases.sh: set $variable (the $service role's password)" >&2
        exit 1
    fi
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -v role="$service" -v db="${prefix}_${service}" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"role" TEMPLATE template0 LC_COLLATE 'C';
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
done
