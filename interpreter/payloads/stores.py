"""Where offloaded payloads live: the `PayloadStore` protocol, files and PostgreSQL.

The bottom of the package: a store knows nothing of Temporal, only content-addressed
bytes, so the codec, the environment and anyone's own store (S3 and the like) can
build on it. Every key a store sees has passed `check_key` first, because keys come
from payloads anyone who can write to Temporal can forge. `PayloadError` is defined
here, the lowest module that raises it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from dsl.errors import DslError, ServiceError

__all__ = [
    "PAYLOADS_TABLE_DDL",
    "FileStore",
    "PayloadError",
    "PayloadStore",
    "PayloadStoreUnavailable",
    "PostgresStore",
    "check_key",
    "put_content",
]

_KEY = re.compile(r"[0-9a-f]{64}")

PAYLOADS_TABLE_DDL = """create table if not exists tdsl_payloads (
    key        text primary key,
    data       bytea not null,
    size       int not null,
    created_at timestamptz not null default now()
)"""
"""The table of `PostgresStore`, exactly as `schema/migrations/0002_payloads.sql`."""


class PayloadError(DslError):
    """A payload cannot be stored, found or sent (store missing, unreachable, corrupt,
    or a value too large for a client to send). Retryable where it happens in a
    worker: once the store is back or configured, the run goes on."""


class PayloadStoreUnavailable(PayloadError, ServiceError):
    """The store's service cannot be reached: a `ServiceError` like an unreachable
    Temporal or registry, so the CLI and `tdsl serve` report it as one (503)."""


def check_key(key: str) -> str:
    """*key* if it is a content address (64 lower-case hex digits), else `PayloadError`.

    Keys come from payloads anyone who can write to Temporal can forge; checked this
    strictly, a key cannot name a path outside a `FileStore` or anything else.
    """
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise PayloadError(f"invalid payload key {str(key)[:80]!r}: not a sha256 hex digest")
    return key


async def put_content(store: PayloadStore, data: bytes) -> str:
    """Keep *data* under its content address (sha256 hex); returns the key."""
    key = hashlib.sha256(data).hexdigest()
    await store.put(key, data)
    return key


@runtime_checkable
class PayloadStore(Protocol):
    """Where offloaded payloads live; implement these four members for S3 and the like.

    *key* is the sha256 hex digest of *data*, so `put` of an existing key may do
    nothing, and a store never sees a key it has to trust: it is validated first.
    `get` of an unknown key raises (any exception; `PayloadError` reads best).
    Both may be called from several event loops over the life of a process (the
    CLI runs `asyncio.run` more than once): do not keep loop-bound state across them.
    """

    kind: str
    """Written into every reference, so a reader can tell which store to ask."""

    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def close(self) -> None: ...


class FileStore:
    """Payloads as files named by their key in one directory (dir 0700, files 0600).

    Writes go to a temporary file renamed into place, so a reader never sees half
    a payload and concurrent writers of the same key both succeed.
    """

    kind = "file"

    def __init__(self, directory: str | Path, *, create: bool = False) -> None:
        self.directory = Path(directory).expanduser().resolve()
        if create:
            self._ensure_directory()

    def __repr__(self) -> str:
        return f"FileStore({str(self.directory)!r})"

    def _ensure_directory(self) -> None:
        if not self.directory.is_dir():
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / check_key(key)

    async def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            await asyncio.to_thread(self._put, path, data)
        except OSError as err:
            raise PayloadError(
                f"cannot write payload {key[:12]}… to {self.directory}: {err}"
            ) from err

    def _put(self, path: Path, data: bytes) -> None:
        if path.exists():
            return  # content-addressed: the same bytes are there already
        self._ensure_directory()
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise PayloadError(
                f"payload {key} is not in the file store {self.directory} "
                "(is TDSL_PAYLOAD_STORE the directory the worker writes?)"
            ) from None
        except OSError as err:
            raise PayloadError(
                f"cannot read payload {key[:12]}… from {self.directory}: {err}"
            ) from err

    async def close(self) -> None:
        return None


class PostgresStore:
    """Payloads in the `tdsl_payloads` table, written with ``on conflict do nothing``.

    A connection per operation, at most *max_connections* at once per event loop:
    offloads are rare (values over the threshold), a connection costs milliseconds
    next to moving such a value, and nothing is left bound to an event loop that
    `asyncio.run` has closed (a pool would be, and would leak its sockets).

    The table is created at the first write that finds it missing (the statement of
    migration 0002, ``if not exists``): a client may offload a large run input
    before any worker or `tdsl db migrate` has touched the database, and that must
    not fail. It costs nothing once the table exists.
    """

    kind = "postgres"

    def __init__(self, url: str, *, max_connections: int = 4) -> None:
        self.url = url
        self._max_connections = max_connections
        self._slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    def __repr__(self) -> str:
        return "PostgresStore(DATABASE_URL)"

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        import asyncpg  # only processes that offload need it

        loop = asyncio.get_running_loop()
        for gone in [other for other in self._slots if other.is_closed()]:
            del self._slots[gone]
        slots = self._slots.setdefault(loop, asyncio.Semaphore(self._max_connections))
        async with slots:
            try:
                connection = await asyncpg.connect(self.url)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
                raise PayloadStoreUnavailable(
                    f"payload store PostgreSQL unreachable: {err}"
                ) from err
            try:
                yield connection
            finally:
                await connection.close()

    async def put(self, key: str, data: bytes) -> None:
        import asyncpg

        check_key(key)
        insert = (
            "insert into tdsl_payloads (key, data, size) values ($1, $2, $3)"
            " on conflict (key) do nothing"
        )
        async with self._connection() as connection:
            try:
                try:
                    await connection.execute(insert, key, data, len(data))
                except asyncpg.UndefinedTableError:
                    with contextlib.suppress(
                        asyncpg.DuplicateTableError, asyncpg.UniqueViolationError
                    ):
                        await connection.execute(PAYLOADS_TABLE_DDL)  # a concurrent one may win
                    await connection.execute(insert, key, data, len(data))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
                raise PayloadError(
                    f"cannot store payload {key[:12]}… in PostgreSQL: {err} "
                    "(`tdsl db migrate` creates the table if this role may not)"
                ) from err

    async def get(self, key: str) -> bytes:
        import asyncpg

        check_key(key)
        async with self._connection() as connection:
            try:
                data = await connection.fetchval(
                    "select data from tdsl_payloads where key = $1", key
                )
            except asyncpg.UndefinedTableError:
                data = None
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
                raise PayloadError(
                    f"cannot read payload {key[:12]}… from PostgreSQL: {err}"
                ) from err
        if data is None:
            raise PayloadError(f"payload {key} is not in the PostgreSQL payload store")
        return bytes(data)

    async def close(self) -> None:
        """Nothing is kept open between operations."""
        self._slots.clear()
