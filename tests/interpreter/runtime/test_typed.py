"""Definitions are workflow types (docs/language.md, "Definitions are workflow types"): any Temporal client starts them by name.

A worker knows the definitions of its `--definitions` directories and of the
registry; a run started by type learns which it runs on its first workflow task and
keeps it, whatever changes afterwards. All on a real dev server (and PostgreSQL).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.worker import Replayer

from dsl.bundle import content_hash
from dsl.loader import load_file
from dsl.models import Definition
from interpreter.client.submit import prepare_run, start_run
from interpreter.contract import DSL_NAME, DSL_VERSION, MEMO_HASH, MEMO_VERSION
from interpreter.history.store import Store
from interpreter.worker import WORKFLOWS, workflow_runner
from tests.support.runs import interpreter_worker, run_failure, statuses, wait_for_step

pytestmark = pytest.mark.integration

GREET = """\
name: greet
version: {version}
input:
  type: object
  properties: {{who: {{type: string, default: world}}}}
steps:
  - {{id: hello, action: echo, parameters: {{said: 'v{version} hello ${{{{ input.who }}}}'}}}}
"""


def _write(directory: Path, file: str, text: str) -> Path:
    path = directory / file
    path.write_text(text)
    return path


@pytest.fixture
def definitions(tmp_path: Path) -> Path:
    directory = tmp_path / "definitions"
    directory.mkdir()
    _write(directory, "greet-1.yaml", GREET.format(version="1.0.0"))
    _write(directory, "greet-2.yaml", GREET.format(version="2.0.0"))
    return directory


@pytest.fixture
async def typed_worker(client: Client, task_queue: str, definitions: Path) -> AsyncIterator[str]:
    async with interpreter_worker(client, task_queue, definitions=[definitions]):
        yield task_queue


async def _start(
    client: Client, queue: str, workflow_type: str, *args: Any
) -> WorkflowHandle[Any, Any]:
    """As `temporal workflow start --type TYPE --input JSON` does: nothing but the input."""
    return await client.start_workflow(
        workflow_type, args=list(args), id=f"typed-{uuid4()}", task_queue=queue
    )


async def test_a_plain_client_starts_a_definition_by_name(
    client: Client, typed_worker: str
) -> None:
    handle = await _start(client, typed_worker, "greet", {"who": "ann"})
    assert await handle.result() == {"hello": {"said": "v2.0.0 hello ann"}}
    described = await handle.describe()
    assert described.workflow_type == "greet"
    # What tdsl run sets, the run set itself: search attributes and memo.
    assert described.typed_search_attributes.get(DSL_NAME) == "greet"
    assert described.typed_search_attributes.get(DSL_VERSION) == "2.0.0"
    memo = await described.memo()
    assert memo[MEMO_VERSION] == "2.0.0"
    assert len(memo[MEMO_HASH]) == 64
    # No input at all is {} (with the schema's defaults).
    bare = await _start(client, typed_worker, "greet")
    assert await bare.result() == {"hello": {"said": "v2.0.0 hello world"}}


async def test_name_at_version_pins_one(client: Client, typed_worker: str) -> None:
    handle = await _start(client, typed_worker, "greet@1.0.0", {"who": "bo"})
    assert await handle.result() == {"hello": {"said": "v1.0.0 hello bo"}}


async def test_an_unknown_type_fails_at_once_naming_type_and_queue(
    client: Client, typed_worker: str
) -> None:
    for workflow_type in ("nobody", "greet@9.9.9"):
        handle = await _start(client, typed_worker, workflow_type, {})
        error = await asyncio.wait_for(run_failure(handle), 30)
        assert error.type == "NotFound"
        assert repr(workflow_type) in error.message
        assert typed_worker in error.message
        assert "greet" in error.message  # what it does know
        assert "\n" not in error.message


async def test_an_invalid_file_fails_with_its_positions(
    client: Client, typed_worker: str, definitions: Path
) -> None:
    _write(
        definitions,
        "broken.yaml",
        "name: broken\nsteps:\n  - {id: a, action: echo, dependencies: [nope]}\n",
    )
    handle = await _start(client, typed_worker, "broken", {})
    error = await asyncio.wait_for(run_failure(handle), 30)
    assert error.type == "InvalidDefinition"
    assert "broken.yaml:3:" in error.message


async def test_bad_input_fails_the_run_with_the_reason(client: Client, typed_worker: str) -> None:
    handle = await _start(client, typed_worker, "greet", {"who": 5})
    error = await asyncio.wait_for(run_failure(handle), 30)
    assert error.type == "InvalidInput"
    assert "input.who" in error.message


WAITER = """\
name: waiter
version: 1.0.0
history_limit: 100
steps:
  - {{id: first, action: echo, parameters: {{edition: {edition}}}}}
  - {{id: gate, type: signal, signal: go, dependencies: [first]}}
  - {{id: after, action: echo, parameters: {{edition: {edition}}}, dependencies: [gate]}}
