"""The definition registry's table: immutable (name, version) → content entries.

Apart from the store so that registering, listing, finding and deprecating
definitions reads on its own; `Store` takes `DefinitionRegistry` as a mixin. The
registry as a catalog for subworkflow lookup is `interpreter.history.registry`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

import asyncpg

from dsl.bundle import content_hash, normalise
from dsl.catalog import version_key
from dsl.errors import ConflictError
from dsl.models import DEFAULT_VERSION, Definition

__all__ = ["DefinitionRegistry", "VersionConflict", "next_version"]


class VersionConflict(ConflictError):
    """A (name, version) is already registered with different content."""

    def __init__(
        self, name: str, version: str, *, registered: str, attempted: str, next_version: str
    ) -> None:
        self.name = name
        self.version = version
        self.registered_sha256 = registered
        self.sha256 = attempted
        self.next_version = next_version
        super().__init__(
            f"{name} {version} is already registered with different content "
            f"(sha256 {registered[:12]}…); bump the version (next: {next_version})"
        )


class DefinitionRegistry:
    """The registry side, a mixin of `Store`: the `definitions` table."""

    pool: asyncpg.Pool

    async def register(
        self, definition: Definition, source: str, *, tenant: str | None = None
    ) -> Literal["registered", "unchanged"]:
        """Store *definition* (and its *source* text) as an immutable version, of
        *tenant* if given.

        The same name and version with the same content hash is a no-op
        ("unchanged"); with different content it raises `VersionConflict`, naming
        the next free version. A name belongs to the tenant that registered it first:
        another tenant's version of it is a `ConflictError`.
        """
        sha256 = content_hash(definition)
        name, version = definition.name, definition.version
        async with self.pool.acquire() as conn, conn.transaction():
            owners = await conn.fetch(
                "select distinct tenant from definitions where name = $1", name
            )
            owner = owners[0]["tenant"] if owners else tenant
            if owner != tenant:
                raise ConflictError(
                    f"definition {name!r} is registered for "
                    f"{f'tenant {owner!r}' if owner else 'no tenant'}, not "
                    f"{f'tenant {tenant!r}' if tenant else 'without one'}; choose another name"
                )
            inserted = await conn.fetchval(
                "insert into definitions (name, version, sha256, source, parsed, tenant)"
                " values ($1, $2, $3, $4, $5, $6)"
                " on conflict (name, version) do nothing returning sha256",
                name,
                version,
                sha256,
                source,
                normalise(definition),
                tenant,
            )
            if inserted is not None:
                return "registered"
            registered = await conn.fetchval(
                "select sha256 from definitions where name = $1 and version = $2",
                name,
                version,
            )
            if registered == sha256:
                return "unchanged"
            versions = await conn.fetch("select version from definitions where name = $1", name)
        raise VersionConflict(
            name,
            version,
            registered=str(registered),
            attempted=sha256,
            next_version=next_version(row["version"] for row in versions),
        )

    async def definitions(self, *, tenant: str | None = None) -> list[dict[str, Any]]:
        """Every registered version (of *tenant*, if given): `name`, `version`,
        `sha256`, `registered_at`, `description`, `tenant`; by name, the highest
        version of each first."""
        rows = await self.pool.fetch(
            "select name, version, sha256, registered_at, deprecated_at, tenant,"
            " parsed->>'description' as description from definitions"
            " where ($1::text is null or tenant = $1)",
            tenant,
        )
        found = [dict(row) for row in rows]
        found.sort(key=lambda d: version_key(d["version"]), reverse=True)
        found.sort(key=lambda d: d["name"])
        return found

    async def find_definition(self, name: str, version: str | None = None) -> dict[str, Any] | None:
        """One registered version with its `source` and `parsed` JSON; the highest
        semantic version that is not deprecated when *version* is None."""
        rows = await self.pool.fetch(
            "select name, version, sha256, source, parsed, registered_at from definitions"
            " where name = $1 and ($2::text is null or version = $2)"
            " and ($2::text is not null or deprecated_at is null)",
            name,
            version,
        )
        if not rows:
            return None
        return dict(max(rows, key=lambda row: version_key(row["version"])))

    async def deprecate(self, name: str, version: str, *, deprecated: bool = True) -> bool:
        """Mark a registered version deprecated (or not any more); False if unknown."""
        status = await self.pool.execute(
            "update definitions set deprecated_at = case when $3 then"
            " coalesce(deprecated_at, now()) else null end where name = $1 and version = $2",
            name,
            version,
            deprecated,
        )
        return str(status) != "UPDATE 0"


def next_version(versions: Iterable[str]) -> str:
    """The version to register next: the highest one's patch + 1 (or its release, for a
    pre-release such as 2.0.0-rc.1)."""
    known = [v for v in versions if version_key(v) != (-1,)]
    if not known:
        return DEFAULT_VERSION
    highest = max(known, key=version_key)
    match = re.match(r"(\d+)\.(\d+)\.(\d+)(-[^+]+)?", highest)
    assert match is not None  # version_key accepted it
    major, minor, patch, pre = match.groups()
    if pre:
        return f"{major}.{minor}.{patch}"
    return f"{major}.{minor}.{int(patch) + 1}"
