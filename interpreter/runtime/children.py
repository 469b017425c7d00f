"""Steps that run as child workflows: subworkflows, and the batches of a large foreach.

A mixin of `DslWorkflow` (interpreter.runtime.workflow); the annotations below name
the state and scheduling it relies on. Part of the replay-critical runtime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import FailureError
from temporalio.workflow import ParentClosePolicy

from dsl.batches import batch_definition, steps_read_by
from dsl.graph import WorkflowGraph
from dsl.models import DEFAULT_VERSION, Definition, ForeachStep, JoinCount, SubworkflowStep
from dsl.templates import render
from interpreter.contract import (
    DSL_NAME,
    DSL_VERSION,
    MEMO_NAME,
    MEMO_VERSION,
    WORKFLOW_NAME,
    RunInput,
    StepStatus,
)
from interpreter.runtime.cancellation import Stops
from interpreter.runtime.clock import step_clock
from interpreter.runtime.outcomes import Frame, StepFailed, describe_failure
from interpreter.runtime.progress import Progress

__all__ = ["FOREACH_BATCH_SIZE", "FOREACH_PARALLEL_BATCHES", "ChildWorkflows"]

FOREACH_BATCH_SIZE = 200
FOREACH_PARALLEL_BATCHES = 10
"""Batches running at once when the foreach sets no max_concurrency."""


class ChildWorkflows:
    """Child workflows of the interpreter itself: same type, pinned definitions."""

    definition: Definition
    context: dict[str, Any]
    subworkflows: dict[str, Any]
    """``name@version`` → the definition (`DslWorkflow`) or its hash (by type)."""
    latest: dict[str, str]
    index_offset: int
    progress: Progress
    graph: WorkflowGraph
    stops: Stops
    _join: Callable[..., Awaitable[dict[str, Any]]]
    _show: Callable[[], None]

    async def _foreach_batches(
        self, step: ForeachStep, frame: Frame, items: list[Any]
    ) -> list[Any]:
        """Many items: one child workflow per batch, a bounded number at once, outputs in order.

        With `join: all` a batch fails at its first failed item, and the foreach with
        it. With `any` or `count`, each batch runs all its items and reports how each
        ended; the join counts items across batches and cancels the batches still
        running once it is met (so it is decided batch by batch: every item of the
        batch that met it ran). The output then holds the first *count* completed
        items' outputs by index, `null` elsewhere, as without batches.
        """
        size = FOREACH_BATCH_SIZE
        batches = [items[start : start + size] for start in range(0, len(items), size)]
        limit = step.max_concurrency
        per_child = min(limit or size, size)
        at_once = max(1, limit // size) if limit else FOREACH_PARALLEL_BATCHES
        counted = step.join != "all"
        seed = self._batch_seed(step, frame)
        if counted:
            seed["tolerant"] = True
        runs = {
            str(k): (
                lambda k=k, batch=batch: self._run_batch(step, frame, k, batch, per_child, seed)
            )
            for k, batch in enumerate(batches)
        }
        if not counted:
            results = await self._join(runs, "all", at_once)
            return [output for k in range(len(batches)) for output in results[str(k)]]
        results = await self._join(
            runs,
            step.join,
            at_once,
            total=len(items),
            tally=self._batch_tally,
            keep_remaining=not step.cancel_remaining,
        )
        needed = min(step.join.count, len(items)) if isinstance(step.join, JoinCount) else 1
        outputs: list[Any] = [None] * len(items)
        kept = 0
        for k in range(len(batches)):
            for offset, entry in enumerate(results.get(str(k), ())):
                if kept < needed and isinstance(entry, dict) and "output" in entry:
                    outputs[k * size + offset] = entry["output"]
                    kept += 1
        return outputs

    def _batch_tally(self, entries: Any) -> tuple[int, int, StepFailed | None]:
        """(completed, failed, first failure) of one tolerant batch's items."""
        succeeded = failed = 0
        first: StepFailed | None = None
        for entry in entries:
            if isinstance(entry, dict) and "output" in entry:
                succeeded += 1
            elif isinstance(entry, dict) and "error" in entry:
                failed += 1
                if first is None:
                    culprit = self.graph.step(str(entry["step"]))
                    first = StepFailed(culprit, entry["error"])
        return succeeded, failed, first

    def _batch_seed(self, step: ForeachStep, frame: Frame) -> dict[str, Any]:
        """What a batch child needs from this run: the upstream outputs its body reads, vars."""
        named = steps_read_by(step)
        steps = {k: v for k, v in frame.context["steps"].items() if k in named}
        return {"steps": steps, "vars": dict(frame.context["vars"])}

    async def _run_batch(
        self,
        step: ForeachStep,
        frame: Frame,
        k: int,
        batch: list[Any],
        per_child: int,
        seed: dict[str, Any],
    ) -> list[Any]:
        start = k * FOREACH_BATCH_SIZE + self.index_offset
        key = f"{step.id}{frame.suffix}#batch-{k}"
        instance = f"{frame.instance(step.id)}#batch-{k}"
        self.progress.declare(
            key, f"{step.display_name}: items {start}-{start + len(batch) - 1}", "batch"
        )
        self.progress.update(key, "running", step_clock())
        info = workflow.info()
        workflow_type, args, memo = self._batch_call(
            step, batch, {**seed, "index_offset": start}, per_child
        )
        try:
            output = await workflow.execute_child_workflow(
                workflow_type,
                args=args,
                memo=memo,
                id=f"{info.workflow_id}/{instance.replace('#', '/')}",
                task_queue=info.task_queue,
                search_attributes=self._child_attributes(
                    self.definition.name, self.definition.version
                ),
                static_summary=f"{step.id}: items {start}-{start + len(batch) - 1}",
            )
        except FailureError as exc:
            error = describe_failure(exc)
            # A batch cancelled with its run comes back as a child failure: say cancelled.
            # (Only the status changes; the run goes on exactly as before.)
            ended: StepStatus = "cancelled" if self.stops.ours(exc) else "failed"
            self.progress.update(
                key, ended, step_clock(), error=None if ended == "cancelled" else error
            )
            raise StepFailed(step.step, error) from None
        except asyncio.CancelledError:
            self.progress.update(key, "cancelled", step_clock())
            raise
        self.progress.update(key, "completed", step_clock())
        self._show()
        return list(output)

    def _batch_call(
        self, step: ForeachStep, items: list[Any], seed: dict[str, Any], per_child: int
    ) -> tuple[str, list[Any], dict[str, Any] | None]:
        """(workflow type, arguments, memo) of one batch child: the interpreter with the
        batch's own definition in its input (`batch_definition`)."""
        definition = batch_definition(
            self.definition,
            step,
            items,
            first_index=int(seed["index_offset"]),
            max_concurrency=per_child,
        )
        run = RunInput(
            definition=definition,
            input=self.context["input"],
            subworkflows=self.subworkflows,
            latest=self.latest,
            batch=seed,
        )
        return WORKFLOW_NAME, [run.to_json()], None

    def _subworkflow_call(
        self, step: SubworkflowStep, child_input: Any
    ) -> tuple[str, list[Any], str, str]:
        """(workflow type, arguments, name, version) of a subworkflow step's child: the
        interpreter with the child's definition, from this run's bundle, in its input."""
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
        run = RunInput(
            definition=child,
            input=child_input,
            subworkflows=self.subworkflows,
            latest=self.latest,
        )
        name, child_version = str(child.get("name")), str(child.get("version", DEFAULT_VERSION))
        return WORKFLOW_NAME, [run.to_json()], name, child_version

    def _child_memo(self, step: SubworkflowStep) -> dict[str, str]:
        """More of a child's memo: nothing here (children by type add their hash)."""
        return {}

    def _searchable(self) -> bool:
        """Whether the namespace has the search attributes (this run has them)."""
        return workflow.info().typed_search_attributes.get(DSL_NAME) is not None

    def _child_attributes(self, name: str, version: str) -> TypedSearchAttributes | None:
        """Children are searchable like their parent when the namespace has the attributes."""
        if not self._searchable():
            return None
        return TypedSearchAttributes(
            [SearchAttributePair(DSL_NAME, name), SearchAttributePair(DSL_VERSION, version)]
        )

    async def _subworkflow(self, step: SubworkflowStep, frame: Frame) -> Any:
        workflow_type, args, name, child_version = self._subworkflow_call(
            step, render(step.input, frame.context)
        )
        info = workflow.info()
        attributes = self._child_attributes(name, child_version)
        memo = {MEMO_NAME: name, MEMO_VERSION: child_version, **self._child_memo(step)}
        handle = await workflow.start_child_workflow(
            workflow_type,
            args=args,
            id=f"{info.workflow_id}/{frame.instance(step.id)}",
            task_queue=step.task_queue or info.task_queue,
            run_timeout=step.timeout,
            parent_close_policy=ParentClosePolicy.TERMINATE
            if step.wait
            else ParentClosePolicy.ABANDON,
            memo=memo,
            search_attributes=attributes,
            static_summary=f"{step.id}: {name} {child_version}",
        )
        if not step.wait:
            return {"workflow_id": handle.id, "run_id": handle.first_execution_run_id}
        return await handle
