"""`tdsl test` (docs/testing.md) as a user runs it, and `interpreter.testing` as a user's own
pytest suite uses it: the real interpreter on the time-skipping test server."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from interpreter.testing import DefinitionTester
from tests.support.cli import ROOT, run_tdsl

pytestmark = pytest.mark.integration

WAITING = """\
name: patient
steps:
  - {id: rest, type: wait, duration: 2h}
  - {id: answer, type: signal, signal: approval, timeout: 3h, dependencies: [rest]}
  - {id: pay, action: pay, dependencies: [answer], parameters: {ok: "${{ steps.answer.output.approved }}"}}
output: {paid: "${{ steps.pay.output }}"}
"""


def _write(tmp_path: Path, tests: str) -> Path:
    (tmp_path / "patient.yaml").write_text(WAITING)
    path = tmp_path / "patient.test.yaml"
    path.write_text(tests)
    return path


def test_the_example_passes_and_writes_junit(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    done = run_tdsl(
        "test", "definitions/order-fulfilment.test.yaml", "--junit", report, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert all(line.startswith("PASS ") for line in lines[:-1]), lines
    assert lines[-1].startswith(f"{len(lines) - 1} passed, 0 failed in ")
    assert done.stderr == ""  # the worker's log only with --verbose
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("failures") == "0"
    assert int(suite.get("tests") or 0) == len(lines) - 1


def test_hours_of_timers_and_a_late_signal_take_no_real_time(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "definition: patient.yaml\ncases:\n"
        "  - name: approved after an hour and a half\n"
        "    signals: [{name: approval, payload: {approved: true}, after: 2h30m}]\n"
        "    mocks: {pay: {output: done}}\n"
        "    expect: {status: COMPLETED, output: {paid: done}, steps: {rest: completed}}\n"
        "  - name: nobody answers\n"
        "    mocks: {pay: {output: done}}\n"
        "    expect: {status: FAILED, steps: {answer: failed, pay: cancelled}}\n",
    )
    started = time.monotonic()
    done = run_tdsl("test", path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started < 60
    assert done.stdout.count("PASS ") == 2


def test_a_wrong_expectation_fails_with_the_first_difference(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "definition: patient.yaml\ncases:\n"
        "  - name: expects the wrong payment\n"
        "    signals: [{name: approval, payload: {approved: true}}]\n"
        "    mocks:\n"
        "      pay:\n"
        "        - {error: {type: Declined, message: card declined}}\n"
        "        - {output: second}\n"
        "    expect: {output: {paid: first}}\n",
    )
    done = run_tdsl("test", path, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == (
        f'FAIL {path}: expects the wrong payment: output.paid is "second", expected "first"'
    )


def test_an_invalid_test_file_is_exit_2_and_runs_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path, "definition: patient.yaml\ncases:\n  - name: x\n    expct: {}\n")
    done = run_tdsl("test", path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"{path}:4:5: error: unknown key 'expct'\n"
    assert run_tdsl("test", tmp_path / "nowhere").returncode == 2


async def test_a_users_own_pytest_suite(time_env: WorkflowEnvironment) -> None:
    """The docs' example: `DefinitionTester` on a test server the suite shares."""
    async with DefinitionTester(time_env) as tester:
        result = await tester.run(
            ROOT / "definitions/order-fulfilment.yaml",
            {"order_id": "A1", "total": 500},
            mocks={"validateInput": [{"error": {"type": "Busy"}}, {"output": {"valid": True}}]},
        )
    assert result.status == "COMPLETED"
    assert result.steps["ship_freight"] == "completed"
    assert result.step_states["validate"]["attempts"] == 2
    assert result.output["freight"] == "completed"


ANSWER = """\
name: answer-in-time
steps:
  - {id: ask, action: log, parameters: {message: answer within the hour}}
  - {id: answer, type: signal, signal: approval, timeout: 1h, dependencies: [ask]}
"""


@pytest.mark.parametrize(("after", "status"), [("59m", "COMPLETED"), ("2h", "FAILED")])
async def test_a_signal_after_the_timeout_comes_too_late(
    time_env: WorkflowEnvironment, tmp_path: Path, after: str, status: str
) -> None:
    """The clock skips only as far as the run has got: a signal `after: 2h` meets a
    run whose 1h timeout has fired (it used to be sent before the step even waited,
    and be taken)."""
    (tmp_path / "answer.yaml").write_text(ANSWER)
    async with DefinitionTester(time_env, timeout=30) as tester:
        result = await tester.run(
            tmp_path / "answer.yaml",
            signals=[{"name": "approval", "payload": {"ok": True}, "after": after}],
        )
    assert result.status == status, result
    assert result.steps["answer"] == ("completed" if status == "COMPLETED" else "failed")


async def test_a_signal_reaches_a_running_activity() -> None:
    """While an activity runs the clock passes at real speed, so `cancel_step` after 1s
    finds the slow step running (it used to be sent before it started, and be lost).
    A test server of its own: the cancelled `sleep` stays in flight a while after the
    run, and the shared one would stop skipping time for the tests after it."""
    started = time.monotonic()
    async with DefinitionTester(timeout=30) as tester:
        result = await tester.run(
            ROOT / "definitions/best-effort-enrichment.yaml",
            {"order_id": "B1"},
            signals=[{"name": "cancel_step", "payload": {"step": "enrich"}, "after": "1s"}],
        )
    assert result.status == "COMPLETED", result
    assert result.steps == {"load": "completed", "enrich": "cancelled", "ship": "completed"}
    assert time.monotonic() - started < 20


async def test_a_mutex_case_leaves_the_clock_skipping(time_env: WorkflowEnvironment) -> None:
    """A `mutex` step leaves its mutex workflow watching the run; the tester ends it
    while the worker still runs, so the next case's timers skip (20 one-second delays
    of poll-until-ready used to take 20 s of real time after adjust-balance)."""
    async with DefinitionTester(time_env, timeout=30) as tester:
        held = await tester.run(
            ROOT / "definitions/adjust-balance.yaml", {"account": "M1", "amount": 1}
        )
        assert held.status == "COMPLETED", held
        leftover = await time_env.client.get_workflow_handle("tdsl-mutex/account-M1").describe()
        assert not leftover.raw_description.pending_activities
        started = time.monotonic()
        polled = await tester.run(
            ROOT / "definitions/poll-until-ready.yaml", {"report": "r", "ready_after": 25}
        )
    assert polled.status == "FAILED"
    assert time.monotonic() - started < 10
