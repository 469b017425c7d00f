"""The worker's half of the size limit: `PayloadLimitInterceptor`.

The codec cannot fail a step by itself where raising would hang the run, so it leaves
a "too large" marker (see `codec`). This interceptor turns the marker into a failure
where one is harmless: an activity handed a marker, a workflow whose output is too
large, or one whose continue-as-new would carry too much, fails with a non-retryable
`PayloadTooLarge` (`ApplicationError`), and so its step (or run) fails at once. It sits above the codec because it needs the codec's settings
(limit, store, cap) and its `OversizedValue`.
"""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn

from temporalio import workflow
from temporalio.worker import (
    ActivityInboundInterceptor,
    ContinueAsNewInput,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from interpreter.payloads.codec import (
    MAX_OFFLOAD,
    PAYLOAD_LIMIT,
    ClaimCheckCodec,
    OversizedValue,
    _too_large_error,
    _too_large_message,
)
from interpreter.payloads.stores import PayloadStore

__all__ = ["PayloadLimitInterceptor"]


class _MarkerCheck(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        for arg in input.args:
            if isinstance(arg, OversizedValue):
                raise arg.error()
        return await self.next.execute_activity(input)


def _largest(values: Any) -> int:
    return max((p.ByteSize() for p in workflow.payload_converter().to_payloads(values)), default=0)


def _total(values: Any) -> int:
    """What the server weighs against its limit: all the arguments of one command."""
    return sum(p.ByteSize() for p in workflow.payload_converter().to_payloads(values))


class _ContinuationCheck(WorkflowOutboundInterceptor):
    """Refuses a continue-as-new whose input could be sent neither inline nor offloaded.

    Otherwise the continued run would start with a "too large" marker as its input,
    and decoding it fails that run's first workflow task again and again (a marker
    fails its reader, and the reader here is the SDK). Raised inside the workflow,
    the `PayloadTooLarge` lets the interpreter fail the run as it fails any other:
    compensation and on_failure run (`DslWorkflow.run`).
    """

    def __init__(self, next: WorkflowOutboundInterceptor, check: type[_OutputCheck]) -> None:
        super().__init__(next)
        self.check = check

    def continue_as_new(self, input: ContinueAsNewInput) -> NoReturn:
        # Offloaded, each argument goes alone; inline, they go together.
        size = _total(input.args) if self.check.store is None else _largest(input.args)
        if size > self.check.allowed():
            what = (
                f"the state workflow {workflow.info().workflow_id!r} carries into its continued run"
            )
            message = _too_large_message(what, size, self.check.store, self.check.max_offload)
            raise _too_large_error(message, size, self.check.limit)
        self.next.continue_as_new(input)


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

    @classmethod
    def allowed(cls) -> int:
        """The largest payload this worker can send: inline, or through its store."""
        return cls.limit if cls.store is None else cls.max_offload

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_ContinuationCheck(outbound, type(self)))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        result = await self.next.execute_workflow(input)
        size = _largest([result])
        if size > self.allowed():
            what = f"the output of workflow {workflow.info().workflow_id!r}"
            message = _too_large_message(what, size, self.store, self.max_offload)
            raise _too_large_error(message, size, self.limit)
        return result


class PayloadLimitInterceptor(Interceptor):
    """Registered by the worker: fails an activity handed a marker, a workflow whose
    output is too large and a continue-as-new that would carry too much, each with a
    non-retryable `PayloadTooLarge`."""

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
