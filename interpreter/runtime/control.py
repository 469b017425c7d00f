"""The run's signals and queries: pause, resume, cancel, cancel one step, any other
signal for a `signal` step, and the status and outputs queries.

A mixin of `Interpreter` (interpreter.runtime.workflow), which owns the state these
handlers change; the annotations below name what they rely on. Temporal finds the
handlers on the workflow class through its bases. Part of the replay-critical runtime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.common import RetryPolicy as TemporalRetryPolicy

with workflow.unsafe.imports_passed_through():
    from interpreter.contract import (
        CANCEL_RUN_ACTIVITY,
        CANCEL_SIGNAL,
        CANCEL_STEP_SIGNAL,
        OUTPUTS_QUERY,
        PAUSE_SIGNAL,
        RESUME_SIGNAL,
        STATUS_QUERY,
    )
    from interpreter.runtime.progress import Progress

from interpreter.runtime.cancellation import Stops
from interpreter.runtime.gate import StartGate
from interpreter.runtime.outcomes import Outcome
from interpreter.runtime.signals import SignalBuffer

__all__ = ["WAKE", "Control"]

WAKE = ("", None)
"""What `resume` puts on each start loop's queue: look at the gate again."""


class Control:
    """Signal and query handlers of the interpreter workflow."""

    gate: StartGate
    stops: Stops
    signals: SignalBuffer
    progress: Progress
    run_status: str
    context: dict[str, Any]
    wakeups: list[asyncio.Queue[tuple[str, Outcome | None]]]
    running_steps: dict[str, asyncio.Task[Any]]
    cancelled_steps: dict[str, bool]
    cancel_requested: bool
    _show: Callable[[], None]

    @property
    def paused(self) -> bool:
        """Paused by the `pause` signal; the start gate holds the state."""
        return self.gate.paused

    @workflow.signal(name=PAUSE_SIGNAL)
    def pause(self) -> None:
        """No new step starts; running ones finish."""
        self.gate.pause()
        self._show()

    @workflow.signal(name=RESUME_SIGNAL)
    def resume(self) -> None:
        self.gate.resume()
        for queue in self.wakeups:
            queue.put_nowait(WAKE)
        self._show()

    @workflow.signal(name=CANCEL_SIGNAL, unfinished_policy=workflow.HandlerUnfinishedPolicy.ABANDON)
    async def cancel(self) -> None:
        """Cancel through Temporal itself, so the run ends CANCELED like a native cancel.

        The server refuses a workflow's cancel request on itself, so a tiny activity
        asks it through the worker's client; the workflow then gets a real cancellation.
        """
        if self.cancel_requested:
            return
        self.cancel_requested = True
        await workflow.execute_activity(
            CANCEL_RUN_ACTIVITY,
            {"reason": "cancel signal"},
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=TemporalRetryPolicy(maximum_attempts=5),
            summary="cancel requested by signal",
        )

    @workflow.signal(name=CANCEL_STEP_SIGNAL)
    def cancel_step(self, request: Any) -> None:
        """Cancel one running step, with everything inside it; the run goes on, and its
        dependents see it as skipped. A step that is not running is left alone."""
        step_id = request.get("step") if isinstance(request, dict) else None
        task = self.running_steps.get(step_id) if isinstance(step_id, str) else None
        if step_id is None or task is None or task.done():
            workflow.logger.info("cancel_step %r: no such step is running", step_id)
            return
        self.cancelled_steps[step_id] = True
        self.stops.cancel(task)

    @workflow.signal(dynamic=True)
    def deliver(self, name: str, args: Sequence[RawValue]) -> None:
        """Any other signal: a payload for a `signal` step, kept until one asks for it."""
        payload = workflow.payload_converter().from_payload(args[0].payload) if args else None
        self.signals.add(name, payload)

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> dict[str, Any]:
        return self.progress.query(self.run_status, self.paused)

    @workflow.query(name=OUTPUTS_QUERY)
    def outputs(self) -> dict[str, Any]:
        """Outputs of completed steps, for the run history in PostgreSQL."""
        return {
            step_id: state["output"]
            for step_id, state in self.context["steps"].items()
            if state["status"] == "completed"
        }
