"""The `loop` step on a real Temporal dev server (docs/language.md, "Loops"): until
and while, `iteration`, `max_iterations`, `delay` (time-skipping), pause, cancel and
continue-as-new inside."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.support.runs import (
    DEFINITIONS,
    run_failure,
    runs_of,
    start,
    statuses,
    wait_for_step,
)

pytestmark = pytest.mark.integration

POLL = """
name: poll
steps:
  - {id: first, action: echo, parameters: {start: 2}}
  - id: poll
    type: loop
    dependencies: [first]
    until: {">=": [{"var": "steps.check.output.n"}, 4]}
    steps:
      - {id: check, action: echo, parameters: {n: "${{ iteration }}", from: "${{ steps.first.output.start }}"}}
      - {id: note, type: set, dependencies: [check], values: {seen: "${{ steps.check.output.n }}"}}
  - {id: after, action: echo, dependencies: [poll], parameters: {loop: "${{ steps.poll.output }}", seen: "${{ vars.seen }}"}}
output: "${{ steps.after.output }}"
"""


async def _activity_ids(handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [
        event.activity_task_scheduled_event_attributes.activity_id
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def test_an_until_loop_runs_its_body_until_the_condition_holds(
    client: Client, worker: str
) -> None:
    """`until` after each iteration, over the iteration just finished; the output is
    the count and the last iteration's outputs; vars set inside stay set."""
    handle = await start(client, worker, POLL)
    async with asyncio.timeout(30):
        result = await handle.result()
    last = {"check": {"n": 4, "from": 2}, "note": {"seen": 4}}
    assert result == {"loop": {"iterations": 5, "last": last}, "seen": 4}
    assert await statuses(handle) == {
        "first": "completed",
        "poll": "completed",
        "check": "completed",
        "note": "completed",
        "after": "completed",
    }
    ids = await _activity_ids(handle)
    assert ids == ["first", *(f"check@{i}" for i in range(5)), "after"]


async def test_a_while_loop_checks_before_each_iteration(client: Client, worker: str) -> None:
    """False at once: no iteration, the steps inside end skipped; `iteration` in
    `while` is the iteration about to run."""
    handle = await start(
        client,
        worker,
        """
name: counted
input: {type: object, properties: {times: {type: integer}}}
steps:
  - id: repeat
    type: loop
    while: {"<": [{"var": "iteration"}, {"var": "input.times"}]}
    steps:
      - {id: tick, type: set, values: {at: "${{ iteration }}"}}
""",
        {"times": 0},
    )
    async with asyncio.timeout(30):
        assert await handle.result() == {"repeat": {"iterations": 0, "last": {}}}
    assert await statuses(handle) == {"repeat": "completed", "tick": "skipped"}


async def test_a_loop_inside_a_foreach_item_keeps_each_items_iterations_apart(
    client: Client, worker: str
) -> None:
    """Inner steps read each other in every item's own iterations."""
    handle = await start(
        client,
        worker,
        """
name: nested
steps:
  - id: each
    type: foreach
    items: [1, 2, 3]
    step:
      id: again
      type: loop
      while: {"<": [{"var": "iteration"}, {"var": "item"}]}
      steps:
        - {id: a, action: echo, parameters: {item: "${{ item }}", i: "${{ iteration }}"}}
        - {id: b, action: echo, dependencies: [a], parameters: {saw: "${{ steps.a.output.i }}"}}
""",
    )
    async with asyncio.timeout(30):
        result = await handle.result()
    assert [entry["iterations"] for entry in result["each"]] == [1, 2, 3]
    assert [entry["last"]["b"] for entry in result["each"]] == [{"saw": 0}, {"saw": 1}, {"saw": 2}]
    ids = await _activity_ids(handle)
    assert "a[2]@2" in ids
    assert "b[2]@2" in ids


async def test_more_iterations_than_max_iterations_fail_the_step(
    client: Client, worker: str
) -> None:
    handle = await start(
        client,
        worker,
        """
name: runaway
steps:
  - id: forever
    type: loop
    max_iterations: 3
    until: false
    steps: [{id: spin, action: echo}]
""",
    )
    cause = await run_failure(handle)
    assert cause.type == "LoopLimit"
    assert cause.message == (
        "step 'forever' failed: loop 'forever' did not end within its max_iterations of 3"
    )
    assert len(await _activity_ids(handle)) == 3


