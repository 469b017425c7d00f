"""Built-in and example activities, run for real in an activity context, and the loader."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities import examples
from activities.builtin import BuiltinActivities, to_json_value
from activities.registry import (
    activity_names,
    default_activities,
    load_activities,
    merge_activities,
)
from dsl.errors import DslError, NotFoundError

BUILTIN_NAMES = ["echo", "fail", "http.request", "log", "sleep", "sql.query"]


@pytest.fixture
async def builtin() -> AsyncIterator[BuiltinActivities]:
    # The HTTP tests use servers on 127.0.0.1, which http.request refuses unless allowed.
    acts = BuiltinActivities(sql_url=None, http_allow="127.0.0.1")
    yield acts
    await acts.close()


def _env(attempt: int = 1, workflow_id: str = "wf-1") -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt, workflow_id=workflow_id)
    return env


# --- echo, fail, log, sleep ----------------------------------------------------------


async def test_echo_returns_its_parameters(builtin: BuiltinActivities) -> None:
    params = {"a": 1, "b": [True, None, "x"], "c": {"d": 1.5}}
    assert await _env().run(builtin.echo, params) == params


@pytest.mark.parametrize(("attempt", "succeeds"), [(1, False), (2, False), (3, True), (4, True)])
async def test_fail_until_attempt(builtin: BuiltinActivities, attempt: int, succeeds: bool) -> None:
    params = {"message": "boom", "error_type": "Flaky", "until_attempt": 3}
    if succeeds:
        assert await _env(attempt).run(builtin.fail, params) == {"attempt": attempt}
        return
    with pytest.raises(ApplicationError) as caught:
        await _env(attempt).run(builtin.fail, params)
    assert (caught.value.message, caught.value.type) == ("boom", "Flaky")
    assert not caught.value.non_retryable


async def test_fail_without_until_attempt_always_raises(builtin: BuiltinActivities) -> None:
    with pytest.raises(ApplicationError) as caught:
        await _env(attempt=50).run(builtin.fail, {"non_retryable": True})
    assert caught.value.non_retryable
    assert caught.value.type == "Failure"


async def test_unknown_parameter_is_rejected(builtin: BuiltinActivities) -> None:
    with pytest.raises(ApplicationError, match="until_attempts") as caught:
        await _env().run(builtin.fail, {"until_attempts": 2})
    assert caught.value.type == "InvalidParameters"
    assert caught.value.non_retryable


async def test_log_uses_the_activity_logger(
    builtin: BuiltinActivities, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="temporalio.activity"):
        result = await _env().run(builtin.log, {"message": "hello", "level": "warning"})
    assert result == {"logged": "hello"}
    [record] = [r for r in caplog.records if r.name == "temporalio.activity"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("hello")
    with pytest.raises(ApplicationError, match="level"):
        await _env().run(builtin.log, {"message": "x", "level": "loud"})


async def test_sleep_heartbeats_and_returns(builtin: BuiltinActivities) -> None:
    env = _env()
    beats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    began = time.monotonic()
    assert await env.run(builtin.sleep, {"seconds": 0.6}) == {"slept": 0.6}
    assert 0.55 < time.monotonic() - began < 2
    assert len(beats) == 2
    assert beats[-1] == (pytest.approx(0.6),)


async def test_sleep_resumes_from_heartbeat_details(builtin: BuiltinActivities) -> None:
    env = _env(attempt=2)
    env.info = dataclasses.replace(env.info, heartbeat_details=[99.8])
    began = time.monotonic()
    assert await env.run(builtin.sleep, {"seconds": 100}) == {"slept": 100}
    assert time.monotonic() - began < 1


async def test_sleep_is_cancellable(builtin: BuiltinActivities) -> None:
    env = _env()
    beats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    task = asyncio.create_task(env.run(builtin.sleep, {"seconds": 60}))
    await asyncio.sleep(0.7)
    env.cancel()
    began = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - began < 0.5
    assert beats


async def test_sleep_rejects_a_negative_duration(builtin: BuiltinActivities) -> None:
    with pytest.raises(ApplicationError, match="seconds"):
        await _env().run(builtin.sleep, {"seconds": -1})


# --- http.request against a local server -----------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/status/"):
            status = int(self.path.split("/")[2])
            self._reply(status, b'{"error": "nope"}', "application/json")
        elif self.path == "/text":
            self._reply(200, b"plain words", "text/plain; charset=utf-8")
        elif self.path == "/endless":  # a body that never ends, streamed
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            with contextlib.suppress(OSError):
                while True:
                    self.wfile.write(b"x" * 65536)
        elif self.path == "/slow":
            time.sleep(1)
            self._reply(200, b"late", "text/plain")
        else:
            payload = {"path": self.path, "auth": self.headers.get("Authorization")}
            self._reply(200, json.dumps(payload).encode(), "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        received = json.loads(self.rfile.read(length))
        self._reply(201, json.dumps({"received": received}).encode(), "application/problem+json")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_http_get_json(builtin: BuiltinActivities, http_server: str) -> None:
    result = await _env().run(
        builtin.http_request,
        {"url": f"{http_server}/items?x=1", "headers": {"Authorization": "Bearer t"}},
    )
    assert result["status"] == 200
    assert result["body"] == {"path": "/items?x=1", "auth": "Bearer t"}
    assert result["headers"]["content-type"] == "application/json"


async def test_http_post_json_and_text(builtin: BuiltinActivities, http_server: str) -> None:
    posted = await _env().run(
        builtin.http_request, {"method": "post", "url": http_server, "json": {"n": [1, 2]}}
    )
    assert (posted["status"], posted["body"]) == (201, {"received": {"n": [1, 2]}})
    text = await _env().run(builtin.http_request, {"url": f"{http_server}/text"})
    assert text["body"] == "plain words"


@pytest.mark.parametrize(
    ("status", "non_retryable"),
    [(404, True), (400, True), (429, False), (500, False), (503, False)],
)
async def test_http_error_statuses(
    builtin: BuiltinActivities, http_server: str, status: int, non_retryable: bool
) -> None:
    with pytest.raises(ApplicationError) as caught:
        await _env().run(builtin.http_request, {"url": f"{http_server}/status/{status}"})
    assert caught.value.type == "HttpError"
    assert caught.value.non_retryable is non_retryable
    assert caught.value.details[0]["status"] == status
    assert caught.value.details[0]["body"] == {"error": "nope"}


async def test_http_timeout_and_refused_are_retryable(
    builtin: BuiltinActivities, http_server: str
) -> None:
    with pytest.raises(ApplicationError) as timed_out:
        await _env().run(builtin.http_request, {"url": f"{http_server}/slow", "timeout": 0.2})
    assert (timed_out.value.type, timed_out.value.non_retryable) == ("HttpTimeout", False)
    with pytest.raises(ApplicationError) as refused:
        await _env().run(builtin.http_request, {"url": "http://127.0.0.1:1/"})
    assert (refused.value.type, refused.value.non_retryable) == ("HttpConnectionError", False)
    with pytest.raises(ApplicationError) as bad_url:
        await _env().run(builtin.http_request, {"url": "ftp://example.com/"})
    assert (bad_url.value.type, bad_url.value.non_retryable) == ("InvalidParameters", True)


async def test_http_body_is_read_no_further_than_the_cap(
    builtin: BuiltinActivities, http_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endless body used to be read whole before its size was checked."""
    monkeypatch.setattr("activities.builtin.MAX_RESULT_BYTES", 1_000_000)
    with pytest.raises(ApplicationError, match="more than 1000000 bytes") as caught:
        await _env().run(builtin.http_request, {"url": f"{http_server}/endless", "timeout": 10})
    assert (caught.value.type, caught.value.non_retryable) == ("ResultTooLarge", True)


