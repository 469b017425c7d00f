"""Search attributes never block a run (docs/temporal-ui.md): on a plain `temporal server start-dev`.

Each test gets its own dev server started with no flags of ours, so its namespace has
none of `DslName`/`DslVersion`, as the first server a new user runs has none.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from interpreter.contract import DSL_NAME, DSL_VERSION, MEMO_NAME, SEARCH_ATTRIBUTES
from interpreter.dev.servers import find_binary
from interpreter.worker import register_search_attributes
from tests.support.cli import ROOT, run_tdsl
from tests.support.runs import interpreter_worker

pytestmark = pytest.mark.integration

ORDER = ROOT / "definitions" / "order-fulfilment.yaml"
ORDER_INPUT = ROOT / "definitions" / "inputs" / "order-fulfilment.json"


@pytest.fixture
async def bare() -> AsyncIterator[Client]:
    """A dev server exactly as `temporal server start-dev` starts it: no search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")),
        ui=False,
    )
    try:
        yield env.client
    finally:
        await env.shutdown()


async def _custom_attributes(client: Client) -> set[str]:
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    return set(response.custom_attributes)


def _address(client: Client) -> str:
    return client.service_client.config.target_host


async def test_tdsl_run_starts_without_them_and_says_once_how_to_add_them(
    bare: Client, tmp_path: Path
) -> None:
    assert not {k.name for k in SEARCH_ATTRIBUTES} & await _custom_attributes(bare)
    workflow_id = f"bare-{uuid4()}"
    done = run_tdsl(
        "run", ORDER, "--input", f"@{ORDER_INPUT}", "--id", workflow_id,
        "--address", _address(bare), "--task-queue", f"q-{uuid4()}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "has no search attributes" in line]
    assert len(notes) == 1, done.stderr
    assert "temporal operator search-attribute create" in notes[0]
    described = await bare.get_workflow_handle(workflow_id).describe()
    assert described.workflow_type == "order-fulfilment"
    assert described.typed_search_attributes.get(DSL_NAME) is None
    # What the search attributes would say, the memo still says.
    assert (await described.memo())[MEMO_NAME] == "order-fulfilment"
    await bare.get_workflow_handle(workflow_id).terminate("test done")


async def test_runs_complete_without_them_and_the_worker_adds_them(
    bare: Client, task_queue: str
) -> None:
    """A worker that cannot (or did not yet) register them runs every definition; once
    `tdsl worker` has registered them (as it does at start), runs carry them."""
    order_input = json.loads(ORDER_INPUT.read_text())
    definitions = [ROOT / "definitions"]
    async with interpreter_worker(bare, task_queue, definitions=definitions):
        before = await bare.execute_workflow(
            "order-fulfilment", order_input, id=f"bare-{uuid4()}", task_queue=task_queue
        )
    assert before["shipped"] is True
    await register_search_attributes(bare)
    assert {k.name for k in SEARCH_ATTRIBUTES} <= await _custom_attributes(bare)
    async with interpreter_worker(bare, task_queue, definitions=definitions):
        handle = await bare.start_workflow(
            "order-fulfilment", order_input, id=f"bare-{uuid4()}", task_queue=task_queue
        )
        assert await handle.result() == before
    described = await handle.describe()
    assert described.typed_search_attributes.get(DSL_NAME) == "order-fulfilment"
    assert described.typed_search_attributes.get(DSL_VERSION)
