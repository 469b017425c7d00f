"""Control flow on a real Temporal dev server (docs/language.md): `succeed`, deferred
choice (`signal: [a, b]`), `cancel_step`.

Each construct of issue 12 gets its tests here as it lands.
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from interpreter.client.control import cancel_run
from tests.support.runs import DEFINITIONS, start, statuses, wait_for_step

pytestmark = pytest.mark.integration


async def test_succeed_ends_the_run_completed_at_once(client: Client, worker: str) -> None:
    """Running steps are cancelled; no compensation, no on_failure; its `output` is the
    run's output."""
    handle = await start(
        client,
        worker,
        """
name: early-exit
steps:
  - id: book
    action: echo
    parameters: {booked: 1}
    compensate: {action: echo, parameters: {undo: 1}}
  - {id: slow, action: sleep, parameters: {seconds: 60}}
  - {id: done, type: succeed, dependencies: [book], output: {booked: '${{ steps.book.output.booked }}'}}
  - {id: never, action: echo, dependencies: [done]}
output: {unused: true}
on_failure: [{id: alert, action: echo}]
""",
    )
    async with asyncio.timeout(30):
        assert await handle.result() == {"booked": 1}
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    answer = await handle.query("status")
    assert answer["status"] == "COMPLETED"
    assert {k: s["status"] for k, s in answer["steps"].items()} == {
        "book": "completed",
        "slow": "cancelled",
        "done": "completed",
        "never": "cancelled",
    }
    assert answer["steps"]["never"]["started_at"] is None


async def test_succeed_in_a_branch_ends_the_whole_run(client: Client, worker: str) -> None:
    """Without `output`, the run's output is that of the completed top-level steps."""
    handle = await start(
        client,
        worker,
        """
name: branch-exit
steps:
  - {id: first, action: echo, parameters: {n: 1}}
  - id: par
    type: parallel
    dependencies: [first]
    branches:
      - name: quick
        steps: [{id: stop, type: succeed}]
      - name: slow
        steps: [{id: nap, action: sleep, parameters: {seconds: 60}}]
  - {id: after, action: echo, dependencies: [par]}
""",
    )
    async with asyncio.timeout(30):
        assert await handle.result() == {"first": {"n": 1}, "par": None}
    assert await statuses(handle) == {
        "first": "completed",
        "par": "completed",
        "stop": "completed",
        "nap": "cancelled",
        "after": "cancelled",
    }


@pytest.mark.parametrize(
    ("in_stock", "output", "reorder"),
    [(12, {"sku": "A-17", "reordered": False}, "skipped"), (3, None, "completed")],
)
async def test_the_stock_check_example_stops_early_when_nothing_is_to_do(
    client: Client, worker: str, in_stock: int, output: object, reorder: str
) -> None:
    handle = await start(
        client, worker, DEFINITIONS / "stock-check.yaml", {"sku": "A-17", "in_stock": in_stock}
    )
    async with asyncio.timeout(30):
        result = await handle.result()
    assert result == (output or {"sku": "A-17", "reordered": True})
    assert (await statuses(handle))["reorder"] == reorder


async def test_a_signal_step_with_several_names_takes_the_first_to_arrive(
    client: Client, worker: str
) -> None:
    """Deferred choice: also among signals buffered before the step started, in arrival
    order; the other payload stays for a step that waits for it by name."""
    handle = await start(
        client,
        worker,
        """
name: choice
steps:
  - {id: gate, type: signal, signal: open}
  - {id: answer, type: signal, signal: [approve, reject], dependencies: [gate]}
  - {id: late, type: signal, signal: approve, dependencies: [answer]}
""",
    )
    await handle.signal("reject", {"why": "too much"})
    await handle.signal("approve", {"by": "ann"})
    await handle.signal("open")
    async with asyncio.timeout(30):
        result = await handle.result()
    assert result["answer"] == {"signal": "reject", "payload": {"why": "too much"}}
    assert result["late"] == {"by": "ann"}


async def test_a_signal_choice_waits_and_times_out_naming_every_signal(
    client: Client, worker: str
) -> None:
    handle = await start(
        client,
        worker,
        "name: choice-wait\nsteps:\n"
        "  - {id: answer, type: signal, signal: [approve, reject]}\n"
        "  - {id: short, type: signal, signal: [x, y], timeout: 1s, dependencies: [answer]}\n",
    )
    await wait_for_step(handle, "answer")
    await handle.signal("approve", 7)
    with pytest.raises(WorkflowFailureError) as caught:
        async with asyncio.timeout(30):
            await handle.result()
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "SignalTimeout"
    assert cause.message == "step 'short' failed: no signal of 'x', 'y' within 1s"
    steps = await handle.query("outputs")
    assert steps == {"answer": {"signal": "approve", "payload": 7}}


@pytest.mark.parametrize("answer", ["accept", "decline"])
async def test_the_quote_example_acts_on_the_first_answer(
    client: Client, worker: str, answer: str
) -> None:
    handle = await start(
        client, worker, DEFINITIONS / "quote-choice.yaml", {"customer": "ada", "price": 120}
    )
    await wait_for_step(handle, "answer")
    await handle.signal(answer, {"note": "ship on Monday"})
    await handle.signal("accept" if answer == "decline" else "decline", {"note": "too late"})
    async with asyncio.timeout(30):
        result = await handle.result()
    assert result["answer"] == {"signal": answer, "payload": {"note": "ship on Monday"}}
    done = await statuses(handle)
    assert (done["book"], done["close"]) == (
        ("completed", "skipped") if answer == "accept" else ("skipped", "completed")
    )


