"""The worker: the one interpreter workflow plus every activity a definition can name.

One process polls one task queue for both workflow tasks (the interpreter) and
activity tasks (built-in, example and user activities), which is all a small
deployment needs; bigger ones run more of the same. Shutdown is graceful: on
SIGINT/SIGTERM the worker stops polling, gives running activities
`graceful_shutdown_timeout` to finish (then cancels them), and closes the
resources of the built-in activities.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Interceptor, UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.builtin import BuiltinActivities
from activities.http_guard import HttpAllowList
from activities.registry import (
    activity_name,
    activity_names,
    default_activities,
    load_activities,
    merge_activities,
    with_unknown_action_guard,
)
from dsl.errors import DslError, InputError, NotFoundError, ServiceError
from interpreter.contract import ALL_SEARCH_ATTRIBUTES, search_attribute_hint
from interpreter.control import cancel_run, request_mutex, take_break, watch_holder
from interpreter.health import DEFAULT_HEALTH_HOST, Health, serving_health
from interpreter.library import DefinitionLibrary
from interpreter.payloads import (
    PayloadLimitInterceptor,
    PostgresStore,
    payload_codec,
    worker_client,
)
from interpreter.runtime.mutex import MutexWorkflow
from interpreter.runtime.typed import DefinitionWorkflow
from interpreter.runtime.workflow import PASSTHROUGH_MODULES, DslWorkflow
from interpreter.tenancy import TenantInterceptor

if TYPE_CHECKING:
    from interpreter.history.events import StepEvents

__all__ = [
    "DEFAULT_GRACEFUL_SHUTDOWN",
    "HEARTBEAT_THROTTLE",
    "WORKFLOWS",
    "build_worker",
    "register_search_attributes",
    "run_worker",
    "running_worker",
    "sandbox_from_env",
    "stop_on_signals",
    "worker_failure",
    "workflow_runner",
]

log = logging.getLogger(__name__)

DEFAULT_GRACEFUL_SHUTDOWN = timedelta(seconds=10)
"""How long running activities may take to finish once the worker is asked to stop."""

HEARTBEAT_THROTTLE = timedelta(seconds=2)
"""Heartbeats of activities without a heartbeat timeout reach the server this often."""


WORKFLOWS = (DefinitionWorkflow, DslWorkflow, MutexWorkflow)
"""Every workflow type a worker runs (and a replay of our histories needs)."""
SANDBOX_ENV = "TDSL_WORKFLOW_SANDBOX"


def sandbox_from_env() -> bool:
    """`TDSL_WORKFLOW_SANDBOX`: on (1, true, yes, on) or off (the default)."""
    value = os.environ.get(SANDBOX_ENV, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise InputError(f"{SANDBOX_ENV} must be on or off, not {value!r}")


def workflow_runner(sandboxed: bool = True) -> WorkflowRunner:
    """How the interpreter's workflow code runs: in Temporal's sandbox, or not.

    Production workers run it unsandboxed (the default of `build_worker`). It is one
    trusted workflow in which no user code runs — templates and JsonLogic are
    interpreted, never executed — and the sandbox's checks cost more than all of its
    own code: every `isinstance` in the workflow thread goes through a wrapper. On
    a layered 1,000-step DAG its workflow CPU per step is 1.21 times a hand-written
    (sandboxed) workflow's unsandboxed, 1.59 times sandboxed (`benchmarks/README.md`,
    "Results"). The test suite runs it
    sandboxed (`TDSL_WORKFLOW_SANDBOX=on`, set by `tests/conftest.py`), as do the
    Replayer tests, so a determinism slip in the runtime still fails a test.

    Sandboxed, the workflow's pure, heavy imports are passed through: re-importing
    networkx and the pydantic models inside the sandbox costs 73-148 ms per new run;
    passed through, ~1 ms. They are pure, so sharing them is safe.
    """
    if not sandboxed:
        return UnsandboxedWorkflowRunner()
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    return SandboxedWorkflowRunner(restrictions=restrictions)


def _activities(
    builtin: BuiltinActivities,
    activity_modules: Sequence[str],
    library: DefinitionLibrary,
    overrides: Sequence[Callable[..., Any]] = (),
) -> list[Callable[..., Any]]:
    try:
        extra = load_activities(activity_modules)
    except NotFoundError as exc:  # a bad --activities value is a usage mistake
        raise InputError(str(exc)) from None
    replaced = set(activity_names(overrides))
    merged = merge_activities(
        default_activities(builtin),
        [cancel_run, take_break, request_mutex, watch_holder, library.resolve],
        extra,
    )
    kept = [fn for fn in merged if activity_name(fn) not in replaced]
    return with_unknown_action_guard([*kept, *overrides])


def build_worker(
    client: Client,
    *,
    task_queue: str,
    activity_modules: Sequence[str] = (),
    builtin: BuiltinActivities | None = None,
    max_concurrent_activities: int | None = None,
    graceful_shutdown_timeout: timedelta = DEFAULT_GRACEFUL_SHUTDOWN,
    sandboxed: bool | None = None,
    definitions: Sequence[str | Path] = (),
    database_url: str | None = None,
    overrides: Sequence[Callable[..., Any]] = (),
    step_events: StepEvents | None = None,
) -> Worker:
    """A worker for the interpreter and every activity; not started yet.

    *overrides* replace the activities of the same names (`tdsl test`'s mocks).

    Every definition in *definitions* (directories) and in the registry at
    *database_url* (else `DATABASE_URL`) is a workflow type it runs
    (`interpreter.library`).

    *sandboxed* (default `TDSL_WORKFLOW_SANDBOX`, off) is explained at `workflow_runner`.

    Whoever passes *builtin* owns it and must `close()` it after the worker stops;
    `running_worker` does all of that. Payloads too large for Temporal go to the
    client's payload store (else `TDSL_PAYLOAD_STORE`/`DATABASE_URL`) or fail their
    step (`interpreter.payloads`). Each step attempt is noted into *step_events*, if
    given (`interpreter.history.events`; `running_worker` writes them).
    """
    client = worker_client(client)
    codec = payload_codec(client)
    registry_url = database_url or os.environ.get("DATABASE_URL") or None
    store = codec.store if codec is not None else None
    if store is None and registry_url:  # where `tdsl run` with DATABASE_URL leaves them
        store = PostgresStore(registry_url)
    library = DefinitionLibrary(
        definitions,
        database_url=registry_url,
        store=store,
        client=client,
        task_queue=task_queue,
    )
    return Worker(
        client,
        task_queue=task_queue,
        interceptors=[
            *_step_events_interceptor(step_events),  # first: it sees the others' failures
            TenantInterceptor(),
            *([PayloadLimitInterceptor(codec)] if codec is not None else []),
        ],
        workflows=list(WORKFLOWS),
        activities=_activities(
            builtin or BuiltinActivities(), activity_modules, library, overrides
        ),
        workflow_runner=workflow_runner(sandbox_from_env() if sandboxed is None else sandboxed),
        max_concurrent_activities=max_concurrent_activities,
        graceful_shutdown_timeout=graceful_shutdown_timeout,
        # Cancellation reaches an activity only with a heartbeat; without a heartbeat
        # timeout the SDK sends one every 30 s, so a cancelled `sleep` would run on.
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )


@contextlib.asynccontextmanager
async def running_worker(
    client: Client,
    *,
    task_queue: str,
    activity_modules: Sequence[str] = (),
    max_concurrent_activities: int | None = None,
    graceful_shutdown_timeout: timedelta = DEFAULT_GRACEFUL_SHUTDOWN,
    database_url: str | None = None,
    record_history: bool = True,
    sql_url: str | None = None,
    http_allow: HttpAllowList | str | Sequence[str] | None = None,
    sandboxed: bool | None = None,
    definitions: Sequence[str | Path] = (),
) -> AsyncIterator[Worker]:
    """A started worker; on exit it drains, then the built-ins' resources are closed.

    With a database (*database_url*, else `DATABASE_URL`) and *record_history*, the
    run history of this task queue is projected into it while the worker runs, and
    every step attempt the worker runs is recorded there (`--events`).
    `sql.query` connects to *sql_url* (else `TDSL_SQL_URL`), never to that database.
    `http.request` may reach the internal hosts of *http_allow* (else `TDSL_HTTP_ALLOW`).
    """
    await _check_namespace(client)
    await register_search_attributes(client)
    builtin = BuiltinActivities(sql_url=sql_url, http_allow=http_allow)
    history_url = database_url or os.environ.get("DATABASE_URL") or None
    step_events = _step_events(history_url, record_history)
    worker = build_worker(
        client,
        task_queue=task_queue,
        activity_modules=activity_modules,
        builtin=builtin,
        max_concurrent_activities=max_concurrent_activities,
        graceful_shutdown_timeout=graceful_shutdown_timeout,
        sandboxed=sandboxed,
        definitions=definitions,
        database_url=history_url,
        step_events=step_events,
    )
    writing = _start_writing(step_events, history_url)
    try:
        async with worker:
            names = activity_names(worker.config()["activities"])
            log.info(
                "worker polling task queue %r on %s (namespace %s): every definition's "
                "workflow type%s, %d activities",
                task_queue,
                client.service_client.config.target_host,
                client.namespace,
                f" (from {', '.join(str(d) for d in definitions)})" if definitions else "",
                len(names),
            )
            history = _start_history(client, task_queue, history_url, record_history)
            announcer = _start_announcing(client, task_queue, history_url, names)
            try:
                yield worker
            finally:  # before the worker drains: the projector's queries need it
                await _stop_task(announcer)
                await _stop_task(history)
    finally:
        await _stop_task(writing)  # after the drain: the last attempts' ends are written
        await builtin.close()


# --------------------------------------------------------------------------- run history
# Issue 5: a projector beside the worker copies what Temporal knows about this task
# queue's runs into PostgreSQL (`interpreter.history.projector`). The workflow itself never
# touches the database, so an unreachable PostgreSQL cannot hold a run back.


def _start_history(
    client: Client, task_queue: str, database_url: str | None, enabled: bool
) -> asyncio.Task[None] | None:
    if not enabled:
        return None
    if not database_url:
        log.info("DATABASE_URL not set: run history is not recorded")
        return None
    from interpreter.history.projector import record_history  # asyncpg only when it is used

    return asyncio.create_task(
        record_history(client, database_url, task_queue=task_queue), name="run history"
    )


def _step_events(database_url: str | None, enabled: bool) -> StepEvents | None:
    """Every attempt of every step, noted by an interceptor and written beside the
    worker (issue 14): Temporal's history keeps only an activity's last attempt."""
    if not (enabled and database_url):
        return None
    from interpreter.history.events import StepEvents

    return StepEvents()


def _step_events_interceptor(events: StepEvents | None) -> list[Interceptor]:
    if events is None:
        return []
    from interpreter.history.events import StepEventsInterceptor

    return [StepEventsInterceptor(events)]


def _start_writing(
    events: StepEvents | None, database_url: str | None
) -> asyncio.Task[None] | None:
    if events is None or not database_url:
        return None
    return asyncio.create_task(events.run(database_url), name="step events")


def _start_announcing(
    client: Client, task_queue: str, database_url: str | None, names: Sequence[str]
) -> asyncio.Task[None] | None:
    """Tell `tdsl run` which activities this worker has (`interpreter.worker_registry`)."""
    if not database_url:
        return None
    from interpreter.worker_registry import announce_worker

    return asyncio.create_task(
        announce_worker(client, database_url, task_queue=task_queue, activities=names),
        name="announce activities",
    )


async def _stop_task(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# --------------------------------------------------------------------------- process


def worker_failure(err: RuntimeError) -> DslError:
    """A fatal worker error (the bridge raises RuntimeError) as one line."""
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return ServiceError(f"the worker stopped: {first[:300]}")


async def _check_namespace(client: Client) -> None:
    """Fail with one line before starting, instead of the worker's fatal error later."""
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=client.namespace)
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NotFoundError(
                f"namespace {client.namespace!r} does not exist on "
                f"{client.service_client.config.target_host}"
            ) from None
        raise ServiceError(
            f"cannot describe namespace {client.namespace!r}: {err.message}"
        ) from None


