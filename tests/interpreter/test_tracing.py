"""OpenTelemetry traces (docs/production.md, "Traces"): the caller's span → the run → a span per step
→ the activities inside, child runs under their step, each span once however often the
history replays; and the same tree exported by `tdsl run` and `tdsl worker` over a real
OTLP/HTTP round trip."""

from __future__ import annotations

import asyncio
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import OpenTelemetryInterceptor, create_tracer_provider
from temporalio.worker import Worker

from activities.builtin import BuiltinActivities
from interpreter.control import take_break
from interpreter.tracing import tracing_requested
from interpreter.tracing.interceptor import RunSpans
from interpreter.worker import WORKFLOWS, workflow_runner
from tests.support.cli import ROOT, tdsl_env
from tests.support.runs import start

TRACED = """\
name: traced
steps:
  - {id: first, action: echo, parameters: {n: 1}}
  - id: both
    type: parallel
    dependencies: [first]
    branches:
      - name: flaky
        steps:
          - id: left
            action: fail
            parameters: {message: once, until_attempt: 2}
            retry_policy: {maximum_attempts: 3, initial_interval: 100ms}
      - {name: steady, steps: [{id: right, action: echo}]}
  - {id: child, type: subworkflow, workflow: traced-child, dependencies: [both]}
  - {id: never, type: set, dependencies: [child], when: false, values: {x: 1}}
"""
CHILD = """\
name: traced-child
steps:
  - {id: inner, action: echo, parameters: {deep: true}}
"""


@pytest.fixture(scope="module")
def exported() -> InMemorySpanExporter:
    """The process's tracer provider (settable once), replay-safe as a worker's is."""
    exporter = InMemorySpanExporter()
    provider = create_tracer_provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def _parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


@pytest.mark.integration
async def test_a_run_is_one_trace_of_steps_and_activities_though_every_task_replays(
    client: Client, tmp_path: Path, exported: InMemorySpanExporter
) -> None:
    (tmp_path / "traced-child.yaml").write_text(CHILD)
    config = client.service_client.config
    traced = await Client.connect(
        config.target_host,
        namespace=client.namespace,
        interceptors=[OpenTelemetryInterceptor(), RunSpans()],
    )
    task_queue = f"traces-{uuid4()}"
    builtin = BuiltinActivities()
    # No workflow cache: every workflow task replays the run's whole history first.
    async with Worker(
        traced,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=[builtin.echo, builtin.fail, take_break],
        workflow_runner=workflow_runner(sandboxed=True),
        max_cached_workflows=0,
    ):
        with trace.get_tracer("test").start_as_current_span("tdsl run traced"):
            handle = await start(traced, task_queue, TRACED, directory=tmp_path)
        await asyncio.wait_for(handle.result(), 60)
        await asyncio.sleep(0.3)  # the last activation's spans end after its completion
    await builtin.close()
    spans = list(exported.get_finished_spans())
    caller = _one(spans, "tdsl run traced")
    assert {s.context.trace_id for s in spans if s.context} == {caller.context.trace_id}  # type: ignore[union-attr]
    run = _one(spans, "run traced")
    assert _parent_of(run) == _id(caller)
    assert run.attributes is not None
    assert run.attributes["tdsl.version"] == "1.0.0"
    assert run.attributes["tdsl.run.status"] == "COMPLETED"

    steps = {s.attributes["tdsl.step.id"]: s for s in spans if s.name.startswith("step ")}  # type: ignore[index]
    assert sorted(steps) == ["both", "child", "first", "inner", "left", "never", "right"]
    statuses = {key: s.attributes["tdsl.step.status"] for key, s in steps.items()}  # type: ignore[index]
    assert statuses == dict.fromkeys(steps, "completed") | {"never": "skipped"}
    assert steps["left"].attributes["tdsl.step.type"] == "task"  # type: ignore[index]
    assert steps["both"].attributes["tdsl.definition"] == "traced"  # type: ignore[index]
    for top in ("first", "both", "child", "never"):
        assert _parent_of(steps[top]) == _id(run), top
    for branch in ("left", "right"):
        assert _parent_of(steps[branch]) == _id(steps["both"]), branch

    attempts = [s for s in spans if s.name == "activity fail"]
    assert [s.attributes["temporal.attempt"] for s in attempts] == [1, 2]  # type: ignore[index]
    assert all(_parent_of(s) == _id(steps["left"]) for s in attempts)
    assert attempts[0].status.status_code == trace.StatusCode.ERROR
    assert attempts[1].status.is_ok

    child_run = _one(spans, "run traced-child")
    assert _parent_of(child_run) == _id(steps["child"])
    assert _parent_of(steps["inner"]) == _id(child_run)
    inner_activity = [s for s in spans if _parent_of(s) == _id(steps["inner"])]
    assert [s.name for s in inner_activity] == ["activity echo"]


