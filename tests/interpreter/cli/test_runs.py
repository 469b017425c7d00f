"""`tdsl run|status|signal|pause|resume|cancel|terminate|worker` as a user runs them.

The commands run as subprocesses against the session's real dev server, with the
connection in `TEMPORAL_*` variables; the worker runs in this process on the test's
own task queue. Exit codes, stdout and stderr are checked exactly as the README's CLI table says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from interpreter.cli import main
from interpreter.cli.runs import _ProgressView
from interpreter.client.status import RUN_KEYS
from interpreter.client.submit import prepare_run, start_run
from interpreter.dev.servers import free_port
from interpreter.worker import running_worker
from tests.support.cli import run_tdsl

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "definitions" / "sample-workflow.json"

integration = pytest.mark.integration

FLAKY = """\
name: flaky
steps:
  - id: first
    action: fail
    parameters: {until_attempt: 2, message: not yet}
    retry_policy: {maximum_attempts: 5, initial_interval: 100ms}
  - id: store
    name: Store Result
    action: fail
    dependencies: [first]
    parameters: {message: boom, non_retryable: true}
  - {id: later, action: echo, dependencies: [store]}
"""

TYPED = """\
name: typed
input:
  type: object
  required: [total]
  properties: {total: {type: number}}
steps:
  - {id: a, action: echo, parameters: {total: "${{ input.total }}"}}
"""

STEERABLE = """\
name: steerable
steps:
  - {id: a, type: signal, signal: go, timeout: 60s}
  - id: b
    action: echo
    dependencies: [a]
    compensate: {action: log, parameters: {message: undo b}}
  - {id: c, action: sleep, dependencies: [b], parameters: {seconds: 60}}
  - {id: d, action: echo, dependencies: [c]}
"""

GATED = """\
name: gated
steps:
  - {id: gate, type: signal, signal: go, timeout: 30s}
  - id: after
    action: echo
    dependencies: [gate]
    parameters: {got: "${{ steps.gate.output }}"}
output:
  got: ${{ steps.after.output.got }}
"""


def _env(client: Client, task_queue: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    env["TEMPORAL_ADDRESS"] = client.service_client.config.target_host
    env["TEMPORAL_NAMESPACE"] = client.namespace
    env["TEMPORAL_TASK_QUEUE"] = task_queue
    env["TEMPORAL_UI_URL"] = "http://ui.test"
    return env


Tdsl = Callable[..., Any]


@pytest.fixture
async def worker(client: Client, task_queue: str) -> AsyncIterator[None]:
    """The interpreter and every activity, polling this test's task queue."""
    async with running_worker(
        client, task_queue=task_queue, graceful_shutdown_timeout=timedelta(seconds=1)
    ):
        yield


@pytest.fixture
def tdsl(client: Client, task_queue: str) -> Tdsl:
    """`tdsl ARGS…` in a subprocess, off the event loop so the worker keeps working."""
    env = _env(client, task_queue)

    async def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(run_tdsl, *args, env=env)

    return run


