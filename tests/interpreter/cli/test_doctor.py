"""`tdsl doctor` against the real things it checks: a dev server, a worker, PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

import pytest
from temporalio.client import Client

from interpreter.dev.servers import free_port
from interpreter.history.store import Store
from tests.interpreter.history.test_store import fresh_schema
from tests.support.cli import run_tdsl, tdsl_env
from tests.support.runs import interpreter_worker

pytestmark = pytest.mark.integration


async def _doctor(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(run_tdsl, "doctor", *args, env=env)
    return done.returncode, done.stdout, done.stderr


async def test_with_a_worker_and_a_migrated_database_all_is_ok(
    client: Client, task_queue: str, postgres: str
) -> None:
    async with fresh_schema(postgres) as url, await Store.connect(url) as store:
        await store.migrate()
        async with interpreter_worker(client, task_queue):
            code, out, err = await _doctor(tdsl_env(client, task_queue, url))
            _, as_json, _ = await _doctor(tdsl_env(client, task_queue, url), "--json")
    assert code == 0, out + err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["ok"] * 5, out
    assert [line.split()[1].rstrip(":") for line in lines] == [
        "server",
        "namespace",
        "search",
        "worker",
        "database",
    ]
    report = json.loads(as_json)
    assert report["ok"] is True
    assert {c["name"] for c in report["checks"]} >= {"server", "worker", "database"}


async def test_no_worker_and_an_unmigrated_database_fail_with_their_fixes(
    client: Client, postgres: str
) -> None:
    queue = f"nobody-{uuid4()}"
    async with fresh_schema(postgres) as url:
        code, out, _ = await _doctor(tdsl_env(client, queue, url))
    assert code == 1
    assert f"FAIL worker: no worker polled task queue {queue!r}" in out
    assert f"tdsl worker --task-queue {queue}" in out
    assert "FAIL database: reachable;" in out
    assert "tdsl db migrate" in out


async def test_an_unreachable_server_is_one_line(client: Client) -> None:
    env = tdsl_env(client) | {"TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    code, out, err = await _doctor(env)
    assert code == 1
    assert out.startswith("FAIL server: cannot reach Temporal at 127.0.0.1:")
    assert len(out.splitlines()) == 1
    assert "Traceback" not in err
