"""How a run continues as new, and how its continuation takes over (what is carried
and why: `interpreter.runtime.continuation`).

A mixin of `Interpreter` (interpreter.runtime.workflow); the annotations below name
what it relies on. Part of the replay-critical runtime.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from dsl.graph import WorkflowGraph
    from dsl.models import Definition, TaskStep
    from interpreter.contract import RunInput
    from interpreter.runtime.progress import Progress
    from interpreter.runtime.scheduler import Readiness

from interpreter.runtime.continuation import DEFAULT_HISTORY_LIMIT, Carried
from interpreter.runtime.gate import StartGate
from interpreter.runtime.loops import LoopCheckpoint
from interpreter.runtime.outcomes import Frame
from interpreter.runtime.signals import SignalBuffer

__all__ = ["Continuing"]


class Continuing:
    """Drains the top-level DAG when the history is long, and carries the run on."""

    definition: Definition
    graph: WorkflowGraph
    info: workflow.Info
    context: dict[str, Any]
    deadline: datetime | None
    progress: Progress
    gate: StartGate
    signals: SignalBuffer
    compensations: list[tuple[TaskStep, Frame, Any]]
    finished_main: list[list[Any]]
    finished_before: int
    loop_checkpoints: dict[str, LoopCheckpoint]
    may_continue: bool
    draining: bool
    run_status: str
    paused: bool
    _undo: Callable[[dict[str, Any] | None], Awaitable[None]]
    _finish_run: Callable[[str], None]
    _publish: Callable[[], None]

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
        self._publish()
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
