"""What the API and the pages of `tdsl serve` share: their settings, the store, the
definitions they know, and JSON as the CLI prints it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio.client import Client

from dsl.catalog import Catalog, ChainedCatalog, DirectoryCatalog
from dsl.errors import ServiceError

if TYPE_CHECKING:
    from interpreter.history.store import Store

__all__ = ["ServeSettings", "definitions_catalog", "jsonable", "open_store"]


@dataclass
class ServeSettings:
    """What the routes need: a Temporal client, the database, where definitions are."""

    connect: Callable[[], Awaitable[Client]]
    task_queue: str
    database_url: str | None = None
    token: str | None = None
    definitions: list[Path] = field(default_factory=list)
    _client: Client | None = None

    async def client(self) -> Client:
        if self._client is None:
            self._client = await self.connect()
        return self._client


async def definitions_catalog(settings: ServeSettings) -> Catalog | None:
    """The definition directories, then the registry."""
    from interpreter.history.registry import registry_at

    parts: list[Catalog] = []
    if settings.definitions:
        parts.append(DirectoryCatalog(settings.definitions))
    if settings.database_url:  # read again for each request: registrations show at once
        parts.append(registry_at(settings.database_url))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else ChainedCatalog(parts)


@contextlib.asynccontextmanager
async def open_store(settings: ServeSettings) -> AsyncIterator[Store]:
    from interpreter.history.store import Store

    if not settings.database_url:
        raise ServiceError("DATABASE_URL is not set: tdsl serve has no registry or run history")
    async with await Store.connect(settings.database_url) as store:
        yield store


def jsonable(value: Any) -> Any:
    """Datetimes and the like as strings, as the CLI's JSON prints them."""
    return json.loads(json.dumps(value, default=str))
