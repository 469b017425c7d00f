"""Tenancy (docs/production.md, "Tenants"): `tdsl run --tenant T` marks the run, its children and its
activities — which read it — with T (memo, `DslTenant`, a header through continue-as-new);
the run history and the registry keep it, and `--tenant` filters them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from temporalio import activity
from temporalio.client import Client

from activities.tenant import current_tenant
from interpreter.contract import DSL_TENANT, MEMO_TENANT
from interpreter.history.store import Store
from interpreter.worker import running_worker
from tests.interpreter.history.test_store import fresh_schema
from tests.support.cli import run_tdsl, tdsl_env

pytestmark = pytest.mark.integration


@activity.defn(name="test.whose")
async def whose(params: dict[str, Any]) -> dict[str, Any]:
    """What a tenant-aware activity sees."""
    return {"tenant": current_tenant(), **params}


PARENT = """\
name: tenanted
history_limit: 10
steps:
  - {id: mine, action: test.whose, parameters: {at: parent}}
  - {id: kid, type: subworkflow, workflow: tenanted-child, dependencies: [mine]}
  - {id: a1, action: echo, dependencies: [kid]}
  - {id: a2, action: echo, dependencies: [a1]}
  - {id: a3, action: echo, dependencies: [a2]}
  - {id: a4, action: echo, dependencies: [a3]}
  - {id: a5, action: echo, dependencies: [a4]}
  - {id: a6, action: echo, dependencies: [a5]}
  - {id: late, action: test.whose, dependencies: [a6], parameters: {at: continued}}
"""
CHILD = """\
name: tenanted-child
steps:
  - {id: theirs, action: test.whose, parameters: {at: child}}
"""


@pytest.fixture
async def database(postgres: str) -> AsyncIterator[str]:
    async with fresh_schema(postgres) as url:
        async with await Store.connect(url) as store:
            await store.migrate()
        yield url


def _json(done: Any) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_a_tenant_reaches_children_activities_continued_runs_and_the_history(
    client: Client, tmp_path: Path, database: str
) -> None:
    (tmp_path / "tenanted.yaml").write_text(PARENT)
    (tmp_path / "tenanted-child.yaml").write_text(CHILD)
    task_queue = f"tenancy-{uuid4()}"
    env = tdsl_env(client, task_queue, database)
    async with running_worker(
        client, task_queue=task_queue, activity_modules=[__name__], database_url=database
    ):
        done = await asyncio.to_thread(
            run_tdsl, "run", tmp_path / "tenanted.yaml", "--tenant", "acme", "--json", env=env
        )
        result = _json(done)
        assert result["status"] == "COMPLETED", result
        # the tenant in the output of the step that ran after continue-as-new
        handle = client.get_workflow_handle(result["workflow_id"])
        description = await handle.describe()
        assert description.typed_search_attributes.get(DSL_TENANT) == "acme"
        assert (await description.memo())[MEMO_TENANT] == "acme"
        assert result["continued"] >= 1
        # A query on the closed, continued run replays its last run (this once failed
        # with a nondeterminism error: `interpreter.runtime.versions`).
        assert (await handle.query("status"))["status"] == "COMPLETED"
        assert result["output"]["late"] == {"tenant": "acme", "at": "continued"}
        children = [
            w
            async for w in client.list_workflows(
                f"WorkflowType = 'tenanted-child' AND TaskQueue = '{task_queue}'"
            )
        ]
        assert len(children) == 1
        child = client.get_workflow_handle(children[0].id)
        assert await child.result() == {"theirs": {"tenant": "acme", "at": "child"}}
        child_description = await child.describe()
        assert child_description.typed_search_attributes.get(DSL_TENANT) == "acme"
        assert (await child_description.memo())[MEMO_TENANT] == "acme"

        async def recorded() -> list[dict[str, Any]]:
            listed = await asyncio.to_thread(
                run_tdsl, "runs", "--tenant", "acme", "--json", env=env
            )
            return [r for r in _json(listed) if r["status"] == "COMPLETED"]

        async with asyncio.timeout(30):
            while len(runs := await recorded()) < 2:
                await asyncio.sleep(0.3)
    assert {r["definition"] for r in runs} == {"tenanted", "tenanted-child"}
    assert {r["tenant"] for r in runs} == {"acme"}
    other = _json(await asyncio.to_thread(run_tdsl, "runs", "--tenant", "beta", "--json", env=env))
    assert other == []
    everyone = _json(await asyncio.to_thread(run_tdsl, "runs", "--json", env=env))
    assert len(everyone) == 2


async def test_the_registry_keeps_each_definitions_tenant(
    client: Client, tmp_path: Path, database: str
) -> None:
    (tmp_path / "tenanted-child.yaml").write_text(CHILD)
    env = tdsl_env(client, None, database)
    registered = run_tdsl("register", tmp_path / "tenanted-child.yaml", "--tenant", "acme", env=env)
    assert registered.returncode == 0, registered.stderr
    mine = _json(run_tdsl("definitions", "--tenant", "acme", "--json", env=env))
    assert [(d["name"], d["tenant"]) for d in mine] == [("tenanted-child", "acme")]
    assert _json(run_tdsl("definitions", "--tenant", "beta", "--json", env=env)) == []
    taken = run_tdsl("register", tmp_path / "tenanted-child.yaml", "--tenant", "beta", env=env)
    assert taken.returncode == 1
    assert taken.stderr.strip() == (
        "tdsl: error: definition 'tenanted-child' is registered for tenant 'acme', "
        "not tenant 'beta'; choose another name"
    )


@pytest.mark.parametrize("tenant", ["", "a b", "-x", "x" * 101, "ünï"])
def test_a_malformed_tenant_is_exit_2_before_anything_starts(tenant: str) -> None:
    done = run_tdsl("run", "definitions/approval.yaml", f"--tenant={tenant}")
    assert done.returncode == 2
    assert done.stderr.startswith(f"tdsl: error: --tenant {tenant!r} is not a tenant"), done.stderr
    assert done.stderr.count("\n") == 1


def test_tdsl_tenant_is_the_default() -> None:
    done = run_tdsl("runs", "--json", env={"TDSL_TENANT": "bad tenant", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "TDSL_TENANT 'bad tenant' is not a tenant" in done.stderr
