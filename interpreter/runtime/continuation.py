"""Continue-as-new: when a run continues, and what it carries into its continuation.

A run's history must never near Temporal's limits, however many steps the run takes
(docs/language.md, "Unbounded runs"). So once its history reaches the definition's
`history_limit` (else `DEFAULT_HISTORY_LIMIT`), or Temporal suggests it, the top-level
DAG drains: no new top-level step starts, those waiting for a start-gate slot are
deferred (they never started), and the running ones finish — with everything inside
them (a top-level `loop` stops between two iterations: `interpreter.runtime.loops`).
Then the run continues as new with the same input plus a `Carried` state, and
the continuation goes on where it stopped, as one logical run: same workflow id, the
first run's `run.run_id` and `run.start_time`, the same deadline, every step's status.

The continuation's `RunInput.input` is the input as the first run prepared it
(defaults filled in, checked), so it is not prepared again. What is carried is
exactly what the rest of the run can observe: the outputs and
statuses of finished steps (templates, conditions, the output), `vars`, signals that
arrived but no step took yet, the compensations still owed, the status rows, pause,
and how the top-level steps finished (so readiness is rebuilt, not re-run). A step
inside a top-level step never spans two runs: a `parallel` or `foreach` finishes in
the run that started it, and so does each iteration of a loop.

Part of the replay-critical runtime: pure data and pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["DEFAULT_HISTORY_LIMIT", "Carried", "ContinueAsNew"]

DEFAULT_HISTORY_LIMIT = 4_000
"""Events after which a run continues as new when its definition sets no
`history_limit`: Temporal's own suggestion (4 Ki events by default) may be configured
away, and a run must stay well below 10,240 events with what still runs finishing."""


class ContinueAsNew(Exception):
    """The top-level DAG drained: nothing runs, and steps remain for the continuation."""


@dataclass
class Carried:
    """The state one run hands to its continuation (`RunInput.carried`, as JSON)."""

    continued: int
    """How many runs of this logical run came before the continuation (1 for the first)."""
    run_id: str
    """The first run's id: `run.run_id` stays the same across the logical run."""
    start_time: str
    """The first run's start (ISO), `run.start_time`."""
    deadline: str | None
    """The run timeout's moment (ISO), counted from the first start."""
    steps: dict[str, Any]
    """`steps` of the template context: status, output and error of finished steps."""
    vars: dict[str, Any]
    finished: list[list[Any]]
    """``[step_id, how, chosen]`` of every finished top-level step, in finish order."""
    signals: dict[str, list[Any]] = field(default_factory=dict)
    """Payloads that arrived for a signal name no step has taken yet, oldest first."""
    signal_arrivals: dict[str, list[int]] = field(default_factory=dict)
    """Their arrival numbers (`SignalBuffer`); runs carried before them have none."""
    compensations: list[dict[str, Any]] = field(default_factory=list)
    """``{"step", "suffix", "output"[, "item", "index"]}`` in completion order."""
    progress: list[list[Any]] = field(default_factory=list)
    """`Progress.export()`: the status rows."""
    paused: bool = False
    loops: dict[str, Any] = field(default_factory=dict)
    """`LoopCheckpoint` of each top-level loop that stopped between iterations."""

    def to_json(self) -> dict[str, Any]:
        """A shallow dict: `dataclasses.asdict` deep-copies every value, which for a
        long run's state took the sandbox past the SDK's 2 s deadlock limit."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Carried:
        return cls(**value)
