"""The one generic workflow: runs any definition by walking its DAG.

Each scope (top level, a parallel branch) is walked by `_run_scope`: ready steps
start as asyncio tasks at once, each reports into the scope's completion queue, and
a finished step makes only its own dependents ready (`Readiness`), so a step costs
the same whatever the size of the DAG. Pause holds new starts; cancellation and
fail-fast cancel the running steps of the scope.

Deterministic by construction: no clocks but `workflow.now()`, no randomness, no
I/O, and every collection iterated here is insertion-ordered.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, SearchAttributePair, TypedSearchAttributes
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    FailureError,
    TimeoutError,
)
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from dsl.conditions import condition_vars, evaluate_condition
    from dsl.errors import ExpressionError, InputError
    from dsl.graph import Scope, branch_scope_key, build_graph
    from dsl.inputs import prepare_input
    from dsl.models import (
        DecisionStep,
        Definition,
        FailStep,
        ForeachStep,
        JoinCount,
        ParallelStep,
        RetryPolicy,
        SetStep,
        SignalStep,
        Step,
        SubworkflowStep,
        TaskStep,
        WaitStep,
    )
    from dsl.policies import StepSettings, base_settings, step_settings
    from dsl.templates import find_templates, render
    from interpreter.contract import (
        CANCEL_RUN_ACTIVITY,
        CANCEL_SIGNAL,
        DSL_NAME,
        DSL_VERSION,
        OUTPUTS_QUERY,
        PAUSE_SIGNAL,
        RESUME_SIGNAL,
        STATUS_QUERY,
        WORKFLOW_NAME,
        RunInput,
        StepStatus,
    )
    from interpreter.runtime.progress import Progress
    from interpreter.runtime.scheduler import Finish, Readiness

__all__ = ["PASSTHROUGH_MODULES", "DslWorkflow"]

PASSTHROUGH_MODULES = (
    "dsl",
    "interpreter.contract",
    "interpreter.runtime.progress",
    "interpreter.runtime.scheduler",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "networkx",
    "json_logic",
    "jsonschema",
    "jsonschema_specifications",
    "referencing",
    "rpds",
    "ruamel",
)
"""Pure modules the sandbox may share between runs instead of re-importing per run."""

_WAKE = ("", None)

SAGA_PATCH = "compensation-and-on-failure"
"""Runs started before compensation existed replay without it (workflow.patched)."""
INPUT_MUST_BE_OBJECT = "run-input-is-an-object"
"""Runs started before a run's input had to be a JSON object replay without the check."""
FOREACH_BATCH_THRESHOLD = 200
"""A foreach over more items runs them in child workflows, one batch per child, so no
single history nears Temporal's limits (51,200 events, 2,000 pending activities)."""
FOREACH_BATCH_SIZE = 200
FOREACH_PARALLEL_BATCHES = 10
"""Batches running at once when the foreach sets no max_concurrency."""


