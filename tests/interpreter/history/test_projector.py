"""The run history: a projector reads Temporal and UPSERTs runs and steps into PostgreSQL.

Real dev server, real worker, real PostgreSQL; the outage test stops and restarts a
PostgreSQL of its own in the middle of a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)

from interpreter.client.submit import start_run
from interpreter.dev.servers import EmbeddedPostgres
from interpreter.history.projector import Projector
from interpreter.history.store import Store
from interpreter.worker import running_worker
from tests.support.runs import run_input, start, statuses

pytestmark = pytest.mark.integration

T = TypeVar("T")

OK = """\
name: history-ok
version: 1.2.0
steps:
  - {id: greet, action: echo, parameters: {hello: "${{ input.who }}"}}
  - id: flaky
    action: fail
    parameters: {message: not yet, until_attempt: 2}
    retry_policy: {maximum_attempts: 3, initial_interval: 10ms, backoff_coefficient: 1}
    dependencies: [greet]
  - {id: done, action: echo, parameters: {attempt: "${{ steps.flaky.output.attempt }}"}, dependencies: [flaky]}
"""

FAILING = """\
name: history-failing
steps:
  - {id: first, action: echo, parameters: {x: 1}}
  - id: broken
    name: Broken step
    action: fail
    parameters: {message: boom, error_type: Broken, non_retryable: true}
    dependencies: [first]
  - {id: later, action: echo, dependencies: [broken]}
"""

SLEEPY = """\
name: history-sleepy
steps:
  - {id: a, action: sleep, parameters: {seconds: 60}}
  - {id: b, action: echo, dependencies: [a]}
"""

CHAIN = """\
name: history-chain
steps:
  - {id: s1, action: sleep, parameters: {seconds: 1}}
  - {id: s2, action: sleep, parameters: {seconds: 1}, dependencies: [s1]}
  - {id: s3, action: sleep, parameters: {seconds: 1}, dependencies: [s2]}
  - {id: s4, action: echo, parameters: {end: true}, dependencies: [s3]}
"""


@pytest.fixture
async def store(postgres: str) -> AsyncIterator[Store]:
    store = await Store.connect(postgres)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


async def _until(check: Callable[[], Awaitable[T | None]], timeout: float = 20.0) -> T:
    """Poll *check* until it returns something truthy; fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)


async def _projected(projector: Projector, handle: WorkflowHandle[Any, Any]) -> int:
    """One cycle, once visibility lists the run (it is indexed a moment after start)."""

    async def listed() -> bool:
        query = f"WorkflowId = '{handle.id}'"
        return bool([w async for w in projector.client.list_workflows(query)])

    await _until(listed)
    return await projector.sync_once()


def _steps(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["step_id"]: step for step in row["steps"]}


def _without_updated_at(row: dict[str, Any]) -> dict[str, Any]:
    plain = {key: value for key, value in row.items() if key != "updated_at"}
    plain["steps"] = [
        {key: value for key, value in step.items() if key != "updated_at"} for step in row["steps"]
    ]
    return plain


async def test_a_completed_run_is_recorded_with_outputs_and_attempts(
    client: Client, worker: str, store: Store
) -> None:
    pinned = run_input(OK, {"who": "world"})
    handle = await start_run(client, pinned, task_queue=worker)
    assert await handle.result() == {
        "greet": {"hello": "world"},
        "flaky": {"attempt": 2},
        "done": {"attempt": 2},
    }
    projector = Projector(client, store, task_queue=worker)
    assert await _projected(projector, handle) == 1

    row = await store.run(handle.id, handle.result_run_id)
    assert row is not None
    description = await handle.describe()
    assert row["definition"] == "history-ok"
    assert row["version"] == "1.2.0"
    assert row["definition_hash"] == pinned.definition_hash
    assert row["status"] == "COMPLETED"
    assert row["input"] == {"who": "world"}
    assert row["output"] == await handle.result()
    assert row["error"] is None
    assert row["started_at"] == description.start_time
    assert row["ended_at"] == description.close_time
    steps = _steps(row)
    assert list(steps) == ["greet", "flaky", "done"]  # ordered by start
    assert {k: (s["status"], s["attempts"]) for k, s in steps.items()} == {
        "greet": ("completed", 1),
        "flaky": ("completed", 2),
        "done": ("completed", 1),
    }
    assert steps["flaky"]["output"] == {"attempt": 2}
    assert steps["greet"]["output"] == {"hello": "world"}
    for step in steps.values():
        assert step["started_at"] is not None
        assert step["ended_at"] >= step["started_at"]
        assert step["error"] is None


