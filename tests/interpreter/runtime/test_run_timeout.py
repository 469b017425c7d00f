"""The run timeout (a definition's `timeout`) and a subworkflow step's own `timeout`.

On Temporal's time-skipping test server: the hours these runs wait pass at once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.support.runs import run_failure, start, statuses, wait_for_step

pytestmark = pytest.mark.integration

TIMED_OUT = """
name: slow-order
timeout: 1h
steps:
  - id: charge
    action: echo
    parameters: {amount: 12}
    compensate: {action: echo, parameters: {refund: "${{ steps.charge.output.amount }}"}}
  - {id: hold, type: wait, duration: 2h, dependencies: [charge]}
  - {id: approval, type: signal, signal: approve, dependencies: [charge]}
  - {id: ship, action: echo, dependencies: [hold, approval]}
on_failure:
  - id: alert
    action: echo
    parameters: {type: "${{ run.error.type }}", message: "${{ run.error.message }}", step: "${{ run.error.step }}"}
"""

CHILD = """
name: notify-customer
steps:
  - {id: pause, type: wait, duration: 1h}
output: {notified: true}
"""


async def _timers(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The timer events of the run's history, by name."""
    timer_events = {EventType.EVENT_TYPE_TIMER_STARTED, EventType.EVENT_TYPE_TIMER_CANCELED}
    history = await handle.fetch_history()
    return [EventType.Name(e.event_type) for e in history.events if e.event_type in timer_events]


async def test_run_timeout_cancels_compensates_runs_on_failure_and_fails_the_run(
    time_env: WorkflowEnvironment, time_worker: str
) -> None:
    began = time.monotonic()
    handle = await start(time_env.client, time_worker, TIMED_OUT)
    cause = await run_failure(handle)
    assert time.monotonic() - began < 30  # an hour of workflow time, seconds of real time
    assert cause.type == "RunTimeout"
    assert cause.message == "the run did not finish within its timeout of 1h"
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    answer = await handle.query("status")
    assert answer["status"] == "FAILED"
    steps = {k: v["status"] for k, v in answer["steps"].items()}
    assert sorted(steps) == ["alert", "approval", "charge", "charge.compensate", "hold", "ship"]
    assert {k: steps[k] for k in ("charge", "hold", "approval")} == {
        "charge": "completed",
        "hold": "cancelled",
        "approval": "cancelled",
    }
    assert steps["charge.compensate"] == steps["alert"] == "completed"
    assert steps["ship"] != "completed"  # never started
    outputs = await handle.query("outputs")
    assert outputs["alert"] == {
        "type": "RunTimeout",
        "message": "the run did not finish within its timeout of 1h",
        "step": None,
    }


async def test_a_run_that_finishes_in_time_is_unaffected(
    time_env: WorkflowEnvironment, time_worker: str
) -> None:
    handle = await start(
        time_env.client,
        time_worker,
        "name: quick\ntimeout: 1h\nsteps:\n  - {id: a, action: echo, parameters: {v: 1}}\n"
        "  - {id: nap, type: wait, duration: 10m, dependencies: [a]}\n",
    )
    assert await handle.result() == {"a": {"v": 1}, "nap": {"waited": 600.0}}
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    # The run's own timer and the wait's; the run's is cancelled once the steps are done.
    assert await _timers(handle) == [
        "EVENT_TYPE_TIMER_STARTED",
        "EVENT_TYPE_TIMER_STARTED",
        "EVENT_TYPE_TIMER_CANCELED",
    ]


async def test_without_a_timeout_no_timer_is_started(
    time_env: WorkflowEnvironment, time_worker: str
) -> None:
    handle = await start(
        time_env.client, time_worker, "name: plain\nsteps: [{id: a, action: echo}]\n"
    )
    await handle.result()
    assert await _timers(handle) == []


async def test_subworkflow_step_timeout_fails_the_step_with_run_timeout(
    time_env: WorkflowEnvironment, time_worker: str, tmp_path: Path
) -> None:
    (tmp_path / "notify-customer.yaml").write_text(CHILD)
    handle = await start(
        time_env.client,
        time_worker,
        "name: checkout\nsteps:\n"
        "  - {id: notify, type: subworkflow, workflow: notify-customer, timeout: 30s}\n",
        directory=tmp_path,
    )
    cause = await run_failure(handle)
    message = (
        "subworkflow 'notify-customer' (step 'notify') did not finish within its timeout of 30s"
    )
    assert cause.type == "RunTimeout"
    assert cause.message == f"step 'notify' failed: {message}"
    assert (await statuses(handle))["notify"] == "failed"
    step = (await handle.query("status"))["steps"]["notify"]
    assert step["error"] == {"type": "RunTimeout", "message": message}
    child = time_env.client.get_workflow_handle(f"{handle.id}/notify")
    assert (await child.describe()).status == WorkflowExecutionStatus.TIMED_OUT


async def test_subworkflow_timeout_can_be_absorbed_and_read_downstream(
    time_env: WorkflowEnvironment, time_worker: str, tmp_path: Path
) -> None:
    (tmp_path / "notify-customer.yaml").write_text(CHILD)
    handle = await start(
        time_env.client,
        time_worker,
        "name: checkout\nsteps:\n"
        "  - {id: notify, type: subworkflow, workflow: notify-customer, timeout: 30s, continue_on_error: true}\n"
        "  - {id: after, action: echo, dependencies: [notify], parameters: {why: '${{ steps.notify.error.type }}'}}\n",
        directory=tmp_path,
    )
    output = await handle.result()
    assert output["after"] == {"why": "RunTimeout"}


async def test_a_subworkflow_in_time_completes(
    time_env: WorkflowEnvironment, time_worker: str, tmp_path: Path
) -> None:
    (tmp_path / "notify-customer.yaml").write_text(CHILD)
    handle = await start(
        time_env.client,
        time_worker,
        "name: checkout\nsteps:\n"
        "  - {id: notify, type: subworkflow, workflow: notify-customer, timeout: 2h}\n",
        directory=tmp_path,
    )
    assert await handle.result() == {"notify": {"notified": True}}


async def test_foreach_batches_run_within_the_parents_timeout(
    time_env: WorkflowEnvironment, time_worker: str
) -> None:
    handle = await start(
        time_env.client,
        time_worker,
        "name: big\ntimeout: 1h\nsteps:\n  - id: each\n    type: foreach\n"
        "    items: '${{ input.items }}'\n    step: {id: one, type: wait, duration: 2h}\n",
        {"items": list(range(201))},
    )
    cause = await run_failure(handle)
    assert cause.type == "RunTimeout"
    child = time_env.client.get_workflow_handle(f"{handle.id}/each/batch-0")
    assert (await child.describe()).status == WorkflowExecutionStatus.CANCELED
    steps = await statuses(handle)
    assert steps["each"] == "cancelled"
    assert steps["each#batch-0"] == steps["each#batch-1"] == "cancelled"  # not "failed"


async def test_a_cancelled_run_with_a_timeout_ends_canceled(
    time_env: WorkflowEnvironment, time_worker: str
) -> None:
    handle = await start(time_env.client, time_worker, TIMED_OUT)
    await wait_for_step(handle, "approval")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    steps = await statuses(handle)
    assert steps["approval"] == "cancelled"
    assert steps["charge.compensate"] == "completed"
    assert "alert" not in steps  # on_failure is for failed runs only