def _one_json_object(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    value = json.loads(lines[0])
    assert isinstance(value, dict)
    return value


async def _until(client: Client, workflow_id: str, check: Callable[[Any], bool]) -> Any:
    """Poll the run's status query until *check* holds (10 s at most)."""
    handle = client.get_workflow_handle(workflow_id)
    async with asyncio.timeout(10):
        while True:
            state = await handle.query("status")
            if check(state):
                return state
            await asyncio.sleep(0.05)


@integration
@pytest.mark.usefixtures("worker")
async def test_run_wait_json_on_the_seed_sample(tdsl: Tdsl) -> None:
    result = await tdsl("run", SAMPLE, "--wait", "--json")
    assert result.returncode == 0, result.stderr
    value = _one_json_object(result)
    assert list(value) == list(RUN_KEYS)
    assert value["status"] == "COMPLETED"
    assert value["error"] is None
    assert value["workflow_id"].startswith("sampleWorkflow-")
    assert value["output"]["store"]["stored"] is True
    assert value["steps"] == {
        "validate": {"status": "completed", "attempts": 1},
        "process": {"status": "completed", "attempts": 1},
        "store": {"status": "completed", "attempts": 1},
    }


@integration
@pytest.mark.usefixtures("worker")
async def test_run_wait_shows_progress_lines_without_a_terminal(tdsl: Tdsl) -> None:
    result = await tdsl("run", SAMPLE, "--wait", "--id", "plain-progress")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "workflow id: plain-progress"
    assert lines[1].startswith("UI: http://ui.test/namespaces/default/workflows/plain-progress/")
    assert "  store: completed" in lines
    assert lines.index("  validate: completed") < lines.index("  store: completed")
    assert "status: COMPLETED" in lines
    assert json.loads("\n".join(lines[lines.index("output:") + 1 :]))["store"]["stored"]


@integration
@pytest.mark.usefixtures("worker")
async def test_a_failing_run_exits_1_and_names_the_step(tdsl: Tdsl, tmp_path: Path) -> None:
    (tmp_path / "flaky.yaml").write_text(FLAKY)
    result = await tdsl("run", tmp_path / "flaky.yaml", "--json")
    assert result.returncode == 1, result.stderr
    value = _one_json_object(result)
    assert value["status"] == "FAILED"
    assert value["output"] is None
    assert value["error"] == "step 'store' (Store Result) failed: boom"
    # retried by the server, invisible to the workflow: attempts come from the history
    assert value["steps"]["first"] == {"status": "completed", "attempts": 2}
    assert value["steps"]["store"] == {"status": "failed", "attempts": 1}
    # never started, the run failed fast: cancelled, not pending for ever
    assert value["steps"]["later"] == {"status": "cancelled", "attempts": 0}
    status = _one_json_object(await tdsl("status", value["workflow_id"], "--json"))
    assert status["steps"] == value["steps"]


@integration
async def test_invalid_input_or_definition_starts_nothing(
    tdsl: Tdsl, client: Client, tmp_path: Path
) -> None:
    (tmp_path / "typed.yaml").write_text(TYPED)
    result = await tdsl(
        "run", tmp_path / "typed.yaml", "--input", '{"total": "x"}', "--id", "never-1"
    )
    assert result.returncode == 2
    assert result.stderr == "tdsl: error: invalid input: input.total: 'x' is not of type 'number'\n"
    assert result.stdout == ""
    (tmp_path / "broken.yaml").write_text("name: broken\nsteps:\n  - {id: a, actoin: echo}\n")
    result = await tdsl("run", tmp_path / "broken.yaml", "--id", "never-1", "--json")
    assert result.returncode == 2
    assert result.stderr.startswith(f"{tmp_path / 'broken.yaml'}:3:13: error: unknown key")
    assert result.stdout == ""
    with pytest.raises(RPCError) as caught:
        await client.get_workflow_handle("never-1").describe()
    assert caught.value.status == RPCStatusCode.NOT_FOUND


@integration
@pytest.mark.usefixtures("worker")
async def test_pause_resume_cancel_and_status(tdsl: Tdsl, client: Client, tmp_path: Path) -> None:
    (tmp_path / "steerable.yaml").write_text(STEERABLE)
    workflow_id = "steer-1"
    started = await tdsl("run", tmp_path / "steerable.yaml", "--id", workflow_id)
    assert started.returncode == 0, started.stderr
    try:
        assert (await tdsl("pause", workflow_id)).returncode == 0
        await _until(client, workflow_id, lambda s: s["paused"])
        await client.get_workflow_handle(workflow_id).signal("go", None)
        await _until(client, workflow_id, lambda s: s["steps"]["a"]["status"] == "completed")
        await asyncio.sleep(0.3)
        status = await tdsl("status", workflow_id, "--json")
        assert status.returncode == 0, status.stderr
        value = _one_json_object(status)
        assert list(value) == [*RUN_KEYS, "paused"]
        assert value["status"] == "RUNNING"
        assert value["paused"] is True
        assert value["output"] is None
        assert value["error"] is None
        assert value["steps"]["b"] == {"status": "pending", "attempts": 0}

        assert (await tdsl("resume", workflow_id)).returncode == 0
        await _until(client, workflow_id, lambda s: s["steps"]["c"]["status"] == "running")

        cancelled = await tdsl("cancel", workflow_id)
        assert cancelled.returncode == 0, cancelled.stderr
        final = await tdsl("status", workflow_id, "--wait", "--json")
        assert final.returncode == 1
        value = _one_json_object(final)
        assert value["status"] == "CANCELED"
        assert value["paused"] is False
        assert value["steps"]["b"]["status"] == "completed"
        assert value["steps"]["c"]["status"] == "cancelled"
        assert value["steps"]["d"] == {"status": "cancelled", "attempts": 0}  # never started
        later = _one_json_object(await tdsl("status", workflow_id, "--json"))
        assert later["steps"] == value["steps"]
    finally:
        await _terminate_quietly(client, workflow_id)


@integration
@pytest.mark.usefixtures("worker")
async def test_run_wait_prints_a_saga_in_the_order_it_ran(tdsl: Tdsl) -> None:
    """Compensations (newest first) before on_failure, each state of a step once."""
    result = await tdsl("run", ROOT / "definitions" / "refund-saga.yaml", "--wait")
    assert result.returncode == 1, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]
    assert len(lines) == len(set(lines)), lines
    ends = [line for line in lines if not line.endswith(": running")]
    assert ends == [
        "reserve: completed",
        "charge: completed",
        "fraud_check: failed",
        "charge.compensate: completed",
        "reserve.compensate: completed",
        "alert: completed",
    ], lines
    for line in lines:  # a step's `running`, when a poll caught it, comes before its end
        if line.endswith(": running"):
            step = line.removesuffix(": running")
            end = next(e for e in ends if e.startswith(f"{step}:"))
            assert lines.index(line) < lines.index(end)
    assert "status: FAILED" in result.stdout.splitlines()