async def test_outputs_of_nested_steps_are_recorded_too(
    client: Client, worker: str, store: Store
) -> None:
    handle = await start(
        client,
        worker,
        "name: nested\nsteps:\n  - id: par\n    type: parallel\n    branches:\n"
        "      - {name: one, steps: [{id: a1, action: echo, parameters: {n: 1}}]}\n"
        "      - {name: two, steps: [{id: b1, action: echo, parameters: {n: 2}}]}\n",
    )
    await handle.result()
    await _projected(Projector(client, store, task_queue=worker), handle)
    row = await store.run(handle.id)
    assert row is not None
    outputs = {k: s["output"] for k, s in _steps(row).items()}
    assert outputs == {"par": outputs["par"], "a1": {"n": 1}, "b1": {"n": 2}}
    assert outputs == await handle.query("outputs")


async def test_a_failed_run_keeps_its_error_and_the_failed_step(
    client: Client, worker: str, store: Store
) -> None:
    handle = await start(client, worker, FAILING)  # no memo: name and hash from the input
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    await _projected(Projector(client, store, task_queue=worker), handle)

    row = await store.run(handle.id)
    assert row is not None
    assert row["definition"] == "history-failing"
    assert row["version"] == "1.0.0"
    assert row["definition_hash"] == run_input(FAILING).definition_hash
    assert row["status"] == "FAILED"
    assert row["output"] is None
    assert row["error"] == "step 'broken' (Broken step) failed: boom"
    steps = _steps(row)
    assert {k: s["status"] for k, s in steps.items()} == {
        "first": "completed",
        "broken": "failed",
        "later": "cancelled",  # never started: the run ended first
    }
    assert steps["broken"]["error"]["message"] == "boom"
    assert steps["broken"]["output"] is None
    assert steps["later"]["started_at"] is None


@pytest.mark.parametrize(("how", "status"), [("cancel", "CANCELED"), ("terminate", "TERMINATED")])
async def test_a_cancelled_run_is_canceled_with_its_cancelled_step(
    client: Client, worker: str, store: Store, how: str, status: str
) -> None:
    handle = await start(client, worker, SLEEPY)
    await _until(lambda: _running(handle.query("status"), "a"))
    if how == "cancel":
        await handle.signal("cancel")
    else:  # the workflow never sees it: the step it left running is recorded cancelled
        await handle.terminate(reason="enough")
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    await _projected(Projector(client, store, task_queue=worker), handle)

    row = await store.run(handle.id)
    assert row is not None
    assert row["status"] == status
    assert row["error"]
    assert row["ended_at"] is not None
    # The workflow sees a cancel (what never started ends cancelled), not a termination.
    never_started = "cancelled" if how == "cancel" else "pending"
    assert {k: s["status"] for k, s in _steps(row).items()} == {
        "a": "cancelled",
        "b": never_started,
    }


async def _running(answer: Awaitable[Any], step_id: str) -> bool:
    return bool((await answer)["steps"][step_id]["status"] == "running")


async def test_the_projection_is_idempotent(client: Client, worker: str, store: Store) -> None:
    handle = await start(client, worker, OK, {"who": "again"})
    await handle.result()
    projector = Projector(client, store, task_queue=worker)
    assert "CloseTime" not in projector.query()  # first cycle: every run Temporal keeps
    assert await _projected(projector, handle) == 1
    first = await store.run(handle.id)
    assert first is not None
    assert "CloseTime >= '" in projector.query()  # then only what closed since
    assert await projector.sync_once() == 0  # nothing changed: nothing written
    assert await store.run(handle.id) == first

    # A fresh projector (a restarted worker) skips a run stored with its final status…
    assert await Projector(client, store, task_queue=worker).sync_once() == 0
    # …and rewrites one whose steps are missing (a crash between the two writes),
    # to exactly the same rows.
    await store.pool.execute("delete from run_steps where workflow_id = $1", handle.id)
    assert await Projector(client, store, task_queue=worker).sync_once() == 1
    again = await store.run(handle.id)
    assert again is not None
    assert _without_updated_at(again) == _without_updated_at(first)