# --- sql.query against the embedded PostgreSQL ------------------------------------------


@pytest.fixture
async def sql(postgres: str) -> AsyncIterator[BuiltinActivities]:
    acts = BuiltinActivities(sql_url=postgres)
    yield acts
    await acts.close()


@pytest.mark.integration
async def test_sql_query_types_and_args(sql: BuiltinActivities) -> None:
    env = _env()
    await env.run(sql.sql_query, {"query": "drop table if exists t_types"})
    created = await env.run(
        sql.sql_query,
        {
            "query": """create table t_types (
                id serial primary key, name text, amount numeric(10, 2), big numeric,
                ratio double precision, at timestamptz, day date, uid uuid, raw bytea,
                doc jsonb, tags text[], ok boolean, span interval)"""
        },
    )
    assert created == {"rows": [], "row_count": 0}
    inserted = await env.run(
        sql.sql_query,
        {
            "query": """insert into t_types
                (name, amount, big, ratio, at, day, uid, raw, doc, tags, ok, span)
                values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12),
                       ('second', 1, null, null, null, null, null, null, null, null, null, null)""",
            "args": [
                "first",
                12.34,
                "123456789012345678901234567890.123",
                0.5,
                "2024-05-01T12:30:00+00:00",
                "2024-05-01",
                "12345678-1234-5678-1234-567812345678",
                base64.b64encode(b"\x00\x01hi").decode(),
                {"k": [1, "two"]},
                ["a", "b"],
                True,
                90,
            ],
        },
    )
    assert inserted == {"rows": [], "row_count": 2}
    selected = await env.run(
        sql.sql_query,
        {
            "query": "select * from t_types where name = $1 or id > $2 order by id",
            "args": ["first", 1],
        },
    )
    assert selected["row_count"] == 2
    first, second = selected["rows"]
    assert first == {
        "id": 1,
        "name": "first",
        "amount": 12.34,
        "big": "123456789012345678901234567890.123",
        "ratio": 0.5,
        "at": "2024-05-01T12:30:00+00:00",
        "day": "2024-05-01",
        "uid": "12345678-1234-5678-1234-567812345678",
        "raw": base64.b64encode(b"\x00\x01hi").decode(),
        "doc": {"k": [1, "two"]},
        "tags": ["a", "b"],
        "ok": True,
        "span": 90.0,
    }
    assert second["amount"] == 1.0
    assert second["doc"] is None
    json.dumps(selected)  # plain JSON all the way down
    updated = await env.run(
        sql.sql_query, {"query": "update t_types set ok = false where id >= $1", "args": [1.0]}
    )
    assert updated["row_count"] == 2


