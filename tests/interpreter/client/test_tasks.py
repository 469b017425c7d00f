"""`human.task` steps finished from outside: `tdsl tasks`, `tdsl complete`, `tdsl fail`.

Real dev server and worker (the `worker` fixture registers `human.task` through
`default_activities`); the CLI runs in a thread through `interpreter.cli.main`
with the connection in `TEMPORAL_*` variables.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from temporalio.client import Client, WorkflowFailureError

from activities.async_tasks import decode_token, encode_token
from interpreter.cli import main
from interpreter.client.status import failure_message
from interpreter.client.submit import prepare_run, start_run
from interpreter.client.tasks import wait_for_task

integration = pytest.mark.integration

REVIEW = """\
name: review-SUFFIX
input:
  type: object
  properties: {doc: {type: string, default: notes.md}}
steps:
  - id: review
    name: Review it
    action: human.task
    timeout: 1h
    retry_policy: {maximum_attempts: 1}
    parameters:
      message: "review ${{ input.doc }}"
      assignee: ada
      doc: ${{ input.doc }}
  - id: publish
    action: echo
    dependencies: [review]
    parameters: {verdict: "${{ steps.review.output }}"}
output:
  verdict: ${{ steps.publish.output.verdict }}
"""


@pytest.fixture
def cli_env(client: Client, worker: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """`tdsl` in this process talks to the session's dev server and the worker's queue."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", client.service_client.config.target_host)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", client.namespace)
    monkeypatch.setenv("TEMPORAL_TASK_QUEUE", worker)
    return worker


async def tdsl(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def _start_review(client: Client, task_queue: str, tmp_path: Path) -> str:
    suffix = uuid4().hex[:8]
    file = tmp_path / f"review-{suffix}.yaml"
    file.write_text(REVIEW.replace("SUFFIX", suffix))
    run_input, _ = prepare_run(file)
    handle = await start_run(client, run_input, task_queue=task_queue)
    return handle.id


def test_tokens_round_trip_and_tolerate_padding_and_standard_alphabet() -> None:
    raw = bytes(range(256))
    text = encode_token(raw)
    assert "=" not in text
    assert "+" not in text
    assert "/" not in text
    assert decode_token(text) == raw
    assert decode_token(base64.b64encode(raw).decode()) == raw
    assert decode_token(f"  {text}\n") == raw
    for bad in ("", "   ", "not a token!", "ab$cd", "a"):
        with pytest.raises(ValueError, match=r"base64url|empty"):
            decode_token(bad)


@integration
async def test_a_task_waits_until_completed_from_the_cli(
    client: Client, cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow_id = await _start_review(client, cli_env, tmp_path)
    task = await wait_for_task(client, workflow_id, "review", timeout=15)

    code, out, err = await tdsl(capsys, "tasks", workflow_id, "--json")
    assert code == 0, err
    (listed,) = json.loads(out)
    assert listed == {
        "step": "review",
        "token": task["token"],
        "message": "review notes.md",
        "assignee": "ada",
        "details": {"doc": "notes.md"},
        "attempt": 1,
        "state": "started",
    }
    code, out, err = await tdsl(capsys, "tasks", workflow_id)
    assert code == 0, err
    assert out.splitlines() == [
        "review for ada: review notes.md (attempt 1)",
        f"  token: {task['token']}",
        f"  tdsl complete {task['token']} --result JSON",
    ]

    # Still waiting: nothing heartbeats, nothing times out.
    await asyncio.sleep(1)
    handle = client.get_workflow_handle(workflow_id)
    assert (await handle.query("status"))["steps"]["review"]["status"] == "running"

    code, out, err = await tdsl(capsys, "complete", task["token"], "--result", '{"ok": true}')
    assert (code, out, err) == (0, "task completed\n", "")
    assert await handle.result() == {"verdict": {"ok": True}}

    code, out, _ = await tdsl(capsys, "tasks", workflow_id)
    assert (code, out) == (0, f"{workflow_id}: no task waits to be completed\n")
    # The same token again: the task no longer waits.
    code, out, err = await tdsl(capsys, "complete", task["token"])
    assert code == 1
    assert out == ""
    assert err.startswith("tdsl: error: cannot complete the task: it is no longer waiting")
    assert len(err.splitlines()) == 1


@integration
async def test_fail_fails_the_step_and_the_run_with_the_message(
    client: Client, cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow_id = await _start_review(client, cli_env, tmp_path)
    task = await wait_for_task(client, workflow_id, "review", timeout=15)
    code, out, err = await tdsl(
        capsys, "fail", task["token"], "--message", "not ready yet", "--type", "Rejected"
    )
    assert (code, out, err) == (0, "task failed\n", "")
    with pytest.raises(WorkflowFailureError) as failed:
        await client.get_workflow_handle(workflow_id).result()
    assert failure_message(failed.value) == "step 'review' (Review it) failed: not ready yet"
    code, out, err = await tdsl(capsys, "status", workflow_id, "--json")
    state: dict[str, Any] = json.loads(out)
    assert state["status"] == "FAILED"
    assert state["steps"]["review"]["status"] == "failed"
    assert state["steps"]["publish"]["status"] in {"pending", "skipped", "cancelled"}


@integration
@pytest.mark.parametrize(
    ("command", "token", "message"),
    [
        (
            ["complete"],
            "not a token!",
            "tdsl: error: invalid task token: a task token is base64url",
        ),
        (["fail", "--message", "m"], "%%%", "tdsl: error: invalid task token: a task token is"),
        # base64url, but not a token the server issued
        (["complete"], encode_token(b"forged token"), "tdsl: error: invalid task token: "),
    ],
)
async def test_a_bad_token_is_one_line_and_exit_2(
    cli_env: str,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    token: str,
    message: str,
) -> None:
    code, out, err = await tdsl(capsys, command[0], token, *command[1:])
    assert code == 2
    assert out == ""
    assert err.startswith(message)
    assert len(err.splitlines()) == 1


@integration
async def test_tasks_of_an_unknown_run_and_a_bad_result(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await tdsl(capsys, "tasks", "no-such-run-here")
    assert (code, err) == (1, "tdsl: error: no run with workflow id 'no-such-run-here'\n")
    code, _, err = await tdsl(capsys, "complete", encode_token(b"x"), "--result", "{nope")
    assert code == 2
    assert err.startswith("tdsl: error: --result is not valid JSON")


@integration
async def test_a_task_without_a_message_fails_its_step_at_once(
    client: Client, worker: str, tmp_path: Path
) -> None:
    file = tmp_path / "bad-task.yaml"
    file.write_text("name: bad-task\nsteps:\n  - {id: ask, action: human.task, timeout: 1h}\n")
    run_input, _ = prepare_run(file)
    handle = await start_run(client, run_input, task_queue=worker)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert "human.task: 'message' is required" in failure_message(failed.value)
