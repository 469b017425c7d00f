"""The step types, dispatched by `_execute`; those that run in the workflow itself: task,
decision, parallel, foreach (in this run), wait, signal, set, fail and succeed (loops:
`loops`, child workflows: `children`).

A mixin of `DslWorkflow` (interpreter.runtime.workflow), which owns the state and the
scheduling these methods use; the annotations below name what they rely on.
Part of the replay-critical runtime.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

from dsl.conditions import evaluate_condition
from dsl.graph import Scope, WorkflowGraph, branch_scope_key
from dsl.models import (
    DecisionStep,
    Definition,
    ForeachStep,
    LoopStep,
    ParallelStep,
    SetStep,
    SignalStep,
    Step,
    SubworkflowStep,
    SucceedStep,
    TaskStep,
    WaitStep,
)
from dsl.policies import StepSettings, base_settings, step_settings
from dsl.templates import render
from interpreter.runtime.children import ChildWorkflows
from interpreter.runtime.loops import Loops
from interpreter.runtime.outcomes import (
    Frame,
    Outcome,
    RunSucceeded,
    StepFailed,
    step_summary,
    temporal_retry,
)
from interpreter.runtime.signals import SignalBuffer
from interpreter.runtime.versions import Behaviours

__all__ = ["FOREACH_BATCH_THRESHOLD", "StepTypes"]

FOREACH_BATCH_THRESHOLD = 200
"""A foreach over more items runs them in child workflows, one batch per child, so no
single history nears Temporal's limits (51,200 events, 2,000 pending activities)."""

BATCHES_FOR_EVERY_JOIN = "foreach-batches-for-every-join"
"""Runs started before a foreach over the threshold was batched whatever its join
(`any`, `count`) replay running its items in the run itself."""


ITEMS_OWN_STEPS = "foreach-items-own-steps"
"""Runs started before the steps of a foreach item's `parallel` body could read each
other replay with the item's steps unrecorded (their templates failed `not found`)."""


