"""Large values go around Temporal, not through it: a claim-check payload codec.

Temporal refuses any payload over 2 MiB, and a workflow task that carries one fails
and is retried for ever: the run hangs with only a TMPRL1103 warning in the worker
log. `ClaimCheckCodec` sits in the data converter of every client and worker we
make and keeps that from happening:

* With a `PayloadStore` (PostgreSQL when `DATABASE_URL` is set, a directory for
  `tdsl dev`, or anything with the same four members, e.g. S3), a payload over the
  threshold (256 KiB) is written to the store under the sha256 of its bytes and
  Temporal only sees a small reference. Decoding fetches and checks it.
* What cannot be offloaded (no store, or over `MAX_OFFLOAD`) is never sent. Where
  raising would hang the run (the workflow side: the SDK fails the workflow task,
  and retries it for ever), the payload becomes a small "too large" marker, and
  whoever decodes the marker gets a non-retryable `PayloadTooLarge` error: the
  activity that was to receive it fails at once (`PayloadLimitInterceptor`), a
  child workflow fails at its start, and so the STEP fails. Activity results are
  encoded inside the activity, where raising fails the attempt: the step fails
  after one attempt (the SDK's own check would fail it as retryable
  `PayloadsTooLarge`, retried by the step's policy). Plain clients (the CLI)
  raise `PayloadError` before anything is sent.

Everything else passes through untouched, so recorded histories replay as before.
Configuration, shared by every process: `payload_store_from_env`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import temporalio.client
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from dsl.errors import DslError, InputError

__all__ = [
    "CLAIM_CHECK_ENCODING",
    "DEFAULT_THRESHOLD",
    "DEV_STORE_DIRECTORY",
    "MAX_OFFLOAD",
    "PAYLOADS_TABLE_DDL",
    "PAYLOAD_LIMIT",
    "STORE_VARIABLE",
    "TEMPORAL_PAYLOAD_LIMIT",
    "THRESHOLD_VARIABLE",
    "TOO_LARGE_ENCODING",
    "TOO_LARGE_TYPE",
    "ClaimCheckCodec",
    "FileStore",
    "OversizedValue",
    "PayloadError",
    "PayloadLimitInterceptor",
    "PayloadStore",
    "PostgresStore",
    "TdslPayloadConverter",
    "check_key",
    "data_converter",
    "describe_store",
    "payload_codec",
    "payload_store_from_env",
    "threshold_from_env",
    "with_payload_codec",
    "worker_client",
]

log = logging.getLogger(__name__)

TEMPORAL_PAYLOAD_LIMIT = 2 * 1024 * 1024
"""The server's default `limit.blobSize.error`: a bigger payload is refused."""
PAYLOAD_LIMIT = TEMPORAL_PAYLOAD_LIMIT - 64 * 1024
"""What we let through without a store: 64 KiB below Temporal's limit, for the
envelope the server measures with the payload (the `Payloads` wrapper, metadata)."""
DEFAULT_THRESHOLD = 256 * 1024
"""With a store, payloads over this are offloaded (`TDSL_PAYLOAD_THRESHOLD`): well
below the SDK's 512 KiB warning and small enough that a workflow task with several
of them stays far from gRPC's 4 MiB message limit."""
MAX_OFFLOAD = 64 * 1024 * 1024
"""Bigger payloads are not offloaded either (they fail like without a store): every
process that reads one holds it in memory, several times over while it is decoded."""

CLAIM_CHECK_ENCODING = b"binary/tdsl-claim-check"
TOO_LARGE_ENCODING = b"binary/tdsl-too-large"
TOO_LARGE_TYPE = "PayloadTooLarge"
"""The `ApplicationError.type` of every value that was too large to send."""

THRESHOLD_VARIABLE = "TDSL_PAYLOAD_THRESHOLD"
STORE_VARIABLE = "TDSL_PAYLOAD_STORE"
DEV_STORE_DIRECTORY = Path(".tdsl") / "payloads"
"""Where `tdsl dev` keeps payloads; processes started beside it find them there."""

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


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


def _key_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    """*key* if it is a content address (64 lower-case hex digits), else `PayloadError`.

    Keys come from payloads anyone who can write to Temporal can forge; checked this
    strictly, a key cannot name a path outside a `FileStore` or anything else.
    """
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise PayloadError(f"invalid payload key {str(key)[:80]!r}: not a sha256 hex digest")
    return key


# --------------------------------------------------------------------------- stores


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
                raise PayloadError(f"payload store PostgreSQL unreachable: {err}") from err
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


