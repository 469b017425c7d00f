"""Start interpreter runs from YAML text the way the client does: validate, bundle, submit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from dsl.bundle import normalise, resolve_bundle
from dsl.catalog import DirectoryCatalog
from dsl.validate import validate_file, validate_text
from interpreter.client.submit import run_start
from interpreter.contract import RunInput

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"


def run_input(
    text_or_path: str | Path, run_input: Any = None, *, directory: Path = DEFINITIONS
) -> RunInput:
    """The workflow input for a definition given as YAML text or a file path."""
    if isinstance(text_or_path, Path):
        checked = validate_file(text_or_path)
    else:
        checked = validate_text(
            text_or_path, file="test.yaml", catalog=DirectoryCatalog([directory])
        )
    bundle = resolve_bundle(checked, DirectoryCatalog([directory]))
    return RunInput(
        definition=normalise(bundle.definition),
        input=run_input,
        subworkflows={key: normalise(d) for key, d in bundle.subworkflows.items()},
        latest=bundle.latest,
        definition_hash=bundle.hash,
    )


async def start(
    client: Client,
    task_queue: str,
    text_or_path: str | Path,
    input: Any = None,
    *,
    workflow_id: str | None = None,
    **options: Any,
) -> WorkflowHandle[Any, Any]:
    """Start the definition by its workflow type, carrying it in the run's envelope (as
    `tdsl run` does without a payload store), so the worker needs no file of it."""
    how = run_start(run_input(text_or_path, input, **options), stored=False, searchable=False)
    return await client.start_workflow(
        how.workflow_type,
        args=how.args,
        memo=how.memo,
        id=workflow_id or f"test-{uuid4()}",
        task_queue=task_queue,
    )


async def run_failure(handle: WorkflowHandle[Any, Any]) -> ApplicationError:
    """The error a run failed with (the test fails if the run did not fail)."""
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def statuses(handle: WorkflowHandle[Any, Any]) -> dict[str, str]:
    """Step id → status, from the workflow's status query."""
    answer = await handle.query("status")
    return {step_id: state["status"] for step_id, state in answer["steps"].items()}


@contextlib.asynccontextmanager
async def interpreter_worker(
    client: Client,
    task_queue: str,
    *,
    activity_modules: Sequence[str] = (),
    definitions: Sequence[Path] = (),
    database_url: str | None = None,
) -> AsyncIterator[None]:
    """The production worker (`build_worker`), stopping at once when the test is done."""
    from activities.builtin import BuiltinActivities
    from interpreter.worker import build_worker

    builtin = BuiltinActivities()
    try:
        async with build_worker(
            client,
            task_queue=task_queue,
            activity_modules=activity_modules,
            builtin=builtin,
            graceful_shutdown_timeout=timedelta(0),
            definitions=definitions,
            database_url=database_url,
        ):
            yield
    finally:
        await builtin.close()


async def wait_for_step(
    handle: WorkflowHandle[Any, Any], step_id: str, status: str = "running", timeout: float = 30.0
) -> None:
    """Poll the status query until `step_id` has `status` (bounded, so a test cannot hang)."""
    async with asyncio.timeout(timeout):
        while (await statuses(handle)).get(step_id) != status:
            await asyncio.sleep(0.05)


async def runs_of(client: Client, handle: WorkflowHandle[Any, Any]) -> list[tuple[str, int, bool]]:
    """(run id, event count, continued as new?) of every run of *handle*'s logical run,
    oldest first: the chain is followed through the histories (visibility may lag)."""
    found = []
    run_id = handle.first_execution_run_id or handle.result_run_id
    while run_id:
        run = client.get_workflow_handle(handle.id, run_id=run_id)
        events = [event async for event in run.fetch_history_events()]
        last = events[-1]
        continued = last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        found.append((run_id, len(events), continued))
        attributes = last.workflow_execution_continued_as_new_event_attributes
        run_id = attributes.new_execution_run_id if continued else None
    return found
