"""The one generic workflow: runs any definition by walking its DAG.

Each scope (top level, a parallel branch) is walked by `_run_scope`: ready steps
start as asyncio tasks at once, each reports into the scope's completion queue, and
a finished step makes only its own dependents ready (`Readiness`), so a step costs
the same whatever the size of the DAG. Pause holds new starts; cancellation and
fail-fast cancel the running steps of the scope. The step types live in `steps`
and `children` (mixins of `DslWorkflow`), what a step ends with in `outcomes`.

Deterministic by construction: no clocks but `workflow.now()`, no randomness, no
I/O, and every collection iterated here is insertion-ordered.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import (
    ApplicationError,
    FailureError,
)

with workflow.unsafe.imports_passed_through():
    from dsl.checked import check_definition
    from dsl.conditions import evaluate_condition
    from dsl.errors import ExpressionError, InputError
    from dsl.graph import Scope, branch_scope_key, build_graph, loop_scope_key
    from dsl.inputs import prepare_input
    from dsl.models import (
        MAX_MUTEX_NAME,
        DecisionStep,
        Definition,
        FailStep,
        LoopStep,
        ParallelStep,
        SetStep,
        Step,
        SubworkflowStep,
        TaskStep,
    )
    from dsl.policies import StepSettings
    from dsl.templates import render
    from interpreter.contract import (
        CANCEL_RUN_ACTIVITY,
        CANCEL_SIGNAL,
        CANCEL_STEP_SIGNAL,
        OUTPUTS_QUERY,
        PAUSE_SIGNAL,
        RESUME_SIGNAL,
        STATUS_QUERY,
        WORKFLOW_NAME,
        RunInput,
        StepStatus,
    )
    from interpreter.runtime.progress import Progress
    from interpreter.runtime.scheduler import Readiness

from interpreter.runtime.breaks import INLINE_COST, START_COST, Breaks
from interpreter.runtime.cancellation import Stops, uncancel
from interpreter.runtime.continuation import DEFAULT_HISTORY_LIMIT, Carried, ContinueAsNew
from interpreter.runtime.gate import Deferred, StartGate
from interpreter.runtime.loops import LoopCheckpoint
from interpreter.runtime.metrics import RunMetrics
from interpreter.runtime.mutex import Mutexes
from interpreter.runtime.outcomes import (
    Frame,
    Outcome,
    RunSucceeded,
    RunTimedOut,
    StepFailed,
    Tally,
    child_run_timeout,
    describe_failure,
    temporal_retry,
)
from interpreter.runtime.signals import SignalBuffer
from interpreter.runtime.spans import Ended, describe_run, skipped_step_span, step_span
from interpreter.runtime.steps import StepTypes
from interpreter.runtime.versions import Behaviours
from interpreter.runtime.work import DagWork, JoinWork, Work

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

_WAKE = ("", None)
_PLACEHOLDER = Definition(
    name="resolving", steps=[FailStep(id="resolving", type="fail", message="")]
)
"""The definition of a run that does not know its own yet (queries may come first)."""

SAGA_PATCH = "compensation-and-on-failure"
"""Runs started before compensation existed replay without it (workflow.patched)."""
INPUT_MUST_BE_OBJECT = "run-input-is-an-object"
"""Runs started before a run's input had to be a JSON object replay without the check."""
START_GATE = "start-gate"
"""Runs started before the start gate (`interpreter.runtime.gate`) replay without it."""
SUBWORKFLOW_RUN_TIMEOUT = "subworkflow-run-timeout"
"""Runs started before a subworkflow step's timeout failed it with `RunTimeout` (and a
message naming the child and the limit) replay with the old `Timeout` error."""
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
COMMANDLESS = (SetStep, DecisionStep, FailStep)
"""Steps that run inside the workflow task that readied them (see `breaks`)."""


