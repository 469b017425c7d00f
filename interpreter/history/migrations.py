"""The schema's migrations: the SQL files of ``schema/migrations/``, applied in order, once each.

Apart from the store so that how the schema comes to be reads on its own: `Store`
takes `Migrations` as a mixin for `migrate()` and `migrations()`, and `tdsl doctor`
compares `migration_files` with what `migrations()` says is applied.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg

from dsl.errors import ConfigurationError

__all__ = ["MIGRATIONS_DIR", "Migrations", "migration_files"]

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "schema" / "migrations"
"""`NNNN_name.sql` files, applied in the order of NNNN."""


_MIGRATION_FILE = re.compile(r"^(\d+)_([A-Za-z0-9_-]+)\.sql$")
_MIGRATION_LOCK = 0x7464_736C_6D69_67  # "tdslmig": serialises concurrent migrators


class Migrations:
    """The migrating side, a mixin of `Store`: apply and list the migrations."""

    pool: asyncpg.Pool

    async def migrate(self, directory: Path | None = None) -> list[str]:
        """Apply every migration not yet recorded, in order, each in its own transaction.

        Returns the names (file stems, e.g. ``0001_initial``) applied now: empty when
        the database was up to date. An advisory lock makes concurrent migrators wait
        for each other instead of racing.
        """
        files = migration_files(directory or MIGRATIONS_DIR)
        applied_now: list[str] = []
        async with self.pool.acquire() as conn:
            await conn.execute("select pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                await conn.execute(
                    "create table if not exists tdsl_migrations ("
                    " version int primary key, name text not null,"
                    " applied_at timestamptz not null default now())"
                )
                done = {
                    row["version"]
                    for row in await conn.fetch("select version from tdsl_migrations")
                }
                for version, name, path in files:
                    if version in done:
                        continue
                    sql = path.read_text(encoding="utf-8")
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute(
                            "insert into tdsl_migrations (version, name) values ($1, $2)",
                            version,
                            name,
                        )
                    applied_now.append(name)
            finally:
                await conn.execute("select pg_advisory_unlock($1)", _MIGRATION_LOCK)
        return applied_now

    async def migrations(self) -> list[dict[str, Any]]:
        """The recorded migrations, oldest first (empty before the first `migrate`)."""
        exists = await self.pool.fetchval("select to_regclass('tdsl_migrations') is not null")
        if not exists:
            return []
        rows = await self.pool.fetch(
            "select version, name, applied_at from tdsl_migrations order by version"
        )
        return [dict(row) for row in rows]


def migration_files(directory: Path) -> list[tuple[int, str, Path]]:
    """(version, name, path) of each migration, ordered; one `DslError` for a bad set."""
    if not directory.is_dir():
        raise ConfigurationError(
            f"no migrations directory at {directory} (install temporal-dsl from its source "
            "tree, e.g. `pip install -e .`, so that schema/migrations is there)"
        )
    found: dict[int, tuple[int, str, Path]] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if match is None:
            raise ConfigurationError(f"migration file {path.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ConfigurationError(
                f"migrations {found[version][2].name!r} and {path.name!r} share number {version}"
            )
        found[version] = (version, path.stem, path)
    return [found[v] for v in sorted(found)]
