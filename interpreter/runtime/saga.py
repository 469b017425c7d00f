"""Compensation (saga) and `on_failure`: what a failed or cancelled run undoes.

A mixin of `Interpreter` (interpreter.runtime.workflow); the annotations below name
what it relies on. Part of the replay-critical runtime.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from dsl.errors import ExpressionError
    from dsl.graph import Scope, WorkflowGraph
    from dsl.models import TaskStep
    from dsl.policies import StepSettings
    from dsl.templates import render
    from interpreter.runtime.progress import Progress

from interpreter.runtime.outcomes import Frame, StepFailed, describe_failure, temporal_retry
from interpreter.runtime.versions import Behaviours

__all__ = ["SAGA_PATCH", "Saga"]

SAGA_PATCH = "compensation-and-on-failure"
"""Runs started before compensation existed replay without it (workflow.patched)."""


class Saga:
    """Undoes a run: compensations in reverse completion order, then `on_failure`."""

    graph: WorkflowGraph
    context: dict[str, Any]
    progress: Progress
    behaviours: Behaviours
    compensations: list[tuple[TaskStep, Frame, Any]]
    _run_scope: Callable[[Scope, Frame], Awaitable[dict[str, Any]]]
    _finish_leftovers: Callable[[], Awaitable[None]]
    _declare: Callable[[Scope, int], None]
    _settings: Callable[[TaskStep], StepSettings]
    _show: Callable[[], None]

    async def _undo(self, error: dict[str, Any] | None) -> None:
        """Compensate completed tasks in reverse completion order, then run on_failure.

        A compensation that fails is recorded and the others still run; on_failure runs
        only for a failed run (not a cancelled one) and cannot change the run's error.
        """
        on_failure = self.graph.on_failure.steps if error is not None else {}
        if not (self.compensations or on_failure) or not self.behaviours.has(SAGA_PATCH):
            return
        for step, frame, output in reversed(self.compensations):
            await self._compensate(step, frame, output)
        if on_failure:
            self.context["run"]["error"] = error
            self._declare(self.graph.on_failure, 0)
            with contextlib.suppress(StepFailed):
                await self._run_scope(self.graph.on_failure, Frame(self.context))
            await self._finish_leftovers()

    async def _compensate(self, step: TaskStep, frame: Frame, output: Any) -> None:
        assert step.compensate is not None
        key = f"{frame.instance(step.id)}.compensate"
        self.progress.declare(
            key, f"undo {step.display_name}{frame.suffix}{frame.tag}", "compensation"
        )
        self.progress.update(key, "running", workflow.now())
        self._show()
        own = {"status": "completed", "output": output, "error": None}
        context = dict(frame.context, steps={**frame.context["steps"], step.id: own})
        settings = self._settings(step)
        try:
            await workflow.execute_activity(
                step.compensate.action,
                render(step.compensate.parameters, context),
                activity_id=key,
                task_queue=settings.task_queue,
                start_to_close_timeout=settings.timeout,
                retry_policy=temporal_retry(settings.retry_policy),
                summary=f"{key}: undo {step.display_name}",
            )
        except ExpressionError as exc:
            failure = {"type": "ExpressionError", "message": str(exc)}
        except FailureError as exc:
            failure = describe_failure(exc)
        else:
            self.progress.update(key, "completed", workflow.now(), attempts=1)
            self._show()
            return
        self.progress.update(key, "failed", workflow.now(), error=failure, attempts=1)
        self._show()
