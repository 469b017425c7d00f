"""A span per step, inside the run's span, when the worker traces (`interpreter.tracing`).

Whether a run is traced is not a setting the workflow reads: the worker's tracing
interceptor opens a recording span around the run, and a step opens its own span only
under a recording parent. Without tracing the parent is OpenTelemetry's invalid span
and a step costs one context lookup. Nested steps (parallel branches, foreach bodies)
open theirs under their parent step's span, and an activity or child workflow started
inside a step carries the step's span in its headers.

Replay: the worker's tracer provider is the SDK's `ReplaySafeTracerProvider`, whose
spans take their ids from the workflow's seed and are not exported again when a
history replays. A span ends only when its step really ended: an evicted run's
coroutines, or a workflow task that failed, leave it open, so one step is one span
however often its history is replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from opentelemetry import trace
from temporalio import workflow

from dsl.models import Definition, Step

__all__ = ["TRACER_NAME", "Ended", "describe_run", "recording", "skipped_step_span", "step_span"]

TRACER_NAME = "temporal-dsl"

Ended = tuple[str, str | None]
"""How a step ended: its status and, when it failed, its error's message."""


def _parent() -> trace.Span | None:
    span = trace.get_current_span()
    return span if span.is_recording() else None


def recording() -> bool:
    """Whether a step started now would open a span: a caller that knows it would
    not skips `step_span` altogether (a wide level starts thousands of steps)."""
    return _parent() is not None


def _attributes(definition: Definition, step: Step, key: str) -> dict[str, Any]:
    return {
        "tdsl.definition": definition.name,
        "tdsl.version": definition.version,
        "tdsl.step.id": key,
        "tdsl.step.type": step.type,
    }


def describe_run(definition: Definition) -> None:
    """Name the definition on the run's span, once the run knows it."""
    span = _parent()
    if span is not None:
        span.set_attributes(
            {"tdsl.definition": definition.name, "tdsl.version": definition.version}
        )


def _really_ended(exc: BaseException) -> bool:
    """A step that raised this ended (failed or was cancelled); anything else is the
    worker's business (an eviction, a failed workflow task) and ends nothing."""
    return isinstance(exc, asyncio.CancelledError) or workflow.is_failure_exception(exc)


@contextlib.contextmanager
def step_span(
    definition: Definition, step: Step, key: str, ended: Callable[[], Ended]
) -> Iterator[None]:
    """Run the block inside the step's span; *ended* says how the step ended (its
    status and, when it failed, the error's message)."""
    parent = _parent()
    if parent is None:
        yield
        return
    tracer = trace.get_tracer(TRACER_NAME)
    span = tracer.start_span(
        f"step {key}", attributes=_attributes(definition, step, key), kind=trace.SpanKind.INTERNAL
    )
    with trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False
    ):
        try:
            yield
        except BaseException as exc:
            if _really_ended(exc):
                _end(span, *ended())
            raise
        _end(span, *ended())


def skipped_step_span(definition: Definition, step: Step, key: str) -> None:
    """A step that never ran still shows in the trace, as an instant span."""
    if _parent() is None:
        return
    span = trace.get_tracer(TRACER_NAME).start_span(
        f"step {key}", attributes=_attributes(definition, step, key)
    )
    _end(span, "skipped")


def _end(span: trace.Span, status: str, error: str | None = None) -> None:
    span.set_attribute("tdsl.step.status", status)
    if status == "failed":
        span.set_status(trace.Status(trace.StatusCode.ERROR, error))
    span.end()
