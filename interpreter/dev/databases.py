"""Two databases and two roles in the embedded PostgreSQL, so `tdsl dev` is safe by default.

A definition's author must not reach the registry and run history with the worker's
credentials (docs/security.md). So the embedded server gets what production gets
from `deploy/postgres/init-roles.sql`:

- role `tdsl` owns database `tdsl`: the registry, the run history and the payload
  store (`DATABASE_URL`);
- role `tdsl_sql` owns database `tdsl_sql`, a scratch database for `sql.query`
  (`TDSL_SQL_URL`);

neither is a superuser (so `COPY ... PROGRAM` and server-side files are refused),
neither may connect to the other's database, and nobody but the superuser may connect
to `postgres`. Provisioning is idempotent: `tdsl dev` runs it at every start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from dsl.errors import ConfigurationError, ServiceError

__all__ = ["HISTORY_ROLE", "SQL_ROLE", "DevDatabases", "provision_databases", "url_for"]

HISTORY_ROLE = "tdsl"
"""Owns the registry, run history and payload tables; the worker's `DATABASE_URL`."""
SQL_ROLE = "tdsl_sql"
"""What `sql.query` connects as (`TDSL_SQL_URL`): its own database, nothing else."""

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_ROLE_OPTIONS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"


@dataclass(frozen=True)
class DevDatabases:
    """Connection URLs of the two provisioned roles, each in its own database."""

    history_url: str
    sql_url: str | None
    """None when `DATABASE_URL` came from outside and `TDSL_SQL_URL` is unset."""


def url_for(superuser_url: str, *, role: str, database: str) -> str:
    """*superuser_url* with another user and database, same host, socket and options."""
    parts = urlsplit(superuser_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{role}@{host}", f"/{database}", parts.query, ""))


async def provision_databases(
    superuser_url: str, *, history_role: str = HISTORY_ROLE, sql_role: str = SQL_ROLE
) -> DevDatabases:
    """Create the roles and databases if missing and (re)apply their privileges.

    Each role's database has its own name. Raises `DslError` with one line when the
    server refuses.
    """
    for name in (history_role, sql_role):
        if not _IDENTIFIER.fullmatch(name):
            raise ConfigurationError(f"invalid role name {name!r}")
    try:
        conn = await asyncpg.connect(superuser_url)
    except (OSError, asyncpg.PostgresError) as err:
        raise ServiceError(f"cannot provision the embedded PostgreSQL: {err}") from err
    try:
        for role in (history_role, sql_role):
            await _ensure_role_and_database(conn, role)
        await conn.execute("REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC")
    except asyncpg.PostgresError as err:
        raise ServiceError(f"cannot provision the embedded PostgreSQL: {err}") from err
    finally:
        await conn.close()
    return DevDatabases(
        history_url=url_for(superuser_url, role=history_role, database=history_role),
        sql_url=url_for(superuser_url, role=sql_role, database=sql_role),
    )


async def _ensure_role_and_database(conn: asyncpg.Connection, name: str) -> None:
    """Role *name* owning database *name*, reachable by that role only."""
    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name) is None:
        await conn.execute(f'CREATE ROLE "{name}" {_ROLE_OPTIONS}')
    else:  # an older state directory: take back anything granted since
        await conn.execute(f'ALTER ROLE "{name}" {_ROLE_OPTIONS}')
    if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name) is None:
        # CREATE DATABASE cannot run in a transaction block; asyncpg sends it alone.
        await conn.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
    await conn.execute(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC')
    await conn.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{name}" TO "{name}"')
