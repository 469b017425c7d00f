"""Tasks finished from outside: the library behind `tdsl tasks`, `complete` and `fail`.

The `human.task` activity (`activities.async_tasks`) publishes its task token as its
heartbeat details and hands the step over; `pending_tasks` reads the tokens back from
the run's pending activities, and `complete_task` / `fail_task` finish a step by its
token.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.async_tasks import HUMAN_TASK, TOKEN_KEY, decode_token
from dsl.errors import DslError, InputError, NotFoundError, ServiceError

__all__ = [
    "complete_task",
    "fail_task",
    "parse_token",
    "pending_tasks",
    "wait_for_task",
]


async def pending_tasks(client: Client, workflow_id: str) -> list[dict[str, Any]]:
    """The `human.task` steps of a run that wait for `complete_task` or `fail_task`.

    Each is ``{"step", "token", "message", "assignee", "details", "attempt",
    "state"}``; `token` is None while the task is not (yet, or no longer) handed
    over, e.g. between a timed-out attempt and its retry.
    """
    _, tasks = await _pending(client, workflow_id)
    return tasks


async def wait_for_task(
    client: Client,
    workflow_id: str,
    step: str,
    *,
    timeout: float = 30.0,
    poll_interval: float = 0.2,
) -> dict[str, Any]:
    """The task of step *step* (a foreach item is ``step[2]``) once its token is published.

    Raises `NotFoundError` when the run ends first, `DslError` after *timeout* seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        running, tasks = await _pending(client, workflow_id)
        for task in tasks:
            if task["step"] == step and task["token"]:
                return task
        if not running:
            raise NotFoundError(f"run {workflow_id!r} ended before step {step!r} waited")
        if loop.time() >= deadline:
            raise ServiceError(f"step {step!r} of {workflow_id!r} did not wait within {timeout:g}s")
        await asyncio.sleep(poll_interval)


async def _pending(client: Client, workflow_id: str) -> tuple[bool, list[dict[str, Any]]]:
    """(the run is running, its waiting `human.task` steps)."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NotFoundError(f"no run with workflow id {workflow_id!r}") from None
        raise ServiceError(f"cannot describe run {workflow_id!r}: {err.message}") from None
    tasks: list[dict[str, Any]] = []
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name != HUMAN_TASK:
            continue
        published: dict[str, Any] = {}
        if pending.heartbeat_details.payloads:
            with contextlib.suppress(Exception):  # undecodable details: no token to show
                values = await client.data_converter.decode(
                    list(pending.heartbeat_details.payloads)
                )
                if values and isinstance(values[0], dict):
                    published = values[0]
        started = pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        current = published.get("attempt") == pending.attempt and started
        tasks.append(
            {
                "step": pending.activity_id,
                "token": published.get(TOKEN_KEY) if current else None,
                "message": published.get("message"),
                "assignee": published.get("assignee"),
                "details": published.get("details") or {},
                "attempt": pending.attempt,
                "state": PendingActivityState.Name(pending.state)
                .removeprefix("PENDING_ACTIVITY_STATE_")
                .lower(),
            }
        )
    return description.status == WorkflowExecutionStatus.RUNNING, tasks


def parse_token(text: str) -> bytes:
    """The task token *text* encodes (as `tdsl tasks` prints it); `InputError` if malformed."""
    try:
        return decode_token(text)
    except ValueError as err:
        raise InputError(f"invalid task token: {err}") from None


def _task_error(action: str, err: RPCError) -> DslError:
    if err.status == RPCStatusCode.INVALID_ARGUMENT:
        return InputError(f"invalid task token: {err.message}")
    if err.status == RPCStatusCode.NOT_FOUND:
        return NotFoundError(
            f"cannot {action} the task: it is no longer waiting (already completed or failed, "
            f"timed out, or its run ended): {err.message}"
        )
    return ServiceError(f"cannot {action} the task: {err.message}")


async def complete_task(client: Client, token: str | bytes, result: Any = None) -> None:
    """Complete the task *token* names: its step completes with output *result*.

    A token that is not base64url or not a task token is an `InputError`; one whose
    task no longer waits is a `NotFoundError`.
    """
    handle = client.get_async_activity_handle(
        task_token=token if isinstance(token, bytes) else parse_token(token)
    )
    try:
        await handle.complete(result)
    except RPCError as err:
        raise _task_error("complete", err) from None


async def fail_task(
    client: Client, token: str | bytes, message: str, *, error_type: str | None = None
) -> None:
    """Fail the task *token* names, without retries: its step fails with *message*."""
    handle = client.get_async_activity_handle(
        task_token=token if isinstance(token, bytes) else parse_token(token)
    )
    error = ApplicationError(message, type=error_type or "TaskFailed", non_retryable=True)
    try:
        await handle.fail(error)
    except RPCError as err:
        raise _task_error("fail", err) from None
