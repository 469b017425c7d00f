"""The `loop` step: its body, a nested DAG, once per iteration on the one start loop.

Each iteration walks the body with `_run_scope`, so pause, `max_concurrency`, the
start gate, fail-fast and cancellation apply inside as anywhere else; pause also holds
the next iteration's start. An iteration gets its own copy of ``steps`` (the
iteration's states over the run's), so ``steps.<inner id>`` is always the current
iteration's and nothing inside leaks out: after the loop only ``steps.<loop>.output``
is visible (`dsl.references`). ``vars`` are the run's, shared across iterations.

A **top-level** loop is what makes a run unbounded: between iterations it checks the
history like the top-level DAG does (`DslWorkflow._history_full`) and, when the run is
due to continue as new — or already draining for another step — it leaves a
checkpoint (`LoopCheckpoint`: the next iteration and the last one's states and
outputs), defers (the step counts as not finished), and the continued run starts the
loop again from the checkpoint. A loop elsewhere (in a branch, a foreach item,
another loop, on_failure) runs within one run's history, which is why validation caps
its `max_iterations` (`dsl.models.MAX_NESTED_LOOP_ITERATIONS`).

A mixin of `DslWorkflow`; part of the replay-critical runtime.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypedDict

from temporalio import workflow

from dsl.conditions import evaluate_condition
from dsl.graph import Scope, WorkflowGraph, loop_scope_key
from dsl.models import Definition, LoopStep
from interpreter.runtime.gate import Deferred, StartGate
from interpreter.runtime.outcomes import Frame, StepFailed
from interpreter.runtime.progress import Progress

__all__ = ["LoopCheckpoint", "Loops"]


class LoopCheckpoint(TypedDict):
    """Where a top-level loop stopped when its run continued as new (JSON)."""

    iteration: int
    """The next iteration to run."""
    steps: dict[str, Any]
    """The last iteration's step states, by inner step id."""
    last: dict[str, Any]
    """The last iteration's outputs of the body's completed steps (the step's `last`)."""


class Loops:
    """Runs `loop` steps; `_execute` dispatches here."""

    definition: Definition
    graph: WorkflowGraph
    context: dict[str, Any]
    gate: StartGate
    gated: bool
    draining: bool
    progress: Progress
    loop_checkpoints: dict[str, LoopCheckpoint]
    _run_scope: Callable[[Scope, Frame], Awaitable[dict[str, Any]]]
    _history_full: Callable[[], bool]
    _drain: Callable[[], None]
    _show: Callable[[], None]

    async def _loop(self, step: LoopStep, frame: Frame) -> dict[str, Any]:
        body = self.graph.scopes[loop_scope_key(step.id)]
        inside = self.graph.inside(step.id)
        top_level = frame.context is self.context and step.id in self.graph.main.steps
        resumed = self.loop_checkpoints.pop(step.id, None) if top_level else None
        iteration = resumed["iteration"] if resumed else 0
        states: dict[str, Any] = resumed["steps"] if resumed else {}
        last: dict[str, Any] = resumed["last"] if resumed else {}
        rules = self.definition.rules
        ran = 0  # iterations this run finished: a continuation must advance
        while True:
            steps = {**frame.context["steps"], **states}
            context = dict(frame.context, steps=steps, iteration=iteration)
            if step.while_ is not None and not evaluate_condition(step.while_, context, rules):
                break
            if iteration >= step.max_iterations:
                raise StepFailed(
                    step,
                    {
                        "type": "LoopLimit",
                        "message": f"loop {step.id!r} did not end within its "
                        f"max_iterations of {step.max_iterations}",
                    },
                )
            if top_level and (self.draining or (ran and self._history_full())):
                self.loop_checkpoints[step.id] = {
                    "iteration": iteration,
                    "steps": states,
                    "last": last,
                }
                self._drain()
                raise Deferred
            if iteration and step.delay is not None:
                summary = f"{frame.instance(step.id)}: before iteration {iteration}"
                await workflow.sleep(step.delay, summary=summary)
            if self.gated:
                await self.gate.unpaused()  # pause holds the next iteration
            self._mark_iteration(step, frame, iteration)
            inner = Frame(context, frame.suffix, f"{frame.tag}@{iteration}", own_steps=True)
            last = await self._run_scope(body, inner)
            states = {k: steps[k] for k in inside if k in steps}
            ran += 1
            if step.until is not None and evaluate_condition(step.until, context, rules):
                iteration += 1
                break
            iteration += 1
        if not iteration:
            self._never_ran(inside, frame)
        return {"iterations": iteration, "last": last}

    def _never_ran(self, inside: list[str], frame: Frame) -> None:
        """A loop whose `while` was false at once: its steps are skipped, not pending."""
        now = workflow.now()
        for step_id in inside:
            state = self.progress.steps.get(step_id + frame.suffix)
            if state is not None and state.status == "pending":
                self.progress.update(step_id + frame.suffix, "skipped", now)

    def _mark_iteration(self, step: LoopStep, frame: Frame, iteration: int) -> None:
        """The loop's status row names the iteration it is in (the UI, `tdsl status`)."""
        state = self.progress.steps.get(step.id + frame.suffix)
        if state is not None:
            base = state.name.split(" · iteration ")[0]
            state.name = f"{base} · iteration {iteration}"
            self._show()
