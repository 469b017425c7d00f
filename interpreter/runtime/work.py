"""What the one start loop (`DslWorkflow._drive`) runs: a DAG's steps, or a join's runs.

The loop owns concurrency — starting units, pause for DAG steps, `max_concurrency`,
continue-as-new draining, cancelling what still runs on failure or once a join is
met. A `Work` says only what comes next and what an outcome means: `take` the next
unit to start (None: nothing ready now), `settle` an outcome (raising `StepFailed`
when the work fails), `met` once nothing more is needed, `empty` when nothing is
left to start. Every unit's coroutine returns an `Outcome`.

Part of the replay-critical runtime: insertion-ordered collections only.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from dsl.graph import Scope
from dsl.models import JoinCount, Step
from interpreter.runtime.outcomes import Outcome, StepFailed, Tally
from interpreter.runtime.scheduler import Readiness

__all__ = ["DagWork", "JoinWork", "Unit", "Work"]

Unit = tuple[str, Callable[[], Awaitable[Outcome]]]
"""A key and the coroutine function that runs it."""


class Work(Protocol):
    def take(self) -> Unit | None: ...

    def settle(self, key: str, outcome: Outcome) -> None: ...

    def met(self) -> bool: ...

    def empty(self) -> bool: ...


class DagWork:
    """The steps of one scope, in readiness order; skips are settled as they are taken."""

    def __init__(
        self,
        scope: Scope,
        readiness: Readiness,
        ready: deque[str],
        outputs: dict[str, Any],
        *,
        skipped: Callable[[Step, Readiness], bool],
        run: Callable[[Step], Awaitable[Outcome]],
        finished: Callable[[str, Outcome], None],
    ) -> None:
        self.scope = scope
        self.readiness = readiness
        self.ready = ready
        self.outputs = outputs
        self._skipped = skipped
        self._run = run
        self._finished = finished

    def take(self) -> Unit | None:
        while self.ready:
            step = self.scope.steps[self.ready.popleft()]
            if self._skipped(step, self.readiness):
                self._finish(step.id, Outcome("skipped"))
                continue
            return step.id, functools.partial(self._run, step)
        return None

    def settle(self, key: str, outcome: Outcome) -> None:
        if outcome.deferred:
            self.ready.append(key)  # never started: the continuation starts it
            return
        step = self.scope.steps[key]
        if outcome.error is not None and not step.continue_on_error:
            raise StepFailed(outcome.culprit or step, outcome.error)
        if outcome.finish == "completed":
            self.outputs[key] = outcome.output
        self._finish(key, outcome)

    def _finish(self, key: str, outcome: Outcome) -> None:
        self.ready.extend(self.readiness.finish(key, outcome.finish, outcome.chosen))
        self._finished(key, outcome)

    def met(self) -> bool:
        return False  # a DAG ends when nothing runs and nothing is left

    def empty(self) -> bool:
        return not self.ready


class JoinWork:
    """Named runs (branches, foreach items, batches) until the join is met.

    Each run counts as one success, or one failure if it ended failed. With *tally*
    (foreach batches), a run's output says how many of the *total* items it stood
    for succeeded and failed; a run that fails then fails the join at once.
    """

    def __init__(
        self,
        runs: dict[str, Callable[[], Awaitable[Outcome]]],
        join: Any,
        *,
        total: int | None = None,
        tally: Tally | None = None,
    ) -> None:
        self.runs = runs
        self.total = len(runs) if total is None else total
        needed = self.total if join == "all" else 1 if join == "any" else join.count
        if isinstance(join, JoinCount):
            needed = min(join.count, self.total)
        self.needed = needed
        self.tally = tally
        self.pending = deque(runs)
        self.results: dict[str, Any] = {}
        self.failures: list[StepFailed] = []
        self.succeeded = self.failed = 0

    def take(self) -> Unit | None:
        if not self.pending:
            return None
        name = self.pending.popleft()
        return name, self.runs[name]

    def settle(self, key: str, outcome: Outcome) -> None:
        failure = None
        if outcome.error is None:
            self.results[key] = outcome.output
            if self.tally is None:
                self.succeeded += 1
                return
            gained, lost, failure = self.tally(outcome.output)
            self.succeeded, self.failed = self.succeeded + gained, self.failed + lost
            if failure is None:
                return
        else:
            assert outcome.culprit is not None
            failure = StepFailed(outcome.culprit, outcome.error)
            if self.tally is not None:
                raise failure  # a batch itself failed, not one of its items
            self.failed += 1
        self.failures.append(failure)
        if self.total - self.failed < self.needed:
            raise self.failures[0]

    def met(self) -> bool:
        return self.succeeded >= self.needed

    def empty(self) -> bool:
        return not self.pending

    def ordered(self) -> dict[str, Any]:
        """The results, in the order the runs were given."""
        return {name: self.results[name] for name in self.runs if name in self.results}