async def test_cancel_step_cancels_one_running_step_and_the_run_goes_on(
    client: Client, worker: str
) -> None:
    """The step ends `cancelled` with all inside it; its dependents see it as skipped;
    a step that is not running is left alone."""
    handle = await start(
        client,
        worker,
        """
name: cancel-one
steps:
  - {id: slow, action: sleep, parameters: {seconds: 60}}
  - id: par
    type: parallel
    branches:
      - {name: a, steps: [{id: nap, action: sleep, parameters: {seconds: 60}}]}
      - {name: b, steps: [{id: wait_b, type: signal, signal: never}]}
  - {id: after_slow, action: echo, dependencies: [slow]}
  - {id: after_par, action: echo, dependencies: [par]}
  - {id: other, type: signal, signal: go}
  - {id: last, action: echo, parameters: {n: 1}, dependencies: [other]}
""",
    )
    await wait_for_step(handle, "slow")
    await wait_for_step(handle, "nap")
    await cancel_run(client, handle.id, step="last")  # pending: a no-op
    await cancel_run(client, handle.id, step="nosuch")
    await cancel_run(client, handle.id, step="slow")
    await cancel_run(client, handle.id, step="par")
    await wait_for_step(handle, "par", "cancelled")
    await handle.signal("go")
    async with asyncio.timeout(30):
        result = await handle.result()
    assert result == {"other": None, "last": {"n": 1}}
    assert await statuses(handle) == {
        "slow": "cancelled",
        "par": "cancelled",
        "nap": "cancelled",
        "wait_b": "cancelled",
        "after_slow": "skipped",
        "after_par": "skipped",
        "other": "completed",
        "last": "completed",
    }
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_cancel_remaining_false_leaves_the_rest_running_and_the_run_waits(
    client: Client, worker: str
) -> None:
    """The step completes at its join (its dependents start); what still runs finishes,
    its output not part of the step's; the run ends after it."""
    handle = await start(
        client,
        worker,
        """
name: keep-going
steps:
  - id: race
    type: parallel
    join: any
    cancel_remaining: false
    branches:
      - {name: fast, steps: [{id: quick, action: echo, parameters: {n: 1}}]}
      - {name: slow, steps: [{id: gate, type: signal, signal: finish}, {id: late, action: echo, parameters: {n: 2}, dependencies: [gate]}]}
  - {id: next, action: echo, dependencies: [race], parameters: {saw: '${{ steps.race.output }}'}}
  - id: each
    type: foreach
    items: [0.1, 30]
    join: {count: 1}
    cancel_remaining: false
    dependencies: [next]
    step: {id: nap, action: sleep, parameters: {seconds: '${{ item }}'}}
""",
    )
    await wait_for_step(handle, "next", "completed")
    assert (await statuses(handle))["late"] == "pending"
    await wait_for_step(handle, "each", "completed")
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    await handle.signal("finish")
    await wait_for_step(handle, "late", "completed")
    assert (await statuses(handle))["nap[1]"] == "running"
    await handle.terminate()  # the 30 s item would hold the run; the rest is shown
    result = await handle.query("outputs")
    assert result["race"] == {"fast": {"quick": {"n": 1}}}
    assert result["next"] == {"saw": {"fast": {"quick": {"n": 1}}}}
    assert result["each"] == [{"slept": 0.1}, None]


async def test_the_run_ends_only_after_the_leftovers(client: Client, worker: str) -> None:
    handle = await start(
        client,
        worker,
        """
name: wait-for-leftovers
steps:
  - id: race
    type: parallel
    join: {count: 1}
    cancel_remaining: false
    branches:
      - {name: fast, steps: [{id: quick, action: echo}]}
      - {name: slow, steps: [{id: nap, action: sleep, parameters: {seconds: 1.5}}]}
""",
    )
    async with asyncio.timeout(30):
        assert await handle.result() == {"race": {"fast": {"quick": {}}}}
    assert await statuses(handle) == {"race": "completed", "quick": "completed", "nap": "completed"}


async def test_the_fastest_quote_example_orders_from_the_first_and_waits_for_the_rest(
    client: Client, worker: str
) -> None:
    handle = await start(client, worker, DEFINITIONS / "fastest-quote.yaml", {"item": "widget"})
    async with asyncio.timeout(30):
        result = await handle.result()
    assert result["ordered"]["quotes"] == {
        "acme": {"acme_quote": {"supplier": "acme", "price": 10}}
    }
    states = await handle.query("status")
    assert states["steps"]["globex_quote"]["status"] == "completed"
    # The run waited for the slower supplier: its quote came after the order.
    steps = states["steps"]
    assert steps["globex_quote"]["ended_at"] > steps["order"]["ended_at"]


async def test_the_best_effort_enrichment_example_goes_on_without_the_cancelled_step(
    client: Client, worker: str
) -> None:
    handle = await start(
        client, worker, DEFINITIONS / "best-effort-enrichment.yaml", {"order_id": "A-42"}
    )
    await wait_for_step(handle, "enrich")
    await cancel_run(client, handle.id, step="enrich")
    async with asyncio.timeout(30):
        assert await handle.result() == {"order_id": "A-42", "enriched": "cancelled"}
    assert await statuses(handle) == {
        "load": "completed",
        "enrich": "cancelled",
        "ship": "completed",
    }