async def register_search_attributes(client: Client) -> None:
    """Give the namespace `DslName` and `DslVersion` where the server allows it (a dev
    server does); elsewhere one line says how, and runs go on without them."""
    try:
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        missing = [k for k in ALL_SEARCH_ATTRIBUTES if k.name not in response.custom_attributes]
        if not missing:
            return
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={
                    k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in missing
                },
            )
        )
        log.info(
            "registered the search attributes %s in namespace %r",
            ", ".join(k.name for k in missing),
            client.namespace,
        )
    except RPCError as err:
        log.warning(
            "runs are not searchable by definition: namespace %r lacks the search attributes "
            "and this worker cannot add them (%s); %s",
            client.namespace,
            err.message,
            search_attribute_hint(),
        )


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set *stop* on the first SIGINT or SIGTERM; a second Ctrl-C interrupts at once.

    Main thread only (asyncio's rule for signal handlers); the handlers are removed
    on exit.
    """
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def _restore() -> None:
        for sig in signals:
            loop.remove_signal_handler(sig)

    def _again(sig: signal.Signals) -> None:
        log.info("received %s again: still stopping (Ctrl-C to force)", sig.name)

    def _first(sig: signal.Signals) -> None:
        log.info("received %s: stopping (Ctrl-C again to force)", sig.name)
        # A second Ctrl-C raises KeyboardInterrupt, which still stops every child
        # server on its way out; a second SIGTERM must not kill us before that.
        loop.remove_signal_handler(signal.SIGINT)
        loop.add_signal_handler(signal.SIGTERM, _again, signal.SIGTERM)
        stop.set()

    for sig in signals:
        loop.add_signal_handler(sig, _first, sig)
    try:
        yield
    finally:
        _restore()


async def run_worker(
    client: Client,
    *,
    task_queue: str,
    activity_modules: Sequence[str] = (),
    max_concurrent_activities: int | None = None,
    graceful_shutdown_timeout: timedelta = DEFAULT_GRACEFUL_SHUTDOWN,
    stop: asyncio.Event | None = None,
    database_url: str | None = None,
    record_history: bool = True,
    http_allow: HttpAllowList | str | Sequence[str] | None = None,
    sandboxed: bool | None = None,
    definitions: Sequence[str | Path] = (),
    health_port: int | None = None,
    health_host: str = DEFAULT_HEALTH_HOST,
) -> None:
    """Run a worker until SIGINT/SIGTERM (or *stop* is set), then shut it down cleanly.

    The run history is recorded in *database_url* (default `DATABASE_URL`), if any;
    *http_allow* and *sandboxed* are as for `running_worker` and `build_worker`. With
    *health_port*, `/livez` and `/readyz` are served from before the worker connects
    until it has drained (`interpreter.health`).
    """
    stop = stop or asyncio.Event()
    health = Health()
    async with contextlib.AsyncExitStack() as probes:
        if health_port is not None:
            await probes.enter_async_context(serving_health(health, health_port, health_host))
        with stop_on_signals(stop):
            try:
                async with running_worker(
                    client,
                    task_queue=task_queue,
                    activity_modules=activity_modules,
                    max_concurrent_activities=max_concurrent_activities,
                    graceful_shutdown_timeout=graceful_shutdown_timeout,
                    database_url=database_url,
                    record_history=record_history,
                    http_allow=http_allow,
                    sandboxed=sandboxed,
                    definitions=definitions,
                ) as worker:
                    health.worker = worker
                    await stop.wait()
                    health.draining = True  # not ready while the running work finishes
            except RuntimeError as err:
                raise worker_failure(err) from err
    log.info("worker stopped")
