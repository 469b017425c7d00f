"""`mutex` on a real Temporal dev server (docs/language.md, "Mutexes"): one holder at a
time across runs, first come first served, `waiting` while queued, and the mutex back
however the holder ends — completion, failure, cancellation, termination."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from typing import Any
from uuid import uuid4

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from interpreter.runtime.mutex import mutex_id
from tests.support.runs import DEFINITIONS, interpreter_worker, start, statuses, wait_for_step

pytestmark = pytest.mark.integration

HOLD = """
name: holder
input: {{type: object, properties: {{seconds: {{type: number}}, action: {{type: string}}}}}}
steps:
  - id: work
    mutex: "{mutex}"
    action: sleep
    parameters: {{seconds: "${{{{ input.seconds }}}}"}}
  - {{id: after, action: echo, dependencies: [work]}}
"""


def _hold(mutex: str) -> str:
    return HOLD.format(mutex=mutex)


async def _times(handle: WorkflowHandle[Any, Any], step: str) -> tuple[datetime, datetime | None]:
    state = (await handle.query("status"))["steps"][step]
    ended = datetime.fromisoformat(state["ended_at"]) if state["ended_at"] else None
    return datetime.fromisoformat(state["started_at"]), ended


async def _in_line(
    client: Client, worker: str, mutex: str, *seconds: float
) -> list[WorkflowHandle[Any, Any]]:
    """One run per duration, started one after the other: the first holds *mutex*
    (`running`), each next one is queued behind the one before (`waiting`)."""
    handles = []
    for position, duration in enumerate(seconds):
        handle = await start(client, worker, _hold(mutex), {"seconds": duration})
        await wait_for_step(handle, "work", "waiting" if position else "running")
        handles.append(handle)
    return handles


async def _holder(client: Client, mutex: str) -> str | None:
    state = await client.get_workflow_handle(mutex_id(mutex)).query("state")
    return state["holder"]["workflow_id"] if state["holder"] else None


async def test_one_holder_at_a_time_first_come_first_served(client: Client, worker: str) -> None:
    """The others show `waiting` and start, in the order they asked, as each ends."""
    mutex = f"m-{uuid4()}"
    first, second, third = await _in_line(client, worker, mutex, 1.5, 0.2, 0.2)
    assert (await statuses(first))["work"] == "running"
    assert await _holder(client, mutex) == first.id
    async with asyncio.timeout(30):
        for handle in (first, second, third):
            await handle.result()
    spans = [await _times(handle, "work") for handle in (first, second, third)]
    for (_, ended), (started, _) in itertools.pairwise(spans):
        assert ended is not None
        assert started >= ended


async def test_steps_with_different_names_run_at_once(client: Client, worker: str) -> None:
    """A templated name: one mutex per account."""
    text = _hold("account-${{ input.action }}")
    one = await start(client, worker, text, {"seconds": 5, "action": f"a-{uuid4()}"})
    other = await start(client, worker, text, {"seconds": 5, "action": f"b-{uuid4()}"})
    await wait_for_step(one, "work")
    await wait_for_step(other, "work")


async def test_a_failed_holder_gives_the_mutex_back(client: Client, worker: str) -> None:
    mutex = f"m-{uuid4()}"
    failing = await start(
        client,
        worker,
        f"name: failing\nsteps:\n  - id: work\n    mutex: {mutex}\n    action: fail\n"
        "    parameters: {message: boom, non_retryable: true}\n",
    )
    with pytest.raises(WorkflowFailureError):
        await failing.result()
    after = await start(client, worker, _hold(mutex), {"seconds": 0.1})
    async with asyncio.timeout(30):
        await after.result()


async def test_cancelling_the_holder_or_a_waiter_passes_the_mutex_on(
    client: Client, worker: str
) -> None:
    """`cancel_step` on the holder ends its step (the run goes on); a waiter cancelled
    with its run leaves the queue."""
    mutex = f"m-{uuid4()}"
    holder, waiter, last = await _in_line(client, worker, mutex, 60, 60, 0.1)
    await waiter.cancel()
    with pytest.raises(WorkflowFailureError):
        await waiter.result()
    assert (await statuses(waiter))["work"] == "cancelled"
    await holder.signal("cancel_step", {"step": "work"})
    async with asyncio.timeout(30):
        await holder.result()
        await last.result()
    assert await statuses(holder) == {"work": "cancelled", "after": "skipped"}


async def test_a_terminated_holder_does_not_keep_the_mutex(client: Client, worker: str) -> None:
    """Its run runs no more code, so the mutex workflow sees the run end and takes the
    mutex back; the next in line gets it within seconds."""
    mutex = f"m-{uuid4()}"
    holder, waiter = await _in_line(client, worker, mutex, 300, 0.1)
    await asyncio.sleep(1.5)
    assert (await statuses(waiter))["work"] == "waiting"  # the holder really holds it
    assert await _holder(client, mutex) == holder.id
    await holder.terminate("test")
    async with asyncio.timeout(30):
        await waiter.result()
    assert (await statuses(waiter))["work"] == "completed"
    assert await _holder(client, mutex) is None


async def test_a_waiter_that_is_terminated_is_skipped(client: Client, worker: str) -> None:
    mutex = f"m-{uuid4()}"
    holder, gone, last = await _in_line(client, worker, mutex, 2, 60, 0.1)
    await gone.terminate("test")
    async with asyncio.timeout(30):
        await holder.result()
        await last.result()


async def test_a_holder_whose_worker_dies_gives_the_mutex_back_when_its_step_ends(
    client: Client, task_queue: str
) -> None:
    """The run goes on on another worker; the dead worker's activity times out, which
    ends the step (no retry left), and the mutex passes on."""
    mutex = f"m-{uuid4()}"
    text = (
        f"name: doomed\nsteps:\n  - id: work\n    mutex: {mutex}\n    action: sleep\n"
        "    timeout: 3s\n    retry_policy: {maximum_attempts: 1}\n"
        "    parameters: {seconds: 60}\n"
    )
    async with interpreter_worker(client, task_queue):
        holder = await start(client, task_queue, text)
        await wait_for_step(holder, "work")
        waiter = await start(client, task_queue, _hold(mutex), {"seconds": 0.1})
        await wait_for_step(waiter, "work", "waiting")
    # the first worker is gone, its activity with it; another one takes over
    async with interpreter_worker(client, task_queue):
        with pytest.raises(WorkflowFailureError):
            async with asyncio.timeout(30):
                await holder.result()
        async with asyncio.timeout(30):
            await waiter.result()
        assert (await statuses(holder))["work"] == "failed"
        assert (await statuses(waiter))["work"] == "completed"


async def test_the_adjust_balance_example_serialises_runs_of_one_account(
    client: Client, worker: str
) -> None:
    account = f"acc-{uuid4()}"
    handles = [
        await start(
            client, worker, DEFINITIONS / "adjust-balance.yaml", {"account": a, "amount": 5}
        )
        for a in (account, account, f"other-{uuid4()}")
    ]
    async with asyncio.timeout(30):
        results = [await handle.result() for handle in handles]
    assert results[0] == {"account": account, "before": 100, "add": 5}
    first, second = [await _times(handle, "update") for handle in handles[:2]]
    assert first[1] is not None
    assert second[0] >= first[1] or first[0] >= (second[1] or first[0])


async def test_a_step_granted_its_mutex_while_its_run_is_paused_waits_for_resume(
    client: Client, worker: str
) -> None:
    mutex = f"m-{uuid4()}"
    holder, waiter = await _in_line(client, worker, mutex, 1, 0.1)
    await waiter.signal("pause")
    async with asyncio.timeout(30):
        await holder.result()
    await asyncio.sleep(1.5)
    assert (await statuses(waiter))["work"] == "waiting"
    assert await _holder(client, mutex) == waiter.id  # granted, held while paused
    await waiter.signal("resume")
    async with asyncio.timeout(30):
        await waiter.result()
