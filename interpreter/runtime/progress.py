"""Step states of a run: what the ``status`` query returns and what the UI shows.

Updating a step is O(1) (counters kept as we go), and the markdown shown as the
workflow's current details is bounded (a full table for small runs, counts and the
running steps for large ones), so a 1,000-step run does not redraw 1,000 rows on
every step.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from interpreter.contract import STEP_STATUSES, StepStatus

__all__ = ["Progress", "StepState"]

TABLE_LIMIT = 30
"""Runs with at most this many steps get a full table in the UI; larger ones a summary."""
RUNNING_SHOWN = 10
FAILED_SHOWN = 5


@dataclass
class StepState:
    name: str
    kind: str
    status: StepStatus = "pending"
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "attempts": self.attempts,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "error": self.error,
        }


@dataclass
class Progress:
    """Every known step's state, in the order steps were declared or first seen."""

    title: str
    steps: dict[str, StepState] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STEP_STATUSES, 0))
    running: dict[str, None] = field(default_factory=dict)
    """Running step ids in start order (a dict: ordered, O(1) removal)."""
    failed: dict[str, None] = field(default_factory=dict)
    """Failed step ids in failure order, so the details never scan every step."""
    baseline: int = 0
    """How many steps the definition itself declares (the first ones): what a continued
    run declares again, so `export` leaves their names out."""
    continued: int = 0
    """How many times the logical run continued as new before this run."""

    def mark_baseline(self) -> None:
        """The steps declared so far are the definition's own."""
        self.baseline = len(self.steps)

    def export(self) -> list[list[Any]]:
        """Every step that is not `pending`, compactly, for a run that continues as new.

        One row per step: ``[id, status, attempts, started_at, ended_at, error]``, plus
        ``name, kind`` for a step the definition does not declare (a foreach item, a
        batch, a compensation); in declaration order, so `restore` keeps the order.
        """
        rows: list[list[Any]] = []
        for index, (step_id, state) in enumerate(self.steps.items()):
            if state.status == "pending" and index < self.baseline:
                continue
            row: list[Any] = [
                step_id,
                state.status,
                state.attempts,
                state.started_at.isoformat() if state.started_at else None,
                state.ended_at.isoformat() if state.ended_at else None,
                state.error,
            ]
            if index >= self.baseline:
                row += [state.name, state.kind]
            rows.append(row)
        return rows

    def restore(self, rows: list[list[Any]]) -> None:
        """Take the states of `export` back (after the definition's steps are declared)."""
        for step_id, status, attempts, started_at, ended_at, error, *named in rows:
            if step_id not in self.steps:
                name, kind = named if len(named) == 2 else (step_id, "step")
                self.declare(step_id, name, kind)
            state = self.steps[step_id]
            self.counts[state.status] -= 1
            self.counts[status] += 1
            state.status = status
            state.attempts = attempts
            state.started_at = datetime.fromisoformat(started_at) if started_at else None
            state.ended_at = datetime.fromisoformat(ended_at) if ended_at else None
            state.error = error
            if status == "failed":
                self.failed[step_id] = None
            elif status == "running":
                self.running[step_id] = None

    def declare(self, step_id: str, name: str, kind: str) -> None:
        if step_id not in self.steps:
            self.steps[step_id] = StepState(name=name, kind=kind)
            self.counts["pending"] += 1

    def update(
        self,
        step_id: str,
        status: StepStatus,
        at: datetime,
        *,
        error: dict[str, Any] | None = None,
        attempts: int | None = None,
    ) -> None:
        state = self.steps[step_id]
        was = state.status
        self.counts[was] -= 1
        self.counts[status] += 1
        state.status = status
        if status == "failed":
            self.failed[step_id] = None
        else:
            self.failed.pop(step_id, None)
        if status == "running":
            if was != "running":  # a loop started again by its continued run ran on
                state.started_at = at
            self.running[step_id] = None
        else:
            self.running.pop(step_id, None)
            if status not in ("pending", "waiting"):
                state.ended_at = at
                if state.started_at is None:
                    state.started_at = at
        if status in ("completed", "failed") and state.kind in ("task", "subworkflow"):
            state.attempts = max(state.attempts, 1)
        if attempts is not None:
            state.attempts = attempts
        if error is not None:
            state.error = error

    def cancel_pending(self, at: datetime) -> None:
        """The run ended: every step still `pending` never started and never will.

        It ends `cancelled` (not run because the run stopped: cancelled, failed fast, or
        its parallel branch was cancelled once the join was met), with `ended_at` *at*
        and no `started_at`. Nested rows (branch steps) are rows like any other. Called
        once per run, so the one pass over the steps is fine; none is made when no step
        is pending.
        """
        if not self.counts["pending"]:
            return
        for state in self.steps.values():
            if state.status == "pending":
                state.status = "cancelled"
                state.ended_at = at
        self.counts["cancelled"] += self.counts["pending"]
        self.counts["pending"] = 0

    def query(self, run_status: str, paused: bool) -> dict[str, Any]:
        """The ``status`` query's answer (docs/language.md, "Signals and the status query")."""
        return {
            "status": run_status,
            "paused": paused,
            "continued": self.continued,
            "steps": {step_id: state.as_json() for step_id, state in self.steps.items()},
        }

    def markdown(self, run_status: str, paused: bool) -> str:
        """A short table for the Temporal UI's current details."""
        state = "paused" if paused else run_status.lower().replace("_", " ")
        summary = ", ".join(f"{count} {status}" for status, count in self.counts.items() if count)
        if self.continued:
            times = "once" if self.continued == 1 else f"{self.continued} times"
            summary += f"; continued as new {times}"
        lines = [f"**{self.title}** — {state} ({summary})", ""]
        if len(self.steps) <= TABLE_LIMIT:
            lines += ["| status | step | name |", "|---|---|---|"]
            lines += [
                f"| {_ICON.get(s.status, '')} {s.status} | `{step_id}` | {_cell(s.name)} |"
                for step_id, s in self.steps.items()
            ]
        else:
            shown = list(itertools.islice(self.running, RUNNING_SHOWN))  # not O(running)
            if shown:
                lines.append("running: " + ", ".join(f"`{step_id}`" for step_id in shown))
                if len(self.running) > RUNNING_SHOWN:
                    lines[-1] += f" and {len(self.running) - RUNNING_SHOWN} more"
        if self.failed:
            lines.append("")
            for step_id in list(self.failed)[:FAILED_SHOWN]:
                error = self.steps[step_id].error or {}
                lines.append(f"**{step_id}** failed: {_cell(str(error.get('message')))[:200]}")
        return "\n".join(lines)


_ICON = {
    "pending": "⏳",
    "waiting": "🔒",
    "running": "▶️",
    "completed": "✅",
    "skipped": "⏭️",
    "failed": "❌",
    "cancelled": "🚫",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
