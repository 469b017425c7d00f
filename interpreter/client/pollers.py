"""Who polls a task queue: so that a run never waits silently for a worker that is not
there (README.md, "The CLI"), and so that `worker_registry` knows whose announcements count."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

__all__ = ["NO_WORKER_AFTER", "POLLED_WITHIN", "polling_identities", "warning_without_workers"]

POLLED_WITHIN = dt.timedelta(seconds=60)
"""A worker that polled less recently than this is taken to be gone."""
NO_WORKER_AFTER = 5.0
"""Seconds a waiting client lets pass before it looks for a worker (README.md, "The CLI": within 10)."""


async def polling_identities(
    client: Client,
    task_queue: str,
    kind: TaskQueueType.ValueType = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    within: dt.timedelta = POLLED_WITHIN,
) -> list[str]:
    """The identities of the workers that polled *task_queue* (its workflow or activity
    side, *kind*) within *within*."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=task_queue), task_queue_type=kind
        )
    )
    now = dt.datetime.now(dt.UTC)
    recent = {
        poller.identity
        for poller in response.pollers
        if now - poller.last_access_time.ToDatetime(tzinfo=dt.UTC) <= within
    }
    return sorted(recent)


@contextlib.asynccontextmanager
async def warning_without_workers(
    client: Client,
    handle: WorkflowHandle[Any, Any],
    say: Callable[[str], None],
    *,
    after: float = NO_WORKER_AFTER,
) -> AsyncIterator[None]:
    """While inside, *say* once why a still-running run does not move when no worker
    polls its task queue (looked at once, *after* seconds)."""
    watch = asyncio.create_task(_watch(client, handle, say, after))
    try:
        yield
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch


async def _watch(
    client: Client, handle: WorkflowHandle[Any, Any], say: Callable[[str], None], after: float
) -> None:
    await asyncio.sleep(after)
    try:
        described = await handle.describe()
        if described.status != WorkflowExecutionStatus.RUNNING:
            return
        queue = described.task_queue
        if await polling_identities(client, queue):
            return
    except RPCError:
        return  # cannot tell: say nothing rather than something wrong
    say(
        f"no worker polls task queue {queue!r}: the run waits until one does "
        f"(start one with `tdsl worker --task-queue {queue}`); still waiting"
    )
