"""Every step attempt recorded (issue 14): the worker's interceptor and writer on a real
Temporal dev server and a real PostgreSQL, `tdsl runs show ID --events` in a
subprocess, the "retried"/"failed" derivation, and the writer while PostgreSQL is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError

from interpreter.dev.servers import EmbeddedPostgres
from interpreter.history.events import StepEvent, StepEvents, attempt_end
from interpreter.history.store import Store
from interpreter.history.timeline import events_of_chain, timeline
from interpreter.worker import running_worker
from tests.interpreter.history.test_store import fresh_schema
from tests.support.cli import run_tdsl, tdsl_env
from tests.support.runs import start, wait_for_step

T = TypeVar("T")
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

FLAKY = """\
name: events-flaky
steps:
  - {id: prepare, type: set, values: {ready: true}}
  - id: charge
    action: fail
    parameters: {message: card declined, until_attempt: 3}
    retry_policy: {maximum_attempts: 3, initial_interval: 100ms, backoff_coefficient: 1}
    dependencies: [prepare]
  - {id: never, type: set, values: {x: 1}, when: {"==": [1, 2]}, dependencies: [charge]}
"""

BROKEN = """\
name: events-broken
steps:
  - id: charge
    action: fail
    parameters: {message: card declined, error_type: Declined, until_attempt: 9}
    retry_policy: {maximum_attempts: 2, initial_interval: 100ms}
"""

SLEEPY = """\
name: events-sleepy
steps:
  - {id: nap, action: sleep, parameters: {seconds: 60}}