def test_traces_are_off_unless_an_otlp_endpoint_is_set() -> None:
    assert not tracing_requested({})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    assert not tracing_requested(disabled)


# --------------------------------------------------------------------------- OTLP/HTTP


class _Collector(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: decodes each export as a collector does."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receive)
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()


class _Receive(http.server.BaseHTTPRequestHandler):
    server: _Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if (
            self.path != "/v1/traces"
            or self.headers.get("Content-Type") != "application/x-protobuf"
        ):
            self.send_response(404)
            self.end_headers()
            return
        request = ExportTraceServiceRequest.FromString(body)
        with self.server.lock:
            for resource in request.resource_spans:
                service = next(
                    a.value.string_value
                    for a in resource.resource.attributes
                    if a.key == "service.name"
                )
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        self.server.spans.append(
                            {
                                "service": service,
                                "name": span.name,
                                "trace": span.trace_id.hex(),
                                "id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex() or None,
                                "attributes": {
                                    a.key: a.value.string_value or a.value.int_value
                                    for a in span.attributes
                                },
                            }
                        )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[_Collector]:
    server = _Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _tree(spans: list[dict[str, Any]]) -> str:
    """The spans as an indented tree, for the failure message (and the docs)."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    ids = {s["id"] for s in spans}
    for span in spans:
        children.setdefault(span["parent"] if span["parent"] in ids else None, []).append(span)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in children.get(parent, []):
            status = span["attributes"].get("tdsl.step.status", "")
            lines.append(f"{'  ' * depth}{span['name']}  [{span['service']}] {status}".rstrip())
            walk(span["id"], depth + 1)

    walk(None, 0)
    return "\n".join(lines)


@pytest.mark.integration
async def test_tdsl_run_and_the_worker_export_one_trace_over_otlp_http(
    client: Client, tmp_path: Path, collector: _Collector
) -> None:
    definition = tmp_path / "exported.yaml"
    definition.write_text(
        "name: exported\nsteps:\n"
        "  - {id: hello, action: echo, parameters: {who: otel}}\n"
        "  - {id: bye, action: log, dependencies: [hello], parameters: {message: done}}\n"
    )
    task_queue = f"otlp-{uuid4()}"
    env = tdsl_env(client, task_queue)
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{collector.server_address[1]}"
    env["OTEL_BSP_SCHEDULE_DELAY"] = "100"  # the worker's batch exports within 0.1 s
    worker = subprocess.Popen(
        [sys.executable, "-m", "interpreter.cli", "worker"],
        cwd=ROOT,
        env=env | {"OTEL_SERVICE_NAME": "tdsl-worker"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        ran = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "interpreter.cli", "run", str(definition), "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert ran.returncode == 0, ran.stderr
        async with asyncio.timeout(20):
            while not any(s["name"] == "activity log" for s in collector.spans):
                assert worker.poll() is None, worker.communicate()[1].decode()[-2000:]
                await asyncio.sleep(0.1)
    finally:
        worker.terminate()
        _, errors = worker.communicate(timeout=30)
    assert "Traceback" not in errors.decode(), errors.decode()[-2000:]
    spans = collector.spans
    tree = _tree(spans)
    print(tree, file=sys.stderr)  # shown when the test fails
    by_name = {s["name"]: s for s in spans}
    cli = by_name["tdsl run exported"]
    assert (cli["service"], cli["parent"]) == ("tdsl", None), tree
    run = by_name["run exported"]
    assert (run["service"], run["parent"]) == ("tdsl-worker", cli["id"]), tree
    for step, action in (("hello", "echo"), ("bye", "log")):
        span = by_name[f"step {step}"]
        assert span["parent"] == run["id"], tree
        assert span["attributes"]["tdsl.step.status"] == "completed"
        assert by_name[f"activity {action}"]["parent"] == span["id"], tree
    assert {s["trace"] for s in spans if not s["name"].startswith("activity tdsl.")} == {
        cli["trace"]
    }, tree
