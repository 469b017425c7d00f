"""The one generic workflow: runs any definition by walking its DAG.

This module is a run's life: its state (`_setup`, `_load`), its start, its end and
its output. The rest are mixins of `Interpreter`, one topic each: `scopes` walks the
DAG (the one start loop), `steps`, `children` and `loops` run the step types,
`saga` undoes a failed run, `continuing` continues it as new, `control` holds the
signal and query handlers, `mutex` the mutexes; what a step ends with is in
`outcomes`.

Deterministic by construction: no clocks but `workflow.now()`, no randomness, no
I/O, and every collection iterated here is insertion-ordered.
"""

from __future__ import annotations

import asyncio
import builtins
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from dsl.checked import check_definition
    from dsl.errors import ExpressionError, InputError
    from dsl.graph import Scope, branch_scope_key, build_graph, loop_scope_key
    from dsl.inputs import prepare_input
    from dsl.models import Definition, FailStep, LoopStep, ParallelStep, TaskStep
    from dsl.policies import StepSettings
    from dsl.templates import render
    from interpreter.contract import WORKFLOW_NAME, RunInput
    from interpreter.runtime.progress import Progress

from interpreter.runtime.breaks import Breaks
from interpreter.runtime.cancellation import Stops, uncancel
from interpreter.runtime.continuation import Carried, ContinueAsNew
from interpreter.runtime.continuing import Continuing
from interpreter.runtime.control import Control
from interpreter.runtime.gate import StartGate
from interpreter.runtime.loops import LoopCheckpoint
from interpreter.runtime.metrics import RunMetrics
from interpreter.runtime.mutex import Mutexes
from interpreter.runtime.outcomes import (
    Frame,
    Outcome,
    RunSucceeded,
    RunTimedOut,
    StepFailed,
)
from interpreter.runtime.saga import Saga
from interpreter.runtime.scopes import Scopes
from interpreter.runtime.signals import SignalBuffer
from interpreter.runtime.spans import describe_run
from interpreter.runtime.steps import StepTypes
from interpreter.runtime.versions import Behaviours

__all__ = ["PASSTHROUGH_MODULES", "DslWorkflow", "Interpreter"]

PASSTHROUGH_MODULES = (
    "dsl",
    "interpreter.contract",
    "interpreter.runtime.progress",
    "interpreter.runtime.scheduler",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "networkx",
    "opentelemetry",
    "json_logic",
    "jsonschema",
    "jsonschema_specifications",
    "referencing",
    "rpds",
    "ruamel",
)
"""Pure modules the sandbox may share between runs instead of re-importing per run."""

_PLACEHOLDER = Definition(
    name="resolving", steps=[FailStep(id="resolving", type="fail", message="")]
)
"""The definition of a run that does not know its own yet (queries may come first)."""

INPUT_MUST_BE_OBJECT = "run-input-is-an-object"
"""Runs started before a run's input had to be a JSON object replay without the check."""
START_GATE = "start-gate"
"""Runs started before the start gate (`interpreter.runtime.gate`) replay without it."""
CONTINUE_AS_NEW = "continue-as-new"
"""Runs started before automatic continue-as-new (`interpreter.runtime.continuation`)
replay without it: they never drain."""
INLINE_BREAKS = "breaks-in-long-workflow-tasks"
"""Runs started before `interpreter.runtime.breaks` replay without its breaks."""
LARGE_LOAD_BREAK = "break-around-large-load"
"""Runs started before it read a large definition in the activation that received it,
and spent nothing of the first task's budget on it (`DefinitionWorkflow.run`)."""
LARGE_LOAD_STEPS = 2000
"""A definition of this many steps is large: reading it (model, graph, status rows)
takes an activation of its own, about 1 s sandboxed for 20,000 steps."""
STEPS_PER_LOAD_COST = 20
"""Reading a large definition costs one budget unit per this many steps: 20,000
steps spend a whole activation's budget, so the first step starts after a break."""