async def test_the_run_goes_on_while_postgres_is_down_and_history_catches_up(
    client: Client, worker: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="interpreter.history.projector")
    server = EmbeddedPostgres(tmp_path / "pg")  # keeps its data across stop and start
    await server.astart()
    # min_size=0, as the worker does: no pool floor to restore during the outage
    store = await Store.connect(server.url, min_size=0, max_size=2)
    await store.migrate()
    projector = Projector(client, store, task_queue=worker, interval=0.2)
    task = asyncio.create_task(projector.run())
    try:
        handle = await start(client, worker, CHAIN)
        run_id = handle.result_run_id

        async def recorded(status: str) -> dict[str, Any] | None:
            row = await store.run(handle.id, run_id)
            return row if row is not None and row["status"] == status else None

        await _until(lambda: recorded("RUNNING"))  # the projection works before the outage
        await server.astop()
        await _until(lambda: _is(projector.paused))
        assert await handle.result() == {
            "s1": {"slept": 1},
            "s2": {"slept": 1},
            "s3": {"slept": 1},
            "s4": {"end": True},
        }
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
        assert projector.paused, "PostgreSQL was down for the whole run"

        await server.astart()  # same data directory, same socket
        row = await _until(lambda: recorded("COMPLETED"), timeout=20)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()
        server.stop()

    outputs = await handle.query("outputs")
    assert row["output"] == await handle.result()
    steps = _steps(row)
    assert {k: s["status"] for k, s in steps.items()} == await statuses(handle)
    assert set(steps) == {"s1", "s2", "s3", "s4"}
    assert all(s["status"] == "completed" for s in steps.values())
    assert {k: s["output"] for k, s in steps.items()} == outputs
    assert all(s["ended_at"] is not None for s in steps.values())
    messages = [r.getMessage() for r in caplog.records if r.name == "interpreter.history.projector"]
    paused = [m for m in messages if m.startswith("run history paused: PostgreSQL unreachable")]
    assert len(paused) == 1, messages  # one warning per outage
    assert "run history caught up" in messages
    assert not projector.paused


async def _is(value: bool) -> bool:
    return value


async def test_the_worker_records_history_when_given_a_database(
    client: Client, task_queue: str, postgres: str
) -> None:
    async with running_worker(
        client,
        task_queue=task_queue,
        database_url=postgres,
        graceful_shutdown_timeout=timedelta(seconds=1),
    ):
        handle = await start(client, task_queue, FAILING)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        store = await Store.connect(postgres)
        try:

            async def final() -> dict[str, Any] | None:
                row = await store.run(handle.id)
                return row if row is not None and row["status"] == "FAILED" else None

            row = await _until(final)
        finally:
            await store.close()
    assert {s["step_id"] for s in row["steps"]} == {"first", "broken", "later"}


async def test_without_a_database_runs_work_and_the_log_says_so_once(
    client: Client,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    caplog.set_level(logging.INFO, logger="interpreter.worker")
    async with running_worker(
        client, task_queue=task_queue, graceful_shutdown_timeout=timedelta(seconds=1)
    ):
        handle = await start(client, task_queue, "name: n\nsteps: [{id: a, action: echo}]\n")
        assert await handle.result() == {"a": {}}
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("DATABASE_URL not set: run history is not recorded") == 1


async def test_an_unreachable_database_at_start_does_not_stop_the_worker(
    client: Client, task_queue: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="interpreter.history.projector")
    nowhere = f"postgresql://postgres:@/postgres?host={tmp_path}"
    async with running_worker(
        client,
        task_queue=task_queue,
        database_url=nowhere,
        graceful_shutdown_timeout=timedelta(seconds=1),
    ):
        handle = await start(client, task_queue, "name: n\nsteps: [{id: a, action: echo}]\n")
        assert await handle.result() == {"a": {}}
    assert any(
        r.getMessage().startswith("run history paused: PostgreSQL unreachable")
        for r in caplog.records
    )


async def test_a_run_that_continued_as_new_is_one_logical_run(
    client: Client, worker: str, store: Store
) -> None:
    steps = "".join(
        f"  - {{id: s{i}, action: echo, parameters: {{n: {i}}}"
        + (f", dependencies: [s{i - 1}]}}\n" if i > 1 else "}\n")
        for i in range(1, 13)
    )
    handle = await start(client, worker, f"name: history-long\nhistory_limit: 10\nsteps:\n{steps}")
    first = handle.result_run_id
    assert first is not None
    projector = Projector(client, store, task_queue=worker)
    await _projected(projector, handle)  # maybe while the first run still runs
    output = await handle.result()
    latest = (await handle.describe()).run_id
    assert latest != first  # it did continue

    async def final() -> dict[str, Any] | None:
        await projector.sync_once()
        row = await store.run(handle.id)
        return row if row is not None and row["status"] == "COMPLETED" else None

    row = await _until(final)
    assert row["run_id"] == first  # the logical run: one row, under the first run's id
    assert row["continued"] >= 1
    assert row["output"] == output
    assert {s["step_id"]: s["status"] for s in row["steps"]} == {
        f"s{i}": "completed" for i in range(1, 13)
    }
    assert _steps(row)["s1"]["output"] == {"n": 1}  # a step of the first run
    rows = await store.pool.fetch("select run_id from runs where workflow_id = $1", handle.id)
    assert [r["run_id"] for r in rows] == [first]
