"""Unbounded runs: a run continues as new on its own and goes on as one logical run
(docs/language.md, "Unbounded runs"), on a real Temporal dev server."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from tests.support.runs import runs_of, start, statuses, wait_for_step

pytestmark = pytest.mark.integration


def chain(count: int, *, limit: int = 20, head: str = "", sleep: float | None = None) -> str:
    """A definition of *count* steps s1 → s2 → …, continuing as new every *limit* events;
    each echoes ``{n: i}``, or sleeps *sleep* seconds."""
    lines = [f"name: long-chain\nhistory_limit: {limit}\n{head}steps:"]
    for index in range(1, count + 1):
        after = f", dependencies: [s{index - 1}]" if index > 1 else ""
        if sleep is None:
            step = f"action: echo, parameters: {{n: {index}}}"
        else:
            step = f"action: sleep, parameters: {{seconds: {sleep}}}"
        lines.append(f"  - {{id: s{index}, {step}{after}}}")
    return "\n".join(lines) + "\n"


async def test_a_long_chain_continues_as_new_and_ends_as_one_run(
    client: Client, worker: str
) -> None:
    text = chain(
        30,
        head="output: {first: '${{ steps.s1.output }}', last: '${{ steps.s30.output }}',"
        " run_id: '${{ run.run_id }}'}\n",
    )
    handle = await start(client, worker, text)
    result = await handle.result()
    runs = await runs_of(client, handle)
    assert len(runs) >= 3, runs
    assert all(continued for _, _, continued in runs[:-1])
    assert not runs[-1][2]
    assert max(events for _, events, _ in runs) < 20 + 15  # the limit, plus what still ran
    # One logical run: the first run's id, and the outputs of steps of every run.
    assert result == {"first": {"n": 1}, "last": {"n": 30}, "run_id": runs[0][0]}
    status = await handle.query("status")
    assert status["continued"] == len(runs) - 1
    assert set(status["steps"]) == {f"s{i}" for i in range(1, 31)}
    assert {s["status"] for s in status["steps"].values()} == {"completed"}
    assert all(s["started_at"] and s["ended_at"] for s in status["steps"].values())
    assert await handle.query("outputs") == {f"s{i}": {"n": i} for i in range(1, 31)}


async def test_default_output_holds_every_top_level_step(client: Client, worker: str) -> None:
    handle = await start(client, worker, chain(12, limit=10))
    assert await handle.result() == {f"s{i}": {"n": i} for i in range(1, 13)}
    assert len(await runs_of(client, handle)) >= 2


async def test_vars_signals_and_compensation_cross_into_the_continued_run(
    client: Client, worker: str
) -> None:
    text = """
name: carried
history_limit: 12
steps:
  - id: book
    action: echo
    parameters: {booked: 1}
    compensate: {action: echo, parameters: {undo: '${{ steps.book.output.booked }}'}}
  - {id: remember, type: set, values: {colour: blue}, dependencies: [book]}
  - {id: a, action: echo, dependencies: [remember]}
  - {id: b, action: echo, dependencies: [a]}
  - {id: c, action: echo, dependencies: [b]}
  - {id: d, action: echo, dependencies: [c]}
  - {id: approve, type: signal, signal: approve, dependencies: [d]}
  - id: boom
    action: fail
    parameters: {message: 'no ${{ vars.colour }} for ${{ steps.approve.output.who }}',
                 non_retryable: true}
    dependencies: [approve]
on_failure:
  - {id: report, action: echo, parameters: {error: '${{ run.error.message }}'}}
"""
    handle = await start(client, worker, text)
    await handle.signal("approve", {"who": "ann"})  # buffered long before its step
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    assert isinstance(caught.value.cause, ApplicationError)
    assert "no blue for ann" in caught.value.cause.message
    assert len(await runs_of(client, handle)) >= 2
    final = await statuses(handle)
    assert final["book.compensate"] == "completed"  # owed by an earlier run, paid in the last
    assert final["report"] == "completed"
    assert final["approve"] == "completed"


async def test_a_paused_run_stays_paused_across_continue_as_new(
    client: Client, worker: str
) -> None:
    handle = await start(client, worker, chain(4, limit=10, sleep=1.5))
    await wait_for_step(handle, "s1")
    await handle.signal("pause")
    first = (await handle.describe()).run_id
    async with asyncio.timeout(30):  # s1 ends, the run drains and continues, still paused
        while (await handle.describe()).run_id == first:
            await asyncio.sleep(0.2)
    status = await handle.query("status")
    assert status["paused"] is True
    assert status["continued"] == 1
    assert status["steps"]["s1"]["status"] == "completed"
    assert status["steps"]["s2"]["status"] == "pending"
    await handle.signal("resume")
    assert (await handle.result())["s4"] == {"slept": 1.5}


async def test_the_run_timeout_counts_from_the_first_start(client: Client, worker: str) -> None:
    handle = await start(client, worker, chain(20, limit=10, head="timeout: 4s\n", sleep=0.5))
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "RunTimeout"
    assert len(await runs_of(client, handle)) >= 2
    done = [s for s, status in (await statuses(handle)).items() if status == "completed"]
    assert 3 <= len(done) < 12, done


async def test_a_large_definition_continues_without_stalling_the_workflow_task(
    client: Client, worker: str
) -> None:
    """The continuation's input went through `dataclasses.asdict` in the sandbox, which
    deep-copies it: with a large definition and state, the workflow task passed the
    SDK's 2 s deadlock limit at every attempt, and the run never went on."""
    roots = "".join(f"  - {{id: v{i}, type: set, values: {{v{i}: {i}}}}}\n" for i in range(3000))
    text = chain(6, limit=10).replace("steps:\n", "steps:\n" + roots, 1)
    handle = await start(client, worker, text)
    async with asyncio.timeout(90):
        result = await handle.result()
    assert result["s6"] == {"n": 6}
    assert result["v2999"] == {"v2999": 2999}
    assert len(await runs_of(client, handle)) >= 2
