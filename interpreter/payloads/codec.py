"""Large values go around Temporal, not through it: the claim-check payload codec.

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
The markers live here too: `TdslPayloadConverter` turns one into an `OversizedValue`
whatever the type hint, so that an activity can receive it and fail. Configuration,
shared by every process: `payload_store_from_env` (`config`); the clients and
workers that carry this codec: `data_converter` and `worker_client` (`wiring`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    CompositePayloadConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)
from temporalio.exceptions import ApplicationError

from interpreter.payloads.config import threshold_from_env
from interpreter.payloads.stores import (
    FileStore,
    PayloadError,
    PayloadStore,
    PostgresStore,
    check_key,
)

__all__ = [
    "CLAIM_CHECK_ENCODING",
    "MAX_OFFLOAD",
    "PAYLOAD_LIMIT",
    "TEMPORAL_PAYLOAD_LIMIT",
    "TOO_LARGE_ENCODING",
    "TOO_LARGE_TYPE",
    "ClaimCheckCodec",
    "OversizedValue",
    "TdslPayloadConverter",
]

TEMPORAL_PAYLOAD_LIMIT = 2 * 1024 * 1024
"""The server's default `limit.blobSize.error`: a bigger payload is refused."""
PAYLOAD_LIMIT = TEMPORAL_PAYLOAD_LIMIT - 64 * 1024
"""What we let through without a store: 64 KiB below Temporal's limit, for the
envelope the server measures with the payload (the `Payloads` wrapper, metadata)."""
MAX_OFFLOAD = 64 * 1024 * 1024
"""Bigger payloads are not offloaded either (they fail like without a store): every
process that reads one holds it in memory, several times over while it is decoded."""

CLAIM_CHECK_ENCODING = b"binary/tdsl-claim-check"
TOO_LARGE_ENCODING = b"binary/tdsl-too-large"
TOO_LARGE_TYPE = "PayloadTooLarge"
"""The `ApplicationError.type` of every value that was too large to send."""


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


def _key_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
            "and no payload store is on "
            "(TDSL_PAYLOAD_STORE=postgres with DATABASE_URL, or file:DIR)"
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
