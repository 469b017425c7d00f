"""Activities the interpreter itself needs, registered by every worker.

Temporal refuses a workflow's request to cancel itself, yet a ``cancel`` signal
must end the run CANCELED exactly like a native cancel (docs/language.md, run control).
`cancel_run` asks the server, through the worker's own client, to cancel the run that
called it; the workflow then receives a real cancellation request. `take_break` does
nothing: a run awaits it as a local activity to end a long workflow task
(`interpreter.runtime.breaks`). `request_mutex` and `watch_holder` are the two halves
of a `mutex` that only a client can do (`interpreter.runtime.mutex`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from interpreter.contract import (
    BREAK_ACTIVITY,
    CANCEL_RUN_ACTIVITY,
    MUTEX_ID_PREFIX,
    MUTEX_REQUEST_ACTIVITY,
    MUTEX_REQUEST_SIGNAL,
    MUTEX_WATCH_ACTIVITY,
    MUTEX_WORKFLOW_NAME,
)

__all__ = ["cancel_run", "request_mutex", "take_break", "watch_holder"]

WATCH_EVERY = 1.0
"""Seconds between two looks at a mutex holder's run: how soon a terminated holder's
mutex passes on."""


@activity.defn(name=CANCEL_RUN_ACTIVITY)
async def cancel_run(params: dict[str, Any]) -> None:
    """Request cancellation of the workflow run this activity belongs to."""
    info = activity.info()
    if not info.workflow_id:
        raise RuntimeError("tdsl.cancel_run runs only on behalf of a workflow")
    reason = str(params.get("reason") or "cancel signal")
    handle = activity.client().get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
    activity.logger.info("cancelling run on request: %s", reason)
    await handle.cancel()


@activity.defn(name=BREAK_ACTIVITY)
async def take_break() -> None:
    """Nothing: awaiting it ends the workflow's activation, so the next one goes on."""


@activity.defn(name=MUTEX_REQUEST_ACTIVITY)
async def request_mutex(params: dict[str, Any]) -> None:
    """Queue a request on the mutex's workflow, starting it if it is not running."""
    await activity.client().start_workflow(
        MUTEX_WORKFLOW_NAME,
        None,
        id=MUTEX_ID_PREFIX + str(params["mutex"]),
        task_queue=str(params["task_queue"]),
        start_signal=MUTEX_REQUEST_SIGNAL,
        start_signal_args=[params],
        static_summary=f"mutex {params['mutex']!r}",
    )


@activity.defn(name=MUTEX_WATCH_ACTIVITY)
async def watch_holder(params: dict[str, Any]) -> str:
    """Return the holder run's status once it is no longer running (heartbeating, so a
    cancel reaches it and a dead worker's watch moves on)."""
    handle = activity.client().get_workflow_handle(
        str(params["workflow_id"]), run_id=str(params["run_id"])
    )
    while True:
        try:
            status = (await handle.describe()).status
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return "NOT_FOUND"
        if status != WorkflowExecutionStatus.RUNNING:
            return status.name if status is not None else "UNKNOWN"
        activity.heartbeat()
        await asyncio.sleep(WATCH_EVERY)