@pytest.mark.integration
async def test_sql_query_errors(sql: BuiltinActivities) -> None:
    with pytest.raises(ApplicationError) as syntax:
        await _env().run(sql.sql_query, {"query": "selec 1"})
    assert (syntax.value.type, syntax.value.non_retryable) == ("SqlError", True)
    assert syntax.value.details[0]["sqlstate"] == "42601"
    with pytest.raises(ApplicationError, match="argument") as arity:
        await _env().run(sql.sql_query, {"query": "select $1::int", "args": []})
    assert arity.value.type == "InvalidParameters"
    with pytest.raises(ApplicationError, match=r"argument \$1") as bad_arg:
        await _env().run(sql.sql_query, {"query": "select $1::int", "args": ["x"]})
    assert bad_arg.value.non_retryable


async def test_sql_query_is_off_without_its_own_url_even_with_database_url(
    postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`DATABASE_URL` is the registry and history: `sql.query` must never use it."""
    monkeypatch.delenv("TDSL_SQL_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", postgres)
    acts = BuiltinActivities()
    with pytest.raises(ApplicationError, match="TDSL_SQL_URL") as caught:
        await _env().run(acts.sql_query, {"query": "select 1"})
    assert (caught.value.type, caught.value.non_retryable) == ("ConfigurationError", True)
    await acts.close()


def test_to_json_value_decimal_precision() -> None:
    from decimal import Decimal

    assert to_json_value(Decimal("0.1")) == 0.1
    assert to_json_value(Decimal("0.10000000000000000001")) == "0.10000000000000000001"
    assert to_json_value(Decimal("NaN")) == "NaN"
    assert to_json_value(timedelta(minutes=1)) == 60.0


# --- example activities ------------------------------------------------------------------


async def test_example_activities() -> None:
    env = _env(workflow_id="order-42")
    checked = await env.run(examples.validate_input, {})
    assert checked == {"valid": True, "checked_at": "1970-01-01T00:00:00+00:00"}
    assert await env.run(examples.process_data, {"items": [1, 2, 3]}) == {
        "processed": True,
        "items": 3,
    }
    # the items, not the parameters: nightly-batch passes {items, position}
    assert await env.run(examples.process_data, {"items": [], "position": 4}) == {
        "processed": True,
        "items": 0,
    }
    assert (await env.run(examples.process_data, {}))["items"] == 0
    with pytest.raises(ApplicationError, match="'items' must be a list") as raised:
        await env.run(examples.process_data, {"items": 2})
    assert raised.value.non_retryable
    stored = await env.run(examples.store_result, {})
    assert stored["stored"] is True
    assert stored == await _env(workflow_id="order-42").run(examples.store_result, {})
    assert stored != await _env(workflow_id="order-43").run(examples.store_result, {})


# --- registry -----------------------------------------------------------------------------


def _write_module(directory: Path, name: str, source: str, monkeypatch: pytest.MonkeyPatch) -> str:
    (directory / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(directory))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_default_activities_names(builtin: BuiltinActivities) -> None:
    names = activity_names(default_activities(builtin))
    assert names == sorted(
        [
            *BUILTIN_NAMES,
            "validateInput",
            "processData",
            "storeResult",
            "human.task",
        ]
    )


def test_load_activities_from_a_user_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _write_module(
        tmp_path,
        "user_acts_ok",
        "from temporalio import activity\n"
        "from activities.examples import validate_input  # re-exported: counted once\n"
        "@activity.defn(name='charge')\n"
        "async def charge(params: dict) -> dict:\n"
        "    return params\n"
        "def helper() -> None: ...\n",
        monkeypatch,
    )
    fns = load_activities([module, "activities.examples"])
    assert activity_names(fns) == ["charge", "processData", "storeResult", "validateInput"]


def test_load_activities_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NotFoundError, match="no_such_module_xyz"):
        load_activities(["no_such_module_xyz"])
    broken = _write_module(tmp_path, "user_acts_broken", "raise RuntimeError('bad')\n", monkeypatch)
    with pytest.raises(NotFoundError, match="RuntimeError: bad"):
        load_activities([broken])
    empty = _write_module(tmp_path, "user_acts_empty", "X = 1\n", monkeypatch)
    with pytest.raises(NotFoundError, match=r"defines no @activity\.defn"):
        load_activities([empty])


def test_merge_refuses_two_functions_with_one_name(builtin: BuiltinActivities) -> None:
    @activity.defn(name="echo")
    async def my_echo(params: dict[str, Any]) -> dict[str, Any]:
        return params

    with pytest.raises(DslError, match="'echo' is registered twice"):
        merge_activities(builtin.activities(), [my_echo])
    assert len(merge_activities(builtin.activities(), builtin.activities())) == 6


# --- through a real worker --------------------------------------------------------------


@workflow.defn
class CallActivity:
    """Calls one activity by name, as the interpreter does."""

    @workflow.run
    async def run(self, name: str, params: dict[str, Any]) -> Any:
        return await workflow.execute_activity(
            name,
            params,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=50), maximum_attempts=5
            ),
        )


@pytest.mark.integration
async def test_activities_through_a_worker(
    dev_env: WorkflowEnvironment, postgres: str, task_queue: str
) -> None:
    acts = BuiltinActivities(sql_url=postgres)
    async with Worker(
        dev_env.client,
        task_queue=task_queue,
        workflows=[CallActivity],
        activities=default_activities(acts),
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):

        async def call(name: str, params: dict[str, Any]) -> Any:
            return await dev_env.client.execute_workflow(
                CallActivity.run,
                args=[name, params],
                id=f"call-{task_queue}-{name}",
                task_queue=task_queue,
            )

        assert await call("echo", {"x": [1, {"y": None}]}) == {"x": [1, {"y": None}]}
        assert await call("fail", {"until_attempt": 3}) == {"attempt": 3}
        assert await call("sql.query", {"query": "select $1::int + 1 as n", "args": [41]}) == {
            "rows": [{"n": 42}],
            "row_count": 1,
        }
        assert (await call("storeResult", {}))["stored"] is True
        with pytest.raises(WorkflowFailureError) as failed:
            await call("fail", {"message": "fatal", "non_retryable": True})
        cause = failed.value.cause
        assert isinstance(cause, ActivityError)
        assert isinstance(cause.cause, ApplicationError)
        assert cause.cause.message == "fatal"
    await acts.close()