class StepTypes(ChildWorkflows, Loops):
    """How each step type runs; `_execute` dispatches on the type."""

    definition: Definition
    graph: WorkflowGraph
    context: dict[str, Any]
    settings: dict[str, StepSettings]
    base_settings: StepSettings | None
    index_offset: int
    batch_tolerant: bool
    signals: SignalBuffer
    behaviours: Behaviours
    _run_scope: Callable[[Scope, Frame], Awaitable[dict[str, Any]]]
    _run_step: Callable[[Step, Frame], Awaitable[Outcome]]

    async def _execute(self, step: Step, frame: Frame) -> Any:
        if isinstance(step, TaskStep):
            return await self._task(step, frame)
        if isinstance(step, DecisionStep):
            return self._decision(step, frame)
        if isinstance(step, ParallelStep):
            return await self._parallel(step, frame)
        if isinstance(step, SubworkflowStep):
            return await self._subworkflow(step, frame)
        if isinstance(step, ForeachStep):
            return await self._foreach(step, frame)
        if isinstance(step, LoopStep):
            return await self._loop(step, frame)
        if isinstance(step, WaitStep):
            return await self._wait(step, frame)
        if isinstance(step, SignalStep):
            return await self._signal(step)
        if isinstance(step, SetStep):
            values = render(step.values, frame.context)
            assert isinstance(values, dict)
            self.context["vars"].update(values)
            return values
        if isinstance(step, SucceedStep):
            output = render(step.output, frame.context) if step.has_output else None
            raise RunSucceeded(step, output, has_output=step.has_output)
        message = render(step.message, frame.context)
        raise StepFailed(step, {"type": step.error_type, "message": str(message)})

    async def _task(self, step: TaskStep, frame: Frame) -> Any:
        settings = self._settings(step)
        parameters = render(step.parameters, frame.context)
        options: dict[str, Any] = {
            "activity_id": frame.instance(step.id),
            "start_to_close_timeout": settings.timeout,
            "schedule_to_close_timeout": step.schedule_to_close_timeout,
            "retry_policy": temporal_retry(settings.retry_policy),
            "summary": step_summary(step, frame),
        }
        if step.local:
            return await workflow.execute_local_activity(step.action, parameters, **options)
        return await workflow.execute_activity(
            step.action,
            parameters,
            task_queue=settings.task_queue,
            heartbeat_timeout=settings.heartbeat_timeout,
            **options,
        )

    def _settings(self, step: TaskStep) -> StepSettings:
        """Merged once per step: the same for every run of it (foreach items, retries)."""
        found = self.settings.get(step.id)
        if found is None:
            if self.base_settings is None:
                self.base_settings = base_settings(self.definition)
            found = self.settings[step.id] = step_settings(
                self.definition, step, self.base_settings
            )
        return found

    def _decision(self, step: DecisionStep, frame: Frame) -> dict[str, Any]:
        chosen: list[str] = []
        for branch in step.branches:
            if evaluate_condition(branch.when, frame.context, self.definition.rules):
                chosen += [target for target in branch.next if target not in chosen]
                if step.mode == "first":
                    break
        if not chosen:
            chosen = list(step.default)
        return {"chosen": chosen}

    async def _parallel(self, step: ParallelStep, frame: Frame) -> dict[str, Any]:
        branches = {
            branch.name: self.graph.scopes[branch_scope_key(step.id, branch.name)]
            for branch in step.branches
        }
        runs = {
            name: (lambda scope=scope: self._run_scope(scope, frame))
            for name, scope in branches.items()
        }
        return await self._join(
            runs, step.join, step.max_concurrency, keep_remaining=not step.cancel_remaining
        )

    async def _foreach(self, step: ForeachStep, frame: Frame) -> list[Any]:
        items = render(step.items, frame.context)
        if not isinstance(items, list):
            raise StepFailed(
                step, {"type": "ExpressionError", "message": f"items is not a list but {items!r}"}
            )
        if len(items) > FOREACH_BATCH_THRESHOLD and (
            step.join == "all" or self.behaviours.has(BATCHES_FOR_EVERY_JOIN)
        ):
            return await self._foreach_batches(step, frame, items)
        body = step.step
        offset = self.index_offset if frame.suffix == "" else 0
        # A batch of a foreach with an `any` or `count` join reports each item's end
        # instead of failing: its parent counts them across batches.
        tolerant = self.batch_tolerant and frame.suffix == ""

        # A body with steps inside gets a `steps` of its own per item, so that they read
        # each other (a copy only then: items of a plain body write nothing there).
        nested = isinstance(body, ParallelStep) and self.behaviours.has(ITEMS_OWN_STEPS)

        async def one(index: int, item: Any) -> Any:
            context = dict(frame.context, item=item, index=index)
            if nested:
                context["steps"] = dict(frame.context["steps"])
            inner = Frame(context, f"{frame.suffix}[{index}]", frame.tag, own_steps=nested)
            outcome = await self._run_step(body, inner)
            if outcome.error is not None:
                if tolerant:
                    return {"error": outcome.error, "step": (outcome.culprit or body).id}
                raise StepFailed(outcome.culprit or body, outcome.error)
            return {"output": outcome.output} if tolerant else outcome.output

        runs = {
            str(i): (lambda i=i, item=item: one(offset + i, item)) for i, item in enumerate(items)
        }
        results = await self._join(
            runs, step.join, step.max_concurrency, keep_remaining=not step.cancel_remaining
        )
        return [results.get(str(i)) for i in range(len(items))]

    async def _wait(self, step: WaitStep, frame: Frame) -> dict[str, Any]:
        if step.duration is not None:
            seconds = step.duration.total_seconds()
        else:
            until = render(step.until, frame.context)
            try:
                moment = datetime.fromisoformat(str(until).replace("Z", "+00:00"))
            except ValueError:
                raise StepFailed(
                    step,
                    {
                        "type": "ExpressionError",
                        "message": f"until {until!r} is not an ISO timestamp",
                    },
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=workflow.now().tzinfo)
            seconds = max(0.0, (moment - workflow.now()).total_seconds())
        await workflow.sleep(timedelta(seconds=seconds), summary=f"{step.id}: {step.display_name}")
        return {"waited": seconds}

    async def _signal(self, step: SignalStep) -> Any:
        """The oldest payload of the signal, waiting for one with `workflow.wait_condition`.

        Payloads are buffered by the signal handler (`deliver`), so one that arrived
        before the step started is taken at once; two steps waiting for the same
        name take one payload each, in the order they started waiting. A step that
        lists several names takes the one that arrived first (`SignalBuffer`).
        """
        names = step.names
        deadline = workflow.now() + step.timeout if step.timeout is not None else None
        while True:
            taken = self.signals.take_first(names)
            if taken is not None:
                name, payload = taken
                if isinstance(step.signal, str):
                    return payload
                return {"signal": name, "payload": payload}
            left = None
            if deadline is not None:
                left = max(0.0, (deadline - workflow.now()).total_seconds())
            try:
                await workflow.wait_condition(lambda: self.signals.has_any(names), timeout=left)
            except builtins.TimeoutError:
                assert step.timeout is not None
                seconds = step.timeout.total_seconds()
                which = (
                    repr(step.signal)
                    if isinstance(step.signal, str)
                    else "of " + ", ".join(repr(name) for name in names)
                )
                raise StepFailed(
                    step,
                    {
                        "type": "SignalTimeout",
                        "message": f"no signal {which} within {seconds:g}s",
                    },
                ) from None
