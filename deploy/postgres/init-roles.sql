-- temporal-dsl roles, run once by the postgres image on an empty data directory
-- (/docker-entrypoint-initdb.d). Same privileges as `tdsl dev` gives its embedded
-- PostgreSQL (interpreter/dev/databases.py); see docs/security.md.
--
--   tdsl      owns database tdsl: the registry, the run history, the payload store.
--             The worker's and the CLI's DATABASE_URL.
--   tdsl_sql  what a definition's `sql.query` connects as (TDSL_SQL_URL): database
--             tdsl_sql and nothing else. Grant it exactly the tables your definitions
--             need, or point TDSL_SQL_URL at a role of your own application database.
--
-- Neither role is a superuser (no COPY ... PROGRAM, no server files), neither can
-- connect to the other's database. Change the passwords for anything but a trial.

CREATE ROLE tdsl LOGIN PASSWORD 'tdsl'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;
CREATE ROLE tdsl_sql LOGIN PASSWORD 'tdsl_sql' CONNECTION LIMIT 20
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;

CREATE DATABASE tdsl OWNER tdsl;
CREATE DATABASE tdsl_sql OWNER tdsl_sql;

REVOKE ALL ON DATABASE tdsl FROM PUBLIC;
REVOKE ALL ON DATABASE tdsl_sql FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE tdsl TO tdsl;
GRANT CONNECT, TEMPORARY ON DATABASE tdsl_sql TO tdsl_sql;
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;
