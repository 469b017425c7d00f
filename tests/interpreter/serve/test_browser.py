"""The run page in a real browser (issue 16): a dev server, PostgreSQL, a worker and the
real `tdsl serve` on a port; headless Chromium (the Debian package, driven by
Playwright without a browser download) opens `/runs/{id}` of a 13-step run with a
parallel, a foreach and `sleep` steps, sees steps turn green while others run, and
screenshots the page running, finished, and the index.

Skipped unless `/usr/bin/chromium` and the `playwright` package are installed::

    apt-get install -y chromium fonts-noto-color-emoji
    .venv/bin/pip install -e '.[browser]'
    TDSL_SCREENSHOTS=docs .venv/bin/python -m pytest -m browser tests/interpreter/serve/test_browser.py

The screenshots go to `$TDSL_SCREENSHOTS` (`docs` refreshes the committed ones:
docs/serve-run-running.png, docs/serve-run-finished.png, docs/serve-index.png), else
to the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from temporalio.client import Client

from interpreter.dev.servers import free_port
from interpreter.history.store import Store
from interpreter.serve.web import run_path
from interpreter.worker import running_worker
from tests.interpreter.history.test_store import fresh_schema
from tests.support.cli import ROOT, tdsl_env

CHROMIUM = Path(os.environ.get("TDSL_CHROMIUM", "/usr/bin/chromium"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None, reason="pip install playwright"
    ),
]

FULFIL = """\
name: fulfil-order
version: 1.0.0
description: the browser check's run - a parallel, a foreach and some sleeps
steps:
  - {id: load, name: Load order, action: echo, parameters: {parcels: [a, b, c]}}
  - {id: validate, name: Validate order, action: sleep, parameters: {seconds: 1}, dependencies: [load]}
  - id: prepare
    name: Prepare
    type: parallel
    dependencies: [validate]
    branches:
      - name: stock
        steps:
          - {id: reserve, name: Reserve stock, action: sleep, parameters: {seconds: 2}}
          - {id: confirm, name: Confirm stock, action: echo, dependencies: [reserve]}
      - name: payment
        steps:
          - {id: authorise, name: Authorise payment, action: sleep, parameters: {seconds: 4}}
          - {id: capture, name: Capture payment, action: echo, dependencies: [authorise]}
      - name: notify
        steps:
          - {id: email, name: Email customer, action: log, parameters: {message: on its way}}
  - id: ship
    name: Ship each parcel
    type: foreach
    dependencies: [prepare]
    items: ${{ steps.load.output.parcels }}
    step: {id: pack, name: Pack parcel, action: sleep, parameters: {seconds: 2}}
  - {id: invoice, name: Send invoice, action: echo, dependencies: [ship]}
  - {id: archive, name: Archive, action: sleep, parameters: {seconds: 1}, dependencies: [invoice]}
output: {parcels: "${{ steps.load.output.parcels }}"}
"""
QUICK = """\
name: quick-check
steps:
  - {id: hello, action: echo, parameters: {hello: world}}
"""
BROKEN = """\
name: always-fails
steps:
  - {id: try, action: fail, parameters: {message: the warehouse is closed, non_retryable: true}}
"""


async def test_the_run_page_in_headless_chromium(
    client: Client, postgres: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    shots = Path(os.environ.get("TDSL_SCREENSHOTS") or tmp_path)
    if not shots.is_absolute():
        shots = ROOT / shots
    async with fresh_schema(postgres) as url:
        async with await Store.connect(url) as store:
            await store.migrate()
        task_queue = f"browser-{uuid4()}"
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "interpreter.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env=tdsl_env(client, task_queue, url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            async with (
                running_worker(client, task_queue=task_queue, database_url=url),
                httpx.AsyncClient(base_url=base, timeout=30) as http,
                async_playwright() as playwright,
            ):
                await _until_up(http, server)
                for text in (FULFIL, QUICK, BROKEN):
                    answer = await http.post(
                        "/api/definitions",
                        content=text,
                        headers={"Content-Type": "application/yaml"},
                    )
                    assert answer.status_code == 201, answer.text
                for name in ("quick-check", "always-fails"):
                    answer = await http.post("/api/runs", json={"definition": name})
                    assert answer.status_code == 201, answer.text
                answer = await http.post(
                    "/api/runs", json={"definition": "fulfil-order", "id": "order-1042"}
                )
                assert answer.status_code == 201, answer.text

                browser = await playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=["--no-sandbox"]
                )
                page = await browser.new_page(viewport={"width": 1440, "height": 960})
                errors: list[str] = []
                page.on("pageerror", lambda err: errors.append(str(err)))
                await page.goto(base + run_path("order-1042"))
                await page.wait_for_function(
                    "Number(document.body.dataset.completed) >= 2"
                    " && Number(document.body.dataset.running) >= 2",
                    timeout=30_000,
                )
                await page.click('svg [data-step="load"]')
                await page.wait_for_selector("#details dl")
                await page.wait_for_timeout(300)
                await page.screenshot(path=str(shots / "serve-run-running.png"))
                assert await page.locator("svg .node.st-running").count() >= 1
                assert await page.locator("svg .node.st-completed").count() >= 1

                await page.wait_for_function(
                    "document.body.dataset.runStatus === 'COMPLETED'", timeout=60_000
                )
                assert await page.locator("#live").text_content() == "finished"
                # the output of a step comes from the run history, a few seconds behind
                for _ in range(40):
                    await page.click('svg [data-step="load"]')
                    await page.wait_for_timeout(500)
                    if await page.locator("#details pre").count():
                        break
                assert "parcels" in (await page.locator("#details").text_content() or "")
                await page.screenshot(path=str(shots / "serve-run-finished.png"))
                assert await page.locator("svg .node.st-completed").count() == 10
                assert await page.locator("svg .st-pending").count() == 0

                for _ in range(60):  # the history lists all three runs
                    await page.goto(base + "/")
                    if await page.locator("table.list tbody tr a[href^='/runs/']").count() >= 3:
                        break
                    await page.wait_for_timeout(500)
                await page.screenshot(path=str(shots / "serve-index.png"), full_page=True)
                await browser.close()
                assert errors == []
        finally:
            server.terminate()
            _, stderr = server.communicate(timeout=10)
    assert "Traceback" not in stderr, stderr


async def _until_up(http: httpx.AsyncClient, server: subprocess.Popen[str]) -> None:
    async with asyncio.timeout(30):
        while True:
            if server.poll() is not None:
                raise AssertionError(f"tdsl serve exited: {server.communicate()}")
            try:
                if (await http.get("/api/definitions")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