def payload_store_from_env(
    environ: Mapping[str, str] | None = None, *, cwd: Path | None = None
) -> PayloadStore | None:
    """The store this process writes to and reads from, from the environment.

    `TDSL_PAYLOAD_STORE` is ``off``, ``postgres`` (at `DATABASE_URL`) or
    ``file:DIR``. Unset: PostgreSQL when `DATABASE_URL` is set, else
    ``.tdsl/payloads`` when that directory exists in the current directory (`tdsl
    dev` creates it), else off. Anything else is an `InputError`.
    """
    env = os.environ if environ is None else environ
    setting = env.get(STORE_VARIABLE, "").strip()
    database_url = env.get("DATABASE_URL", "").strip()
    if not setting:
        if database_url:
            return PostgresStore(database_url)
        directory = (cwd or Path.cwd()) / DEV_STORE_DIRECTORY
        return FileStore(directory) if directory.is_dir() else None
    if setting == "off":
        return None
    if setting == "postgres":
        if not database_url:
            raise InputError(f"{STORE_VARIABLE}=postgres needs DATABASE_URL")
        return PostgresStore(database_url)
    if setting.startswith("file:") and setting[len("file:") :].strip():
        directory = Path(setting[len("file:") :].strip())
        return FileStore(directory if directory.is_absolute() else (cwd or Path.cwd()) / directory)
    raise InputError(f"{STORE_VARIABLE}={setting!r}: expected off, postgres or file:DIR")


def threshold_from_env(environ: Mapping[str, str] | None = None) -> int:
    """`TDSL_PAYLOAD_THRESHOLD` in bytes (default 256 KiB); `InputError` if not a number."""
    env = os.environ if environ is None else environ
    text = env.get(THRESHOLD_VARIABLE, "").strip()
    if not text:
        return DEFAULT_THRESHOLD
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise InputError(f"{THRESHOLD_VARIABLE}={text!r}: expected a number of bytes")
    return value


def describe_store(store: PayloadStore | None) -> str:
    """The `TDSL_PAYLOAD_STORE` value that selects *store* in another process."""
    if store is None:
        return "off"
    if isinstance(store, FileStore):
        return f"file:{store.directory}"
    return store.kind


# --------------------------------------------------------------------------- codec


def _reader_hint(kind: str) -> str:
    if kind == PostgresStore.kind:
        return "DATABASE_URL (or TDSL_PAYLOAD_STORE=postgres)"
    if kind == FileStore.kind:
        return "TDSL_PAYLOAD_STORE=file:DIR to the directory the worker writes (.tdsl/payloads under `tdsl dev`)"
    return f"up a payload store of kind {kind!r} (interpreter.payloads.PayloadStore)"


def _describe(context: SerializationContext | None) -> str:
    """What a payload is, for messages: the worker knows it from the serialization context."""
    if activity.in_activity():
        info = activity.info()
        return f"the result of activity {info.activity_type!r} (activity id {info.activity_id!r})"
    if isinstance(context, ActivitySerializationContext):
        kind = f"activity {context.activity_type!r}" if context.activity_type else "an activity"
        return f"the input of {kind} (activity id {context.activity_id!r})"
    if isinstance(context, WorkflowSerializationContext):
        return f"a payload of workflow {context.workflow_id!r}"
    return "a payload"


def _too_large_message(what: str, size: int, store: PayloadStore | None, cap: int) -> str:
    if store is None:
        return (
            f"{what} is {size} bytes, over Temporal's {_mib(TEMPORAL_PAYLOAD_LIMIT)} payload limit, "
            "and no payload store is configured (set DATABASE_URL or TDSL_PAYLOAD_STORE)"
        )
    return (
        f"{what} is {size} bytes, over the {_mib(cap)} tdsl keeps in its payload store "
        f"({store.kind}) and over Temporal's {_mib(TEMPORAL_PAYLOAD_LIMIT)} payload limit"
    )


def _too_large_error(message: str, size: int, limit: int) -> ApplicationError:
    return ApplicationError(
        message, {"size": size, "limit": limit}, type=TOO_LARGE_TYPE, non_retryable=True
    )


def _marker_error(payload: Payload) -> ApplicationError:
    try:
        info = json.loads(payload.data)
        return _too_large_error(str(info["message"]), int(info["size"]), int(info["limit"]))
    except (ValueError, KeyError, TypeError):
        return _too_large_error("a value was too large to send", 0, TEMPORAL_PAYLOAD_LIMIT)


