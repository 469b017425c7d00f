"""A run's state as a user sees it: the library behind `tdsl status` and `run --wait`.

It joins three sources: `describe()` for the run's status, the workflow's `status`
query for step states, and the history for the attempt numbers of activities (the
workflow cannot see retries; the server can).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import temporalio.api.history.v1
import temporalio.client
import temporalio.converter
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError, RPCStatusCode

from dsl.errors import NotFoundError, ServiceError
from interpreter.contract import FINAL_RUN_STATUSES, STATUS_QUERY

__all__ = [
    "DEFAULT_UI_URL",
    "FINAL_STATUSES",
    "RUN_KEYS",
    "ProgressCallback",
    "RunHistory",
    "failure_message",
    "merge_steps",
    "query_status",
    "run_json",
    "run_status",
    "status_name",
    "step_times",
    "ui_link",
    "wait_for_run",
]


DEFAULT_UI_URL = "http://localhost:8233"
"""Where `tdsl dev` and `temporal server start-dev` serve the Web UI."""

RUN_KEYS = ("workflow_id", "run_id", "status", "output", "error", "steps", "continued")
"""The keys of `tdsl run --json`, in order; `tdsl status --json` adds `paused`.

`run_id` is the current run's; `continued` says how many times the logical run
continued as new (0 for most runs), and `steps` holds the steps of all its runs."""

FINAL_STATUSES = FINAL_RUN_STATUSES
"""The contract's `FINAL_RUN_STATUSES`, under the name this package has always exported."""

_STATUS_NAMES = {
    WorkflowExecutionStatus.RUNNING: "RUNNING",
    WorkflowExecutionStatus.COMPLETED: "COMPLETED",
    WorkflowExecutionStatus.FAILED: "FAILED",
    WorkflowExecutionStatus.CANCELED: "CANCELED",
    WorkflowExecutionStatus.TERMINATED: "TERMINATED",
    WorkflowExecutionStatus.TIMED_OUT: "TIMED_OUT",
    # The run handed over to its successor; the chain as a whole still runs.
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "RUNNING",
}

_QUERY_TIMEOUT = timedelta(seconds=5)
"""A query waits for a worker; without one we fall back to the history, not hang."""

_MAX_MESSAGE = 300

ProgressCallback = Callable[[dict[str, Any]], Awaitable[None] | None]


def ui_link(
    workflow_id: str, run_id: str | None, namespace: str, *, base: str | None = None
) -> str:
    """The run's page in the Web UI: *base*, else `TEMPORAL_UI_URL`, else the dev server's."""
    base = (base or os.environ.get("TEMPORAL_UI_URL") or DEFAULT_UI_URL).rstrip("/")
    link = f"{base}/namespaces/{quote(namespace, safe='')}/workflows/{quote(workflow_id, safe='')}"
    return f"{link}/{quote(run_id, safe='')}/history" if run_id else link


def status_name(status: WorkflowExecutionStatus | None) -> str:
    """A workflow execution status as `tdsl status` spells it (`RUN_STATUSES`)."""
    return _STATUS_NAMES.get(status, "RUNNING") if status is not None else "RUNNING"


def failure_message(error: BaseException) -> str:
    """One line: the outermost message, and the innermost cause when it adds something.

    ``step 'store' (Store Result) failed: boom`` stays as it is; an error wrapping
    an activity failure gets the activity's own message appended.
    """
    messages: list[str] = []
    current: BaseException | None = error
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if not isinstance(current, WorkflowFailureError):
            text = getattr(current, "message", None) or str(current)
            if text:
                messages.append(" ".join(str(text).split()))
        current = current.cause if isinstance(current, TemporalError) else current.__cause__
    if not messages:
        return type(error).__name__
    outer, inner = messages[0], messages[-1]
    return outer if inner in outer else f"{outer}: {inner}"


_ACTIVITY_CLOSED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "completed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "failed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "cancelled",
}


