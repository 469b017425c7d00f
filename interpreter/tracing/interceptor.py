"""The run's span and each activity attempt's span (the step spans are the runtime's).

Both sit inside the SDK's `OpenTelemetryInterceptor`, which comes first in the
client's interceptors: it has already made the caller's context (the CLI's span, the
parent run's step) current when these open theirs.

The run's span ends when the run really ends — completed, failed, cancelled or
continued as new — and never on a workflow task that failed or an eviction, which
leave it open for the task that really ends it (on replay the SDK's span does not end
at all, so nothing is exported twice). The mutex workflows that serialise steps are
bookkeeping and make no span.
"""

from __future__ import annotations

import asyncio
from typing import Any

import temporalio.client
import temporalio.worker
from opentelemetry import trace
from temporalio import activity, workflow

from interpreter.contract import MUTEX_WORKFLOW_NAME
from interpreter.runtime.spans import TRACER_NAME

__all__ = ["RunSpans"]


def _failed(span: trace.Span, exc: BaseException) -> None:
    span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


class RunSpans(temporalio.client.Interceptor, temporalio.worker.Interceptor):
    """Opens the run's span in the workflow and one span per activity attempt."""

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        return _ActivitySpan(next)

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
        return _RunSpan


class _RunSpan(temporalio.worker.WorkflowInboundInterceptor):
    async def execute_workflow(self, input: temporalio.worker.ExecuteWorkflowInput) -> Any:
        info = workflow.info()
        if info.workflow_type == MUTEX_WORKFLOW_NAME:
            return await super().execute_workflow(input)
        span = trace.get_tracer(TRACER_NAME).start_span(
            f"run {info.workflow_type}",
            kind=trace.SpanKind.SERVER,
            attributes={
                "tdsl.definition": info.workflow_type.partition("@")[0],
                "temporal.workflow_id": info.workflow_id,
                "temporal.run_id": info.run_id,
                "temporal.task_queue": info.task_queue,
            },
        )
        with trace.use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            try:
                result = await super().execute_workflow(input)
            except workflow.ContinueAsNewError:
                span.set_attribute("tdsl.continued_as_new", True)
                span.end()
                raise
            except asyncio.CancelledError:
                span.set_attribute("tdsl.run.status", "CANCELED")
                span.end()
                raise
            except BaseException as exc:
                if workflow.is_failure_exception(exc):  # the run failed
                    span.set_attribute("tdsl.run.status", "FAILED")
                    _failed(span, exc)
                    span.end()
                raise
            span.set_attribute("tdsl.run.status", "COMPLETED")
            span.end()
            return result


class _ActivitySpan(temporalio.worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        info = activity.info()
        attributes: dict[str, Any] = {
            "tdsl.step.id": info.activity_id,
            "temporal.activity_type": info.activity_type,
            "temporal.attempt": info.attempt,
            "temporal.workflow_id": info.workflow_id or "",
        }
        tracer = trace.get_tracer(TRACER_NAME)
        with tracer.start_as_current_span(
            f"activity {info.activity_type}",
            kind=trace.SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await super().execute_activity(input)
            except asyncio.CancelledError:
                span.set_attribute("tdsl.activity.outcome", "cancelled")
                raise
            except BaseException as exc:
                _failed(span, exc)
                raise
