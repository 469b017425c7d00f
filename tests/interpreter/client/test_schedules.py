"""`tdsl deploy` and `tdsl schedules`: a definition's triggers as Temporal Schedules.

Real dev server; the CLI runs in a thread through `interpreter.cli.main` with the
connection in `TEMPORAL_*` variables. Every test uses its own definition name, so
the schedules of different tests never meet on the shared server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
)
from temporalio.service import RPCError, RPCStatusCode

from interpreter.cli import main
from interpreter.client.schedules import list_schedules, plan_deploy, spec_text
from interpreter.contract import DSL_NAME, DSL_VERSION, MEMO_HASH, RunEnvelope
from tests.support.runs import DEFINITIONS

integration = pytest.mark.integration

BASE = """\
name: NAME
version: 2.1.0
description: scheduled in a test
input:
  type: object
  required: [region]
  properties:
    region: {type: string}
    limit: {type: integer, default: 10}
steps:
  - id: report
    action: echo
    parameters: {region: "${{ input.region }}", limit: "${{ input.limit }}"}
output: ${{ steps.report.output }}
triggers:
"""


def _definition(tmp_path: Path, name: str, triggers: str) -> Path:
    file = tmp_path / f"{name}.yaml"
    file.write_text(BASE.replace("NAME", name) + triggers)
    return file


@pytest.fixture
def name() -> str:
    return f"sched-{uuid4().hex[:8]}"


@pytest.fixture
def cli_env(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", client.service_client.config.target_host)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", client.namespace)
    monkeypatch.setenv("TEMPORAL_TASK_QUEUE", "queue-from-env")


async def tdsl(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, [str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


async def _listed(
    client: Client, name: str, check: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """`list_schedules` for *name* once *check* holds (the list is eventually consistent)."""
    async with asyncio.timeout(10):
        while True:
            found = await list_schedules(client, definition=name)
            if check(found):
                return found
            await asyncio.sleep(0.1)


async def _describe(client: Client, schedule_id: str) -> ScheduleDescription:
    return await client.get_schedule_handle(schedule_id).describe()


def _action(description: ScheduleDescription) -> ScheduleActionStartWorkflow:
    action = description.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    return action


async def _action_memo(client: Client, action: ScheduleActionStartWorkflow) -> dict[str, Any]:
    """The memo the schedule gives each run, decoded (a described action keeps payloads)."""
    convert = client.data_converter.payload_converter
    return {
        key: convert.from_payloads([value])[0] if hasattr(value, "metadata") else value
        for key, value in (action.memo or {}).items()
    }


@integration
@pytest.mark.usefixtures("cli_env")
async def test_deploy_creates_updates_and_removes_schedules(
    client: Client, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = _definition(
        tmp_path,
        name,
        '  - schedule: {cron: "0 * * * *"}\n'
        "    input: {region: eu}\n"
        "  - type: api\n"
        "    condition: {endpoint: /api/x}\n"
        "  - schedule: {interval: 90m}\n"
        "    input: {region: us, limit: 3}\n",
    )
    code, out, err = await tdsl(capsys, "deploy", file)
    assert code == 0, err
    assert out.splitlines() == [
        f"created tdsl-{name}-0: cron 0 * * * * -> {name} 2.1.0 on task queue 'queue-from-env'",
        f"created tdsl-{name}-2: every 1h30m -> {name} 2.1.0 on task queue 'queue-from-env'",
    ]

    first = await _describe(client, f"tdsl-{name}-0")
    assert spec_text(first.schedule.spec) == {"cron": "0 * * * *"}
    action = _action(first)
    assert action.workflow == name  # started by the definition's workflow type
    assert action.id == f"{name}-scheduled"
    assert action.task_queue == "queue-from-env"
    assert action.typed_search_attributes.get(DSL_NAME) == name
    assert action.typed_search_attributes.get(DSL_VERSION) == "2.1.0"
    assert first.typed_search_attributes.get(DSL_NAME) == name
    assert await first.memo() == {"tdsl_schedule": {"definition": name, "trigger": 0}}
    (payload, *envelope) = action.args
    convert = client.data_converter.payload_converter
    assert convert.from_payloads([payload], [dict])[0] == {"region": "eu", "limit": 10}
    # The definition is pinned by content hash (memo), and travels with the schedule
    # when no payload store holds it.
    pinned = RunEnvelope.from_json(convert.from_payloads(envelope, [dict])[0] if envelope else {})
    hashed = (await _action_memo(client, action))[MEMO_HASH]
    assert hashed in pinned.definitions or not envelope
    assert pinned.definitions[hashed]["name"] == name

    second = await _describe(client, f"tdsl-{name}-2")
    assert spec_text(second.schedule.spec) == {"interval": "1h30m"}
    assert second.schedule.spec.intervals[0].every == timedelta(minutes=90)

    # `schedules --json`: ours only, in trigger order.
    await _listed(client, name, lambda found: len(found) == 2)
    code, out, err = await tdsl(capsys, "schedules", "--json", "--definition", name)
    assert code == 0, err
    assert len(out.splitlines()) == 1
    listed = json.loads(out)
    assert [set(item) for item in listed] == [
        {"id", "definition", "version", "trigger", "spec", "next_run", "paused"}
    ] * 2
    assert [(s["id"], s["definition"], s["version"], s["trigger"]) for s in listed] == [
        (f"tdsl-{name}-0", name, "2.1.0", 0),
        (f"tdsl-{name}-2", name, "2.1.0", 2),
    ]
    assert [s["spec"] for s in listed] == [{"cron": "0 * * * *"}, {"interval": "1h30m"}]
    assert all(s["paused"] is False and s["next_run"].endswith("+00:00") for s in listed)
    code, out, _ = await tdsl(capsys, "schedules")
    assert code == 0
    assert f"tdsl-{name}-0" in out
    assert "cron 0 * * * *" in out
    assert out.splitlines()[0].split() == [
        "SCHEDULE",
        "DEFINITION",
        "VERSION",
        "SPEC",
        "NEXT",
        "RUN",
        "PAUSED",
    ]

    # An operator pauses one; the file changes its cron and drops the interval trigger.
    await client.get_schedule_handle(f"tdsl-{name}-0").pause(note="held")
    file = _definition(
        tmp_path, name, '  - schedule: {cron: "30 6 * * 1-5"}\n    input: {region: apac}\n'
    )
    code, out, err = await tdsl(capsys, "deploy", file, "--task-queue", "other-queue")
    assert code == 0, err
    assert out.splitlines() == [
        f"updated tdsl-{name}-0: cron 30 6 * * 1-5 -> {name} 2.1.0 on task queue 'other-queue'",
        f"removed tdsl-{name}-2: trigger 2 is no longer in the file",
    ]
    first = await _describe(client, f"tdsl-{name}-0")
    assert spec_text(first.schedule.spec) == {"cron": "30 6 * * 1-5"}
    assert first.schedule.state.paused  # an update keeps what the operator set
    assert _action(first).task_queue == "other-queue"
    with pytest.raises(RPCError) as gone:
        await _describe(client, f"tdsl-{name}-2")
    assert gone.value.status == RPCStatusCode.NOT_FOUND

    listed = await _listed(client, name, lambda found: len(found) == 1)
    assert listed[0]["paused"] is True
    assert listed[0]["next_run"] is None


@integration
@pytest.mark.usefixtures("cli_env")
async def test_deploy_touches_only_its_own_definition(
    client: Client, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `NAME-b`'s ids start with `tdsl-NAME-` too: the memo tells them apart.
    trigger = "  - schedule: {interval: 1h}\n    input: {region: eu}\n"
    for each in (name, f"{name}-b"):
        code, _, err = await tdsl(capsys, "deploy", _definition(tmp_path, each, trigger))
        assert code == 0, err
    await _listed(client, name, lambda found: len(found) == 1)
    await _listed(client, f"{name}-b", lambda found: len(found) == 1)

    code, out, err = await tdsl(capsys, "deploy", _definition(tmp_path, name, "  - type: api\n"))
    assert code == 0, err
    assert out == f"removed tdsl-{name}-0: trigger 0 is no longer in the file\n"
    await _describe(client, f"tdsl-{name}-b-0")  # still there

    code, out, err = await tdsl(capsys, "deploy", _definition(tmp_path, name, "  - type: api\n"))
    assert (code, err) == (0, "")
    assert out == f"{name}: no schedule triggers, no schedules\n"
    await client.get_schedule_handle(f"tdsl-{name}-b-0").delete()


@integration
async def test_a_schedule_starts_a_run_that_completes(
    client: Client, worker: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = _definition(tmp_path, name, "  - schedule: {interval: 1h}\n    input: {region: eu}\n")
    code, _, err = await tdsl(
        capsys,
        "deploy",
        file,
        "--task-queue",
        worker,
        "--address",
        client.service_client.config.target_host,
    )
    assert code == 0, err
    handle = client.get_schedule_handle(f"tdsl-{name}-0")
    await handle.trigger()
    async with asyncio.timeout(15):
        while not (recent := (await handle.describe()).info.recent_actions):
            await asyncio.sleep(0.1)
    started = recent[0].action
    assert isinstance(started, ScheduleActionExecutionStartWorkflow)
    assert started.workflow_id.startswith(f"{name}-scheduled-")
    run = client.get_workflow_handle(started.workflow_id, run_id=started.first_execution_run_id)
    async with asyncio.timeout(20):
        assert await run.result() == {"region": "eu", "limit": 10}
    described = await run.describe()
    assert described.typed_search_attributes.get(DSL_NAME) == name
    assert described.typed_search_attributes.get(DSL_VERSION) == "2.1.0"
    memo = await described.memo()
    assert memo["dsl_name"] == name
    assert memo["dsl_version"] == "2.1.0"
    assert memo["dsl_hash"] == plan_deploy(file).schedules[0].run_input.definition_hash
    assert await described.static_summary() == f"{name} 2.1.0"
    assert await described.static_details() == "scheduled in a test"
    await handle.delete()


@integration
@pytest.mark.usefixtures("cli_env")
async def test_an_invalid_file_or_trigger_prints_diagnostics_and_exits_1(
    client: Client, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nsteps: []\n")
    code, out, err = await tdsl(capsys, "deploy", broken)
    assert (code, out) == (1, "")
    assert err.startswith(f"{broken}:2:8: error:")

    file = _definition(
        tmp_path,
        name,
        "  - schedule: {interval: 1h}\n    input: {region: eu}\n"
        "  - schedule: {interval: 1h}\n    input: {limit: 3}\n",
    )
    code, out, err = await tdsl(capsys, "deploy", file)
    assert (code, out) == (1, "")
    assert err == (
        f"{file}:19:12: error: trigger 1: invalid input: input: 'region' is a required property\n"
    )

    file = _definition(
        tmp_path, name, '  - schedule: {cron: "every day"}\n    input: {region: eu}\n'
    )
    code, out, err = await tdsl(capsys, "deploy", file)
    assert (code, out) == (1, "")
    # refused by validation, as the server would refuse it (dsl/cron.py), before any call
    assert err == (
        f"{file}:16:22: error: a cron string has 5 to 7 fields (minute hour day-of-month "
        "month day-of-week [year], or second first), not 2\n"
    )
    assert await list_schedules(client, definition=name) == []


def test_every_shipped_schedule_trigger_plans() -> None:
    plan = plan_deploy(DEFINITIONS / "manual-review.yaml")
    assert [(s.id, s.index, s.spec_text) for s in plan.schedules] == [
        ("tdsl-manual-review-0", 0, "every 1h")
    ]
    assert plan.schedules[0].run_input.input == {
        "document": "hourly-digest.md",
        "reviewer": "reviewers",
    }
