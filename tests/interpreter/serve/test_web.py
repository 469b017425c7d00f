"""`tdsl serve`'s pages (docs/serve.md): `/` and `/runs/{id}` with an HTTP client
against the app on a real dev server, worker and PostgreSQL. What the browser draws is
checked by `browser_check.py` (marker `browser`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from temporalio.client import Client

from interpreter.history.store import Store
from interpreter.serve.api import ServeSettings, build_app
from interpreter.serve.web import run_path
from interpreter.worker import running_worker
from tests.interpreter.history.test_store import fresh_schema
from tests.support.serve import register, until_ended

pytestmark = pytest.mark.integration

XSS = "<script>alert('x')</script>"
PAGED = f"""\
name: paged
steps:
  - {{id: hello, name: "{XSS}", action: echo, parameters: {{said: "{XSS}"}}}}
  - id: both
    type: parallel
    dependencies: [hello]
    branches:
      - name: left
        steps:
          - {{id: l1, action: echo, parameters: {{side: left}}}}
      - name: right
        steps:
          - {{id: r1, action: echo, parameters: {{side: right}}}}
output: {{said: "${{{{ steps.hello.output.said }}}}"}}
"""


@pytest.fixture
async def http(client: Client, postgres: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app (API and pages), a worker of the built-in activities, a migrated database."""
    async with fresh_schema(postgres) as url:
        async with await Store.connect(url) as store:
            await store.migrate()
        task_queue = f"web-{uuid4()}"

        async def connect() -> Client:
            return client

        settings = ServeSettings(connect=connect, task_queue=task_queue, database_url=url)
        transport = httpx.ASGITransport(app=build_app(settings))
        async with (
            running_worker(client, task_queue=task_queue, database_url=url),
            httpx.AsyncClient(transport=transport, base_url="http://serve", timeout=30) as http,
        ):
            yield http


async def _finished_run(http: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    await register(http, PAGED)
    started = await http.post("/api/runs", json={"definition": "paged", "id": workflow_id})
    assert started.status_code == 201, started.text
    return await until_ended(http, workflow_id)


async def test_the_index_lists_definitions_and_runs_with_filters(
    http: httpx.AsyncClient,
) -> None:
    state = await _finished_run(http, "paged-index")
    assert state["status"] == "COMPLETED", state
    async with asyncio.timeout(30):  # the run history catches up
        while "paged-index" not in (page := (await http.get("/")).text):
            await asyncio.sleep(0.3)
    answer = await http.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert ">paged</a>" in page  # the definition, linked to its runs
    assert f'href="{run_path("paged-index")}"' in page
    assert "COMPLETED" in page
    assert "http://localhost:8233/namespaces/default/workflows/paged-index/" in page
    assert "paged-index" in (await http.get("/?definition=paged&status=completed")).text
    assert "paged-index" not in (await http.get("/?status=FAILED")).text
    assert "paged-index" not in (await http.get("/?definition=other")).text
    assert "unknown status" in (await http.get("/?status=bogus")).text


async def test_the_run_page_shows_its_steps_escaped_and_details_on_request(
    http: httpx.AsyncClient,
) -> None:
    await _finished_run(http, "paged/run 1")
    answer = await http.get(run_path("paged/run 1"))
    assert answer.status_code == 200, answer.text
    page = answer.text
    for step_id in ("hello", "both", "l1", "r1"):
        assert f'data-step="{step_id}"' in page
    assert XSS not in page  # a step name is data, not markup
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "\\u003cscript\\u003e" in page  # and in the graph data the script reads
    assert "/namespaces/default/workflows/paged%2Frun%201/" in page
    assert (await http.get("/ui/static/run.js")).status_code == 200
    assert (await http.get("/ui/static/style.css")).status_code == 200
    async with asyncio.timeout(30):  # outputs come from the run history
        while True:
            steps = (await http.get("/ui/steps/paged/run 1")).json()["steps"]
            if "output" in steps.get("hello", {}):
                break
            await asyncio.sleep(0.3)
    assert steps["hello"]["output"] == {"said": XSS}
    assert steps["hello"]["status"] == "completed"
    assert steps["hello"]["started_at"]
    assert steps["hello"]["ended_at"]


async def test_an_unknown_run_is_a_404_page_not_a_traceback(http: httpx.AsyncClient) -> None:
    answer = await http.get(run_path("no-such-run"))
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "no run with workflow id" in answer.text
    assert "Traceback" not in answer.text
    steps = await http.get("/ui/steps/no-such-run")
    assert steps.status_code == 404
    assert "error" in steps.json()
    assert (await http.get(run_path(XSS))).text.count(XSS) == 0