@integration
@pytest.mark.usefixtures("worker")
async def test_signal_reaches_a_signal_step(tdsl: Tdsl, client: Client, tmp_path: Path) -> None:
    (tmp_path / "gated.yaml").write_text(GATED)
    started = await tdsl("run", tmp_path / "gated.yaml", "--id", "gated-1")
    assert started.returncode == 0, started.stderr
    try:
        sent = await tdsl("signal", "gated-1", "go", "--payload", '{"x": [1, 2]}')
        assert sent.returncode == 0, sent.stderr
        async with asyncio.timeout(10):
            assert await client.get_workflow_handle("gated-1").result() == {"got": {"x": [1, 2]}}
        human = await tdsl("status", "gated-1")
        assert human.returncode == 0
        assert "status: COMPLETED" in human.stdout
        assert "UI: http://ui.test/namespaces/default/workflows/gated-1/" in human.stdout
    finally:
        await _terminate_quietly(client, "gated-1")


@integration
@pytest.mark.usefixtures("worker")
async def test_terminate_and_unknown_ids(tdsl: Tdsl, client: Client, tmp_path: Path) -> None:
    (tmp_path / "gated.yaml").write_text(GATED)
    assert (await tdsl("run", tmp_path / "gated.yaml", "--id", "gated-2")).returncode == 0
    result = await tdsl("terminate", "gated-2", "--reason", "no longer needed")
    assert result.returncode == 0, result.stderr
    value = _one_json_object(await tdsl("status", "gated-2", "--json"))
    assert value["status"] == "TERMINATED"
    assert value["error"] == "no longer needed"
    for args in (["signal", "gated-2", "go"], ["status", "no-such-run"], ["cancel", "gated-2"]):
        result = await tdsl(*args)
        assert result.returncode == 1, args
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("tdsl: error: ")