"""


async def _until(check: Callable[[], Awaitable[T | None]], timeout: float = 30.0) -> T:
    async with asyncio.timeout(timeout):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.2)


@pytest.fixture
async def database(postgres: str) -> AsyncIterator[str]:
    async with fresh_schema(postgres) as url:
        yield url  # the worker migrates it, as in production


async def _rows(store: Store, workflow_id: str) -> list[tuple[str, int, str, str | None]]:
    rows = await store.pool.fetch(
        "select step_id, attempt, event, error from step_events where workflow_id = $1"
        " order by step_id, attempt, event = 'started' desc",
        workflow_id,
    )
    return [(r["step_id"], r["attempt"], r["event"], r["error"]) for r in rows]


def _shown(events: list[dict[str, Any]]) -> list[tuple[str, int | None, str, str | None]]:
    return [(e["step_id"], e["attempt"], e["event"], e["error"]) for e in events]


def _of(events: list[dict[str, Any]], step_id: str) -> list[tuple[int | None, str, str | None]]:
    return [(e["attempt"], e["event"], e["error"]) for e in events if e["step_id"] == step_id]


@pytest.mark.integration
async def test_every_attempt_is_recorded_and_shown(
    client: Client, task_queue: str, database: str
) -> None:
    async with running_worker(
        client,
        task_queue=task_queue,
        database_url=database,
        graceful_shutdown_timeout=timedelta(seconds=1),
    ):
        flaky = await start(client, task_queue, FLAKY)
        broken = await start(client, task_queue, BROKEN)
        sleepy = await start(client, task_queue, SLEEPY)
        assert await flaky.result() == {"prepare": {"ready": True}, "charge": {"attempt": 3}}
        with pytest.raises(WorkflowFailureError):
            await broken.result()
        async with await Store.connect(database) as store:
            await wait_for_step(sleepy, "nap")
            await _until(lambda: _rows(store, sleepy.id))  # its attempt has started
            await sleepy.signal("cancel")
            with pytest.raises(WorkflowFailureError):
                await sleepy.result()

            async def recorded(workflow_id: str, status: str) -> bool:
                row = await store.run(workflow_id)
                if row is None or row["status"] != status:
                    return False
                ends = [r for r in await _rows(store, workflow_id) if r[2] != "started"]
                return len(ends) == {flaky.id: 3, broken.id: 2, sleepy.id: 1}[workflow_id]

            await _until(lambda: recorded(flaky.id, "COMPLETED"))
            await _until(lambda: recorded(broken.id, "FAILED"))
            await _until(lambda: recorded(sleepy.id, "CANCELED"))
            kinds = await store.pool.fetch(
                "select distinct activity_type, workflow_type, temporal_run_id from step_events"
                " where workflow_id = $1",
                flaky.id,
            )
            assert await _rows(store, flaky.id) == [
                ("charge", 1, "started", None),
                ("charge", 1, "failed", "card declined"),
                ("charge", 2, "started", None),
                ("charge", 2, "failed", "card declined"),
                ("charge", 3, "started", None),
                ("charge", 3, "completed", None),
            ]
            assert await _rows(store, broken.id) == [
                ("charge", 1, "started", None),
                ("charge", 1, "failed", "card declined"),
                ("charge", 2, "started", None),
                ("charge", 2, "failed", "card declined"),
            ]
            assert await _rows(store, sleepy.id) == [
                ("nap", 1, "started", None),
                ("nap", 1, "cancelled", "cancelled"),
            ]
            types = await store.pool.fetch(
                "select error_type from step_events where workflow_id = $1 and event = 'failed'",
                broken.id,
            )
            internal = await store.pool.fetchval(
                "select count(*) from step_events where activity_type like 'tdsl.%'"
            )
    assert [dict(k) for k in kinds] == [
        {
            "activity_type": "fail",
            "workflow_type": "events-flaky",
            "temporal_run_id": flaky.result_run_id,
        }
    ]
    assert [t["error_type"] for t in types] == ["Declined", "Declined"]
    assert internal == 0  # the mutex, cancel and definition activities are not steps

    env = tdsl_env(client, task_queue, database)
    shown = run_tdsl("runs", "show", flaky.id, "--events", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    answer = json.loads(shown.stdout)
    assert list(answer)[-2:] == ["steps", "events"]
    events = answer["events"]
    assert all(list(e) == ["at", "step_id", "attempt", "event", "error"] for e in events)
    times = [datetime.fromisoformat(e["at"]) for e in events]
    assert times == sorted(times)
    assert _of(events, "prepare") == [(None, "started", None), (None, "completed", None)]
    assert _of(events, "charge") == [
        (1, "started", None),
        (1, "retried", "card declined"),
        (2, "started", None),
        (2, "retried", "card declined"),
        (3, "started", None),
        (3, "completed", None),
    ]
    assert _of(events, "never") == [(None, "skipped", None)]
    assert [e["step_id"] for e in events][:2] == ["prepare", "prepare"]

    failed = json.loads(run_tdsl("runs", "show", broken.id, "--events", "--json", env=env).stdout)
    assert _of(failed["events"], "charge") == [
        (1, "started", None),
        (1, "retried", "card declined"),
        (2, "started", None),
        (2, "failed", "card declined"),
    ]
    cancelled = json.loads(
        run_tdsl("runs", "show", sleepy.id, "--events", "--json", env=env).stdout
    )
    assert _of(cancelled["events"], "nap") == [(1, "started", None), (1, "cancelled", "cancelled")]
    plain = json.loads(run_tdsl("runs", "show", flaky.id, "--json", env=env).stdout)
    assert "events" not in plain  # without --events the object is as it was

    print(run_tdsl("runs", "show", flaky.id, "--events", env=env).stdout)
    table = run_tdsl("runs", "show", broken.id, "--events", env=env)
    print(table.stdout)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    start_of_events = lines.index(next(line for line in lines if line.strip() == "events"))
    rows = [line for line in lines[start_of_events:] if "charge" in line]
    assert [("retried" in r, "failed" in r, "card declined" in r) for r in rows] == [
        (False, False, False),
        (True, False, True),
        (False, False, False),
        (False, True, True),
    ]


# --------------------------------------------------------------------------- derivation


def _step(step_id: str, status: str, attempts: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "step_id": step_id,
        "status": status,
        "attempts": attempts,
        "started_at": extra.get("started_at"),
        "ended_at": extra.get("ended_at"),
        "error": extra.get("error"),
    }


def _attempt(
    step_id: str, attempt: int, event: str, second: float, error: str | None = None
) -> dict[str, Any]:
    return {
        "step_id": step_id,
        "attempt": attempt,
        "event": event,
        "at": T0 + timedelta(seconds=second),
        "error": error,
        "temporal_run_id": "r1",
    }


def test_a_failed_attempt_is_retried_unless_it_was_the_last_of_a_step_that_ended() -> None:
    attempts = [
        _attempt("pay", 1, "started", 1),
        _attempt("pay", 1, "failed", 2, "declined"),
        _attempt("pay", 2, "started", 3),
        _attempt("pay", 2, "failed", 4, "declined"),
        _attempt("poll", 1, "started", 1.5),
        _attempt("poll", 1, "failed", 2.5, "not yet"),  # the retry is still to come
    ]
    steps = [
        _step("pay", "failed", 2, started_at=T0, ended_at=T0 + timedelta(seconds=4)),
        _step("poll", "running", 1, started_at=T0),
    ]
    assert _shown(timeline(steps, attempts)) == [
        ("pay", 1, "started", None),
        ("poll", 1, "started", None),
        ("pay", 1, "retried", "declined"),
        ("poll", 1, "retried", "not yet"),
        ("pay", 2, "started", None),
        ("pay", 2, "failed", "declined"),
    ]


def test_step_times_fill_in_what_no_worker_recorded() -> None:
    at = {n: T0 + timedelta(seconds=n) for n in range(10)}
    steps = [
        _step("choose", "completed", started_at=at[0], ended_at=at[0]),
        _step("other", "skipped", ended_at=at[0]),
        # the end of attempt 1 was dropped during an outage; attempt 2 was never noted
        _step("pay", "completed", 2, started_at=at[1], ended_at=at[5]),
        # completed from outside (human.task): the worker saw the start only
        _step("approve", "failed", 1, started_at=at[6], ended_at=at[8], error={"message": "no"}),
        _step("later", "cancelled"),
    ]
    attempts = [
        _attempt("pay", 1, "started", 1),
        _attempt("pay", 1, "failed", 2, "flaky"),
        _attempt("approve", 1, "started", 6),
    ]
    assert _shown(timeline(steps, attempts)) == [
        ("choose", None, "started", None),
        ("choose", None, "completed", None),
        ("other", None, "skipped", None),
        ("pay", 1, "started", None),
        ("pay", 1, "retried", "flaky"),
        ("pay", 2, "completed", None),
        ("approve", 1, "started", None),
        ("approve", 1, "failed", "no"),
        ("later", None, "cancelled", None),
    ]
    assert timeline(steps, attempts)[-1]["at"] is None  # never started: last, without a time


def test_events_of_a_continued_run_belong_to_its_chain_and_not_to_a_later_run_of_the_id() -> None:
    runs = [
        {"run_id": "a1", "started_at": T0},
        {"run_id": "b1", "started_at": T0 + timedelta(hours=1)},  # the id reused later
    ]
    rows = [
        _attempt("s", 1, "started", 1) | {"temporal_run_id": "a1"},
        _attempt("t", 1, "started", 60) | {"temporal_run_id": "a2"},  # a1 continued as new
        _attempt("s", 1, "started", 3601) | {"temporal_run_id": "b1"},
        _attempt("t", 1, "started", 3660) | {"temporal_run_id": "b2"},
    ]
    assert [r["temporal_run_id"] for r in events_of_chain(rows, "a1", runs)] == ["a1", "a2"]
    assert [r["temporal_run_id"] for r in events_of_chain(rows, "b1", runs)] == ["b1", "b2"]


def test_how_an_attempt_ended() -> None:
    assert attempt_end(ApplicationError("card declined", type="Declined")) == (
        "failed",
        ("Declined", "card declined"),
    )
    assert attempt_end(KeyError("sku")) == ("failed", ("KeyError", "'sku'"))
    assert attempt_end(asyncio.CancelledError()) == ("cancelled", ("CancelledError", "cancelled"))
    assert attempt_end(CancelledError("Cancelled")) == (
        "cancelled",
        ("CancelledError", "cancelled"),
    )
    from temporalio.activity import _CompleteAsyncError

    assert attempt_end(_CompleteAsyncError()) is None  # it ends later, from outside


# --------------------------------------------------------------------------- the writer


def _note(n: int) -> StepEvent:
    return StepEvent(
        workflow_id="wf",
        temporal_run_id="r1",
        step_id=f"s{n}",
        attempt=1,
        event="started",
        at=T0 + timedelta(seconds=n),
        activity_type="echo",
        workflow_type="w",
        error="nul\x00 byte" if n == 0 else None,
    )


@pytest.mark.integration
async def test_the_writer_keeps_a_bounded_buffer_while_postgres_is_away_then_catches_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="interpreter.history.events")
    server = EmbeddedPostgres(tmp_path / "pg")  # keeps its data across stop and start
    await server.astart()
    url = server.url
    await server.astop()  # the URL now names a socket nobody listens on
    events = StepEvents(capacity=5, batch_size=2, interval=0.05, retry=[0.1])
    writing = asyncio.create_task(events.run(url))
    try:
        await _until(lambda: _is(events.outage))
        began = asyncio.get_running_loop().time()
        for n in range(8):
            events.note(_note(n))  # what an activity does: never waits for the database
        assert asyncio.get_running_loop().time() - began < 0.01
        assert [e.step_id for e in events.pending] == ["s3", "s4", "s5", "s6", "s7"]
        assert events.dropped == 3
        await asyncio.sleep(0.5)  # more failed tries: still one warning
        await server.astart()
        await _until(lambda: _is(events.written == 5), timeout=30)
        events.note(_note(0))  # a NUL in an error is cleaned by the interceptor, not here
        await _until(lambda: _is(not events.pending))
    finally:
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writing
    try:
        async with await Store.connect(server.url) as store:
            rows = await store.pool.fetch("select step_id from step_events order by step_id")
    finally:
        server.stop()
    assert [r["step_id"] for r in rows] == ["s3", "s4", "s5", "s6", "s7"]
    assert events.dropped == 4  # the NUL row: PostgreSQL refused it, the writer went on
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if w.startswith("step events paused")]) == 1, warnings
    assert not [w for w in warnings if "dropping the oldest" in w]  # part of that one warning
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "step events written again; 3 dropped meanwhile" in infos


async def _is(value: bool) -> bool:
    return value


@pytest.mark.integration
async def test_a_gap_in_the_migration_numbers_is_applied_when_filled(
    postgres: str, tmp_path: Path
) -> None:
    """0007 ships before 0006 (reserved for another change): a fresh database gets
    0001-0005 and 0007, and a later 0006 is applied by the next migrate, after 0007."""
    (tmp_path / "5_before.sql").write_text("create table log (n int);")
    (tmp_path / "7_after.sql").write_text("insert into log values (7);")
    async with fresh_schema(postgres) as url, await Store.connect(url) as store:
        assert await store.migrate(tmp_path) == ["5_before", "7_after"]
        (tmp_path / "6_between.sql").write_text("insert into log values (6);")
        assert await store.migrate(tmp_path) == ["6_between"]
        assert [r["n"] for r in await store.pool.fetch("select n from log")] == [7, 6]
