"""One history writer among several workers (issue 14): two real worker processes on
one task queue and one PostgreSQL; the writer is killed with SIGKILL, the other takes
over and nothing is missing."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from interpreter.client.pollers import polling_identities
from interpreter.history.projector import WRITER_RETRY, writer_lock_key
from interpreter.history.store import Store
from tests.interpreter.history.test_store import fresh_schema
from tests.support.cli import ROOT, tdsl_env
from tests.support.runs import start

pytestmark = pytest.mark.integration

ECHO = "name: noted\nsteps:\n  - {id: e, action: echo, parameters: {n: 1}}\n"
WRITING = "run history recorded in PostgreSQL by this worker"
STANDING_BY = "standing by"


def test_the_lock_is_per_namespace_and_task_queue() -> None:
    assert writer_lock_key("default", "a") == writer_lock_key("default", "a")
    assert writer_lock_key("default", "a") != writer_lock_key("default", "b")
    assert writer_lock_key("default", "a") != writer_lock_key("other", "a")
    assert -(2**63) <= writer_lock_key("default", None) < 2**63


@pytest.fixture
async def database(postgres: str) -> AsyncIterator[str]:
    async with fresh_schema(postgres) as url, await Store.connect(url) as store:
        await store.migrate()
        yield url


def _messages(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [json.loads(line)["message"] for line in lines if line.startswith("{")]


async def _until(check: Any, timeout: float, what: str) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.2)
    assert await check(), what


async def test_one_writer_at_a_time_and_a_takeover_after_sigkill(
    client: Client, task_queue: str, database: str, tmp_path: Path
) -> None:
    env = tdsl_env(client, task_queue, database)
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    workers = []
    for log in logs:
        with log.open("w") as out:
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "interpreter.cli", "worker", "--log-format", "json"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=out,
                )
            )
    try:

        async def both_decided() -> bool:
            roles = [_messages(log) for log in logs]
            writing = [any(WRITING in m for m in r) for r in roles]
            waiting = [any(STANDING_BY in m for m in r) for r in roles]
            return sorted(writing) == [False, True] and sorted(waiting) == [False, True]

        await _until(both_decided, 90, "one worker writes, the other stands by")
        writer = next(i for i, log in enumerate(logs) if any(WRITING in m for m in _messages(log)))
        other = 1 - writer
        async with await Store.connect(database) as store:
            before = await start(client, task_queue, ECHO)
            assert await before.result() == {"e": {"n": 1}}

            async def recorded(workflow_id: str) -> bool:
                row = await store.run(workflow_id)
                return row is not None and row["status"] == "COMPLETED"

            await _until(lambda: recorded(before.id), 30, "the writer recorded the first run")
            workers[writer].send_signal(signal.SIGKILL)
            await asyncio.to_thread(workers[writer].wait, 20)
            after = await start(client, task_queue, ECHO)  # the other worker runs it
            assert await asyncio.wait_for(after.result(), 60) == {"e": {"n": 1}}

            async def taken_over() -> bool:
                return any(WRITING in m for m in _messages(logs[other]))

            await _until(taken_over, 3 * WRITER_RETRY, "the other worker took over within 15 s")
            await _until(lambda: recorded(after.id), 30, "the new writer recorded the second run")
            ids = [row["workflow_id"] for row in await store.runs()]
        assert sorted(ids) == sorted([before.id, after.id])  # each once, none missing
        assert await polling_identities(client, task_queue)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in workers:
            await asyncio.to_thread(worker.wait, 30)


async def test_a_stopping_writer_writes_what_ended_since_its_last_cycle(
    client: Client, task_queue: str, database: str
) -> None:
    from interpreter.history.projector import Projector, _record_as_the_writer
    from tests.support.runs import interpreter_worker

    class FirstCycleIdle(Projector):
        """A projector whose first cycle writes nothing, then says so."""

        cycles = 0
        idle = asyncio.Event()

        async def sync_once(self) -> int:
            self.cycles += 1
            if self.cycles == 1:
                self.idle.set()
                return 0
            return await super().sync_once()

    async with interpreter_worker(client, task_queue), await Store.connect(database) as store:
        projector = FirstCycleIdle(client, store, task_queue=task_queue, interval=3600)
        writing = asyncio.create_task(_record_as_the_writer(projector, store, task_queue))
        await asyncio.wait_for(projector.idle.wait(), 30)
        handle = await start(client, task_queue, ECHO)
        await handle.result()
        assert await store.run(handle.id) is None  # the next cycle is an hour away
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
        row = await store.run(handle.id)
    assert projector.cycles == 2  # the last one on the way out
    assert row is not None
    assert row["status"] == "COMPLETED"
