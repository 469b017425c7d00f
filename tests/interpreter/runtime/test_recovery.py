"""When things go wrong: compensation (saga), on_failure, cancellation; and large foreach."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from tests.support.runs import start, statuses, wait_for_step

pytestmark = pytest.mark.integration

SAGA = """
name: saga
steps:
  - {id: a, action: echo, parameters: {n: 1}, compensate: {action: log, parameters: {message: "undo a ${{ steps.a.output.n }}"}}}
  - {id: b, action: echo, dependencies: [a], compensate: {${undo_b}}}
  - {id: c, action: ${c_action}, dependencies: [b], parameters: {${c_params}}}
on_failure:
  - {id: alert, action: echo, parameters: {error: "${{ run.error.message }}", failed_step: "${{ run.error.step }}"}}
"""


def _saga(
    undo_b: str = "action: log, parameters: {message: undo b}",
    c_action: str = "fail",
    c_params: str = "message: boom, non_retryable: true",
) -> str:
    return (
        SAGA.replace("${undo_b}", undo_b)
        .replace("${c_action}", c_action)
        .replace("${c_params}", c_params)
    )


async def _steps(handle: Any) -> dict[str, Any]:
    return dict((await handle.query("status"))["steps"])


async def test_failed_run_compensates_in_reverse_then_runs_on_failure(
    client: Client, worker: str
) -> None:
    handle = await start(client, worker, _saga())
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    assert "step 'c' failed: boom" in str(caught.value.cause)
    steps = await _steps(handle)
    assert {k: v["status"] for k, v in steps.items()} == {
        "a": "completed",
        "b": "completed",
        "c": "failed",
        "b.compensate": "completed",
        "a.compensate": "completed",
        "alert": "completed",
    }
    assert datetime.fromisoformat(steps["b.compensate"]["ended_at"]) <= datetime.fromisoformat(
        steps["a.compensate"]["started_at"]
    )
    assert datetime.fromisoformat(steps["a.compensate"]["ended_at"]) <= datetime.fromisoformat(
        steps["alert"]["started_at"]
    )
    outputs = await handle.query("outputs")
    assert outputs["alert"] == {"error": "step 'c' failed: boom", "failed_step": "c"}


async def test_a_failing_compensation_is_reported_and_the_others_still_run(
    client: Client, worker: str
) -> None:
    handle = await start(
        client,
        worker,
        _saga(undo_b="action: fail, parameters: {message: undo b, non_retryable: true}"),
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    steps = await _steps(handle)
    assert steps["b.compensate"]["status"] == "failed"
    assert steps["b.compensate"]["error"]["message"] == "undo b"
    assert steps["a.compensate"]["status"] == "completed"
    assert steps["alert"]["status"] == "completed"
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED


async def test_completed_run_compensates_nothing(client: Client, worker: str) -> None:
    handle = await start(client, worker, _saga(c_action="echo", c_params="x: 1"))
    await handle.result()
    assert set(await statuses(handle)) == {"a", "b", "c"}


@pytest.mark.parametrize("how", ["signal", "native"])
async def test_cancel_compensates_but_does_not_run_on_failure(
    client: Client, worker: str, how: str
) -> None:
    handle = await start(client, worker, _saga(c_action="sleep", c_params="seconds: 60"))
    await wait_for_step(handle, "c")
    await (handle.signal("cancel") if how == "signal" else handle.cancel())
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    assert await statuses(handle) == {
        "a": "completed",
        "b": "completed",
        "c": "cancelled",
        "b.compensate": "completed",
        "a.compensate": "completed",
    }


async def test_compensation_inside_a_parallel_branch_and_foreach(
    client: Client, worker: str
) -> None:
    handle = await start(
        client,
        worker,
        """
name: nested
steps:
  - id: par
    type: parallel
    branches:
      - {name: one, steps: [{id: p1, action: echo, compensate: {action: log, parameters: {message: undo p1}}}]}
  - id: each
    type: foreach
    dependencies: [par]
    items: [x, y]
    step: {id: item, action: echo, parameters: {v: "${{ item }}"}, compensate: {action: log, parameters: {message: "undo ${{ item }}"}}}
  - {id: boom, type: fail, message: stop, dependencies: [each]}