async def test_a_failing_step_inside_fails_the_loop_and_the_run(
    client: Client, worker: str
) -> None:
    """Fail-fast at every depth; compensation of earlier iterations runs, newest first,
    each with its own iteration's values."""
    handle = await start(
        client,
        worker,
        """
name: saga-loop
steps:
  - id: book
    type: loop
    until: {">=": [{"var": "iteration"}, 5]}
    steps:
      - id: seat
        action: echo
        parameters: {seat: "${{ iteration }}"}
        compensate: {action: echo, parameters: {free: "${{ steps.seat.output.seat }}"}}
      - id: check
        type: fail
        dependencies: [seat]
        when: {"==": [{"var": "iteration"}, 2]}
        message: "no seat at ${{ iteration }}"
""",
    )
    cause = await run_failure(handle)
    assert cause.message == "no seat at 2"
    ids = await _activity_ids(handle)
    assert ids == [
        "seat@0",
        "seat@1",
        "seat@2",
        "seat@2.compensate",
        "seat@1.compensate",
        "seat@0.compensate",
    ]
    inputs = [
        event.activity_task_scheduled_event_attributes.input
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert b'"free": 1' in inputs[4].payloads[0].data or b'"free":1' in inputs[4].payloads[0].data


async def test_pause_holds_the_next_iteration_and_resume_goes_on(
    client: Client, worker: str
) -> None:
    """Paused while iteration 0 waits: it finishes (a signal step is not held), and
    iteration 1 waits for resume."""
    handle = await start(
        client,
        worker,
        """
name: paced
steps:
  - id: steps_
    type: loop
    while: {"<": [{"var": "iteration"}, 3]}
    steps:
      - {id: gate, type: signal, signal: next}
""",
    )
    await wait_for_step(handle, "gate")
    await handle.signal("pause")
    await handle.signal("next", {"n": 0})
    await wait_for_step(handle, "gate", "completed")
    await asyncio.sleep(0.5)  # paused: iteration 1 does not start
    answer = await handle.query("status")
    assert answer["paused"] is True
    assert answer["steps"]["gate"]["status"] == "completed"
    await handle.signal("resume")
    await wait_for_step(handle, "gate")
    await handle.signal("next", {"n": 1})
    await handle.signal("next", {"n": 2})
    async with asyncio.timeout(30):
        result = await handle.result()
    assert result["steps_"] == {"iterations": 3, "last": {"gate": {"n": 2}}}


async def test_cancel_step_stops_a_running_loop_and_the_run_goes_on(
    client: Client, worker: str
) -> None:
    """With everything inside it; its dependents see it as skipped."""
    handle = await start(
        client,
        worker,
        """
name: stoppable
steps:
  - id: spin
    type: loop
    until: false
    steps: [{id: nap, action: sleep, parameters: {seconds: 60}}]
  - {id: after, action: echo, dependencies: [spin]}
  - {id: other, action: echo}
""",
    )
    await wait_for_step(handle, "nap")
    await handle.signal("cancel_step", {"step": "spin"})
    async with asyncio.timeout(30):
        result = await handle.result()
    assert result == {"other": {}}
    assert await statuses(handle) == {
        "spin": "cancelled",
        "nap": "cancelled",
        "after": "skipped",
        "other": "completed",
    }


async def test_cancelling_the_run_cancels_the_iteration_that_runs(
    client: Client, worker: str
) -> None:
    handle = await start(
        client,
        worker,
        """
name: cancelled-loop
steps:
  - id: spin
    type: loop
    until: false
    steps: [{id: nap, action: sleep, parameters: {seconds: 60}}]
""",
    )
    await wait_for_step(handle, "nap")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert await statuses(handle) == {"spin": "cancelled", "nap": "cancelled"}


async def test_ten_thousand_iterations_complete_in_one_logical_run(
    client: Client, worker: str
) -> None:
    """Steps that issue no command (`set`) take breaks (`interpreter.runtime.breaks`),
    so no workflow task outlives the deadlock limit; the history stays small."""
    handle = await start(
        client,
        worker,
        """
name: long-loop
steps:
  - id: count
    type: loop
    max_iterations: 20000
    until: {">=": [{"var": "iteration"}, 9999]}
    steps:
      - {id: tick, type: set, values: {last: "${{ iteration }}"}}
  - {id: after, type: set, dependencies: [count], values: {done: "${{ vars.last }}"}}
""",
    )
    async with asyncio.timeout(120):
        result = await handle.result()
    assert result == {
        "count": {"iterations": 10000, "last": {"tick": {"last": 9999}}},
        "after": {"done": 9999},
    }
    runs = await runs_of(client, handle)
    assert all(events < 200 for _, events, _ in runs)
    answer = await handle.query("status")
    assert answer["steps"]["count"]["status"] == "completed"


async def test_a_loop_of_activities_continues_as_new_between_iterations(
    client: Client, worker: str
) -> None:
    """A top-level loop continues as new between iterations and goes on where it
    stopped: the count, `vars` and the last iteration's outputs cross every run, and
    each iteration runs once (`make bench` has a 10,000-iteration row)."""
    handle = await start(
        client,
        worker,
        """
name: long-poll
history_limit: 40
steps:
  - id: poll
    type: loop
    while: {"<": [{"var": "iteration"}, 25]}
    steps:
      - {id: check, action: echo, parameters: {i: "${{ iteration }}"}}
      - {id: seen, type: set, dependencies: [check], values: {i: "${{ steps.check.output.i }}"}}
""",
    )
    async with asyncio.timeout(60):
        result = await handle.result()
    assert result == {"poll": {"iterations": 25, "last": {"check": {"i": 24}, "seen": {"i": 24}}}}
    runs = await runs_of(client, handle)
    assert len(runs) >= 3
    ids = []
    for run_id, _, _ in runs:
        ids += await _activity_ids(client.get_workflow_handle(handle.id, run_id=run_id))
    assert ids == [f"check@{i}" for i in range(25)]
    answer = await handle.query("status")
    assert answer["continued"] == len(runs) - 1
    assert answer["steps"]["poll"]["status"] == "completed"
    assert all(events < 80 for _, events, _ in runs)


async def test_delay_is_a_durable_timer_between_iterations(
    time_env: WorkflowEnvironment, time_worker: str
) -> None:
    handle = await start(
        time_env.client,
        time_worker,
        """
name: slow-poll
steps:
  - id: poll
    type: loop
    delay: 10m
    until: {">=": [{"var": "iteration"}, 2]}
    steps: [{id: check, action: echo, parameters: {i: "${{ iteration }}"}}]
""",
    )
    async with asyncio.timeout(60):
        result = await handle.result()
    assert result["poll"]["iterations"] == 3
    timers = [
        event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
    assert timers == [600.0, 600.0]


async def test_the_steps_of_a_foreach_items_parallel_body_read_each_other(
    client: Client, worker: str
) -> None:
    """Each item has its own `steps`, as a loop iteration does (a known limitation before)."""
    handle = await start(
        client,
        worker,
        """
name: item-branches
steps:
  - id: each
    type: foreach
    items: [1, 2]
    step:
      id: body
      type: parallel
      branches:
        - name: b
          steps:
            - {id: a, action: echo, parameters: {v: "${{ item }}"}}
            - {id: c, action: echo, dependencies: [a], parameters: {saw: "${{ steps.a.output.v }}"}}
""",
    )
    async with asyncio.timeout(30):
        result = await handle.result()
    assert [entry["b"]["c"] for entry in result["each"]] == [{"saw": 1}, {"saw": 2}]


async def test_the_poll_until_ready_example_polls_until_the_job_is_ready(
    time_env: WorkflowEnvironment, time_worker: str
) -> None:
    handle = await start(
        time_env.client,
        time_worker,
        DEFINITIONS / "poll-until-ready.yaml",
        {"report": "q3", "ready_after": 3},
    )
    async with asyncio.timeout(60):
        result = await handle.result()
    assert result == {"job": "job-q3", "checks": 4, "ready_at": 3}
    steps = await statuses(handle)
    assert steps["poll"] == "completed"
    assert (steps["ready"], steps["not_yet"]) == ("completed", "skipped")  # the last iteration's
