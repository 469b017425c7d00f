"""`tdsl run` knows what the workers of a task queue register, when it can tell (issue 9)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client

from interpreter.history.store import Store
from interpreter.worker import running_worker
from interpreter.worker_registry import registered_activities
from tests.support.cli import ROOT, run_tdsl, tdsl_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def history_db(postgres: str) -> str:
    async with await Store.connect(postgres) as store:
        await store.migrate()
    return postgres


@pytest.fixture
async def announcing_worker(client: Client, task_queue: str, history_db: str) -> AsyncIterator[str]:
    async with running_worker(
        client,
        task_queue=task_queue,
        database_url=history_db,
        record_history=False,
        graceful_shutdown_timeout=timedelta(0),
    ):
        yield task_queue


async def _answer(client: Client, url: str, task_queue: str) -> frozenset[str] | None:
    """The lookup, once the server lists the worker as a poller (it polls at once)."""
    async with asyncio.timeout(20):
        while (names := await registered_activities(client, url, task_queue)) is None:
            await asyncio.sleep(0.2)
    return names


async def test_the_workers_activities_are_known(
    client: Client, announcing_worker: str, history_db: str
) -> None:
    names = await _answer(client, history_db, announcing_worker)
    assert names is not None
    assert {"echo", "validateInput", "sql.query", "http.request"} <= names


async def test_a_worker_that_did_not_announce_makes_it_unknown(
    client: Client, announcing_worker: str, history_db: str
) -> None:
    await _answer(client, history_db, announcing_worker)
    # Another worker process, without a database: it cannot announce what it has.
    env = tdsl_env(client, announcing_worker, None)
    other = subprocess.Popen(
        [sys.executable, "-m", "interpreter.cli", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(90):  # a cold start of a second process on a loaded machine
            while await registered_activities(client, history_db, announcing_worker) is not None:
                assert other.poll() is None, other.communicate()[1].decode()[-2000:]
                await asyncio.sleep(0.2)
    finally:
        other.terminate()
        await asyncio.to_thread(other.communicate, timeout=20)  # waits, closes the pipe


async def test_no_pollers_means_cannot_tell(client: Client, history_db: str) -> None:
    assert await registered_activities(client, history_db, "nobody-polls-this") is None


async def test_run_refuses_an_action_no_worker_registers(
    client: Client, announcing_worker: str, history_db: str, tmp_path: Path
) -> None:
    await _answer(client, history_db, announcing_worker)
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: typo\nsteps:\n  - {id: a, action: valdiateInput}\n")
    env = tdsl_env(client, announcing_worker, history_db)

    refused = await asyncio.to_thread(
        run_tdsl, "run", str(typo), "--id", f"typo-{announcing_worker}", env=env
    )
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr == (
        f"{typo}:3:21: error: no worker registers activity 'valdiateInput' "
        "(did you mean 'validateInput'?)\n"
    )
    with pytest.raises(Exception, match="not found"):  # nothing was started
        await client.get_workflow_handle(f"typo-{announcing_worker}").describe()
    fine = tmp_path / "fine.yaml"
    fine.write_text("name: fine\nsteps:\n  - {id: a, action: validateInput}\n")
    started = await asyncio.to_thread(run_tdsl, "run", str(fine), "--json", env=env)
    assert started.returncode == 0, started.stderr
