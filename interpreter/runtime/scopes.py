"""The scope walker: the one start loop (`_drive`) through which every DAG scope (the
top level, a parallel branch, a loop's iteration) and every join (branches, foreach
items, batches) runs, and what running one step records.

Ready steps start as asyncio tasks at once, each reports into the loop's completion
queue, and a finished step makes only its own dependents ready (`Readiness`), so a
step costs the same whatever the size of the DAG. Pause holds new starts; cancellation
and fail-fast cancel the running units. A mixin of `Interpreter`
(interpreter.runtime.workflow); the annotations below name what it relies on.
Part of the replay-critical runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from dsl.conditions import evaluate_condition
    from dsl.errors import ExpressionError
    from dsl.graph import Scope, WorkflowGraph
    from dsl.models import (
        MAX_MUTEX_NAME,
        DecisionStep,
        Definition,
        FailStep,
        SetStep,
        Step,
        SubworkflowStep,
        TaskStep,
    )
    from dsl.templates import render
    from interpreter.contract import StepStatus
    from interpreter.runtime.progress import Progress
    from interpreter.runtime.scheduler import Readiness

from interpreter.runtime.breaks import INLINE_COST, START_COST, Breaks
from interpreter.runtime.cancellation import Stops
from interpreter.runtime.clock import step_clock
from interpreter.runtime.continuation import ContinueAsNew
from interpreter.runtime.gate import Deferred, StartGate
from interpreter.runtime.metrics import RunMetrics
from interpreter.runtime.outcomes import (
    Frame,
    Outcome,
    RunSucceeded,
    StepFailed,
    Tally,
    child_run_timeout,
    describe_failure,
)
from interpreter.runtime.spans import Ended, recording, skipped_step_span, step_span
from interpreter.runtime.versions import Behaviours
from interpreter.runtime.work import DagWork, JoinWork, Work

__all__ = ["COMMANDLESS", "SUBWORKFLOW_RUN_TIMEOUT", "Scopes"]

SUBWORKFLOW_RUN_TIMEOUT = "subworkflow-run-timeout"
"""Runs started before a subworkflow step's timeout failed it with `RunTimeout` (and a
message naming the child and the limit) replay with the old `Timeout` error."""
COMMANDLESS = (SetStep, DecisionStep, FailStep)
"""Steps that run inside the workflow task that readied them (see `breaks`)."""
BREAK_COSTS: dict[type[Step], int] = {
    **dict.fromkeys(COMMANDLESS, INLINE_COST),
    TaskStep: START_COST,
    SubworkflowStep: START_COST,
}
"""What a step of each type pays `breaks` before it starts; the others pay nothing."""


class Scopes:
    """Walks scopes and joins, and records each step's run."""

    definition: Definition
    graph: WorkflowGraph
    progress: Progress
    behaviours: Behaviours
    metrics: RunMetrics | None
    breaks: Breaks | None
    gate: StartGate
    stops: Stops
    gated: bool
    may_continue: bool
    draining: bool
    details_due: bool
    run_status: str
    paused: bool
    finished_main: list[list[Any]]
    leftovers: list[asyncio.Task[None]]
    wakeups: list[asyncio.Queue[tuple[str, Outcome | None]]]
    running_steps: dict[str, asyncio.Task[Any]]
    cancelled_steps: dict[str, bool]
    compensations: list[tuple[TaskStep, Frame, Any]]
    if TYPE_CHECKING:  # defined by the other mixins (no runtime attribute here)

        def _resume_main(self, readiness: Readiness) -> tuple[deque[str], dict[str, Any]]: ...
        def _continue_due(self) -> bool: ...
        def _drain(self) -> None: ...
        async def _execute(self, step: Step, frame: Frame) -> Any: ...
        def _holding(
            self, name: str, key: str, on_waiting: Any
        ) -> contextlib.AbstractAsyncContextManager[None]: ...

    async def _run_scope(self, scope: Scope, frame: Frame, *, main: bool = False) -> dict[str, Any]:
        """Walk one DAG to the end; raises StepFailed on the first unabsorbed failure.

        The *main* (top-level) DAG may instead drain and raise `ContinueAsNew`.
        """
        readiness = Readiness(
            scope.order,
            {s: scope.prerequisites(s) for s in scope.order},
            {s: scope.dependents(s) for s in scope.order},
            self.graph.decided_by,
        )
        ready = deque(readiness.roots())
        outputs: dict[str, Any] = {}
        if main and self.finished_main:
            ready, outputs = self._resume_main(readiness)

        def finished(step_id: str, outcome: Outcome) -> None:
            if main:
                self.finished_main.append([step_id, outcome.finish, list(outcome.chosen)])

        work = DagWork(
            scope,
            readiness,
            ready,
            outputs,
            skipped=lambda step, readiness: self._skipped(step, readiness, frame),
            run=lambda step: self._run_step(step, frame, deferrable=main),
            finished=finished,
        )
        await self._drive(work, held=lambda: self.paused, main=main)
        return outputs

    async def _drive(
        self,
        work: Work,
        *,
        limit: int | None = None,
        held: Callable[[], bool] = lambda: False,
        main: bool = False,
        keep_remaining: bool = False,
    ) -> None:
        """The one start loop: every DAG scope and every join runs through it.

        Units start while *held* (pause, for DAG steps) allows, below *limit*; each
        reports its outcome in completion order; on a failure or a cancellation the
        units still running are cancelled, and once a join is met, the rest. The
        *main* DAG may instead drain and raise `ContinueAsNew`.
        """
        queue: asyncio.Queue[tuple[str, Outcome | None]] = asyncio.Queue()
        self.wakeups.append(queue)
        running: dict[str, asyncio.Task[None]] = {}

        async def report(key: str, run: Callable[[], Awaitable[Outcome]]) -> None:
            try:
                outcome = await run()
            except RunSucceeded as succeeded:
                outcome = Outcome("completed", succeeded=succeeded)
            queue.put_nowait((key, outcome))

        try:
            while not work.met():
                if main and not self.draining and self._continue_due():
                    self._drain()
                while not held() and not (main and self.draining):
                    if limit is not None and len(running) >= limit:
                        break
                    unit = work.take()
                    if unit is None:
                        break
                    key, run = unit
                    running[key] = asyncio.create_task(report(key, run))
                if not running:
                    if main and (work.empty() or self.draining):
                        await self._finish_leftovers()  # a step never spans two runs
                    if work.empty():
                        return
                    if main and self.draining:
                        # Signal handlers (a `cancel` asking Temporal) finish first.
                        await workflow.wait_condition(workflow.all_handlers_finished)
                        raise ContinueAsNew
                key, outcome = await queue.get()
                if outcome is None:
                    continue  # resumed
                running.pop(key)
                if outcome.succeeded is not None:
                    raise outcome.succeeded  # the siblings are cancelled below
                work.settle(key, outcome)
        except GeneratorExit:
            raise  # evicted from the worker's cache: nothing may be awaited any more
        except BaseException:
            # fail-fast, cancellation or succeed: stop the siblings (and, for the run, all)
            stopping = list(running.values())
            if main:
                stopping += self.leftovers
                self.leftovers = []
            await self.stops.cancel_all(stopping)
            raise
        finally:
            self.wakeups.remove(queue)
        if keep_remaining:  # the join is met; what still runs finishes, unseen by the step
            self.leftovers += running.values()
        else:  # the join is met: the rest are not needed
            await self.stops.cancel_all(running.values())

    async def _finish_leftovers(self) -> None:
        """Wait for every leftover branch and item (and theirs, in turn)."""
        while self.leftovers:
            task = self.leftovers[0]  # kept listed while awaited: a cancellation stops it
            with contextlib.suppress(Exception):
                await task
            self.leftovers.remove(task)

    def _skipped(self, step: Step, readiness: Readiness, frame: Frame) -> bool:
        """Dead path or a false `when`: record the skip and say so."""
        skip = readiness.dead(step.id)
        if not skip and step.when is not None:
            try:
                skip = not evaluate_condition(step.when, frame.context, self.definition.rules)
            except ExpressionError:
                skip = False  # evaluated again in _run_step, where it fails the step
        if skip:
            self._record(step, frame, "skipped")
            skipped_step_span(self.definition, step, step.id + frame.suffix)
        return skip

    async def _run_step(self, step: Step, frame: Frame, *, deferrable: bool = False) -> Outcome:
        """Run one step; how it ended (a cancellation propagates).

        An activity or child workflow waits for a slot of the run's start gate first,
        and shows `pending` until it has one; a *deferrable* (top-level) one may be
        deferred there instead, when the run continues as new.
        """
        key = step.id + frame.suffix
        if not recording():  # not traced: no span to open
            return await self._run_step_in_span(step, frame, key, deferrable)
        with step_span(self.definition, step, key, functools.partial(self._ended, key)):
            return await self._run_step_in_span(step, frame, key, deferrable)

    def _ended(self, key: str) -> Ended:
        state = self.progress.steps.get(key)
        if state is None:
            return "skipped", None
        message = (state.error or {}).get("message")
        return state.status, str(message) if message is not None else None

    async def _run_step_in_span(
        self, step: Step, frame: Frame, key: str, deferrable: bool
    ) -> Outcome:
        culprit: Step = step
        try:
            async with self._admission(step, deferrable):
                if self.breaks is not None:
                    cost = BREAK_COSTS.get(type(step))
                    if cost is not None:
                        await self.breaks.turn(cost)
                task = asyncio.current_task()
                cancellable = "[" not in key  # foreach items are not
                if cancellable and task is not None:
                    self.running_steps[key] = task  # for cancel_step, while it runs
                try:
                    async with self._mutex(step, frame):
                        self._record(step, frame, "running")
                        if step.when is not None:
                            evaluate_condition(step.when, frame.context, self.definition.rules)
                        output = await self._execute(step, frame)
                finally:
                    if cancellable:
                        self.running_steps.pop(key, None)
        except Deferred:
            return Outcome("skipped", deferred=True)
        except RunSucceeded as succeeded:  # this step, or one inside it, ended the run
            own = succeeded.output if succeeded.step is step else None
            self._record(step, frame, "completed", output=own)
            raise
        except asyncio.CancelledError:
            self._record(step, frame, "cancelled")
            if self.cancelled_steps.pop(key, False):
                return Outcome("skipped")  # cancel_step: the run goes on, as for a skip
            raise
        except StepFailed as failure:
            error, culprit = failure.error, failure.step
        except ExpressionError as exc:
            error = {"type": "ExpressionError", "message": str(exc)}
        except FailureError as exc:
            if self.stops.ours(exc):
                self._record(step, frame, "cancelled")
                if self.cancelled_steps.pop(key, False):
                    return Outcome("skipped")
                raise asyncio.CancelledError from exc
            error = self._describe(step, frame, exc)
        else:
            self._record(step, frame, "completed", output=output)
            if isinstance(step, TaskStep) and step.compensate is not None:
                self.compensations.append((step, frame, output))
            chosen = tuple(output["chosen"]) if isinstance(step, DecisionStep) else ()
            return Outcome("completed", output, chosen=chosen)
        self._record(step, frame, "failed", error=error)
        return Outcome("failed", error=error, culprit=culprit)

    def _describe(self, step: Step, frame: Frame, exc: FailureError) -> dict[str, Any]:
        """The step's error from an activity or child failure."""
        if isinstance(step, SubworkflowStep):
            timed_out = child_run_timeout(step, frame.instance(step.id), exc)
            if timed_out is not None and self.behaviours.has(SUBWORKFLOW_RUN_TIMEOUT):
                return timed_out
        return describe_failure(exc)

    def _mutex(self, step: Step, frame: Frame) -> contextlib.AbstractAsyncContextManager[None]:
        """The step's mutex, held while it runs (`waiting` until granted)."""
        if step.mutex is None:
            return contextlib.nullcontext()
        name = render(step.mutex, frame.context)
        if not isinstance(name, str | int | float) or not 1 <= len(str(name)) <= MAX_MUTEX_NAME:
            raise StepFailed(
                step,
                {
                    "type": "ExpressionError",
                    "message": f"mutex {name!r} is not a name of 1 to {MAX_MUTEX_NAME} characters",
                },
            )
        return self._holding(
            str(name), frame.instance(step.id), lambda: self._record(step, frame, "waiting")
        )

    def _admission(
        self, step: Step, deferrable: bool
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """A gate slot for a step that schedules an activity or a child workflow."""
        if self.gated and isinstance(step, TaskStep | SubworkflowStep):
            return self.gate.slot(deferrable=deferrable and self.may_continue)
        return contextlib.nullcontext()

    def _record(
        self,
        step: Step,
        frame: Frame,
        status: StepStatus,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        key = step.id + frame.suffix
        if key not in self.progress.steps:
            self.progress.declare(key, step.display_name + frame.suffix, step.type)
        self.progress.update(key, status, step_clock(), error=error)
        if self.metrics is not None:
            state = self.progress.steps[key]
            self.metrics.step_ended(step.type, status, state.started_at, state.ended_at)
        if status not in ("running", "waiting") and frame.records:
            frame.context["steps"][step.id] = {"status": status, "output": output, "error": error}
        self._show()

    def _show(self) -> None:
        """Refresh the UI's details and add the step counters once per activation,
        however many steps changed.

        Every step change asks for it, and a wide level changes a thousand steps in
        one activation; the details are read only by a query, after the activation.
        """
        if not self.details_due:
            self.details_due = True
            asyncio.get_running_loop().call_soon(self._publish)

    def _publish(self) -> None:
        self.details_due = False
        workflow.set_current_details(self.progress.markdown(self.run_status, self.paused))
        if self.metrics is not None:
            self.metrics.flush()

    async def _join(
        self,
        runs: dict[str, Callable[[], Awaitable[Any]]],
        join: Any,
        limit: int | None,
        *,
        total: int | None = None,
        tally: Tally | None = None,
        keep_remaining: bool = False,
    ) -> dict[str, Any]:
        """Run named coroutines concurrently until the join is met (`JoinWork`); the
        results in the order the runs were given. A run fails by raising StepFailed."""

        async def track(name: str) -> Outcome:
            if self.gated:
                await self.gate.unpaused()  # pause holds branches, foreach items, batches
            try:
                return Outcome("completed", await runs[name]())
            except StepFailed as failure:
                return Outcome("failed", error=failure.error, culprit=failure.step)

        tracked: dict[str, Callable[[], Awaitable[Outcome]]] = {
            name: functools.partial(track, name) for name in runs
        }
        work = JoinWork(
            tracked,
            join,
            total=total,
            tally=tally,
        )
        await self._drive(work, limit=limit, keep_remaining=keep_remaining)
        return work.ordered()