class RunHistory:
    """What the history says about activities: attempts and a coarse state per id.

    The `ActivityTaskStarted` event of a retried activity carries its last attempt
    number; it is written when the activity finishes, so running activities get
    theirs from `describe()` instead.
    """

    def __init__(self) -> None:
        self.activity_ids: dict[int, str] = {}
        self.attempts: dict[str, int] = {}
        self.states: dict[str, str] = {}
        self.declared: dict[str, int] = {}
        """Step ids in the order the pinned definition declares them, for display."""
        self.continued = 0
        """How many runs came before this one in its logical run (continue-as-new)."""

    def feed(self, event: temporalio.api.history.v1.HistoryEvent) -> None:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            with contextlib.suppress(Exception):  # a custom codec: order is cosmetic
                (run,) = temporalio.converter.default().payload_converter.from_payloads(
                    list(payloads)
                )
                definition = run.get("definition", {}) if isinstance(run, dict) else {}
                carried = run.get("carried") if isinstance(run, dict) else None
                self.continued = int(carried.get("continued", 0)) if carried else 0
                order = _declared_steps(
                    [*definition.get("steps", []), *definition.get("on_failure", [])]
                )
                self.declared = {step_id: index for index, step_id in enumerate(order)}
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes.activity_id
            self.activity_ids[event.event_id] = scheduled
            self.states[scheduled] = "running"
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            activity_id = self.activity_ids.get(started.scheduled_event_id)
            if activity_id is not None:
                self.attempts[activity_id] = max(self.attempts.get(activity_id, 0), started.attempt)
        elif kind in _ACTIVITY_CLOSED:
            closed = getattr(event, event.WhichOneof("attributes") or "")
            activity_id = self.activity_ids.get(getattr(closed, "scheduled_event_id", -1))
            if activity_id is not None:
                self.states[activity_id] = _ACTIVITY_CLOSED[kind]

    async def read(self, handle: WorkflowHandle[Any, Any], *, follow: bool = False) -> None:
        """Feed every event of the run; with *follow*, keep waiting for new ones."""
        async for event in handle.fetch_history_events(wait_new_event=follow):
            self.feed(event)


def _declared_steps(steps: Iterable[Any]) -> list[str]:
    """Every step id of a normalised definition, nested ones right after their parent."""
    found: list[str] = []
    for step in steps:
        if not isinstance(step, dict) or "id" not in step:
            continue
        found.append(str(step["id"]))
        for branch in step.get("branches") or []:
            if isinstance(branch, dict) and isinstance(branch.get("steps"), list):
                found += _declared_steps(branch["steps"])
        if isinstance(step.get("step"), dict):
            found += _declared_steps([step["step"]])
    return found