class StepFailed(Exception):
    """A step failed and nothing absorbed it; carries the innermost failing step."""

    def __init__(self, step: Step, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.step = step
        self.error = error

    def to_application_error(self) -> ApplicationError:
        """The run's failure: names the step and carries the step's error."""
        if isinstance(self.step, FailStep):
            message = self.error["message"]
        else:
            name = f" ({self.step.name})" if self.step.name else ""
            message = f"step {self.step.id!r}{name} failed: {self.error['message']}"
        return ApplicationError(
            message,
            {"step": self.step.id, "error": self.error},
            type=self.error.get("type") or "StepFailed",
            non_retryable=True,
        )


@dataclass(frozen=True)
class _Frame:
    """Where a step runs: the template context and, in a foreach, the instance suffix."""

    context: dict[str, Any]
    suffix: str = ""


@dataclass(frozen=True)
class _Outcome:
    finish: Finish
    output: Any = None
    error: dict[str, Any] | None = None
    chosen: tuple[str, ...] = ()
    culprit: Step | None = None
    """The innermost step that failed (a nested step, for a parallel or foreach)."""


@workflow.defn(name=WORKFLOW_NAME)
class DslWorkflow:
    """Interprets the definition in its input; one workflow type for every definition."""

    @workflow.init
    def __init__(self, run: RunInput) -> None:
        self.paused = False
        self.run_status = "RUNNING"
        self.signals: dict[str, deque[Any]] = {}
        self.signal_waiters: dict[str, deque[asyncio.Future[Any]]] = {}
        self.wakeups: list[asyncio.Queue[tuple[str, _Outcome | None]]] = []
        self.invalid: str | None = None
        self.cancel_requested = False
        self.compensations: list[tuple[TaskStep, _Frame, Any]] = []
        self.settings: dict[str, StepSettings] = {}
        self.base_settings: StepSettings | None = None
        self.index_offset = 0
        try:
            self.definition = Definition.model_validate(run.definition)
        except ValueError as exc:
            self.invalid = f"the definition in the run input is invalid: {exc}"
            self.definition = Definition(
                name="invalid", steps=[FailStep(id="invalid", type="fail", message="")]
            )
        self.graph, problems = build_graph(self.definition)
        if problems and self.invalid is None:
            self.invalid = "; ".join(p.message for p in problems)
        self.subworkflows = run.subworkflows
        self.latest = run.latest
        self.definition_hash = run.definition_hash
        info = workflow.info()
        self.context: dict[str, Any] = {
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
        self.progress = Progress(title=f"{self.definition.name} {self.definition.version}")
        self._declare(self.graph.main, depth=0)

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

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, run: RunInput) -> Any:
        if self.invalid is not None:
            raise ApplicationError(self.invalid, type="InvalidDefinition", non_retryable=True)
        try:
            self.context["input"] = prepare_input(
                self.definition.input,
                run.input,
                # Runs started before inputs had to be objects keep their leniency.
                require_object=workflow.patched(INPUT_MUST_BE_OBJECT),
            )
        except InputError as exc:
            raise ApplicationError(str(exc), type="InvalidInput", non_retryable=True) from None
        self._show()
        try:
            outputs = await self._run_scope(self.graph.main, _Frame(self.context))
            result = self._output(outputs)
        except StepFailed as failure:
            error = failure.to_application_error()
            await self._undo(
                {"step": failure.step.id, "type": error.type, "message": error.message}
            )
            self._finish_run("FAILED")
            raise error from None
        except asyncio.CancelledError:
            _uncancel()  # let compensation activities run; the run still ends CANCELED
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

    # ------------------------------------------------------------------ saga

    async def _undo(self, error: dict[str, Any] | None) -> None:
        """Compensate completed tasks in reverse completion order, then run on_failure.

        A compensation that fails is recorded and the others still run; on_failure runs
        only for a failed run (not a cancelled one) and cannot change the run's error.
        """
        on_failure = self.graph.on_failure.steps if error is not None else {}
        if not (self.compensations or on_failure) or not workflow.patched(SAGA_PATCH):
            return
        for step, frame, output in reversed(self.compensations):
            await self._compensate(step, frame, output)
        if on_failure:
            self.context["run"]["error"] = error
            self._declare(self.graph.on_failure, depth=0)
            with contextlib.suppress(StepFailed):
                await self._run_scope(self.graph.on_failure, _Frame(self.context))

    async def _compensate(self, step: TaskStep, frame: _Frame, output: Any) -> None:
        assert step.compensate is not None
        key = f"{step.id}{frame.suffix}.compensate"
        self.progress.declare(key, f"undo {step.display_name}{frame.suffix}", "compensation")
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
                retry_policy=_temporal_retry(settings.retry_policy),
                summary=f"{key}: undo {step.display_name}",
            )
        except ExpressionError as exc:
            failure = {"type": "ExpressionError", "message": str(exc)}
        except FailureError as exc:
            failure = _describe_failure(exc)
        else:
            self.progress.update(key, "completed", workflow.now(), attempts=1)
            self._show()
            return
        self.progress.update(key, "failed", workflow.now(), error=failure, attempts=1)
        self._show()

    def _output(self, outputs: dict[str, Any]) -> Any:
        if self.definition.output is None:
            return outputs
        return render(self.definition.output, self.context)

    def _finish_run(self, status: str) -> None:
        self.run_status = status
        self._show()

    # ------------------------------------------------------------------ control

    @workflow.signal(name=PAUSE_SIGNAL)
    def pause(self) -> None:
        """No new step starts; running ones finish."""
        self.paused = True
        self._show()

    @workflow.signal(name=RESUME_SIGNAL)
    def resume(self) -> None:
        self.paused = False
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

    @workflow.signal(dynamic=True)
    def deliver(self, name: str, args: Sequence[RawValue]) -> None:
        """Any other signal: a payload for a `signal` step, kept until one asks for it."""
        payload = workflow.payload_converter().from_payload(args[0].payload) if args else None
        waiters = self.signal_waiters.get(name)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(payload)
                return
        self.signals.setdefault(name, deque()).append(payload)

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

    async def _run_scope(self, scope: Scope, frame: _Frame) -> dict[str, Any]:
        """Walk one DAG to the end; raises StepFailed on the first unabsorbed failure."""
        readiness = Readiness(
            scope.order,
            {s: scope.prerequisites(s) for s in scope.order},
            {s: scope.dependents(s) for s in scope.order},
            self.graph.decided_by,
        )
        queue: asyncio.Queue[tuple[str, _Outcome | None]] = asyncio.Queue()
        self.wakeups.append(queue)
        running: dict[str, asyncio.Task[None]] = {}
        ready = deque(readiness.roots())
        outputs: dict[str, Any] = {}
        try:
            while True:
                while ready and not self.paused:
                    step = scope.steps[ready.popleft()]
                    if self._skipped(step, readiness, frame):
                        ready.extend(readiness.finish(step.id, "skipped"))
                    else:
                        running[step.id] = asyncio.create_task(self._run_step(step, frame, queue))
                if not running and not ready:
                    return outputs
                step_id, outcome = await queue.get()
                if outcome is None:
                    continue  # resumed
                running.pop(step_id)
                if outcome.error is not None and not scope.steps[step_id].continue_on_error:
                    raise StepFailed(outcome.culprit or scope.steps[step_id], outcome.error)
                if outcome.finish == "completed":
                    outputs[step_id] = outcome.output
                ready.extend(readiness.finish(step_id, outcome.finish, outcome.chosen))
        except GeneratorExit:
            raise  # evicted from the worker's cache: nothing may be awaited any more
        except BaseException:
            await _cancel_all(running)  # fail-fast or cancellation: stop the siblings
            raise
        finally:
            self.wakeups.remove(queue)

    def _skipped(self, step: Step, readiness: Readiness, frame: _Frame) -> bool:
        """Dead path or a false `when`: record the skip and say so."""
        skip = readiness.dead(step.id)
        if not skip and step.when is not None:
            try:
                skip = not evaluate_condition(step.when, frame.context, self.definition.rules)
            except ExpressionError:
                skip = False  # evaluated again in _run_step, where it fails the step
        if skip:
            self._record(step, frame, "skipped")
        return skip

    async def _run_step(
        self, step: Step, frame: _Frame, queue: asyncio.Queue[tuple[str, _Outcome | None]]
    ) -> None:
        """Run one step and report how it ended into its scope's queue."""
        self._record(step, frame, "running")
        culprit: Step = step
        try:
            if step.when is not None:
                evaluate_condition(step.when, frame.context, self.definition.rules)
            output = await self._execute(step, frame)
        except asyncio.CancelledError:
            self._record(step, frame, "cancelled")
            raise
        except StepFailed as failure:
            error, culprit = failure.error, failure.step
        except ExpressionError as exc:
            error = {"type": "ExpressionError", "message": str(exc)}
        except FailureError as exc:
            if _being_cancelled():
                self._record(step, frame, "cancelled")
                raise asyncio.CancelledError from exc
            error = _describe_failure(exc)
        else:
            self._record(step, frame, "completed", output=output)
            if isinstance(step, TaskStep) and step.compensate is not None:
                self.compensations.append((step, frame, output))
            chosen = tuple(output["chosen"]) if isinstance(step, DecisionStep) else ()
            queue.put_nowait((step.id, _Outcome("completed", output, chosen=chosen)))
            return
        self._record(step, frame, "failed", error=error)
        queue.put_nowait((step.id, _Outcome("failed", error=error, culprit=culprit)))

    def _record(
        self,
        step: Step,
        frame: _Frame,
        status: StepStatus,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        key = step.id + frame.suffix
        self.progress.declare(key, step.display_name + frame.suffix, step.type)
        self.progress.update(key, status, workflow.now(), error=error)
        if status != "running" and not frame.suffix:
            frame.context["steps"][step.id] = {"status": status, "output": output, "error": error}
        self._show()

    def _show(self) -> None:
        workflow.set_current_details(self.progress.markdown(self.run_status, self.paused))

    # ------------------------------------------------------------------ step types

    async def _execute(self, step: Step, frame: _Frame) -> Any:
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
        if isinstance(step, WaitStep):
            return await self._wait(step, frame)
        if isinstance(step, SignalStep):
            return await self._signal(step)
        if isinstance(step, SetStep):
            values = render(step.values, frame.context)
            assert isinstance(values, dict)
            self.context["vars"].update(values)
            return values
        message = render(step.message, frame.context)
        raise StepFailed(step, {"type": step.error_type, "message": str(message)})

    async def _task(self, step: TaskStep, frame: _Frame) -> Any:
        settings = self._settings(step)
        parameters = render(step.parameters, frame.context)
        options: dict[str, Any] = {
            "activity_id": step.id + frame.suffix,
            "start_to_close_timeout": settings.timeout,
            "schedule_to_close_timeout": step.schedule_to_close_timeout,
            "retry_policy": _temporal_retry(settings.retry_policy),
            "summary": _summary(step, frame),
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

    def _decision(self, step: DecisionStep, frame: _Frame) -> dict[str, Any]:
        chosen: list[str] = []
        for branch in step.branches:
            if evaluate_condition(branch.when, frame.context, self.definition.rules):
                chosen += [target for target in branch.next if target not in chosen]
                if step.mode == "first":
                    break
        if not chosen:
            chosen = list(step.default)
        return {"chosen": chosen}

    async def _parallel(self, step: ParallelStep, frame: _Frame) -> dict[str, Any]:
        branches = {
            branch.name: self.graph.scopes[branch_scope_key(step.id, branch.name)]
            for branch in step.branches
        }
        runs = {
            name: (lambda scope=scope: self._run_scope(scope, frame))
            for name, scope in branches.items()
        }
        return await self._join(runs, step.join, step.max_concurrency)

    async def _foreach(self, step: ForeachStep, frame: _Frame) -> list[Any]:
        items = render(step.items, frame.context)
        if not isinstance(items, list):
            raise StepFailed(
                step, {"type": "ExpressionError", "message": f"items is not a list but {items!r}"}
            )
        if len(items) > FOREACH_BATCH_THRESHOLD and step.join == "all":
            return await self._foreach_batches(step, frame, items)
        body = step.step
        offset = self.index_offset if frame.suffix == "" else 0

        async def one(index: int, item: Any) -> Any:
            context = dict(frame.context, item=item, index=index)
            inner = _Frame(context, f"{frame.suffix}[{index}]")
            outcome_queue: asyncio.Queue[tuple[str, _Outcome | None]] = asyncio.Queue()
            await self._run_step(body, inner, outcome_queue)
            _, outcome = outcome_queue.get_nowait()
            assert outcome is not None
            if outcome.error is not None:
                raise StepFailed(outcome.culprit or body, outcome.error)
            return outcome.output

        runs = {
            str(i): (lambda i=i, item=item: one(offset + i, item)) for i, item in enumerate(items)
        }
        results = await self._join(runs, step.join, step.max_concurrency)
        return [results.get(str(i)) for i in range(len(items))]

    async def _foreach_batches(
        self, step: ForeachStep, frame: _Frame, items: list[Any]
    ) -> list[Any]:
        """Many items: one child workflow per batch, a bounded number at once, outputs in order."""
        size = FOREACH_BATCH_SIZE
        batches = [items[start : start + size] for start in range(0, len(items), size)]
        limit = step.max_concurrency
        per_child = min(limit or size, size)
        at_once = max(1, limit // size) if limit else FOREACH_PARALLEL_BATCHES
        seed = self._batch_seed(step, frame)
        runs = {
            str(k): (
                lambda k=k, batch=batch: self._run_batch(step, frame, k, batch, per_child, seed)
            )
            for k, batch in enumerate(batches)
        }
        results = await self._join(runs, "all", at_once)
        return [output for k in range(len(batches)) for output in results[str(k)]]

    def _batch_seed(self, step: ForeachStep, frame: _Frame) -> dict[str, Any]:
        """What a batch child needs from this run: the upstream outputs its body reads, vars."""
        body = step.step.model_dump(mode="json", exclude_none=True)
        named = {
            ref.path[1]
            for ref in find_templates(body)
            if ref.path[:1] == ("steps",) and len(ref.path) > 1
        }
        named |= {
            path[1]
            for path in condition_vars(body.get("when"))
            if path[:1] == ("steps",) and len(path) > 1
        }
        steps = {k: v for k, v in frame.context["steps"].items() if k in named}
        return {"steps": steps, "vars": dict(frame.context["vars"])}

    async def _run_batch(
        self,
        step: ForeachStep,
        frame: _Frame,
        k: int,
        batch: list[Any],
        per_child: int,
        seed: dict[str, Any],
    ) -> list[Any]:
        start = k * FOREACH_BATCH_SIZE + self.index_offset
        key = f"{step.id}{frame.suffix}#batch-{k}"
        self.progress.declare(
            key, f"{step.display_name}: items {start}-{start + len(batch) - 1}", "batch"
        )
        self.progress.update(key, "running", workflow.now())
        definition = self.definition.model_dump(mode="json", exclude_none=True)
        definition.pop("input", None)
        definition.update(
            description=f"items {start}-{start + len(batch) - 1} of {step.id}",
            steps=[
                {
                    "id": step.id,
                    "type": "foreach",
                    "items": batch,
                    "max_concurrency": per_child,
                    "step": step.step.model_dump(mode="json", exclude_none=True),
                }
            ],
            output="${{ steps." + step.id + ".output }}",
            on_failure=[],
            triggers=[],
        )
        info = workflow.info()
        try:
            output = await workflow.execute_child_workflow(
                WORKFLOW_NAME,
                RunInput(
                    definition=definition,
                    input=self.context["input"],
                    subworkflows=self.subworkflows,
                    latest=self.latest,
                    batch={**seed, "index_offset": start},
                ),
                id=f"{info.workflow_id}/{key.replace('#', '/')}",
                task_queue=info.task_queue,
                search_attributes=self._child_attributes(
                    self.definition.name, self.definition.version
                ),
                static_summary=f"{step.id}: items {start}-{start + len(batch) - 1}",
            )
        except FailureError as exc:
            error = _describe_failure(exc)
            self.progress.update(key, "failed", workflow.now(), error=error)
            raise StepFailed(step.step, error) from None
        except asyncio.CancelledError:
            self.progress.update(key, "cancelled", workflow.now())
            raise
        self.progress.update(key, "completed", workflow.now())
        self._show()
        return list(output)

    def _child_attributes(self, name: str, version: str) -> TypedSearchAttributes | None:
        """Children are searchable like their parent when the namespace has the attributes."""
        if workflow.info().typed_search_attributes.get(DSL_NAME) is None:
            return None
        return TypedSearchAttributes(
            [SearchAttributePair(DSL_NAME, name), SearchAttributePair(DSL_VERSION, version)]
        )

    async def _join(self, runs: dict[str, Any], join: Any, limit: int | None) -> dict[str, Any]:
        """Run named coroutines concurrently until the join is met; cancel the rest."""
        needed = len(runs) if join == "all" else 1 if join == "any" else join.count
        if isinstance(join, JoinCount):
            needed = min(join.count, len(runs))
        results: dict[str, Any] = {}
        done: asyncio.Queue[tuple[str, Any, StepFailed | None]] = asyncio.Queue()
        pending = deque(runs)
        running: dict[str, asyncio.Task[None]] = {}
        failures: list[StepFailed] = []

        async def track(name: str) -> None:
            try:
                done.put_nowait((name, await runs[name](), None))
            except StepFailed as failure:
                done.put_nowait((name, None, failure))

        try:
            while len(results) < needed:
                while pending and (limit is None or len(running) < limit):
                    name = pending.popleft()
                    running[name] = asyncio.create_task(track(name))
                if not running:
                    break
                name, value, failure = await done.get()
                running.pop(name)
                if failure is None:
                    results[name] = value
                    continue
                failures.append(failure)
                if len(runs) - len(failures) < needed:
                    raise failures[0]
        except GeneratorExit:
            raise  # evicted from the worker's cache: nothing may be awaited any more
        except BaseException:
            await _cancel_all(running)
            raise
        await _cancel_all(running)  # the join is met: the rest are not needed
        order = list(runs)
        return dict(sorted(results.items(), key=lambda kv: order.index(kv[0])))

    async def _subworkflow(self, step: SubworkflowStep, frame: _Frame) -> Any:
        version = step.version or self.latest.get(step.workflow, "")
        child = self.subworkflows.get(f"{step.workflow}@{version}")
        if child is None:
            raise StepFailed(
                step,
                {
                    "type": "NotFound",
                    "message": f"{step.workflow} {version} is not in this run's bundle",
                },
            )
        child_input = RunInput(
            definition=child,
            input=render(step.input, frame.context),
            subworkflows=self.subworkflows,
            latest=self.latest,
        )
        info = workflow.info()
        name, child_version = str(child.get("name")), str(child.get("version", "1.0.0"))
        attributes = self._child_attributes(name, child_version)
        handle = await workflow.start_child_workflow(
            WORKFLOW_NAME,
            child_input,
            id=f"{info.workflow_id}/{step.id}{frame.suffix}",
            task_queue=step.task_queue or info.task_queue,
            run_timeout=step.timeout,
            parent_close_policy=ParentClosePolicy.TERMINATE
            if step.wait
            else ParentClosePolicy.ABANDON,
            memo={"dsl_name": name, "dsl_version": child_version},
            search_attributes=attributes,
            static_summary=f"{step.id}: {name} {child_version}",
        )
        if not step.wait:
            return {"workflow_id": handle.id, "run_id": handle.first_execution_run_id}
        return await handle

    async def _wait(self, step: WaitStep, frame: _Frame) -> dict[str, Any]:
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
        buffered = self.signals.get(step.signal)
        if buffered:
            return buffered.popleft()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.signal_waiters.setdefault(step.signal, deque()).append(waiter)
        timeout = step.timeout.total_seconds() if step.timeout is not None else None
        try:
            return await asyncio.wait_for(waiter, timeout)
        except builtins.TimeoutError:
            raise StepFailed(
                step,
                {
                    "type": "SignalTimeout",
                    "message": f"no signal {step.signal!r} within {timeout:g}s",
                },
            ) from None


async def _cancel_all(tasks: dict[str, asyncio.Task[None]]) -> None:
    """Cancel still-running steps and let them record their cancellation."""
    for task in tasks.values():
        task.cancel()
    for task in tasks.values():
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _uncancel() -> None:
    """Forget a delivered cancellation so cleanup can await; the caller re-raises it."""
    task = asyncio.current_task()
    if task is not None:
        while task.cancelling():
            task.uncancel()


def _being_cancelled() -> bool:
    """Whether the current task was asked to stop (then an activity's cancellation is ours)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _summary(step: Step, frame: _Frame) -> str:
    return f"{step.id}{frame.suffix}: {step.display_name}"


def _temporal_retry(policy: RetryPolicy) -> TemporalRetryPolicy:
    return TemporalRetryPolicy(
        initial_interval=policy.initial_interval or timedelta(seconds=1),
        backoff_coefficient=policy.backoff_coefficient or 2.0,
        maximum_interval=policy.maximum_interval,
        maximum_attempts=policy.maximum_attempts or 0,
        non_retryable_error_types=policy.non_retryable_error_types,
    )


def _describe_failure(exc: BaseException) -> dict[str, Any]:
    """The innermost cause of an activity or child failure, as the step's error."""
    cause: BaseException = exc
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return {"type": cause.type or "ApplicationError", "message": cause.message}
    if isinstance(cause, TimeoutError):
        return {
            "type": "Timeout",
            "message": f"timed out ({cause.type.name if cause.type else 'unknown'})",
        }
    if isinstance(cause, FailureError):
        return {"type": type(cause).__name__, "message": cause.message}
    return {"type": type(cause).__name__, "message": str(cause)}
