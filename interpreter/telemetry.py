"""The worker's Temporal runtime: where the SDK core's logs and metrics go.

- The core's (Rust) warnings are forwarded to Python's logging, logger
  ``temporalio.core``, so they get the worker's format and filters
  (`interpreter.logs`: one line each, no task token) instead of going straight to
  stderr in a format of their own.
- With a metrics address (``tdsl worker --metrics-port``), the runtime serves
  Prometheus text at ``GET /metrics``: the SDK's ``temporal_*`` metrics and the
  interpreter's ``tdsl_*`` ones (`interpreter.runtime.metrics`), counters with their
  ``_total`` suffix and durations in seconds.

A runtime is the process's: install it before the first client connects.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dsl.errors import ConfigurationError

if TYPE_CHECKING:
    from temporalio.runtime import Runtime

__all__ = ["DEFAULT_METRICS_HOST", "install_runtime", "worker_runtime"]

DEFAULT_METRICS_HOST = "127.0.0.1"


def worker_runtime(metrics_address: str | None = None) -> Runtime:
    """A runtime forwarding core logs, and serving Prometheus at *metrics_address*
    (``host:port``) when given."""
    # Imported here: the CLI reads this module's defaults without loading the SDK.
    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        PrometheusConfig,
        Runtime,
        TelemetryConfig,
        TelemetryFilter,
    )

    metrics = None
    if metrics_address is not None:
        metrics = PrometheusConfig(
            bind_address=metrics_address, counters_total_suffix=True, durations_as_seconds=True
        )
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            ),
            metrics=metrics,
        )
    )


def install_runtime(metrics_address: str | None = None) -> None:
    """Make `worker_runtime` the process's default (clients connect through it); a
    metrics address that cannot be bound is a one-line `ConfigurationError`."""
    try:
        runtime = worker_runtime(metrics_address)
    except Exception as err:  # the core's "failed initializing telemetry" (RuntimeError)
        raise ConfigurationError(
            f"cannot serve metrics on {metrics_address}: {err}; choose another --metrics-port"
        ) from None
    from temporalio.runtime import Runtime

    Runtime.set_default(runtime, error_if_already_set=False)