""",
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    steps = await statuses(handle)
    assert (
        steps["p1.compensate"]
        == steps["item[0].compensate"]
        == steps["item[1].compensate"]
        == "completed"
    )


async def test_large_foreach_runs_in_batches_of_child_workflows(
    client: Client, worker: str
) -> None:
    handle = await start(
        client,
        worker,
        "name: big\nsteps:\n  - {id: seed, type: set, values: {tag: t}}\n"
        "  - id: each\n    type: foreach\n    dependencies: [seed]\n    items: '${{ input.items }}'\n"
        "    step: {id: one, type: set, values: {at: '${{ index }}', v: '${{ item }}', tag: '${{ vars.tag }}'}}\n",
        {"items": list(range(1000))},
    )
    output = await handle.result()
    assert len(output["each"]) == 1000
    assert output["each"][0] == {"at": 0, "v": 0, "tag": "t"}
    assert output["each"][777] == {"at": 777, "v": 777, "tag": "t"}
    steps = await statuses(handle)
    assert [k for k in steps if "#batch" in k] == [f"each#batch-{k}" for k in range(5)]
    child = client.get_workflow_handle(f"{handle.id}/each/batch-4")
    assert (await child.describe()).status == WorkflowExecutionStatus.COMPLETED


COUNTED = """
name: counted
steps:
  - id: each
    type: foreach
    items: '${{ input.items }}'
    join: %s
    step:
      id: one
      action: fail
      parameters: {message: 'item ${{ item }}', non_retryable: true, until_attempt: '${{ item }}'}
"""
"""Item n fails (for good) unless n is 0 or 1: `fail` succeeds from attempt `until_attempt`."""


def _items(count: int, failing_every: int) -> list[int]:
    """`count` items, every *failing_every*-th of which fails (a value 99 never reaches)."""
    return [99 if index % failing_every == 0 else 1 for index in range(count)]


async def test_a_large_foreach_with_a_count_join_runs_in_batches_and_counts_items(
    client: Client, worker: str
) -> None:
    """Used to run all 450 items in the run itself (and with 2,100 never ended)."""
    items = _items(450, failing_every=3)  # 300 items succeed
    handle = await start(client, worker, COUNTED % "{count: 250}", {"items": items})
    output = (await handle.result())["each"]
    assert len(output) == 450
    completed = [index for index, value in enumerate(output) if value is not None]
    assert len(completed) == 250  # the first 250 completed, by index
    assert completed == [index for index in range(450) if index % 3][:250]
    assert output[1] == {"attempt": 1}
    steps = await statuses(handle)
    assert [k for k in steps if "#batch" in k] == [f"each#batch-{k}" for k in range(3)]
    assert "one[1]" not in steps  # the items ran in the children, not here


async def test_a_count_join_over_batches_fails_once_it_cannot_be_met(
    client: Client, worker: str
) -> None:
    items = _items(450, failing_every=3)  # only 300 can succeed
    handle = await start(client, worker, COUNTED % "{count: 400}", {"items": items})
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    assert isinstance(caught.value.cause, ApplicationError)
    assert "'one'" in caught.value.cause.message
    assert "item 99" in caught.value.cause.message


async def test_an_any_join_over_batches_ends_with_the_first_batch(
    client: Client, worker: str
) -> None:
    items = [1] * 2100  # wider than Temporal allows pending in one run
    handle = await start(
        client,
        worker,
        COUNTED.replace("    join:", "    max_concurrency: 200\n    join:") % "any",
        {"items": items},
    )
    output = (await handle.result())["each"]
    assert [index for index, value in enumerate(output) if value is not None] == [0]
    steps = await statuses(handle)
    batches = {k: v for k, v in steps.items() if "#batch" in k}
    assert batches["each#batch-0"] == "completed"
    assert set(batches.values()) <= {"completed", "cancelled"}  # the rest stopped
    assert len(batches) < 11


async def test_signal_timeout_fails_the_step_and_continue_on_error_absorbs_it(
    time_env: WorkflowEnvironment, time_worker: str
) -> None:
    handle = await start(
        time_env.client,
        time_worker,
        "name: s\nsteps:\n  - {id: answer, type: signal, signal: approval, timeout: 2h, continue_on_error: true}\n"
        "  - {id: after, action: echo, dependencies: [answer], parameters: {status: '${{ steps.answer.status }}', "
        "why: '${{ steps.answer.error.type }}'}}\n",
    )
    output = await handle.result()
    assert output["after"] == {"status": "failed", "why": "SignalTimeout"}


async def test_wait_is_a_durable_timer(time_env: WorkflowEnvironment, time_worker: str) -> None:
    handle = await start(
        time_env.client,
        time_worker,
        "name: w\nsteps:\n  - {id: day, type: wait, duration: 1d}\n"
        "  - {id: until, type: wait, until: '2000-01-01T00:00:00Z', dependencies: [day]}\n",
    )
    assert await handle.result() == {"day": {"waited": 86400.0}, "until": {"waited": 0.0}}
