"""A run's events in time order, as `tdsl runs show ID --events` shows them.

Two sources, merged when read:

- `step_events`: each attempt of a task step, written by the worker that ran it
  (`interpreter.history.events`): started, then completed, failed or cancelled;
- `run_steps`: every step's status, start and end, written by the projector.

The step-level events (a `set`, `decision`, `parallel`, `wait`… step's start and
end, a skipped step) are derived from `run_steps` here rather than stored twice:
the projector already keeps them exact and idempotent (a step's row changes as the
run goes on, a stored copy would have to follow), and it needs no write at all.
The same rows fill what the workers could not see: the end of an attempt completed
from outside (`human.task`), of one whose worker died, or events dropped while
PostgreSQL was away.

"retried" is derived too: a failed attempt is "retried" when a later attempt of the
step is known or the step has not ended; the last failed attempt of a step that
ended is "failed".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from interpreter.contract import ENDED_STEP_STATUSES, STEP_STATUSES

if TYPE_CHECKING:
    from interpreter.history.store import Store

__all__ = ["STEP_ENDS", "events_of_chain", "run_events", "timeline"]

STEP_ENDS: dict[str, str] = {
    status: status for status in STEP_STATUSES if status in ENDED_STEP_STATUSES
}
"""A step status that ends the step → the event that says so (the same word)."""

_NOT_ENDED = tuple(status for status in STEP_STATUSES if status not in ENDED_STEP_STATUSES)
_RANK = {"started": 0, "completed": 1, "failed": 1, "cancelled": 1}


def _message(error: Any) -> str | None:
    if isinstance(error, Mapping):
        message = error.get("message")
        return str(message) if message is not None else None
    return None if error is None else str(error)


def _event(
    at: datetime | None, step_id: str, attempt: int | None, event: str, error: Any
) -> dict[str, Any]:
    return {"at": at, "step_id": step_id, "attempt": attempt, "event": event, "error": error}


def timeline(
    steps: Sequence[Mapping[str, Any]], attempts: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The events (at, step_id, attempt, event, error) of one run, oldest first, from its `run_steps` rows
    (*steps*: step_id, status, attempts, started_at, ended_at, error) and its
    `step_events` rows (*attempts*: step_id, attempt, event, at, error).

    Events without a time (a step cancelled before it started) come last.
    """
    by_step: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in attempts:
        by_step[row["step_id"]].append(row)
    known = {step["step_id"]: step for step in steps}
    order = [*known, *(step_id for step_id in by_step if step_id not in known)]
    found: list[dict[str, Any]] = []
    for step_id in order:
        step = known.get(step_id)
        rows = sorted(by_step.get(step_id, []), key=lambda r: (r["attempt"], _RANK[r["event"]]))
        status = step["status"] if step is not None else None
        last = max((r["attempt"] for r in rows), default=0)
        tried = max(last, int(step["attempts"] or 0) if step is not None else 0)
        for row in rows:
            event = row["event"]
            if event == "failed" and (row["attempt"] < tried or status in _NOT_ENDED):
                event = "retried"
            found.append(_event(row["at"], step_id, row["attempt"], event, row["error"]))
        if step is None:
            continue
        attempt = tried or None
        if not rows and step["started_at"] is not None and status != "skipped":
            found.append(_event(step["started_at"], step_id, attempt, "started", None))
        end = STEP_ENDS.get(status or "")
        last_end = [r["event"] for r in rows if r["attempt"] == tried and r["event"] != "started"]
        if end is not None and last_end != [end]:
            error = _message(step["error"]) if end in ("failed", "cancelled") else None
            found.append(
                _event(step["ended_at"] or step["started_at"], step_id, attempt, end, error)
            )
    # Stable: a step's own events keep their order when they share a timestamp.
    timed = sorted((e for e in found if e["at"] is not None), key=lambda e: e["at"])
    return timed + [e for e in found if e["at"] is None]


def events_of_chain(
    rows: Sequence[Mapping[str, Any]], run_id: str, runs: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The `step_events` *rows* of one workflow id that belong to the logical run
    *run_id*, given that workflow id's *runs* (run_id, started_at).

    An attempt names its Temporal run; `runs.run_id` is a continue-as-new chain's
    first run. A Temporal run id that is some chain's first belongs to it; any other
    (a continued run) to the chain that started last before that run's first
    attempt: runs of one workflow id never overlap, so a later chain starts only
    after the earlier one, with all its continued runs, has closed.
    """
    firsts = {str(r["run_id"]) for r in runs}
    starts = sorted(
        ((r["started_at"], str(r["run_id"])) for r in runs if r["started_at"] is not None),
        key=lambda pair: pair[0],
    )
    earliest: dict[str, datetime] = {}
    for row in rows:
        temporal = str(row["temporal_run_id"])
        if temporal not in earliest or row["at"] < earliest[temporal]:
            earliest[temporal] = row["at"]

    def chain(temporal: str) -> str | None:
        if temporal in firsts:
            return temporal
        before = [first for started, first in starts if started <= earliest[temporal]]
        if before:
            return before[-1]
        return starts[0][1] if starts else None

    owner = {temporal: chain(temporal) for temporal in earliest}
    return [row for row in rows if owner[str(row["temporal_run_id"])] == run_id]


async def run_events(store: Store, run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The events of *run*, a row of `Store.run` (with its `steps`)."""
    workflow_id = run["workflow_id"]
    rows = await store.pool.fetch(
        "select temporal_run_id, step_id, attempt, event, at, error from step_events"
        " where workflow_id = $1",
        workflow_id,
    )
    runs = await store.pool.fetch(
        "select run_id, started_at from runs where workflow_id = $1", workflow_id
    )
    mine = events_of_chain([dict(r) for r in rows], run["run_id"], [dict(r) for r in runs])
    return timeline(run["steps"], mine)
