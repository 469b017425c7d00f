"""OpenTelemetry traces: `tdsl run` → the run → a span per step → the activities inside.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set
(and `OTEL_SDK_DISABLED` is not true); then `install_tracing` makes the process's tracer
provider the SDK's replay-safe one (`temporalio.contrib.opentelemetry`), exporting over
OTLP — `http/protobuf` by default, `grpc` when `OTEL_EXPORTER_OTLP_PROTOCOL` says so and
its exporter is installed — with the service name of `OTEL_SERVICE_NAME` (default
`tdsl`). Every other `OTEL_*` setting (headers, timeouts, sampler, resource attributes)
is read by OpenTelemetry itself.

The spans, all in one trace:

- ``tdsl run NAME`` (the CLI, `cli_span`), whose context the SDK's interceptor puts in
  the run's headers;
- ``run NAME`` around the workflow (`RunSpans`), continued runs and child workflows
  (subworkflow steps, foreach batches) under the span that started them;
- ``step ID`` per step with `tdsl.definition`, `tdsl.version`, `tdsl.step.id`,
  `tdsl.step.type`, `tdsl.step.status` (`interpreter.runtime.spans`);
- ``activity ACTION`` per activity attempt, inside its step's span.

Queries (every `tdsl status` poll) and signals make no spans: a run polled for a month
would bury its steps.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from dsl.errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "cli_span",
    "flush_tracing",
    "install_tracing",
    "installed_tracing",
    "tracing_interceptors",
    "tracing_requested",
]

DEFAULT_SERVICE_NAME = "tdsl"
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")

_provider: ReplaySafeTracerProvider | None = None


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces (an OTLP endpoint, the SDK not disabled)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(env.get(name, "").strip() for name in _ENDPOINTS)


def _exporter(env: Mapping[str, str]) -> SpanExporter:
    protocol = next(
        (env[name].strip() for name in _PROTOCOLS if env.get(name, "").strip()), "http/protobuf"
    )
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            raise ConfigurationError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the package "
                "opentelemetry-exporter-otlp-proto-grpc; install it, or use http/protobuf"
            ) from None
        exporter: SpanExporter = GrpcExporter()
        return exporter
    raise ConfigurationError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r} is not supported: use http/protobuf or grpc"
    )


def install_tracing(
    environ: Mapping[str, str] | None = None, *, exporter: SpanExporter | None = None
) -> bool:
    """Set up this process's tracer provider if the environment asks for traces (or an
    *exporter* is given, as tests do); whether traces are on. Once per process: later
    calls change nothing."""
    global _provider
    if _provider is not None:
        return True
    env = os.environ if environ is None else environ
    if exporter is None and not tracing_requested(env):
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from temporalio.contrib.opentelemetry import create_tracer_provider

    resource = Resource.create(
        {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: DEFAULT_SERVICE_NAME}
    )
    provider = create_tracer_provider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_exporter(env)))
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:  # someone set theirs first (it stays)
        raise ConfigurationError(
            "another OpenTelemetry tracer provider was installed before tdsl's "
            "(an auto-instrumentation?): run without it, or unset OTEL_EXPORTER_OTLP_ENDPOINT"
        )
    _provider = provider
    return True


def installed_tracing() -> bool:
    return _provider is not None


def flush_tracing() -> None:
    """Export what is buffered (the CLI, before it exits)."""
    if _provider is not None:
        _provider.force_flush()


def tracing_interceptors() -> list[Any]:
    """For `Client.connect`: the SDK's propagation and our run and activity spans (a
    worker takes both from its client); empty without tracing."""
    if _provider is None:
        return []
    from temporalio.contrib.opentelemetry import OpenTelemetryInterceptor

    from interpreter.tracing.interceptor import RunSpans

    return [OpenTelemetryInterceptor(), RunSpans()]


@contextlib.contextmanager
def cli_span(name: str, attributes: Mapping[str, str] | None = None) -> Iterator[None]:
    """The CLI command's span, the root of its run's trace (nothing without tracing)."""
    if _provider is None:
        yield
        return
    from opentelemetry import trace

    tracer = trace.get_tracer("tdsl")
    try:
        with tracer.start_as_current_span(name, attributes=dict(attributes or {})):
            yield
    finally:
        flush_tracing()
