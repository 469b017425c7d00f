"""The definition registry as a `dsl.catalog.Catalog`: how subworkflows are found in
PostgreSQL after the files beside a definition.

`registry_catalog` loads it now (async); `registry_from_env` is the lazy, synchronous
one that `prepare_run` chains after the definition files when `DATABASE_URL` is set.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys

import asyncpg
from pydantic import ValidationError

from dsl.catalog import Catalog, CatalogEntry, MemoryCatalog
from dsl.errors import DslError
from dsl.models import Definition
from interpreter.history.store import Store, failure_reason

__all__ = ["registry_at", "registry_catalog", "registry_from_env"]

_REGISTRY_TIMEOUT = 5.0
"""Seconds `registry_from_env` waits for PostgreSQL before going on with files only."""


async def registry_catalog(store: Store) -> MemoryCatalog:
    """Every registered definition as a `Catalog`, loaded now (the protocol is synchronous).

    A stored definition the current models no longer accept is left out, as a
    broken file beside a definition is.
    """
    rows = await store.pool.fetch(
        "select name, version, parsed, deprecated_at is not null as deprecated from definitions"
    )
    entries = []
    for row in rows:
        try:
            definition = Definition.model_validate(row["parsed"])
        except ValidationError:
            continue
        origin = f"registry:{row['name']}@{row['version']}"
        entries.append(CatalogEntry(definition, origin, deprecated=row["deprecated"]))
    return MemoryCatalog(entries)


_warned: set[str] = set()


class _LazyRegistry:
    """The registry at *url*, read on the first lookup; unreachable means empty, with
    one warning on stderr per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._catalog: MemoryCatalog | None = None

    def _load(self) -> MemoryCatalog:
        if self._catalog is None:
            # The caller may be inside a running event loop (sync API called from async
            # code), so the query runs on a loop of its own in a helper thread.
            with concurrent.futures.ThreadPoolExecutor(1, "tdsl-registry") as pool:
                self._catalog = pool.submit(asyncio.run, self._fetch()).result()
        return self._catalog

    async def _fetch(self) -> MemoryCatalog:
        try:
            store = await Store.connect(self.url, min_size=1, max_size=1, timeout=_REGISTRY_TIMEOUT)
            async with store:
                return await registry_catalog(store)
        except asyncpg.UndefinedTableError:
            self._warn("it has no tables yet (run `tdsl db migrate`)")
        except (
            DslError,
            OSError,
            TimeoutError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
        ) as err:
            reason = str(err) if isinstance(err, DslError) else failure_reason(err)
            self._warn(reason)
        return MemoryCatalog()

    def _warn(self, reason: str) -> None:
        if "registry" not in _warned:
            _warned.add("registry")
            print(
                f"tdsl: warning: the definition registry (DATABASE_URL) is not available: "
                f"{reason}; subworkflows are looked up in files only",
                file=sys.stderr,
                flush=True,
            )

    def find(self, name: str, version: str | None = None) -> CatalogEntry | None:
        return self._load().find(name, version)

    def names(self) -> list[str]:
        return self._load().names()


def registry_at(url: str) -> Catalog:
    """The registry at *url* as a synchronous `Catalog`, read at its first lookup."""
    return _LazyRegistry(url)


def registry_from_env() -> Catalog | None:
    """The registry at `DATABASE_URL` as a synchronous `Catalog`, or None when unset.

    Nothing is read until a lookup needs it: definitions whose subworkflows are all
    beside them never touch the database.
    """
    url = os.environ.get("DATABASE_URL")
    return _LazyRegistry(url) if url else None