class Interpreter(Mutexes, Scopes, Saga, Continuing, Control, StepTypes):
    """Interprets one definition: the runtime both workflow types share.

    `DslWorkflow` (the definition in its input) and `DefinitionWorkflow` (the
    definition named by the workflow type, `interpreter.runtime.typed`) differ only in
    how they learn the definition and how they start children and continuations.
    `_setup` is the state that needs no definition (signals and queries may come
    first), `_load` the rest, `_interpret` the run.
    """

    by_type = False
    """Whether children and continuations are started by definition type."""

    def _setup(self) -> None:
        self.gate = StartGate()
        self.stops = Stops()
        self.running_steps: dict[str, asyncio.Task[Any]] = {}
        """Step id → the task running it, while it runs (steps outside foreach items)."""
        self.cancelled_steps: dict[str, bool] = {}
        """Steps the `cancel_step` signal cancelled, until their run notices."""
        self.leftovers: list[asyncio.Task[None]] = []
        """Branches and items still running after their join was met with
        `cancel_remaining: false`: the run ends after them (`_finish_leftovers`)."""
        self.granted: dict[str, None] = {}
        self.mutex_waiting: dict[str, None] = {}
        self.mutex_requests = 0
        """Mutex requests of this run so far, and their state (`interpreter.runtime.mutex`)."""
        self.loop_checkpoints: dict[str, LoopCheckpoint] = {}
        """Where each top-level loop stopped when the run continued as new (`loops`)."""
        self.breaks: Breaks | None = None
        self.metrics: RunMetrics | None = None
        self.counted_run = False
        self.gated = False
        self.details_due = False
        self.run_status = "RUNNING"
        self.signals = SignalBuffer()
        self.wakeups: list[asyncio.Queue[tuple[str, Outcome | None]]] = []
        self.invalid: str | None = None
        self.cancel_requested = False
        self.compensations: list[tuple[TaskStep, Frame, Any]] = []
        self.settings: dict[str, StepSettings] = {}
        self.base_settings: StepSettings | None = None
        self.index_offset = 0
        self.batch_tolerant = False
        self.may_continue = False
        self.draining = False
        self.finished_main: list[list[Any]] = []
        """``[step_id, how, chosen]`` of every finished top-level step, carried ones first."""
        self.finished_before = 0
        """How many of them earlier runs finished: a run that continues as new first
        finishes at least one of its own, so a chain of continuations always advances."""
        self.definition = _PLACEHOLDER
        self.graph, _ = build_graph(self.definition)
        self.subworkflows: dict[str, Any] = {}
        self.latest: dict[str, str] = {}
        self.definition_hash = ""
        self.info = workflow.info()
        self.deadline: datetime | None = None
        self.context: dict[str, Any] = {"input": None, "steps": {}, "vars": {}, "run": {}}
        self.progress = Progress(title=self.info.workflow_type)

    def _load(self, run: RunInput) -> None:
        """Everything that depends on the definition, from the run's input."""
        self.carried = Carried.from_json(run.carried) if run.carried is not None else None
        try:
            checked = check_definition(run.definition, self._checked_key(run))
        except ValueError as exc:
            self.invalid = f"the definition in the run input is invalid: {exc}"
            self.definition = Definition(
                name="invalid", steps=[FailStep(id="invalid", type="fail", message="")]
            )
            self.graph, _ = build_graph(self.definition)
        else:
            self.definition, self.graph = checked.definition, checked.graph
            if checked.problems:
                self.invalid = "; ".join(checked.problems)
        self.subworkflows = run.subworkflows
        self.latest = run.latest
        self.definition_hash = run.definition_hash
        info = self.info = workflow.info()
        # The run timeout counts from the first start; a batch child is bounded by its
        # parent's. Kept as a moment (not a duration) so that a continued run can carry it.
        self.deadline = None
        if self.definition.timeout is not None and run.batch is None:
            self.deadline = info.start_time + self.definition.timeout
        self.context = {
            "input": run.input,
            "steps": {},
            "vars": {},
            "run": {
                "workflow_id": info.workflow_id,
                "run_id": info.run_id,
                "start_time": info.start_time.isoformat(),
                "name": self.definition.name,
                "version": self.definition.version,
            },
        }
        if run.batch is not None:
            self.context["steps"].update(run.batch.get("steps", {}))
            self.context["vars"].update(run.batch.get("vars", {}))
            self.index_offset = int(run.batch.get("index_offset", 0))
            self.batch_tolerant = bool(run.batch.get("tolerant", False))
        self.progress = Progress(title=f"{self.definition.name} {self.definition.version}")
        self.metrics = RunMetrics(self.definition.name)
        self.counted_run = run.batch is None  # a foreach batch is part of its parent's run
        self._declare(self.graph.main, depth=0)
        self.progress.mark_baseline()
        if self.carried is not None:
            self._take_over(self.carried)

    def _checked_key(self, run: RunInput) -> str | None:
        """The content hash under which the definition's model and graph may be shared
        with other runs (`dsl.checked`): none for runs that carry their definition."""
        return None

    def _declare(self, scope: Scope, depth: int) -> None:
        """Every step in graph order, each parallel's branches right under it (indented).

        Foreach instances and on_failure steps are declared when they run.
        """
        for step_id in scope.order:
            step = scope.steps[step_id]
            self.progress.declare(step_id, "↳ " * depth + step.display_name, step.type)
            if isinstance(step, ParallelStep):
                for branch in step.branches:
                    self._declare(
                        self.graph.scopes[branch_scope_key(step.id, branch.name)], depth + 1
                    )
            elif isinstance(step, LoopStep):  # one row per inner step: the latest iteration's
                self._declare(self.graph.scopes[loop_scope_key(step.id)], depth + 1)

    # ------------------------------------------------------------------ run

    async def _interpret(self, run: RunInput) -> Any:
        if self.invalid is not None:
            self._finish_run("FAILED")
            raise ApplicationError(self.invalid, type="InvalidDefinition", non_retryable=True)
        describe_run(self.definition)
        # Runs started before the start gate replay without it (no slot waits, and pause
        # did not hold foreach items, branches or batches).
        self.gated = self.behaviours.has(START_GATE)
        self.may_continue = self.gated and self.behaviours.has(CONTINUE_AS_NEW)
        if self.may_continue and self.behaviours.has(INLINE_BREAKS):
            self.breaks = Breaks()
            load_cost = len(self.graph.paths) // STEPS_PER_LOAD_COST
            if load_cost >= LARGE_LOAD_STEPS // STEPS_PER_LOAD_COST and self.behaviours.has(
                LARGE_LOAD_BREAK
            ):
                await self.breaks.turn(min(load_cost, self.breaks.budget))
        try:
            if self.carried is None:  # a continuation's input was prepared by its first run
                self.context["input"] = prepare_input(
                    self.definition.input,
                    run.input,
                    # Runs started before inputs had to be objects keep their leniency.
                    require_object=self.behaviours.has(INPUT_MUST_BE_OBJECT),
                )
        except InputError as exc:
            self._finish_run("FAILED")
            raise ApplicationError(str(exc), type="InvalidInput", non_retryable=True) from None
        self._show()
        try:
            outputs = await self._run_main()
            result = self._output(outputs)
        except ContinueAsNew:
            await self._continue_as_new(run)
        except RunSucceeded as succeeded:  # no compensation, no on_failure
            self._finish_run("COMPLETED")
            return succeeded.output if succeeded.has_output else self._completed_top_level()
        except RunTimedOut as timed_out:
            await self._undo(timed_out.error)
            self._finish_run("FAILED")
            raise timed_out.to_application_error() from None
        except StepFailed as failure:
            error = failure.to_application_error()
            await self._undo(
                {"step": failure.step.id, "type": error.type, "message": error.message}
            )
            self._finish_run("FAILED")
            raise error from None
        except asyncio.CancelledError:
            uncancel()  # let compensation activities run; the run still ends CANCELED
            await self._undo(None)
            self._finish_run("CANCELED")
            raise
        except ExpressionError as exc:
            message = f"output: {exc}"
            await self._undo({"step": None, "type": "ExpressionError", "message": message})
            self._finish_run("FAILED")
            raise ApplicationError(message, type="ExpressionError", non_retryable=True) from None
        self._finish_run("COMPLETED")
        return result

    async def _run_main(self) -> dict[str, Any]:
        """The top-level DAG, within the definition's `timeout` when it sets one.

        Without a timeout no timer is started: such runs issue the commands they always
        did. With one, a durable timer (asyncio.timeout on the workflow's event loop)
        cancels the DAG when it fires, as a cancellation would: running steps end
        `cancelled`; the caller then compensates and runs on_failure.
        """
        main = self._run_scope(self.graph.main, Frame(self.context), main=True)
        if self.deadline is None or self.definition.timeout is None:
            return await main
        left = max(0.0, (self.deadline - workflow.now()).total_seconds())
        limit = asyncio.timeout(left)
        try:
            async with limit:
                return await main
        except builtins.TimeoutError:
            if not limit.expired():
                raise
            raise RunTimedOut(self.definition.timeout) from None

    def _completed_top_level(self) -> dict[str, Any]:
        """`{step id: output}` of the top-level steps that completed, in graph order."""
        states = self.context["steps"]
        return {
            step_id: states[step_id]["output"]
            for step_id in self.graph.main.order
            if states.get(step_id, {}).get("status") == "completed"
        }

    def _output(self, outputs: dict[str, Any]) -> Any:
        if self.definition.output is None:
            return outputs
        return render(self.definition.output, self.context)

    def _finish_run(self, status: str) -> None:
        """The run's final status; steps that never started end `cancelled`.

        Only what the status query and the UI show changes (no command), so recorded
        histories replay unchanged.
        """
        self.run_status = status
        if self.metrics is not None and self.counted_run:
            self.metrics.run_ended(status)
        self.progress.cancel_pending(workflow.now())
        self._publish()  # now: the run may end within this activation


@workflow.defn(name=WORKFLOW_NAME)
class DslWorkflow(Interpreter):
    """A run whose input carries its definition bundle (`RunInput`): every run started
    before definitions were workflow types. Registered so they go on and replay."""

    @workflow.init
    def __init__(self, run: RunInput) -> None:
        self._setup()
        self._load(run)

    @workflow.run
    async def run(self, run: RunInput) -> Any:
        self.behaviours = Behaviours()
        return await self._interpret(run)
