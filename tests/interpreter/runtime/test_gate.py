"""The start gate: pause holds every new start, and no run exceeds Temporal's pending limits."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from interpreter.contract import WORKFLOW_NAME
from interpreter.runtime.gate import MAX_IN_FLIGHT, Deferred, StartGate
from tests.support.runs import run_input, runs_of, start, statuses, wait_for_step

pytestmark = pytest.mark.integration


async def test_pause_holds_foreach_items(client: Client, worker: str) -> None:
    """A paused foreach with max_concurrency 1 used to go on with items 1, 2 and 3."""
    handle = await start(
        client,
        worker,
        "name: held\nsteps:\n  - id: each\n    type: foreach\n    items: [0, 1, 2, 3]\n"
        "    max_concurrency: 1\n"
        "    step: {id: one, action: sleep, parameters: {seconds: 0.5}}\n",
    )
    await wait_for_step(handle, "one[0]", "running")
    await handle.signal("pause")
    await wait_for_step(handle, "one[0]", "completed")
    await asyncio.sleep(1.5)  # long enough for two more items, had they started
    held = await statuses(handle)
    assert held.get("one[1]", "pending") == "pending", held
    assert "one[2]" not in held or held["one[2]"] == "pending"
    await handle.signal("resume")
    output = await handle.result()
    assert output["each"] == [{"slept": 0.5}] * 4


async def test_pause_holds_parallel_branches_not_yet_started(client: Client, worker: str) -> None:
    handle = await start(
        client,
        worker,
        "name: branches\nsteps:\n  - id: race\n    type: parallel\n    max_concurrency: 1\n"
        "    branches:\n"
        "      - {name: a, steps: [{id: a1, action: sleep, parameters: {seconds: 0.5}}]}\n"
        "      - {name: b, steps: [{id: b1, action: echo}]}\n",
    )
    await wait_for_step(handle, "a1", "running")
    await handle.signal("pause")
    await wait_for_step(handle, "a1", "completed")
    await asyncio.sleep(1.0)
    assert (await statuses(handle)).get("b1", "pending") == "pending"
    await handle.signal("resume")
    assert (await handle.result())["race"] == {"a": {"a1": {"slept": 0.5}}, "b": {"b1": {}}}


def _max_outstanding(events: list[Any]) -> int:
    """The most activities scheduled and not yet closed at any point of a history."""
    closed = {
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
        EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
    }
    outstanding = highest = 0
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            outstanding += 1
            highest = max(highest, outstanding)
        elif event.event_type in closed:
            outstanding -= 1
    return highest


async def test_a_level_wider_than_temporal_allows_queues_the_rest(
    client: Client, worker: str
) -> None:
    """2,100 ready steps used to fail every workflow task (PendingActivitiesLimitExceeded)."""
    width = 2100
    steps = "".join(
        f"  - {{id: s{i}, action: echo, parameters: {{n: {i}}}}}\n" for i in range(width)
    )
    # Its first activation schedules 1,000 activities (about 2.5 s here); the default
    # 10 s workflow task timeout is too close for a loaded CI machine.
    handle = await client.start_workflow(
        WORKFLOW_NAME,
        run_input(f"name: wide\nsteps:\n{steps}"),
        id=f"wide-{worker}",
        task_queue=worker,
        task_timeout=timedelta(seconds=60),
    )
    async with asyncio.timeout(180):
        output = await handle.result()
    assert len(output) == width
    assert output["s2099"] == {"n": 2099}
    # Whether it continued as new depends on how completions batch into workflow tasks
    # (the history length is known once per task); either way no run nears the limits.
    runs = await runs_of(client, handle)
    for run_id, _, _ in runs:
        run = client.get_workflow_handle(handle.id, run_id=run_id)
        events = [event async for event in run.fetch_history_events()]
        assert len(events) < 10_240
        assert 0 < _max_outstanding(events) <= MAX_IN_FLIGHT
    assert (await handle.query("status"))["continued"] == len(runs) - 1


async def test_the_gate_hands_out_slots_in_order_and_holds_them_while_paused() -> None:
    gate = StartGate(limit=2)
    order: list[int] = []

    async def work(n: int, hold: asyncio.Event) -> None:
        async with gate.slot():
            order.append(n)
            await hold.wait()

    holds = [asyncio.Event() for _ in range(4)]
    tasks = [asyncio.create_task(work(n, holds[n])) for n in range(4)]
    await asyncio.sleep(0)
    assert (order, gate.in_flight) == ([0, 1], 2)
    gate.pause()
    holds[0].set()
    await asyncio.sleep(0.01)
    assert order == [0, 1]  # a slot is free, but paused: nothing new starts
    gate.resume()
    await asyncio.sleep(0.01)
    assert order == [0, 1, 2]
    tasks[3].cancel()  # a waiter that gives up takes no slot with it
    for hold in holds:
        hold.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert (order, gate.in_flight) == ([0, 1, 2], 0)


async def test_deferring_refuses_top_level_requests_and_serves_nested_ones() -> None:
    gate = StartGate(limit=1)
    release = asyncio.Event()

    async def work(deferrable: bool) -> str:
        async with gate.slot(deferrable=deferrable):
            await release.wait()
            return "ran"

    holder = asyncio.create_task(work(False))
    waiting = [asyncio.create_task(work(deferrable)) for deferrable in (True, False, True)]
    await asyncio.sleep(0)
    gate.defer()  # the run drains: top-level waiters never start
    with pytest.raises(Deferred):
        await gate.slot(deferrable=True).__aenter__()  # nor do later ones
    release.set()
    results = await asyncio.gather(holder, *waiting, return_exceptions=True)
    assert [type(r).__name__ if isinstance(r, BaseException) else r for r in results] == [
        "ran",
        "Deferred",
        "ran",
        "Deferred",
    ]
    assert gate.in_flight == 0
