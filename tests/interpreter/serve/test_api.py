"""`tdsl serve`'s JSON API (docs/api.md): every route with an HTTP client against the app on a
real dev server, worker and PostgreSQL; auth refused and accepted; bad bodies; the
`{type: api}` trigger of the seed definition; and the real command over TCP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from temporalio.client import Client

from interpreter.client.tasks import wait_for_task
from interpreter.dev.servers import free_port
from interpreter.history.store import Store
from interpreter.serve.api import ServeSettings, build_app
from interpreter.worker import running_worker
from tests.interpreter.history.test_store import fresh_schema
from tests.support.cli import ROOT, run_tdsl, tdsl_env
from tests.support.serve import register, until_ended

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"
GREET = """\
name: greet
input: {type: object, required: [who], properties: {who: {type: string}}}
steps:
  - {id: hello, action: echo, parameters: {greeting: "hello ${{ input.who }}"}}
output: {said: "${{ steps.hello.output.greeting }}"}
"""
WAITING = """\
name: waiting
steps:
  - {id: answer, type: signal, signal: approval, timeout: 1h}
  - {id: nap, action: sleep, parameters: {seconds: 30}, heartbeat_timeout: 5s, dependencies: [answer]}
output: {approved: "${{ steps.answer.output.approved }}"}
"""
ASKING = """\
name: asking
steps:
  - {id: ask, action: human.task, timeout: 1h, parameters: {message: approve it}}
