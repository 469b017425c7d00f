"""`tdsl worker --health-port` (docs/production.md, "Health probes"): a real worker process, a real HTTP
client, and a SIGTERM while a step runs."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from interpreter.dev.servers import free_port
from interpreter.health import Health, serving_health
from tests.support.cli import ROOT, tdsl_env
from tests.support.runs import interpreter_worker, start, wait_for_step

pytestmark = pytest.mark.integration


async def _get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.get(f"http://127.0.0.1:{port}{path}")


async def test_probes_follow_the_workers_life(client: Client, task_queue: str) -> None:
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "interpreter.cli", "worker", "--health-port", str(port)],
        cwd=ROOT,
        env=tdsl_env(client, task_queue),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(90):  # a cold start of a second process under load
            while True:
                assert worker.poll() is None, worker.communicate()[1].decode()[-2000:]
                try:
                    ready = await _get(port, "/readyz")
                except httpx.TransportError:
                    ready = None
                if ready is not None and ready.status_code == 200:
                    break
                await asyncio.sleep(0.2)
        assert ready.json() == {"status": "polling"}
        assert (await _get(port, "/livez")).status_code == 200
        assert (await _get(port, "/metrics")).status_code == 404
        handle = await start(
            client,
            task_queue,
            "name: slow\nsteps:\n  - {id: nap, action: sleep, parameters: {seconds: 3}}\n",
        )
        await wait_for_step(handle, "nap")
        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            while (answer := await _get(port, "/readyz")).status_code == 200:
                await asyncio.sleep(0.05)
        assert answer.status_code == 503
        assert answer.json() == {"status": "draining"}
        assert (await _get(port, "/livez")).status_code == 200  # still alive, draining
        code = await asyncio.to_thread(worker.wait, 30)  # once the nap has finished
        assert code == 0, worker.communicate()[1].decode()[-2000:]
        with pytest.raises(httpx.TransportError):  # gone with the worker
            await _get(port, "/livez")
        async with interpreter_worker(client, task_queue):  # the run goes on elsewhere
            assert await asyncio.wait_for(handle.result(), 30) == {"nap": {"slept": 3}}
            steps = (await handle.query("status"))["steps"]
        assert steps["nap"]["attempts"] == 1  # it finished while the first worker drained
    finally:
        if worker.poll() is None:
            worker.kill()
        await asyncio.to_thread(worker.communicate, timeout=20)


@pytest.fixture
async def probes() -> AsyncIterator[tuple[Health, int]]:
    health = Health()
    async with serving_health(health, 0) as port:
        yield health, port


async def test_not_ready_before_the_worker_polls(probes: tuple[Health, int]) -> None:
    _, port = probes
    answer = await _get(port, "/readyz")
    assert (answer.status_code, answer.json()) == (503, {"status": "starting"})
    assert (await _get(port, "/livez")).json() == {"status": "alive"}
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.post(f"http://127.0.0.1:{port}/livez")).status_code == 405
        assert (await http.head(f"http://127.0.0.1:{port}/livez")).status_code == 200


async def test_a_taken_port_is_a_one_line_error(probes: tuple[Health, int]) -> None:
    from dsl.errors import ConfigurationError

    _, port = probes
    with pytest.raises(ConfigurationError, match=f"127.0.0.1:{port}.*--health-port"):
        async with serving_health(Health(), port):
            pass


async def test_a_garbled_request_does_not_hurt(probes: tuple[Health, int]) -> None:
    _, port = probes
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x00" * 9000)  # past the header limit, no blank line
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    assert (await _get(port, "/livez")).status_code == 200