class ClaimCheckCodec(PayloadCodec, WithSerializationContext):
    """Offloads payloads over *threshold* to *store*; marks what cannot be offloaded.

    *worker* selects what happens to a payload that can be neither sent nor
    offloaded outside an activity: a worker (workflow side) replaces it with a
    marker that fails its reader, since raising would fail the workflow task for
    ever; a plain client raises `PayloadError` and sends nothing. Inside an activity
    (its result, heartbeats) it always raises a non-retryable `PayloadTooLarge`,
    which fails the attempt and so the step.
    """

    def __init__(
        self,
        store: PayloadStore | None,
        *,
        threshold: int | None = None,
        limit: int = PAYLOAD_LIMIT,
        max_offload: int = MAX_OFFLOAD,
        worker: bool = False,
        context: SerializationContext | None = None,
    ) -> None:
        self.store = store
        self.threshold = threshold_from_env() if threshold is None else threshold
        self.limit = limit
        self.max_offload = max_offload
        self.worker = worker
        self.context = context

    def with_context(self, context: SerializationContext) -> ClaimCheckCodec:
        """The same codec, knowing what it encodes (for messages; see `decode`)."""
        clone = ClaimCheckCodec.__new__(ClaimCheckCodec)
        clone.__dict__.update(self.__dict__, context=context)
        return clone

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        encoded: list[Payload] = []
        for payload in payloads:
            size = payload.ByteSize()
            store = self.store
            if store is not None and min(self.threshold, self.limit) < size <= self.max_offload:
                encoded.append(await self._offload(store, payload, size))
            elif size > self.limit:
                encoded.append(self._oversized(payload, size))
            else:
                encoded.append(payload)
        return encoded

    async def _offload(self, store: PayloadStore, payload: Payload, size: int) -> Payload:
        data = payload.SerializeToString(deterministic=True)
        key = _key_of(data)
        await store.put(key, data)
        return Payload(
            metadata={"encoding": CLAIM_CHECK_ENCODING, "store": store.kind.encode()},
            data=json.dumps({"key": key, "size": size}).encode(),
        )

    def _oversized(self, payload: Payload, size: int) -> Payload:
        message = _too_large_message(_describe(self.context), size, self.store, self.max_offload)
        if activity.in_activity():
            raise _too_large_error(message, size, self.limit)
        if not self.worker:
            raise PayloadError(message)
        return Payload(
            metadata={"encoding": TOO_LARGE_ENCODING},
            data=json.dumps({"message": message, "size": size, "limit": self.limit}).encode(),
        )

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded: list[Payload] = []
        for payload in payloads:
            encoding = payload.metadata.get("encoding")
            if encoding == CLAIM_CHECK_ENCODING:
                decoded.append(await self._fetch(payload))
            elif encoding == TOO_LARGE_ENCODING:
                if isinstance(self.context, ActivitySerializationContext):
                    # An activity's input: raising here would be wrapped by the SDK in a
                    # *retryable* "Failed decoding arguments". Kept, it becomes an
                    # `OversizedValue` and `PayloadLimitInterceptor` fails the activity.
                    decoded.append(payload)
                else:
                    # Workflow side: a non-retryable error while decoding an activation
                    # fails the workflow (not the task); a client gets the error itself.
                    raise _marker_error(payload)
            else:
                decoded.append(payload)
        return decoded

    async def _fetch(self, reference: Payload) -> Payload:
        kind = reference.metadata.get("store", b"").decode(errors="replace")
        try:
            info = json.loads(reference.data)
            key = check_key(info["key"])
        except (ValueError, KeyError, TypeError) as err:
            raise PayloadError(f"malformed payload reference: {err}") from None
        store = self.store
        if store is None or store.kind != kind:
            raise PayloadError(
                f"this value is stored outside Temporal in {kind or 'an unknown store'}; "
                f"set {_reader_hint(kind)} to read it"
            )
        data = await store.get(key)
        if _key_of(data) != key:
            raise PayloadError(f"payload {key} in the {kind} store is corrupt (sha256 differs)")
        return Payload.FromString(data)


# --------------------------------------------------------------------------- markers


@dataclasses.dataclass(frozen=True)
class OversizedValue:
    """What a "too large" marker decodes to: never a real value, only its error."""

    payload: Payload

    def error(self) -> ApplicationError:
        return _marker_error(self.payload)


class _OversizedConverter(EncodingPayloadConverter):
    """Turns markers into `OversizedValue` whatever the type hint (and back)."""

    @property
    def encoding(self) -> str:
        return TOO_LARGE_ENCODING.decode()

    def to_payload(self, value: Any) -> Payload | None:
        return value.payload if isinstance(value, OversizedValue) else None

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        return OversizedValue(payload)


