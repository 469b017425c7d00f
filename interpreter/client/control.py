"""Steer a running run: signals, pause, resume, cancel, terminate (`tdsl signal|pause|…`)."""

from __future__ import annotations

from typing import Any

from temporalio.client import (
    Client,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode

from dsl.errors import DslError, NotFoundError, ServiceError
from interpreter.contract import (
    CANCEL_SIGNAL,
    CANCEL_STEP_SIGNAL,
    PAUSE_SIGNAL,
    RESUME_SIGNAL,
)

__all__ = [
    "cancel_run",
    "get_handle",
    "pause_run",
    "resume_run",
    "signal_run",
    "terminate_run",
]


def get_handle(client: Client, workflow_id: str) -> WorkflowHandle[Any, Any]:
    """The latest run of *workflow_id*."""
    return client.get_workflow_handle(workflow_id)


def _control_error(workflow_id: str, action: str, err: RPCError) -> DslError:
    if err.status == RPCStatusCode.NOT_FOUND:
        return NotFoundError(f"cannot {action} {workflow_id!r}: no running workflow with that id")
    return ServiceError(f"cannot {action} {workflow_id!r}: {err.message}")


_NO_PAYLOAD = object()


async def signal_run(
    client: Client, workflow_id: str, name: str, payload: Any = _NO_PAYLOAD
) -> None:
    """Send signal *name* (with one JSON argument, if given); returns once accepted."""
    handle = get_handle(client, workflow_id)
    try:
        if payload is _NO_PAYLOAD:
            await handle.signal(name)
        else:
            await handle.signal(name, payload)
    except RPCError as err:
        raise _control_error(workflow_id, f"signal {name!r} to", err) from None


async def pause_run(client: Client, workflow_id: str) -> None:
    """No new step starts until `resume_run`; running steps finish."""
    await signal_run(client, workflow_id, PAUSE_SIGNAL)


async def resume_run(client: Client, workflow_id: str) -> None:
    await signal_run(client, workflow_id, RESUME_SIGNAL)


async def cancel_run(
    client: Client, workflow_id: str, *, native: bool = False, step: str | None = None
) -> None:
    """Ask the run to cancel itself: running steps are cancelled, compensation runs,
    and it ends CANCELED. *native* uses Temporal's cancellation request instead.
    With *step*, only that running step is cancelled and the run goes on."""
    if step is not None:
        await signal_run(client, workflow_id, CANCEL_STEP_SIGNAL, {"step": step})
        return
    if not native:
        await signal_run(client, workflow_id, CANCEL_SIGNAL)
        return
    try:
        await get_handle(client, workflow_id).cancel()
    except RPCError as err:
        raise _control_error(workflow_id, "cancel", err) from None


async def terminate_run(client: Client, workflow_id: str, *, reason: str | None = None) -> None:
    """End the run at once: no compensation, no cleanup, ends TERMINATED."""
    try:
        await get_handle(client, workflow_id).terminate(reason=reason)
    except RPCError as err:
        raise _control_error(workflow_id, "terminate", err) from None
