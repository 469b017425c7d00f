"""The worker's log (docs/production.md, "Logs"): one line per record, JSON on request, no token.

Unit tests of the formatters and filters, then a real worker on the dev server whose
steps fail, wait for a person and get cancelled, with every line it logged read back.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from interpreter.client.tasks import wait_for_task
from interpreter.logs import LOG_FORMATS, log_handler
from interpreter.telemetry import worker_runtime
from tests.support.cli import run_tdsl
from tests.support.runs import interpreter_worker, start, wait_for_step


def _record(
    msg: str, *args: Any, exc: BaseException | None = None, **extra: Any
) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    record = logging.LogRecord(
        "temporalio.activity", logging.WARNING, __file__, 1, msg, args, exc_info
    )
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def _emit(log_format: str, record: logging.LogRecord) -> str:
    stream = io.StringIO()
    log_handler(log_format, stream).handle(record)
    return stream.getvalue()


STEP = {
    "activity_id": "charge",
    "activity_type": "fail",
    "attempt": 2,
    "workflow_id": "order-1",
    "workflow_run_id": "r-1",
    "namespace": "default",
    "task_queue": "q",
    "workflow_type": "order",
}


def _raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:
        return caught


def test_json_lines_carry_the_run_step_and_attempt() -> None:
    line = _emit("json", _record("step started", temporal_activity=STEP))
    entry = json.loads(line)
    assert entry["message"] == "step started"
    assert entry["level"] == "warning"
    assert (entry["workflow_id"], entry["run_id"], entry["step"], entry["attempt"]) == (
        "order-1",
        "r-1",
        "charge",
        2,
    )
    assert entry["action"] == "fail"
    assert entry["time"].endswith("+00:00")


def test_a_step_failure_is_one_line_in_either_format() -> None:
    error = _raised(ApplicationError("card declined", type="Declined"))
    for log_format in LOG_FORMATS:
        out = _emit(
            log_format, _record("Completing activity as failed", exc=error, temporal_activity=STEP)
        )
        assert out.count("\n") == 1, out
        assert "Traceback" not in out
        assert "Completing activity as failed: Declined: card declined" in out
    assert "[workflow_id=order-1 run_id=r-1 step=charge action=fail attempt=2]" in _emit(
        "text", _record("x", temporal_activity=STEP)
    )


def test_a_bug_keeps_its_traceback() -> None:
    error = _raised(KeyError("oops"))
    entry = json.loads(_emit("json", _record("Completing activity as failed", exc=error)))
    assert "Traceback" in entry["traceback"]


def test_tokens_are_replaced() -> None:
    raw = b"\x0a\x24secret-token-bytes"
    assert raw.decode("latin-1") not in _emit(
        "text", _record("Running activity %s (token %s)", "x", raw)
    )
    assert "<redacted>" in _emit("text", _record("Running activity %s (token %s)", "x", raw))
    core = "Activity not found on completion task_token=TaskToken(CiQw" + "a+/B" * 30 + "==)"
    assert "a+/B" not in _emit("text", _record(core))
    text_token = "Cg" + "A" * 120
    out = _emit("json", _record("complete it with tdsl complete %s", text_token))
    assert text_token not in out
    assert "<redacted>" in out


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json"):
        log_handler("xml")


def test_the_cli_refuses_an_unknown_log_format() -> None:
    done = run_tdsl("worker", "--log-format", "xml")
    assert done.returncode == 2
    assert "--log-format" in done.stderr


# --------------------------------------------------------------------------- a real worker


@activity.defn(name="test.stuck")
async def stuck(params: dict[str, Any]) -> dict[str, Any]:
    """Runs until cancelled (heartbeating, so the cancellation reaches it)."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(0.1)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every record the process logs while the test runs, as `--log-format json` writes it."""
    stream = io.StringIO()
    handler = log_handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


DEFINITION = """\
name: noisy
steps:
  - {id: flaky, action: fail, parameters: {message: card declined, error_type: Declined},
     retry_policy: {maximum_attempts: 2, initial_interval: 100ms}, continue_on_error: true}
  - {id: ask, action: human.task, parameters: {message: approve it}, timeout: 1h,
     dependencies: [flaky]}
  - {id: long, action: test.stuck, heartbeat_timeout: 5s, timeout: 1h, dependencies: [flaky]}
"""


@pytest.mark.integration
async def test_a_workers_log_is_json_lines_without_tokens_or_tracebacks(
    client: Client, task_queue: str, captured: io.StringIO
) -> None:
    """Its core's lines included: a worker whose runtime forwards them, as `tdsl worker`'s."""
    config = client.service_client.config
    client = await Client.connect(
        config.target_host, namespace=client.namespace, runtime=worker_runtime()
    )
    async with interpreter_worker(client, task_queue, activity_modules=[__name__]):
        handle = await start(client, task_queue, DEFINITION)
        task = await wait_for_task(client, handle.id, "ask")
        await wait_for_step(handle, "long")
        await asyncio.sleep(0.5)  # the activity is heartbeating
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 30)
        await asyncio.sleep(0.5)  # the cancelled attempt's completion is logged
    lines = [line for line in captured.getvalue().splitlines() if line]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    token = task["token"]
    assert token not in captured.getvalue()
    failures = [e for e in entries if e.get("step") == "flaky" and "failed" in e["message"]]
    assert [e["attempt"] for e in failures] == [1, 2], failures
    assert all("Declined: card declined" in e["message"] for e in failures)
    assert not any("traceback" in e for e in entries if e.get("workflow_id") == handle.id)
    waiting = [e for e in entries if e.get("step") == "ask"]
    assert any(f"tdsl tasks {handle.id}" in e["message"] for e in waiting)
    print(*lines, sep="\n", file=sys.stderr)  # shown when the test fails
