"""The clients and workers that carry the codec: data converter and client wiring.

Every client and worker we make goes through here, so none of them sends a large
value through Temporal. It is the top of the package: it composes the codec with the
store and threshold from the environment (`config`), which the codec cannot import
the other way round.
"""

from __future__ import annotations

import dataclasses
import logging

import temporalio.client
from temporalio.converter import DataConverter, DefaultPayloadConverter

from interpreter.payloads.codec import ClaimCheckCodec, TdslPayloadConverter
from interpreter.payloads.config import (
    DEFAULT_THRESHOLD,
    describe_store,
    payload_store_from_env,
)
from interpreter.payloads.stores import PayloadStore

__all__ = ["data_converter", "payload_codec", "with_payload_codec", "worker_client"]

log = logging.getLogger("interpreter.payloads")  # the name its log lines had before the split


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