output: {answer: "${{ steps.ask.output }}"}
"""


@pytest.fixture
async def served(
    client: Client, postgres: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """The app with a token, a worker of the example activities, a migrated database."""
    async with fresh_schema(postgres) as url:
        async with await Store.connect(url) as store:
            await store.migrate()
        monkeypatch.setenv("DATABASE_URL", url)
        task_queue = f"serve-{uuid4()}"

        async def connect() -> Client:
            return client

        settings = ServeSettings(
            connect=connect, task_queue=task_queue, database_url=url, token=TOKEN
        )
        transport = httpx.ASGITransport(app=build_app(settings))
        async with (
            running_worker(
                client,
                task_queue=task_queue,
                activity_modules=["activities.examples"],
                database_url=url,
            ),
            httpx.AsyncClient(
                transport=transport,
                base_url="http://serve",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30,
            ) as http,
        ):
            yield http, url, task_queue


async def test_definitions_are_registered_listed_and_refused_with_positions(
    served: tuple[httpx.AsyncClient, str, str],
) -> None:
    http, _, _ = served
    await register(http, GREET)
    again = await http.post(
        "/api/definitions", content=GREET, headers={"Content-Type": "application/yaml"}
    )
    assert again.json()["outcome"] == "unchanged"
    listed = (await http.get("/api/definitions")).json()
    assert [(d["name"], d["version"]) for d in listed] == [("greet", "1.0.0")]
    broken = await http.post(
        "/api/definitions",
        content="name: broken\nsteps:\n  - id: a\n    actoin: echo\n",
        headers={"Content-Type": "application/yaml"},
    )
    assert broken.status_code == 422
    assert broken.json() == {
        "errors": [
            {"line": 4, "column": 5, "message": "unknown key 'actoin' (did you mean 'action'?)"}
        ]
    }
    changed = await http.post(
        "/api/definitions",
        content=GREET.replace("hello ", "hi "),
        headers={"Content-Type": "application/yaml"},
    )
    assert changed.status_code == 409
    assert "1.0.1" in changed.json()["error"]
    as_json = await http.post(
        "/api/definitions", json={"name": "j", "steps": [{"id": "a", "action": "echo"}]}
    )
    assert as_json.status_code == 201, as_json.text


async def test_a_run_is_started_followed_and_listed(
    served: tuple[httpx.AsyncClient, str, str],
) -> None:
    http, _, _ = served
    await register(http, GREET)
    started = await http.post(
        "/api/runs", json={"definition": "greet", "input": {"who": "ann"}, "id": "greet-ann"}
    )
    assert started.status_code == 201, started.text
    assert started.json()["workflow_id"] == "greet-ann"
    state = await until_ended(http, "greet-ann")
    assert state["status"] == "COMPLETED"
    assert state["output"] == {"said": "hello ann"}
    assert state["steps"]["hello"]["status"] == "completed"
    graph = (await http.get("/api/runs/greet-ann/graph")).json()
    assert [(n["id"], n["status"]) for n in graph["graph"]["nodes"]] == [("hello", "completed")]
    async with asyncio.timeout(30):  # the run history catches up
        while not (listed := (await http.get("/api/runs?definition=greet")).json()):
            await asyncio.sleep(0.3)
    assert listed[0]["workflow_id"] == "greet-ann"
    bad_input = await http.post("/api/runs", json={"definition": "greet", "input": {"who": 7}})
    assert bad_input.status_code == 422
    assert "who" in bad_input.json()["error"]
    unknown = await http.post("/api/runs", json={"definition": "nope"})
    assert unknown.status_code == 422
    assert (await http.get("/api/runs/no-such-run")).status_code == 404
    assert (await http.get("/api/runs?limit=0")).status_code == 422


async def test_signals_pause_resume_cancel_and_terminate(
    served: tuple[httpx.AsyncClient, str, str],
) -> None:
    http, _, _ = served
    await register(http, WAITING)
    first = (await http.post("/api/runs", json={"definition": "waiting"})).json()["workflow_id"]
    for action in ("pause", "resume"):
        answer = await http.post(f"/api/runs/{first}/{action}")
        assert answer.status_code == 202, answer.text
    sent = await http.post(f"/api/runs/{first}/signals/approval", json={"approved": True})
    assert sent.status_code == 202
    async with asyncio.timeout(30):
        while (await http.get(f"/api/runs/{first}")).json()["steps"]["nap"]["status"] != "running":
            await asyncio.sleep(0.2)
    assert (await http.post(f"/api/runs/{first}/cancel")).status_code == 202
    assert (await until_ended(http, first))["status"] == "CANCELED"
    second = (await http.post("/api/runs", json={"definition": "waiting"})).json()["workflow_id"]
    assert (await http.post(f"/api/runs/{second}/terminate")).status_code == 202
    assert (await until_ended(http, second))["status"] == "TERMINATED"
    assert (await http.post("/api/runs/no-such-run/pause")).status_code == 404


async def test_tasks_are_completed_and_failed_by_token(
    served: tuple[httpx.AsyncClient, str, str], client: Client
) -> None:
    http, _, _ = served
    await register(http, ASKING)
    done = (await http.post("/api/runs", json={"definition": "asking"})).json()["workflow_id"]
    task = await wait_for_task(client, done, "ask")
    answer = await http.post(f"/api/tasks/{task['token']}/complete", json={"ok": True})
    assert answer.status_code == 202, answer.text
    assert (await until_ended(http, done))["output"] == {"answer": {"ok": True}}
    failed = (await http.post("/api/runs", json={"definition": "asking"})).json()["workflow_id"]
    task = await wait_for_task(client, failed, "ask")
    answer = await http.post(f"/api/tasks/{task['token']}/fail", json={"message": "no"})
    assert answer.status_code == 202
    assert (await until_ended(http, failed))["status"] == "FAILED"
    bad = await http.post("/api/tasks/not-a-token/complete", json={})
    assert bad.status_code == 422


async def test_the_seed_definitions_api_trigger_starts_a_run(
    served: tuple[httpx.AsyncClient, str, str],
) -> None:
    http, _, _ = served
    seed = (ROOT / "definitions" / "sample-workflow.json").read_text()
    assert (await http.post("/api/definitions", content=seed)).status_code == 201
    started = await http.post("/api/sample-workflow", json={"records": [1, 2]})
    assert started.status_code == 201, started.text
    state = await until_ended(http, started.json()["workflow_id"])
    assert state["status"] == "COMPLETED", state
    assert (await http.get("/api/sample-workflow")).status_code == 404  # POST only
    assert (await http.post("/api/elsewhere", json={})).status_code == 404


async def test_writes_need_the_token_and_reads_do_not(
    served: tuple[httpx.AsyncClient, str, str],
) -> None:
    http, _, _ = served
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        refused = await http.post(
            "/api/runs",
            json={"definition": "greet"},
            headers={**headers, "Authorization": headers.get("Authorization", "")},
        )
        assert refused.status_code == 401, headers
        assert refused.json() == {
            "error": "this route needs Authorization: Bearer <TDSL_API_TOKEN>"
        }
    trigger = await http.post("/api/sample-workflow", json={}, headers={"Authorization": ""})
    assert trigger.status_code == 401
    # a GET trigger starts a run too: it changes something, so it needs the token as well
    await register(
        http,
        "name: pinged\nsteps:\n  - {id: a, action: echo}\n"
        "triggers:\n  - {type: api, condition: {endpoint: /api/ping, method: GET}}\n",
    )
    assert (await http.get("/api/ping", headers={"Authorization": ""})).status_code == 401
    assert (await http.get("/api/ping")).status_code == 201
    assert (await http.get("/api/definitions", headers={"Authorization": ""})).status_code == 200


async def test_bad_bodies_are_4xx_json_never_a_traceback(
    served: tuple[httpx.AsyncClient, str, str],
) -> None:
    http, _, _ = served
    for body in ("{not json", '"a string"', "[]"):
        answer = await http.post(
            "/api/runs", content=body, headers={"Content-Type": "application/json"}
        )
        assert 400 <= answer.status_code < 500, body
        assert set(answer.json()) == {"error"}, answer.text
    missing = await http.post("/api/runs", json={"input": {}})
    assert missing.status_code == 422
    assert missing.json()["error"].startswith("definition")
    signal = await http.post("/api/runs/x/signals/y", content="{bad")
    assert signal.status_code == 422
    document = (await http.get("/openapi.json")).json()
    assert "/api/runs" in document["paths"]
    assert "/api/runs/{workflow_id}/signals/{name}" in document["paths"]


def test_serve_refuses_the_network_without_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TDSL_API_TOKEN"}
    done = run_tdsl("serve", "--host", "0.0.0.0", env=env)
    assert done.returncode == 2
    assert done.stderr.startswith(
        "tdsl: error: refusing to listen on 0.0.0.0 without TDSL_API_TOKEN"
    )


async def test_tdsl_serve_over_tcp_starts_the_seed_run_as_curl_would(
    client: Client, postgres: str, tmp_path: Path
) -> None:
    """The issue's "done when": `curl -X POST localhost:PORT/api/sample-workflow -H
    'Authorization: Bearer …'` starts the seed definition's run."""
    (tmp_path / "sample-workflow.json").write_text(
        (ROOT / "definitions" / "sample-workflow.json").read_text()
    )
    task_queue = f"serve-tcp-{uuid4()}"
    port = free_port()
    env = tdsl_env(client, task_queue) | {"TDSL_API_TOKEN": TOKEN}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "interpreter.cli",
            "serve",
            "--port",
            str(port),
            "--definitions",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        async with (
            running_worker(client, task_queue=task_queue, activity_modules=["activities.examples"]),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
        ):
            async with asyncio.timeout(60):
                while True:
                    assert server.poll() is None, server.communicate()
                    try:
                        if (await http.get("/openapi.json")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.2)
            refused = await http.post("/api/sample-workflow", json={})
            assert refused.status_code == 401
            started = await http.post(
                "/api/sample-workflow",
                json={"records": [1]},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert started.status_code == 201, started.text
            handle = client.get_workflow_handle(started.json()["workflow_id"])
            await asyncio.wait_for(handle.result(), 60)
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert "serving on http://127.0.0.1" in out
    assert "Traceback" not in err, err