"""


async def test_a_run_keeps_its_definition_when_the_file_changes(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    """Changed after the start: the run, its continuation and its replay use the old one."""
    directory = tmp_path / "defs"
    directory.mkdir()
    path = _write(directory, "waiter.yaml", WAITER.format(edition=1))
    async with interpreter_worker(client, task_queue, definitions=[directory]):
        handle = await _start(client, task_queue, "waiter", {})
        await wait_for_step(handle, "gate")
        path.write_text(WAITER.format(edition=2).replace("after", "later"))
        await handle.signal("go", None)
        assert await handle.result() == {
            "first": {"edition": 1},
            "gate": None,
            "after": {"edition": 1},
        }
        # A new run takes the new file.
        fresh = await _start(client, task_queue, "waiter", {})
        await wait_for_step(fresh, "gate")
        await fresh.signal("go", None)
        assert (await fresh.result())["later"] == {"edition": 2}
    history = await handle.fetch_history()
    replayer = Replayer(workflows=list(WORKFLOWS), workflow_runner=workflow_runner(sandboxed=True))
    await replayer.replay_workflow(history)


async def test_tdsl_run_of_a_file_the_worker_never_saw(
    client: Client, typed_worker: str, tmp_path: Path
) -> None:
    """`start_run` (what `tdsl run FILE` calls): the type is the definition's name, and
    the definition travels with the run when no store holds it."""
    _write(
        tmp_path,
        "child.yaml",
        "name: elsewhere-child\nsteps: [{id: c, action: echo, parameters: {x: 1}}]\n",
    )
    parent = _write(
        tmp_path,
        "parent.yaml",
        "name: elsewhere\nsteps:\n  - {id: s, type: subworkflow, workflow: elsewhere-child}\n",
    )
    run_input, _ = prepare_run(parent)
    handle = await start_run(client, run_input, task_queue=typed_worker)
    assert await handle.result() == {"s": {"c": {"x": 1}}}
    described = await handle.describe()
    assert described.workflow_type == "elsewhere"
    assert described.typed_search_attributes.get(DSL_NAME) == "elsewhere"
    child = await client.get_workflow_handle(f"{handle.id}/s").describe()
    assert child.workflow_type == "elsewhere-child"
    pinned = content_hash(run_input.subworkflows["elsewhere-child@1.0.0"])
    assert (await child.memo())[MEMO_HASH] == pinned


async def test_subworkflows_and_foreach_batches_start_by_type(
    client: Client, typed_worker: str, definitions: Path
) -> None:
    _write(
        definitions,
        "fan.yaml",
        "name: fan\nsteps:\n"
        "  - {id: each, type: foreach, items: '${{ input.items }}',"
        " step: {id: one, type: subworkflow, workflow: greet, version: 1.0.0,"
        " input: {who: '${{ item }}'}}}\n",
    )
    handle = await _start(client, typed_worker, "fan", {"items": ["a", "b"]})
    output = await handle.result()
    assert [o["hello"]["said"] for o in output["each"]] == ["v1.0.0 hello a", "v1.0.0 hello b"]
    child = await client.get_workflow_handle(f"{handle.id}/one[0]").describe()
    assert child.workflow_type == "greet"
    _write(
        definitions,
        "wide.yaml",
        "name: wide\nsteps:\n"
        "  - {id: each, type: foreach, items: '${{ input.items }}',"
        " step: {id: one, type: set, values: {seen: '${{ item }}'}}}\n",
    )
    wide = await _start(client, typed_worker, "wide", {"items": list(range(250))})
    assert len((await wide.result())["each"]) == 250
    batch = await client.get_workflow_handle(f"{wide.id}/each/batch-1").describe()
    assert batch.workflow_type == "wide"


async def test_a_registered_definition_starts_without_restarting_workers(
    client: Client, task_queue: str, postgres: str
) -> None:
    """Registered while the worker runs, deprecated, and undone: `NAME` follows; pinned
    versions always start."""
    from tests.interpreter.history.test_store import fresh_schema

    async with fresh_schema(postgres) as url, await Store.connect(url) as store:
        await store.migrate()
        await store.register(_definition(GREET.format(version="1.0.0")), "v1")
        async with interpreter_worker(client, task_queue, database_url=url):
            first = await _start(client, task_queue, "greet", {"who": "a"})
            assert (await first.result())["hello"]["said"] == "v1.0.0 hello a"
            await store.register(_definition(GREET.format(version="1.1.0")), "v1.1")
            second = await _start(client, task_queue, "greet", {"who": "b"})
            assert (await second.result())["hello"]["said"] == "v1.1.0 hello b"
            assert await store.deprecate("greet", "1.1.0")
            third = await _start(client, task_queue, "greet", {"who": "c"})
            assert (await third.result())["hello"]["said"] == "v1.0.0 hello c"
            pinned = await _start(client, task_queue, "greet@1.1.0", {"who": "d"})
            assert (await pinned.result())["hello"]["said"] == "v1.1.0 hello d"
            assert await store.deprecate("greet", "1.1.0", deprecated=False)
            fourth = await _start(client, task_queue, "greet", {"who": "e"})
            assert (await fourth.result())["hello"]["said"] == "v1.1.0 hello e"


def _definition(text: str) -> Definition:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(text)
    return Definition.model_validate(load_file(handle.name).data)


async def test_status_shows_the_run_by_type(client: Client, typed_worker: str) -> None:
    handle = await _start(client, typed_worker, "greet", {})
    await handle.result()
    assert await statuses(handle) == {"hello": "completed"}
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
