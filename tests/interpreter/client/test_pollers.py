"""A run never waits silently for a worker that is not there (README.md, "The CLI")."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from uuid import uuid4

import pytest
from temporalio.client import Client

from interpreter.client.pollers import polling_identities
from tests.support.cli import ROOT, tdsl_env
from tests.support.runs import interpreter_worker

pytestmark = pytest.mark.integration

DEFINITION = ROOT / "definitions" / "order-fulfilment.yaml"
INPUT = ROOT / "definitions" / "inputs" / "order-fulfilment.json"


@pytest.mark.parametrize("how", ["--json", "--wait"])
async def test_run_says_within_10_s_that_no_worker_polls(client: Client, how: str) -> None:
    queue = f"nobody-{uuid4()}"
    workflow_id = f"lonely-{uuid4()}"
    waiting = subprocess.Popen(
        [sys.executable, "-m", "interpreter.cli", "run", str(DEFINITION), "--input", f"@{INPUT}",
         "--task-queue", queue, "--id", workflow_id, how],
        cwd=ROOT, env=tdsl_env(client), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    began = time.monotonic()
    try:
        assert waiting.stderr is not None
        line = await asyncio.wait_for(asyncio.to_thread(waiting.stderr.readline), 30)
        took = time.monotonic() - began
        assert f"no worker polls task queue {queue!r}" in line
        assert f"tdsl worker --task-queue {queue}" in line
        assert took < 10 + 5  # 10 s from the start, plus the process's own start-up
        await asyncio.sleep(0.5)
        assert waiting.poll() is None  # and it keeps waiting
    finally:
        waiting.kill()
        await asyncio.to_thread(waiting.communicate, timeout=20)
        await client.get_workflow_handle(workflow_id).terminate("test done")


async def test_a_polling_worker_is_seen(client: Client, task_queue: str) -> None:
    assert await polling_identities(client, task_queue) == []
    async with interpreter_worker(client, task_queue):
        async with asyncio.timeout(20):
            while not await polling_identities(client, task_queue):
                await asyncio.sleep(0.2)