class Interpreter(StepTypes, Mutexes):
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

    def _take_over(self, carried: Carried) -> None:
        """Go on from where the run this one continues stopped (see `continuation`)."""
        self.context["steps"].update(carried.steps)
        self.context["vars"].update(carried.vars)
        self.context["run"].update(run_id=carried.run_id, start_time=carried.start_time)
        self.deadline = datetime.fromisoformat(carried.deadline) if carried.deadline else None
        self.signals = SignalBuffer.restore(carried.signals, carried.signal_arrivals)
        for owed in carried.compensations:
            step = self.graph.step(owed["step"])
            assert isinstance(step, TaskStep)
            context = self.context
            if "item" in owed:
                context = dict(self.context, item=owed["item"], index=owed["index"])
            if "tag" in owed:
                steps = {**self.context["steps"], **owed["steps"]}
                context = dict(context, steps=steps, iteration=owed["iteration"])
            frame = Frame(context, owed["suffix"], owed.get("tag", ""))
            self.compensations.append((step, frame, owed["output"]))
        self.progress.restore(carried.progress)
        self.progress.continued = carried.continued
        self.finished_main = list(carried.finished)
        self.finished_before = len(carried.finished)
        self.loop_checkpoints = dict(carried.loops)
        if carried.paused:
            self.gate.pause()

    @property
    def paused(self) -> bool:
        """Paused by the `pause` signal; the start gate holds the state."""
        return self.gate.paused

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

    # ------------------------------------------------------------------ continue-as-new

    def _continue_due(self) -> bool:
        """Whether the top-level DAG should drain so that the run continues as new."""
        if len(self.finished_main) == self.finished_before:
            return False
        return self._history_full()

    def _history_full(self) -> bool:
        """Whether this run's history is long enough to continue as new (if it may)."""
        if not self.may_continue:
            return False
        info = self.info  # the methods read the runtime: the same object stays current
        limit = self.definition.history_limit or DEFAULT_HISTORY_LIMIT
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit

    def _drain(self) -> None:
        """Start no new top-level step: the run continues as new once nothing runs."""
        self.draining = True
        self.gate.defer()  # top-level steps still waiting for a slot

    async def _continue_as_new(self, run: RunInput) -> NoReturn:
        """Continue as new, or fail the run (compensated) when the worker refuses to
        send the continuation: too large for Temporal and for its payload store
        (`PayloadTooLarge` from `interpreter.payloads.PayloadLimitInterceptor`)."""
        self.run_status = "CONTINUED_AS_NEW"
        self._write_details()
        try:
            self._continue_with(run, self._continuation())
        except ApplicationError as refused:
            await self._undo({"step": None, "type": refused.type, "message": refused.message})
            self._finish_run("FAILED")
            raise

    def _continue_with(self, run: RunInput, carried: Carried) -> NoReturn:
        """Continue as new with this run's input, as prepared, and *carried*."""
        # The input as prepared: the continuation does not prepare it again.
        continued = dataclasses.replace(run, input=self.context["input"], carried=carried.to_json())
        workflow.continue_as_new(continued.to_json())

    def _continuation(self) -> Carried:
        """All the logical run needs to go on (`Carried`)."""
        owed = []
        for step, frame, output in self.compensations:
            entry = {"step": step.id, "suffix": frame.suffix, "output": output}
            if "item" in frame.context:
                entry.update(item=frame.context["item"], index=frame.context["index"])
            if frame.tag:  # in a loop: its iteration, and the iteration's own step states
                entry.update(tag=frame.tag, iteration=frame.context["iteration"])
                outer = self.context["steps"]
                entry["steps"] = {
                    k: v for k, v in frame.context["steps"].items() if outer.get(k) is not v
                }
            owed.append(entry)
        signals, arrivals = self.signals.export()
        return Carried(
            continued=self.progress.continued + 1,
            run_id=self.context["run"]["run_id"],
            start_time=self.context["run"]["start_time"],
            deadline=self.deadline.isoformat() if self.deadline else None,
            steps=self.context["steps"],
            vars=self.context["vars"],
            finished=self.finished_main,
            signals=signals,
            signal_arrivals=arrivals,
            compensations=owed,
            progress=self.progress.export(),
            paused=self.paused,
            loops=dict(self.loop_checkpoints),
        )

    def _resume_main(self, readiness: Readiness) -> tuple[deque[str], dict[str, Any]]:
        """Readiness and outputs of the top-level DAG as the continued run left them.

        The finishes are fed again in their order, so exactly the steps that were ready
        (or deferred) are ready again, in the order they became ready.
        """
        done = {entry[0] for entry in self.finished_main}
        became = readiness.roots()
        outputs: dict[str, Any] = {}
        for step_id, how, chosen in self.finished_main:
            became += readiness.finish(step_id, how, chosen)
            if how == "completed":
                outputs[step_id] = self.context["steps"][step_id]["output"]
        return deque(step_id for step_id in became if step_id not in done), outputs

    # ------------------------------------------------------------------ saga

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
            self._declare(self.graph.on_failure, depth=0)
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
        self._write_details()  # now: the run may end within this activation

    # ------------------------------------------------------------------ control

    @workflow.signal(name=PAUSE_SIGNAL)
    def pause(self) -> None:
        """No new step starts; running ones finish."""
        self.gate.pause()
        self._show()

    @workflow.signal(name=RESUME_SIGNAL)
    def resume(self) -> None:
        self.gate.resume()
        for queue in self.wakeups:
            queue.put_nowait(_WAKE)
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

    # ------------------------------------------------------------------ scopes

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
        with step_span(self.definition, step, key, functools.partial(self._ended, key)):
            return await self._run_step_traced(step, frame, key, deferrable)

    def _ended(self, key: str) -> Ended:
        state = self.progress.steps.get(key)
        if state is None:
            return "skipped", None
        message = (state.error or {}).get("message")
        return state.status, str(message) if message is not None else None

    async def _run_step_traced(
        self, step: Step, frame: Frame, key: str, deferrable: bool
    ) -> Outcome:
        culprit: Step = step
        try:
            async with self._admission(step, deferrable):
                if self.breaks is not None:
                    if isinstance(step, COMMANDLESS):
                        await self.breaks.turn(INLINE_COST)
                    elif isinstance(step, TaskStep | SubworkflowStep):
                        await self.breaks.turn(START_COST)
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
        self.progress.declare(key, step.display_name + frame.suffix, step.type)
        self.progress.update(key, status, workflow.now(), error=error)
        if self.metrics is not None:
            state = self.progress.steps[key]
            self.metrics.step_ended(step.type, status, state.started_at, state.ended_at)
        if status not in ("running", "waiting") and frame.records:
            frame.context["steps"][step.id] = {"status": status, "output": output, "error": error}
        self._show()

    def _show(self) -> None:
        """Refresh the UI's details once per activation, however many steps changed.

        Every step change asks for it, and a wide level changes a thousand steps in
        one activation; the details are read only by a query, after the activation.
        """
        if not self.details_due:
            self.details_due = True
            asyncio.get_running_loop().call_soon(self._write_details)

    def _write_details(self) -> None:
        self.details_due = False
        workflow.set_current_details(self.progress.markdown(self.run_status, self.paused))

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
