"""Activities the interpreter itself needs, registered by every worker.

Temporal refuses a workflow's request to cancel itself, yet a ``cancel`` signal
must end the run CANCELED exactly like a native cancel (docs/language.md, run control).
`cancel_run` asks the server, through the worker's own client, to cancel the run that
called it; the workflow then receives a real cancellation request. `take_break` does
nothing: a run awaits it as a local activity to end a long workflow task
(`interpreter.runtime.breaks`).
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from interpreter.contract import BREAK_ACTIVITY, CANCEL_RUN_ACTIVITY

__all__ = ["cancel_run", "take_break"]


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
