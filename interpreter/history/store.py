"""The PostgreSQL side of temporal-dsl: the definition registry and the run history.

`Store` holds one asyncpg pool (activities are methods on a class that holds its
resources); every statement is parameterised, and every write the worker makes is an
idempotent UPSERT keyed by workflow id, run id and step id, because activities and
projections can run more than once.

    migrate()                  SQL files of schema/migrations, in order, once each
    register(definition, src)  an immutable (name, version) → content entry
    definitions(), find_definition(name, version)
    upsert_run(RunRecord), upsert_steps(workflow_id, run_id, [StepRecord])
    save_run(RunRecord, [StepRecord])   both, in one transaction (what the projector uses)
    runs(status=, definition=, tenant=, limit=), run(workflow_id, run_id=None)

This module is the connection: `connect`, `close` and what a database that does not
answer becomes (`DatabaseUnavailable`). Each topic of what `Store` can do is a mixin
of its own module: `migrations` (`Migrations`), `definitions` (`DefinitionRegistry`),
`runs` (`RunRows`) and `workers` (`WorkerRows`); their names are re-exported here,
where the rest of the code imports them from.

The tables are described in ``schema/migrations/``. The registry as a catalog for
subworkflow lookup is `interpreter.history.registry`.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from activities.postgres import init_json_codec as _init_connection
from dsl.errors import InputError, ServiceError
from interpreter.history.definitions import DefinitionRegistry, VersionConflict, next_version
from interpreter.history.migrations import MIGRATIONS_DIR, Migrations, migration_files
from interpreter.history.runs import RunRecord, RunRows, StepRecord
from interpreter.history.workers import WorkerRows

__all__ = [
    "MIGRATIONS_DIR",
    "DatabaseUnavailable",
    "RunRecord",
    "StepRecord",
    "Store",
    "VersionConflict",
    "failure_reason",
    "migration_files",
    "next_version",
    "redact_url",
]


class DatabaseUnavailable(ServiceError, ConnectionError):
    """PostgreSQL cannot be reached (refused, unknown host, timeout, bad credentials).

    Also a `ConnectionError`, so code that retries on network errors catches it too.
    """


def redact_url(url: str) -> str:
    """*url* without its password, for messages."""
    try:
        parts = urlsplit(url)
        if not parts.password:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return "DATABASE_URL"


def failure_reason(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    text = " ".join(str(err).split())
    return text or type(err).__name__


class Store(DefinitionRegistry, RunRows, WorkerRows, Migrations):
    """The registry and run history behind one asyncpg pool.

    Use `await Store.connect(url)` and `close()`, or `async with await Store.connect(url)`.
    Methods other than `connect` let asyncpg's errors through (`OSError`,
    `asyncpg.PostgresError`, `asyncpg.InterfaceError`): callers decide whether to retry.
    """

    def __init__(self, pool: asyncpg.Pool, *, url: str = "") -> None:
        self.pool = pool
        self.url = url

    @classmethod
    async def connect(
        cls, url: str, *, min_size: int = 1, max_size: int = 5, timeout: float = 10.0
    ) -> Store:
        """Open the pool; `DatabaseUnavailable` (one line) when PostgreSQL does not answer,
        `InputError` when *url* is not a PostgreSQL URL."""
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                timeout=timeout,
            )
        except asyncpg.ClientConfigurationError as err:
            raise InputError(f"DATABASE_URL is not a valid PostgreSQL URL: {err}") from None
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            raise DatabaseUnavailable(
                f"cannot reach PostgreSQL at {redact_url(url)}: {failure_reason(err)}"
            ) from err
        except ValueError as err:  # a DSN asyncpg cannot even split
            raise InputError(f"DATABASE_URL is not a valid PostgreSQL URL: {err}") from None
        return cls(pool, url=url)

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