@integration
async def test_worker_subprocess_runs_workflows_and_stops_on_sigterm(
    client: Client, task_queue: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "interpreter.cli",
        "worker",
        cwd=ROOT,
        env=_env(client, task_queue),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        async with asyncio.timeout(20):
            while b"worker polling task queue" not in await process.stderr.readline():
                pass
        run_input, _ = prepare_run(SAMPLE)
        handle = await start_run(client, run_input, task_queue=task_queue)
        async with asyncio.timeout(10):
            assert (await handle.result())["store"]["stored"] is True
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _, rest = await process.communicate()
        assert process.returncode == 0, rest.decode()
        assert b"Traceback" not in rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _terminate_quietly(client: Client, workflow_id: str) -> None:
    """Leave no run behind for the worker to evict mid-flight at shutdown."""
    with contextlib.suppress(RPCError):  # already closed
        await client.get_workflow_handle(workflow_id).terminate("test cleanup")


# ----------------------------------------------------------------- no server needed


def test_run_refuses_a_bad_definition_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.yaml").write_text("name: x\nsteps: []\n")
    assert main(["run", str(tmp_path / "bad.yaml"), "--address", "127.0.0.1:1"]) == 2
    assert capsys.readouterr().err.startswith(f"{tmp_path / 'bad.yaml'}:2:8: error:")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--address", "not a host"], 2, "tdsl: error: invalid Temporal address 'not a host'"),
        (["--address", "127.0.0.1:{port}"], 1, "tdsl: error: cannot reach Temporal at 127.0.0.1:"),
        (["--input", "{nope"], 2, "tdsl: error: --input is not valid JSON"),
    ],
)
def test_run_connection_and_input_errors_are_one_line(
    args: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [a.replace("{port}", str(free_port())) for a in args]
    assert main(["run", str(SAMPLE), *args]) == code
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert len(err.splitlines()) == 1


def _poll(steps: dict[str, tuple[str, int, str | None, str | None]]) -> dict[str, Any]:
    """A progress object as `wait_for_run` hands it over: steps in definition order,
    and when each started and ended (seconds of 10:00, or None)."""

    def at(second: str | None) -> str | None:
        return None if second is None else f"2025-01-01T10:00:{second}+00:00"

    return {
        "status": "RUNNING",
        "paused": False,
        "steps": {k: {"status": s, "attempts": n} for k, (s, n, _, _) in steps.items()},
        "times": {
            k: {"started_at": at(start), "ended_at": at(end)}
            for k, (_, _, start, end) in steps.items()
        },
    }


def _printed(capsys: pytest.CaptureFixture[str], *polls: dict[str, Any]) -> list[str]:
    view = _ProgressView()
    for poll in polls:
        view.update(poll)
    return capsys.readouterr().out.splitlines()


def test_progress_lines_of_one_poll_follow_the_times_not_the_definition(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A saga seen in one poll: compensations ran before on_failure, which the
    definition order (on_failure declared, compensation keys last) would invert."""
    running = _poll(
        {
            "reserve": ("completed", 1, "00", "01"),
            "charge": ("running", 1, "02", None),
            "fraud_check": ("pending", 0, None, None),
            "ship": ("pending", 0, None, None),
        }
    )
    ended = _poll(
        {
            "reserve": ("completed", 1, "00", "01"),
            "charge": ("completed", 1, "02", "03"),
            "fraud_check": ("failed", 0, "04", "04.5"),
            "ship": ("cancelled", 0, None, "09"),  # never started: cancelled as the run ended
            "alert": ("completed", 1, "07", "08"),
            "charge.compensate": ("completed", 1, "05", "05.5"),
            "reserve.compensate": ("completed", 1, "06", "06.5"),
        }
    )
    assert _printed(capsys, running, ended) == [
        "  reserve: completed",
        "  charge: running",
        "  charge: completed",
        "  fraud_check: failed",
        "  charge.compensate: completed",
        "  reserve.compensate: completed",
        "  alert: completed",
        "  ship: cancelled",
    ]


def test_progress_prints_each_state_of_a_step_once(capsys: pytest.CaptureFixture[str]) -> None:
    """`running` once per attempt (the attempt count arriving later is not a new state),
    the end once, and nothing stale after the end."""
    polls = [
        _poll({"a": ("running", 0, "00", None)}),  # the workflow started it
        _poll({"a": ("running", 1, "00", None)}),  # the server reports attempt 1
        _poll({"a": ("running", 2, "00", None)}),  # a retry
        _poll({"a": ("running", 2, "00", None)}),
        _poll({"a": ("running", 1, "00", None)}),  # a lagging answer
        _poll({"a": ("completed", 2, "00", "05")}),
        _poll({"a": ("running", 2, "00", None)}),  # stale: no worker answered, history lags
        _poll({"a": ("completed", 2, "00", "05")}),
        _poll({"b": ("running", 3, "06", None)}),
        _poll({"b": ("failed", 1, "06", "07")}),  # an end is printed whatever the count says
    ]
    assert _printed(capsys, *polls) == [
        "  a: running",
        "  a: running (attempt 2)",
        "  a: completed (attempt 2)",
        "  b: running (attempt 3)",
        "  b: failed",
    ]


def test_progress_lines_without_times_keep_the_definition_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No worker answered the query (states from the history): after the timed lines."""
    poll = _poll(
        {
            "late": ("completed", 1, "05", "06"),
            "b": ("running", 1, None, None),
            "a": ("running", 1, None, None),
            "early": ("completed", 1, "01", "02"),
        }
    )
    del poll["times"]["a"]
    paused = {**_poll({"b": ("running", 1, None, None)}), "paused": True}
    assert _printed(capsys, poll, paused) == [
        "  early: completed",
        "  late: completed",
        "  b: running",
        "  a: running",
        "run paused",
    ]


def test_worker_with_a_missing_activity_module_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["worker", "--activities", "no_such_module_here"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tdsl: error: cannot import activity module 'no_such_module_here'")


@integration
async def test_dev_serves_runs_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    port, ui_port, api_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "interpreter.cli",
        "dev",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--serve-port",
        str(api_port),
        "--state-dir",
        str(tmp_path / "state"),
        "--no-postgres",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        banner = b""
        async with asyncio.timeout(30):
            while b"Ctrl-C stops" not in banner:
                line = await process.stdout.readline()
                assert line, "tdsl dev exited early"
                banner += line
        assert f"http://127.0.0.1:{ui_port}".encode() in banner
        assert f"TEMPORAL_ADDRESS=127.0.0.1:{port}".encode() in banner
        run = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "interpreter.cli", "run", str(SAMPLE), "--json"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env | {"TEMPORAL_ADDRESS": f"127.0.0.1:{port}"},
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        assert _one_json_object(run)["status"] == "COMPLETED"
        assert f"http://127.0.0.1:{api_port}".encode() in banner  # `tdsl serve` beside it
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as http:
            state = (await http.get(f"/api/runs/{_one_json_object(run)['workflow_id']}")).json()
        assert state["status"] == "COMPLETED"
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            _, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        assert (tmp_path / "state" / "temporal.db").is_file()  # runs survive restarts
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_dev_refuses_a_taken_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert (
            main(["dev", "--port", str(port), "--ui-port", str(free_port()), "--serve-port", "0"])
            == 1
        )
    err = capsys.readouterr().err
    assert err == (
        f"tdsl: error: port {port} on 127.0.0.1 is already in use (another Temporal server "
        "or `tdsl dev`?); stop it or choose another with --port\n"
    )


@integration
@pytest.mark.usefixtures("worker")
async def test_run_wait_shows_the_logical_run_across_continue_as_new(
    tdsl: Tdsl, tmp_path: Path
) -> None:
    steps = "".join(
        f"  - {{id: s{i}, action: echo, parameters: {{n: {i}}}"
        + (f", dependencies: [s{i - 1}]}}\n" if i > 1 else "}\n")
        for i in range(1, 11)
    )
    (tmp_path / "long.yaml").write_text(f"name: long\nhistory_limit: 10\nsteps:\n{steps}")
    result = await tdsl("run", tmp_path / "long.yaml", "--wait", "--json", "--id", "long-1")
    assert result.returncode == 0, result.stderr
    value = _one_json_object(result)
    assert value["status"] == "COMPLETED"
    assert value["continued"] >= 2
    assert value["output"] == {f"s{i}": {"n": i} for i in range(1, 11)}
    assert value["steps"] == {f"s{i}": {"status": "completed", "attempts": 1} for i in range(1, 11)}
    status = await tdsl("status", "long-1")
    assert status.returncode == 0, status.stderr
    assert f"continued as new {value['continued']} times" in " ".join(status.stdout.split())
    shown = await tdsl("run", tmp_path / "long.yaml", "--wait", "--id", "long-2")
    assert shown.returncode == 0, shown.stderr
    changes = [line.split() for line in shown.stdout.splitlines() if line.startswith("  s")]
    # each step once, in the order they ran, though they ran in ten different runs
    assert [step for step, status in changes if status == "completed"] == [
        f"s{i}:" for i in range(1, 11)
    ], shown.stdout
