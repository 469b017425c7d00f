"""Client connection settings, following Temporal's own conventions.

Settings come from `temporal.toml` profiles and the `TEMPORAL_*` environment
variables through `temporalio.envconfig` (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`,
`TEMPORAL_API_KEY`, `TEMPORAL_TLS*`, `TEMPORAL_PROFILE`, `TEMPORAL_CONFIG_FILE`), so a
user who already configured the `temporal` CLI needs nothing else. Explicit
arguments (CLI flags) win over both.
"""

from __future__ import annotations

import os
import re

import temporalio.client
from temporalio.envconfig import ClientConfig, ClientConnectConfig

from dsl.errors import ConfigurationError, InputError, ServiceError

__all__ = ["DEFAULT_ADDRESS", "DEFAULT_TASK_QUEUE", "connect", "connect_config", "task_queue"]

DEFAULT_ADDRESS = "localhost:7233"
"""Where `temporal server start-dev` and `tdsl dev` listen."""
DEFAULT_TASK_QUEUE = "temporal-dsl"


def connect_config(
    *, address: str | None = None, namespace: str | None = None
) -> ClientConnectConfig:
    """Keyword arguments for `Client.connect`: profile and environment, then overrides.

    Always contains `target_host` and `namespace`. A broken `temporal.toml` or an
    unknown `TEMPORAL_PROFILE` is a `DslError`, not a traceback.
    """
    try:
        config = ClientConfig.load_client_connect_config()
    except RuntimeError as err:  # temporal_sdk_bridge.ConfigError
        raise ConfigurationError(f"invalid Temporal client configuration: {err}") from err
    config["target_host"] = address or config.get("target_host") or DEFAULT_ADDRESS
    config["namespace"] = namespace or config.get("namespace") or "default"
    return config


async def connect(
    *, address: str | None = None, namespace: str | None = None
) -> temporalio.client.Client:
    """Connect like the `temporal` CLI does; explicit arguments win; one-line errors.

    The client carries the claim-check payload codec of the configured store
    (`interpreter.payloads`) and, when this process traces, the tracing interceptors
    (`interpreter.tracing`), which a worker on this client takes too. A malformed address is the user's typo (`InputError`,
    exit 2); a server that does not answer is `ServiceError` (exit 1).
    """
    from interpreter.payloads import data_converter, payload_store_from_env
    from interpreter.tracing import install_tracing, tracing_interceptors

    install_tracing()  # when the `OTEL_*` environment asks for traces; once per process
    config = connect_config(address=address, namespace=namespace)
    target = config["target_host"]
    converter = data_converter(payload_store_from_env())
    try:
        return await temporalio.client.Client.connect(
            **config, data_converter=converter, interceptors=tracing_interceptors()
        )
    except ValueError as err:
        raise InputError(f"invalid Temporal address {target!r}: {err}") from None
    except RuntimeError as err:
        found = re.search(r'message: "([^"]+)"', str(err))
        reason = found.group(1).lower() if found else " ".join(str(err).split())[:200]
        raise ServiceError(
            f"cannot reach Temporal at {target}: {reason} "
            "(is it running? `tdsl dev` starts one; TEMPORAL_ADDRESS points elsewhere)"
        ) from None


def task_queue() -> str:
    """The task queue workers poll and runs are started on: `TEMPORAL_TASK_QUEUE`."""
    return os.environ.get("TEMPORAL_TASK_QUEUE") or DEFAULT_TASK_QUEUE
