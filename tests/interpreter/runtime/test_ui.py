"""What the Temporal Web UI reads for a run, checked through the API (no browser).

The UI shows the static summary and details ("User Metadata" tab), the workflow's
current details (a `__temporal_workflow_metadata` query answered by a live worker),
each activity's and timer's summary (event history and timeline), and the search
attributes and memo (list filters, "Search Attributes" and "Memo" tabs). See
docs/temporal-ui.md for what it looks like. Runs are started with the real client's
`start_run`, so the search attributes, memo and static summary are the ones
`tdsl run` sets. The step summaries and the completed table of a plain run are in
tests/interpreter/runtime/test_workflow.py; this file covers the rest.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from interpreter.client.submit import new_workflow_id, start_run
from interpreter.contract import DSL_NAME, DSL_VERSION
from interpreter.runtime.progress import Progress
from tests.support.runs import DEFINITIONS, run_input

pytestmark = pytest.mark.integration

ORDER_INPUT = {"order_id": "A1", "total": 150, "items": ["x"]}

SLOW = """\
name: slow-demo
version: 0.1.0
description: A run with long steps
steps:
  - {id: fetch, name: Fetch data, action: echo, parameters: {x: 1}}
  - {id: crunch, name: Crunch numbers, action: sleep, parameters: {seconds: 60},
     dependencies: [fetch]}
  - {id: pause, name: Cool down, type: wait, duration: 60s, dependencies: [fetch]}
  - {id: store, name: Store result, action: echo, dependencies: [crunch, pause]}
"""


async def _text(client: Client, payload: Any) -> str:
    return str(client.data_converter.payload_converter.from_payload(payload))


async def _details(handle: WorkflowHandle[Any, Any]) -> str:
    metadata = await handle.query("__temporal_workflow_metadata")
    return str(metadata.current_details)


async def _event_summaries(
    client: Client, handle: WorkflowHandle[Any, Any]
) -> dict[str, list[str]]:
    """Activity and timer summaries, in history order, as the UI shows them."""
    found: dict[str, list[str]] = {"activity": [], "timer": []}
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            found["activity"].append(await _text(client, event.user_metadata.summary))
        elif event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            found["timer"].append(await _text(client, event.user_metadata.summary))
    return found


async def test_a_run_is_findable_and_labelled_in_the_ui(client: Client, worker: str) -> None:
    workflow_id = new_workflow_id("order-fulfilment")
    handle = await start_run(
        client,
        run_input(DEFINITIONS / "order-fulfilment.yaml", ORDER_INPUT),
        workflow_id=workflow_id,
        task_queue=worker,
    )
    assert (await handle.result())["freight"] == "completed"

    description = await handle.describe()
    assert description.typed_search_attributes.get(DSL_NAME) == "order-fulfilment"
    assert description.typed_search_attributes.get(DSL_VERSION) == "1.2.0"
    memo = await description.memo()
    assert memo["dsl_name"] == "order-fulfilment"
    assert memo["dsl_version"] == "1.2.0"
    assert len(memo["dsl_hash"]) == 64
    assert await description.static_summary() == "order-fulfilment 1.2.0"
    assert await description.static_details() == "Ship a paid order"

    # The UI's list filter `DslName="order-fulfilment"` finds the run (visibility may lag).
    query = f'DslName="order-fulfilment" AND DslVersion="1.2.0" AND WorkflowId="{workflow_id}"'
    for _ in range(100):
        listed = [execution.id async for execution in client.list_workflows(query)]
        if listed:
            break
        await asyncio.sleep(0.1)
    assert listed == [workflow_id]

    # Steps inside parallel branches carry their own id and name too.
    summaries = await _event_summaries(client, handle)
    assert sorted(summaries["activity"]) == [
        "charge: Charge card",
        "receipt: Write receipt",
        "reserve: Reserve stock",
        "ship_freight: Ship by freight",
        "validate: Validate order",
    ]
    details = await _details(handle)
    assert details.startswith("**order-fulfilment 1.2.0** — completed (8 completed, 1 skipped)")
    assert "| ⏭️ skipped | `ship_parcel` | Ship by parcel |" in details
    assert "| ✅ completed | `reserve` | ↳ Reserve stock |" in details


async def test_a_running_run_shows_its_running_steps(client: Client, worker: str) -> None:
    handle = await start_run(
        client, run_input(SLOW), workflow_id=new_workflow_id("slow-demo"), task_queue=worker
    )
    try:
        for _ in range(200):
            details = await _details(handle)
            if "| ▶️ running | `pause` | Cool down |" in details:
                break
            await asyncio.sleep(0.05)
        assert details.splitlines() == [
            "**slow-demo 0.1.0** — running (1 pending, 2 running, 1 completed)",
            "",
            "| status | step | name |",
            "|---|---|---|",
            "| ✅ completed | `fetch` | Fetch data |",
            "| ▶️ running | `crunch` | Crunch numbers |",
            "| ▶️ running | `pause` | Cool down |",
            "| ⏳ pending | `store` | Store result |",
        ]
        summaries = await _event_summaries(client, handle)
        assert summaries == {
            "activity": ["fetch: Fetch data", "crunch: Crunch numbers"],
            "timer": ["pause: Cool down"],
        }
        assert await (await handle.describe()).static_details() == "A run with long steps"
    finally:
        # Cancel rather than terminate: the workflow then finishes on the worker, and no
        # cached workflow coroutine is left behind for the garbage collector to complain about.
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()


def test_when_the_run_ends_steps_that_never_started_show_cancelled() -> None:
    """What `_finish_run` does to the details table and the status query (no server)."""
    progress = Progress(title="t 1.0.0")
    for step_id in ("a", "b", "c"):
        progress.declare(step_id, step_id.upper(), "task")
    start, end = datetime(2025, 1, 1, 10, tzinfo=UTC), datetime(2025, 1, 1, 10, 1, tzinfo=UTC)
    progress.update("a", "running", start)
    progress.update("a", "failed", start, error={"type": "X", "message": "boom"})
    progress.cancel_pending(end)
    progress.cancel_pending(end)  # nothing pending any more: a no-op
    assert progress.counts == {
        "pending": 0,
        "waiting": 0,
        "running": 0,
        "completed": 0,
        "skipped": 0,
        "failed": 1,
        "cancelled": 2,
    }
    answer = progress.query("FAILED", paused=False)
    assert answer["steps"]["b"] == {
        "status": "cancelled",
        "attempts": 0,
        "started_at": None,  # it never started
        "ended_at": end.isoformat(),
        "error": None,
    }
    assert progress.markdown("FAILED", paused=False).splitlines()[:7] == [
        "**t 1.0.0** — failed (1 failed, 2 cancelled)",
        "",
        "| status | step | name |",
        "|---|---|---|",
        "| ❌ failed | `a` | A |",
        "| 🚫 cancelled | `b` | B |",
        "| 🚫 cancelled | `c` | C |",
    ]
