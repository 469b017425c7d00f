"""How the worker runs the interpreter: unsandboxed by default, sandboxed on request.

The rest of the suite runs every worker sandboxed (`tests/conftest.py`); this file
runs the production default too, and replays what it recorded in the sandbox.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.builtin import BuiltinActivities
from dsl.errors import InputError
from interpreter.worker import (
    SANDBOX_ENV,
    WORKFLOWS,
    build_worker,
    sandbox_from_env,
    workflow_runner,
)
from tests.support.cli import run_tdsl
from tests.support.runs import runs_of, start


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", False), ("off", False), ("0", False), ("No", False), ("on", True), ("TRUE", True)],
)
def test_the_sandbox_setting_reads_on_and_off(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv(SANDBOX_ENV, value)
    assert sandbox_from_env() is expected


def test_a_bad_sandbox_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SANDBOX_ENV, "maybe")
    with pytest.raises(InputError, match="TDSL_WORKFLOW_SANDBOX must be on or off"):
        sandbox_from_env()
    result = run_tdsl("worker", env={**os.environ, SANDBOX_ENV: "maybe"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tdsl: error: TDSL_WORKFLOW_SANDBOX must be on or off, not 'maybe'"
    ]


def test_runners() -> None:
    assert isinstance(workflow_runner(False), UnsandboxedWorkflowRunner)
    assert isinstance(workflow_runner(True), SandboxedWorkflowRunner)


@pytest.mark.integration
async def test_the_default_worker_runs_unsandboxed_and_its_history_replays_sandboxed(
    client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SANDBOX_ENV)  # the production default
    builtin = BuiltinActivities()
    worker = build_worker(
        client, task_queue=task_queue, builtin=builtin, graceful_shutdown_timeout=timedelta(0)
    )
    assert isinstance(worker.config()["workflow_runner"], UnsandboxedWorkflowRunner)
    roots = "".join(f"  - {{id: v{i}, type: set, values: {{v{i}: {i}}}}}\n" for i in range(1500))
    text = (
        "name: unsandboxed\nhistory_limit: 12\nsteps:\n" + roots + "  - id: par\n"
        "    type: parallel\n    branches:\n"
        "      - {name: a, steps: [{id: pa, action: echo, parameters: {x: 1}}]}\n"
        "      - {name: b, steps: [{id: pb, action: echo, parameters: {x: 2}}]}\n"
        "  - {id: each, type: foreach, items: [1, 2, 3], dependencies: [par],"
        " step: {id: e, action: echo, parameters: {n: '${{ item }}'}}}\n"
        + "".join(
            f"  - {{id: c{i}, action: echo, dependencies: [{f'c{i - 1}' if i else 'each'}]}}\n"
            for i in range(6)
        )
    )
    try:
        async with worker:
            handle = await start(client, task_queue, text)
            async with asyncio.timeout(60):
                result = await handle.result()
    finally:
        await builtin.close()
    assert result["each"] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert result["v1499"] == {"v1499": 1499}
    runs = await runs_of(client, handle)
    assert len(runs) >= 2  # continued as new
    replayer = Replayer(workflows=list(WORKFLOWS), workflow_runner=workflow_runner(True))
    for run_id, _, _ in runs:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        await replayer.replay_workflow(history)
