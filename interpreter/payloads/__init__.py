"""Large values go around Temporal, not through it: a claim-check payload codec.

Temporal refuses any payload over 2 MiB, and a workflow task that carries one is
retried for ever. Every client and worker we make offloads a payload over the
threshold to a store and sends only a reference; what cannot be offloaded is never
sent, and its step fails at once with a non-retryable `PayloadTooLarge` (why it is a
marker and not an exception on the workflow side: `codec`). One topic per module,
each importing only those above it in this list:

- `stores`: the `PayloadStore` protocol, `FileStore`, `PostgresStore`, key checks,
  the table's DDL, `PayloadError` and `PayloadStoreUnavailable` (a `ServiceError`);
- `config`: the store and threshold from the environment (`payload_store_from_env`);
- `codec`: `ClaimCheckCodec`, the size limits and the "too large" markers
  (`OversizedValue`, `TdslPayloadConverter`);
- `limits`: `PayloadLimitInterceptor`, which fails a step handed a marker;
- `wiring`: the data converter and the clients and workers that carry the codec.

Import from here: the submodules are the layout, these names the interface.
"""

from __future__ import annotations

from interpreter.payloads.codec import (
    CLAIM_CHECK_ENCODING,
    MAX_OFFLOAD,
    PAYLOAD_LIMIT,
    TEMPORAL_PAYLOAD_LIMIT,
    TOO_LARGE_ENCODING,
    TOO_LARGE_TYPE,
    ClaimCheckCodec,
    OversizedValue,
    TdslPayloadConverter,
)
from interpreter.payloads.config import (
    DEFAULT_THRESHOLD,
    DEV_STORE_DIRECTORY,
    STORE_VARIABLE,
    THRESHOLD_VARIABLE,
    describe_store,
    payload_store_from_env,
    threshold_from_env,
)
from interpreter.payloads.limits import PayloadLimitInterceptor
from interpreter.payloads.stores import (
    PAYLOADS_TABLE_DDL,
    FileStore,
    PayloadError,
    PayloadStore,
    PayloadStoreUnavailable,
    PostgresStore,
    check_key,
    put_content,
)
from interpreter.payloads.wiring import (
    data_converter,
    payload_codec,
    with_payload_codec,
    worker_client,
)

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
    "PayloadStoreUnavailable",
    "PostgresStore",
    "TdslPayloadConverter",
    "check_key",
    "data_converter",
    "describe_store",
    "payload_codec",
    "payload_store_from_env",
    "put_content",
    "threshold_from_env",
    "with_payload_codec",
    "worker_client",
]
