"""No activation holds the workflow thread past the SDK's 2 s deadlock limit
(`interpreter.runtime.breaks`), on a real Temporal dev server.

A level of 10,000 `set` steps used to take its workflow task past the limit at every
attempt (readiness checked roots with a list scan: quadratic), and the run never
moved; with that fixed it still took ~2 s of sandboxed workflow code in one
activation. A level of 2,100 activities started 1,000 in one activation, 2.5 s on a
loaded machine. Now a no-op local activity ends the activation once its budget is
spent: every 1,000 set steps, every 250 activity starts.
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Replayer, Worker

from interpreter.contract import BREAK_ACTIVITY
from interpreter.runtime.breaks import BUDGET, INLINE_COST, START_COST
from interpreter.runtime.gate import MAX_IN_FLIGHT
from interpreter.runtime.typed import DefinitionWorkflow
from interpreter.runtime.workflow import STEPS_PER_LOAD_COST
from interpreter.worker import WORKFLOWS, workflow_runner
from tests.support.runs import start, statuses

pytestmark = pytest.mark.integration


async def _breaks(handle: WorkflowHandle[object, object]) -> int:
    """Local activity markers of the break activity in the run's history."""
    history = await handle.fetch_history()
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    return sum(1 for e in markers if BREAK_ACTIVITY.encode() in e.SerializeToString())


async def _replays(handle: WorkflowHandle[object, object]) -> None:
    replayer = Replayer(workflows=list(WORKFLOWS), workflow_runner=workflow_runner())
    await replayer.replay_workflow(await handle.fetch_history())


async def test_a_level_of_5000_set_steps_completes(client: Client, worker: str) -> None:
    """5,000, not 10,000: the first activation of a 10,000-step level also reads the
    definition and starts a task per step (1.4 s sandboxed here), which a garbage
    collection of the test session's heap once took past 2 s in CI."""
    count = 5_000
    roots = "".join(f"  - {{id: v{i}, type: set, values: {{v{i}: {i}}}}}\n" for i in range(count))
    handle = await start(client, worker, "name: wide-set\nsteps:\n" + roots)
    async with asyncio.timeout(120):
        result = await handle.result()
    assert len(result) == count
    assert result["v4999"] == {"v4999": 4999}
    assert set((await statuses(handle)).values()) == {"completed"}
    # Reading a definition this large takes a break of its own and 250 of the budget.
    load_cost = count // STEPS_PER_LOAD_COST
    assert await _breaks(handle) == 1 + (count * INLINE_COST + load_cost - 1) // BUDGET  # 6
    await _replays(handle)


async def test_a_chain_of_decisions_and_set_steps_takes_breaks(client: Client, worker: str) -> None:
    lines = ["name: long-inline-chain", "steps:"]
    for i in range(1201):
        after = f", dependencies: [c{i - 1}]" if i else ""
        if i % 2:
            lines.append(
                f"  - {{id: c{i}, type: decision, branches: [{{when: true, next: [c{i + 1}]}}]"
                f"{after}}}"
            )
        else:
            lines.append(f"  - {{id: c{i}, type: set, values: {{last: {i}}}{after}}}")
    lines.append("output: {last: '${{ vars.last }}'}")
    handle = await start(client, worker, "\n".join(lines) + "\n")
    async with asyncio.timeout(60):
        assert await handle.result() == {"last": 1200}
    assert await _breaks(handle) == 1
    await _replays(handle)


async def test_a_wide_level_of_activities_starts_in_several_activations(
    client: Client, worker: str
) -> None:
    width = MAX_IN_FLIGHT
    steps = "".join(
        f"  - {{id: s{i}, action: echo, parameters: {{n: {i}}}}}\n" for i in range(width)
    )
    handle = await start(client, worker, "name: wide-start\nsteps:\n" + steps)
    async with asyncio.timeout(120):
        result = await handle.result()
    assert len(result) == width
    # All start in the first workflow task, a budget's worth per activation.
    assert await _breaks(handle) == (width * START_COST - 1) // BUDGET  # 3
    await _replays(handle)


async def test_a_chain_takes_no_break(client: Client, worker: str) -> None:
    """Each step of a chain is a workflow task of its own, with a fresh budget."""
    lines = ["name: chain-no-break", "steps:"]
    lines += [
        f"  - {{id: c{i}, action: echo{f', dependencies: [c{i - 1}]' if i else ''}}}"
        for i in range(300)
    ]
    handle = await start(client, worker, "\n".join(lines) + "\n")
    async with asyncio.timeout(120):
        await handle.result()
    assert await _breaks(handle) == 0


async def test_a_worker_without_the_break_activity_breaks_with_a_timer(
    client: Client, task_queue: str
) -> None:
    """A worker built by hand with the interpreter alone: slower breaks, no hang."""
    lines = ["name: no-break-activity", "steps:"]
    lines += [f"  - {{id: v{i}, type: set, values: {{n: {i}}}}}" for i in range(1500)]
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[DefinitionWorkflow],
        activities=[],
        workflow_runner=workflow_runner(True),
    ):
        handle = await start(client, task_queue, "\n".join(lines) + "\n")
        async with asyncio.timeout(60):
            result = await handle.result()
    assert len(result) == 1500
    history = await handle.fetch_history()
    timers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert len(timers) == 1
