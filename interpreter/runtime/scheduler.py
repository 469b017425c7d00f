"""Which steps of a scope are ready, and which of them are on a dead path.

Pure bookkeeping, no Temporal: the workflow tells `Readiness` when a step finishes
and gets back the steps that became ready. Each finish costs O(out-degree) — only
the finished step's dependents are touched; nothing rescans the graph — so a step
costs the same in a 10-node DAG and in a 10,000-node one.

Semantics (docs/language.md, "How a run executes"): a step is ready when all its prerequisites (dependencies and
any decision that targets it) have finished. A ready step is skipped when
- it is a decision target and no deciding decision chose it, or
- all its prerequisites were skipped (dead-path elimination).
Its ``when`` condition is for the workflow to evaluate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

__all__ = ["Finish", "Readiness"]

Finish = Literal["completed", "skipped", "failed"]
"""How a step ended, as far as its dependents care (failed = failed but continued)."""


class Readiness:
    """Readiness of one scope's steps; all iteration is in insertion (source) order."""

    def __init__(
        self,
        order: Sequence[str],
        prerequisites: Mapping[str, Sequence[str]],
        dependents: Mapping[str, Sequence[str]],
        decided_by: Mapping[str, Sequence[str]],
    ) -> None:
        self._dependents = dependents
        self._decided_by = decided_by
        self._waiting = {step: len(prerequisites[step]) for step in order}
        self._has_inputs = {step: waiting > 0 for step, waiting in self._waiting.items()}
        self._live = dict.fromkeys(order, 0)
        self._chosen = dict.fromkeys(order, False)
        self._roots = [step for step in order if self._waiting[step] == 0]

    def roots(self) -> list[str]:
        """Steps ready at the start."""
        return list(self._roots)

    def finish(self, step: str, how: Finish, chosen: Sequence[str] = ()) -> list[str]:
        """Record that `step` ended; returns its dependents that became ready.

        `chosen` are the targets a completed decision picked; its other targets see
        the edge as dead.
        """
        picked = set(chosen)
        ready = []
        for dependent in self._dependents.get(step, ()):
            if step in self._decided_by.get(dependent, ()):
                if how == "completed" and dependent in picked:
                    self._chosen[dependent] = True
                    self._live[dependent] += 1
            elif how != "skipped":
                self._live[dependent] += 1
            self._waiting[dependent] -= 1
            if self._waiting[dependent] == 0:
                ready.append(dependent)
        return ready

    def dead(self, step: str) -> bool:
        """Whether a ready step lies on a dead path and must be skipped."""
        if self._decided_by.get(step):
            return not self._chosen[step]
        return self._has_inputs[step] and self._live[step] == 0