def _natural(text: str) -> list[Any]:
    """`item[2]` before `item[10]`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _step_key(activity_id: str, steps: dict[str, Any]) -> str | None:
    """The step an activity belongs to: itself, or `step` for a foreach item `step[3]`."""
    if activity_id in steps:
        return activity_id
    base = activity_id.split("[", 1)[0]
    return base if base in steps else None


def merge_steps(
    query: dict[str, Any] | None,
    history: RunHistory,
    pending_attempts: dict[str, int],
) -> dict[str, dict[str, Any]]:
    """`{id: {status, attempts}}`: the query's states with the server's attempt counts."""
    steps: dict[str, dict[str, Any]]
    if query is not None and isinstance(query.get("steps"), dict):
        steps = {
            str(step_id): {
                "status": str(state.get("status", "pending")),
                "attempts": int(state.get("attempts") or 0),
            }
            for step_id, state in query["steps"].items()
            if isinstance(state, dict)
        }
    else:  # no worker to answer: what the history shows of the activities
        steps = {
            activity_id: {"status": state, "attempts": 0}
            for activity_id, state in history.states.items()
        }
    for source in (history.attempts, pending_attempts):
        for activity_id, attempt in source.items():
            key = _step_key(activity_id, steps)
            if key is not None:
                steps[key]["attempts"] = max(steps[key]["attempts"], attempt)
    # JSON payloads come back with sorted keys: restore the definition's order.
    last = len(history.declared)

    def position(step_id: str) -> tuple[float, list[Any]]:
        declared = history.declared.get(step_id)
        if declared is not None:
            return declared, _natural(step_id)
        # a foreach item `body[3]` goes right after its body step
        return history.declared.get(step_id.split("[", 1)[0], last) + 0.5, _natural(step_id)

    ordered = sorted(steps, key=position)
    return {step_id: steps[step_id] for step_id in ordered}


def step_times(query: dict[str, Any] | None) -> dict[str, dict[str, str | None]]:
    """`{id: {started_at, ended_at}}` as the status query tells them (ISO text or None).

    Not part of the `status --json` object; `wait_for_run` hands them to its progress
    callback so that changes can be shown in the order they happened.
    """
    steps = query.get("steps") if query is not None else None
    if not isinstance(steps, dict):
        return {}
    times: dict[str, dict[str, str | None]] = {}
    for step_id, state in steps.items():
        if isinstance(state, dict):
            started, ended = state.get("started_at"), state.get("ended_at")
            times[str(step_id)] = {
                "started_at": started if isinstance(started, str) else None,
                "ended_at": ended if isinstance(ended, str) else None,
            }
    return times


async def query_status(handle: WorkflowHandle[Any, Any]) -> dict[str, Any] | None:
    try:
        result = await handle.query(STATUS_QUERY, rpc_timeout=_QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError, TemporalError):
        return None
    return result if isinstance(result, dict) else None


async def _describe(
    handle: WorkflowHandle[Any, Any],
) -> temporalio.client.WorkflowExecutionDescription:
    try:
        return await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NotFoundError(f"no run with workflow id {handle.id!r}") from None
        raise ServiceError(f"cannot describe run {handle.id!r}: {err.message}") from None


async def _outcome(handle: WorkflowHandle[Any, Any], status: str) -> tuple[Any, str | None]:
    """(output, error) of a closed run, decoded by the SDK from its close event."""
    if status == "RUNNING":
        return None, None
    try:
        return await handle.result(), None
    except WorkflowFailureError as err:
        return None, failure_message(err.cause if err.cause is not None else err)
    except TemporalError as err:
        return None, failure_message(err)


async def _snapshot(
    handle: WorkflowHandle[Any, Any], history: RunHistory, *, final: bool, times: bool = False
) -> dict[str, Any]:
    description = await _describe(handle)
    status = status_name(description.status)
    query = await query_status(handle)
    pending = {
        activity.activity_id: activity.attempt
        for activity in description.raw_description.pending_activities
    }
    output, error = await _outcome(handle, status) if final else (None, None)
    snapshot = {
        "workflow_id": description.id,
        "run_id": description.run_id,
        "status": status,
        "output": output,
        "error": error,
        "steps": merge_steps(query, history, pending),
        "continued": int(query.get("continued", 0)) if query else history.continued,
        "paused": bool(query.get("paused", False)) if query is not None else False,
    }
    if times:
        snapshot["times"] = step_times(query)
    return snapshot


async def run_status(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """The `tdsl status --json` object (README.md, "The CLI") for the run *handle* names (latest run by id).

    `output` is set once the run completed, `error` (one line) once it ended any
    other way; `steps` comes from the workflow's query when a worker answers it,
    else from the history, with attempt numbers from the server either way.
    """
    return await _final_status(handle)


async def _final_status(handle: WorkflowHandle[Any, Any], *, times: bool = False) -> dict[str, Any]:
    history = RunHistory()
    await _describe(handle)  # a clear NotFoundError before anything else
    with contextlib.suppress(RPCError):
        await history.read(handle)
    return await _snapshot(handle, history, final=True, times=times)


def run_json(status: dict[str, Any]) -> dict[str, Any]:
    """The `run --json` object: the status object without `paused`."""
    return {key: status[key] for key in RUN_KEYS}


async def wait_for_run(
    handle: WorkflowHandle[Any, Any],
    *,
    on_progress: ProgressCallback | None = None,
    poll_interval: float = 0.5,
) -> dict[str, Any]:
    """Wait until the run ends and return its final `run_status` object.

    While waiting, every *poll_interval* seconds *on_progress* (if given) gets the
    current status object, and the final one at the end, each with `times` added
    (`step_times`: when each step started and ended, for showing changes in the
    order they happened); the object returned has no `times`. The history is
    followed live, so attempt numbers cost one long poll rather than a full read
    per update.
    """
    await _describe(handle)  # NotFoundError for a wrong id, before any waiting
    result = asyncio.ensure_future(handle.result())
    tasks: list[asyncio.Future[Any]] = [result]
    history = RunHistory()
    if on_progress is not None:
        tasks.append(asyncio.ensure_future(history.read(handle, follow=True)))
    try:
        while not result.done():
            if on_progress is not None:
                reported = on_progress(await _snapshot(handle, history, final=False, times=True))
                if reported is not None:
                    await reported
            await asyncio.wait({result}, timeout=poll_interval)
        with contextlib.suppress(TemporalError):
            result.result()
        # The history long poll ends with the run; let it, rather than abandon an
        # RPC that the SDK's native thread would complete during interpreter exit.
        await asyncio.wait(tasks, timeout=5)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    final = await _final_status(handle, times=on_progress is not None)
    if on_progress is not None:
        reported = on_progress(final)
        if reported is not None:
            await reported
    return {key: value for key, value in final.items() if key != "times"}