class TdslPayloadConverter(CompositePayloadConverter):
    """The default converter plus markers, so an activity can receive one and fail."""

    def __init__(self) -> None:
        super().__init__(
            _OversizedConverter(), *DefaultPayloadConverter.default_encoding_payload_converters
        )


class _MarkerCheck(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        for arg in input.args:
            if isinstance(arg, OversizedValue):
                raise arg.error()
        return await self.next.execute_activity(input)


class _OutputCheck(WorkflowInboundInterceptor):
    """Fails a workflow whose output could be sent neither inline nor offloaded.

    Otherwise the run would complete with a marker as its output (the codec
    cannot turn a completion into a failure), and a parent would fail as a whole
    instead of at its subworkflow step. The check depends on whether the worker
    has a store, so a run closed this way replays (for a query) only under the
    same setting.
    """

    limit: ClassVar[int] = PAYLOAD_LIMIT
    store: ClassVar[PayloadStore | None] = None
    max_offload: ClassVar[int] = MAX_OFFLOAD

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        result = await self.next.execute_workflow(input)
        limit = self.limit if self.store is None else self.max_offload
        sizes = [p.ByteSize() for p in workflow.payload_converter().to_payloads([result])]
        size = max(sizes, default=0)
        if size > limit:
            what = f"the output of workflow {workflow.info().workflow_id!r}"
            message = _too_large_message(what, size, self.store, self.max_offload)
            raise _too_large_error(message, size, self.limit)
        return result


class PayloadLimitInterceptor(Interceptor):
    """Registered by the worker: fails an activity handed a marker, and a workflow
    whose output is too large, each with a non-retryable `PayloadTooLarge`."""

    def __init__(self, codec: ClaimCheckCodec) -> None:
        self.codec = codec

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _MarkerCheck(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        codec = self.codec

        class _OutputCheckOfWorker(_OutputCheck):
            limit = codec.limit
            store = codec.store
            max_offload = codec.max_offload

        return _OutputCheckOfWorker


# --------------------------------------------------------------------------- wiring


def payload_codec(client: temporalio.client.Client) -> ClaimCheckCodec | None:
    """The claim-check codec of *client*'s data converter, if it has one."""
    codec = client.data_converter.payload_codec
    return codec if isinstance(codec, ClaimCheckCodec) else None


def data_converter(
    store: PayloadStore | None,
    *,
    worker: bool = False,
    base: DataConverter | None = None,
    threshold: int | None = None,
) -> DataConverter:
    """*base* (default: the SDK's) with the claim-check codec and the marker converter.

    A *base* with a codec of its own is refused: the order of two codecs matters
    (encrypt before or after the claim check?) and is not ours to guess.
    """
    base = base or DataConverter.default
    if base.payload_codec is not None and not isinstance(base.payload_codec, ClaimCheckCodec):
        raise ValueError("the data converter already has a payload codec; compose them yourself")
    converter_class = base.payload_converter_class
    if converter_class is DefaultPayloadConverter:
        converter_class = TdslPayloadConverter
    codec = ClaimCheckCodec(store, worker=worker, threshold=threshold)
    return dataclasses.replace(base, payload_converter_class=converter_class, payload_codec=codec)


def with_payload_codec(
    client: temporalio.client.Client,
    store: PayloadStore | None,
    *,
    worker: bool = False,
    threshold: int | None = None,
) -> temporalio.client.Client:
    """*client* (same connection) whose data converter carries the claim-check codec."""
    converter = data_converter(
        store, worker=worker, base=client.data_converter, threshold=threshold
    )
    config = client.config()
    config["data_converter"] = converter
    return temporalio.client.Client(**config)


def worker_client(client: temporalio.client.Client) -> temporalio.client.Client:
    """What a worker polls with: *client*'s codec (else one from the environment) in
    worker mode, so that nothing on the workflow side raises for a large value."""
    codec = payload_codec(client)
    if codec is None and client.data_converter.payload_codec is not None:
        return client  # someone else's codec: theirs to handle sizes
    if codec is not None and codec.worker:
        return client
    store = codec.store if codec is not None else payload_store_from_env()
    threshold = codec.threshold if codec is not None else None
    polling = with_payload_codec(client, store, worker=True, threshold=threshold)
    if store is None:
        log.info("payload store off: a value over 2 MiB fails its step (TDSL_PAYLOAD_STORE)")
    else:
        bound = payload_codec(polling)
        log.info(
            "values over %d bytes are kept in the payload store %s",
            bound.threshold if bound is not None else DEFAULT_THRESHOLD,
            describe_store(store),
        )
    return polling
