"""Client connection settings, following Temporal's own conventions.

Settings come from `temporal.toml` profiles and the `TEMPORAL_*` environment
variables through `temporalio.envconfig` (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`,
`TEMPORAL_API_KEY`, `TEMPORAL_TLS*`, `TEMPORAL_PROFILE`, `TEMPORAL_CONFIG_FILE`), so a
user who already configured the `temporal` CLI needs nothing else. Explicit
arguments (CLI flags) win over both.
"""

from __future__ import annotations

import os

import temporalio.client
from temporalio.envconfig import ClientConfig, ClientConnectConfig

from dsl.errors import DslError

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
        raise DslError(f"invalid Temporal client configuration: {err}") from err
    config["target_host"] = address or config.get("target_host") or DEFAULT_ADDRESS
    config["namespace"] = namespace or config.get("namespace") or "default"
    return config


async def connect(
    *, address: str | None = None, namespace: str | None = None
) -> temporalio.client.Client:
    """Connect the way the `temporal` CLI would; explicit arguments win.

    Raises `DslError("cannot reach Temporal at ADDRESS: reason")` when the server does
    not answer, so the CLI prints one line instead of a Rust error chain.
    """
    config = connect_config(address=address, namespace=namespace)
    from interpreter.payloads import data_converter, payload_store_from_env

    # Values over Temporal's payload limit go to the configured store (claim check).
    converter = data_converter(payload_store_from_env())
    try:
        return await temporalio.client.Client.connect(**config, data_converter=converter)
    except RuntimeError as err:
        raise DslError(f"cannot reach Temporal at {config['target_host']}: {err}") from err


def task_queue() -> str:
    """The task queue workers poll and runs are started on: `TEMPORAL_TASK_QUEUE`."""
    return os.environ.get("TEMPORAL_TASK_QUEUE") or DEFAULT_TASK_QUEUE
