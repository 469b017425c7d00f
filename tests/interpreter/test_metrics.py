"""`tdsl worker --metrics-port` (docs/production.md, "Metrics"): Prometheus text from a
real runtime, scraped over HTTP, with every step counted once however often its
history replays."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from uuid import uuid4

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.builtin import BuiltinActivities
from interpreter.control import take_break
from interpreter.dev.servers import free_port
from interpreter.telemetry import worker_runtime
from interpreter.worker import WORKFLOWS, workflow_runner
from tests.support.cli import ROOT
from tests.support.runs import start

pytestmark = pytest.mark.integration

CHAIN = """\
name: counted
steps:
  - {id: a, action: echo, parameters: {n: 1}}
  - {id: b, action: echo, dependencies: [a], parameters: {n: 2}}
  - {id: c, action: echo, dependencies: [b], parameters: {n: 3}}
  - {id: never, type: set, dependencies: [c], when: false, values: {x: 1}}
"""


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of metric *name* whose labels include *labels* (None when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) : line.rindex("}") + 1]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def _scrape(port: int) -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        answer = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert answer.status_code == 200
    return answer.text


async def test_steps_and_runs_are_counted_once_though_every_task_replays(client: Client) -> None:
    port = free_port()
    runtime = worker_runtime(f"127.0.0.1:{port}")
    config = client.service_client.config
    metered = await Client.connect(config.target_host, namespace=client.namespace, runtime=runtime)
    task_queue = f"metrics-{uuid4()}"
    builtin = BuiltinActivities()
    # No workflow cache: every workflow task replays the run's whole history first.
    async with Worker(
        metered,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=[builtin.echo, take_break],
        workflow_runner=workflow_runner(sandboxed=True),
        max_cached_workflows=0,
    ):
        handle = await start(metered, task_queue, CHAIN)
        await asyncio.wait_for(handle.result(), 60)
        text = await _scrape(port)
    await builtin.close()
    labels = {"definition": "counted"}
    assert _sample(text, "tdsl_steps_total", type="task", status="completed", **labels) == 3
    assert _sample(text, "tdsl_steps_total", type="set", status="skipped", **labels) == 1
    assert _sample(text, "tdsl_runs_total", status="completed", **labels) == 1
    assert _sample(text, "tdsl_step_duration_seconds_count", type="task", **labels) == 3
    assert _sample(text, "tdsl_step_duration_seconds_count", type="set", **labels) is None
    assert "temporal_workflow_completed" in text  # the SDK's own, on the same port


async def test_the_cli_serves_metrics_and_refuses_a_taken_port(client: Client) -> None:
    port = free_port()
    env = {
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": f"metrics-cli-{uuid4()}",
        "PATH": "/usr/bin:/bin",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "interpreter.cli", "worker", "--metrics-port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(90):
            while True:
                assert worker.poll() is None, worker.communicate()[1].decode()[-2000:]
                try:
                    text = await _scrape(port)
                    if "temporal_" in text:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        taken = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "interpreter.cli", "worker", "--metrics-port", str(port)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert taken.returncode != 0
        assert f"cannot serve metrics on 127.0.0.1:{port}" in taken.stderr
        assert "Traceback" not in taken.stderr
    finally:
        worker.terminate()
        await asyncio.to_thread(worker.communicate, timeout=30)
