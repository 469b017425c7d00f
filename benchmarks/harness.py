"""One dev server, a fresh in-process worker per measurement, and what is measured.

Both sides get the same worker: same task-queue setup (a fresh queue per
measurement), same slot counts, the sandbox runner with the interpreter's
passthrough modules, the same workflow-task thread pool, and the same registrations
(the interpreter's workflow types, every hand-written workflow, the one `bench.noop`
activity and the definition lookup, which finds the published scenarios).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import gc
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import uuid4

import psutil
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import (
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowInstance,
    WorkflowInstanceDetails,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from benchmarks.handwritten import ACTIVITY, HANDWRITTEN_WORKFLOWS
from benchmarks.scenarios import PUBLISHED, Scenario
from interpreter.control import cancel_run, take_break
from interpreter.library import DefinitionLibrary
from interpreter.payloads import payload_codec
from interpreter.runtime.typed import DefinitionWorkflow
from interpreter.runtime.workflow import PASSTHROUGH_MODULES, DslWorkflow

__all__ = [
    "MAX_CONCURRENT_ACTIVITIES",
    "MAX_CONCURRENT_WORKFLOW_TASKS",
    "ActivationTimer",
    "Measurement",
    "TimedRunner",
    "WorkflowCpu",
    "measure_run",
    "measure_starts",
    "noop",
    "profile_run",
    "server_processes",
    "worker",
]

MAX_CONCURRENT_ACTIVITIES = 100
MAX_CONCURRENT_WORKFLOW_TASKS = 100
RUN_TIMEOUT = 300.0
"""Seconds before a run counts as stuck (e.g. a workflow task failing on every attempt)."""


@activity.defn(name=ACTIVITY)
async def noop(params: dict[str, Any]) -> dict[str, Any]:
    """The one activity both sides call: returns its parameters."""
    return params


@dataclass
class WorkflowCpu:
    """Thread CPU of workflow code, gathered by `ActivationTimer` and `TimedRunner`."""

    activations: int = 0
    cpu: float = 0.0
    """Thread CPU of all activations: sandbox, SDK state machine and workflow code."""
    longest: float = 0.0
    """Wall time of the longest activation (the SDK's deadlock limit is 2 s)."""
    instances: int = 0
    instance_cpu: float = 0.0
    """Thread CPU of creating workflow instances: a fresh sandbox re-importing the
    workflow's module (runs on the event loop thread, outside the activations)."""
    gc_cpu: float = 0.0
    """Of `cpu`: the garbage collections that ran on a workflow thread."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self) -> None:
        with self.lock:
            self.activations = self.instances = 0
            self.cpu = self.longest = self.instance_cpu = self.gc_cpu = 0.0


@contextlib.contextmanager
def settled_heap(stats: WorkflowCpu) -> Iterator[None]:
    """Collect and freeze what earlier measurements left, and time collections on the
    workflow threads.

    The process holds the client, the server's handles and every earlier run's
    leftovers; a full collection scans all of it (about 100 ms here), and whether one
    falls inside a run, and on its workflow thread, was chance: it was the largest
    noise in the workflow-code column. Frozen, a full collection scans only what the
    measured run allocated, the same for both sides.
    """
    began: dict[int, float] = {}

    def timed(phase: str, _info: dict[str, Any]) -> None:
        if not threading.current_thread().name.startswith("temporal_workflow_"):
            return
        if phase == "start":
            began[threading.get_ident()] = time.thread_time()
        elif (start := began.pop(threading.get_ident(), None)) is not None:
            with stats.lock:
                stats.gc_cpu += time.thread_time() - start

    gc.collect()
    gc.freeze()
    gc.callbacks.append(timed)
    try:
        yield
    finally:
        gc.callbacks.remove(timed)
        gc.unfreeze()


class ActivationTimer(ThreadPoolExecutor):
    """The SDK's default workflow-task pool (same size, same thread names), timing each
    activation: the worker runs every activation (and eviction) through this pool."""

    def __init__(
        self,
        stats: WorkflowCpu,
        max_workers: int = MAX_CONCURRENT_WORKFLOW_TASKS,
        initializer: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(max_workers, "temporal_workflow_", initializer=initializer)
        self.stats = stats

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        stats = self.stats

        def timed() -> Any:
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
                with stats.lock:
                    stats.activations += 1
                    stats.cpu += cpu
                    stats.longest = max(stats.longest, wall)

        return super().submit(timed)


def _timed_creation(stats: WorkflowCpu, create: Callable[[], WorkflowInstance]) -> WorkflowInstance:
    """Create a workflow instance, adding its thread CPU to *stats*."""
    cpu0 = time.thread_time()
    try:
        return create()
    finally:
        cpu = time.thread_time() - cpu0
        with stats.lock:
            stats.instances += 1
            stats.instance_cpu += cpu


@dataclass(frozen=True)
class TimedRunner(SandboxedWorkflowRunner):
    """The sandbox runner, unchanged, timing instance creation."""

    stats: WorkflowCpu = field(default_factory=WorkflowCpu, compare=False)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _timed_creation(self.stats, lambda: super(TimedRunner, self).create_instance(det))


class TimedUnsandboxedRunner(UnsandboxedWorkflowRunner):
    """No sandbox at all (both sides alike), timing instance creation the same way."""

    def __init__(self, stats: WorkflowCpu) -> None:
        self.stats = stats

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _timed_creation(
            self.stats, lambda: super(TimedUnsandboxedRunner, self).create_instance(det)
        )


@contextlib.asynccontextmanager
async def worker(
    client: Client,
    executor: ActivationTimer | None = None,
    *,
    deadlock_detection: bool = True,
    sandboxed: bool = True,
) -> AsyncIterator[tuple[str, WorkflowCpu]]:
    """A running worker on a fresh task queue; yields the queue's name and its stats."""
    task_queue = f"bench-{uuid4()}"
    pool = executor or ActivationTimer(WorkflowCpu())
    runner: WorkflowRunner = TimedRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES),
        stats=pool.stats,
    )
    if not sandboxed:
        runner = TimedUnsandboxedRunner(pool.stats)
    library = _library(client)
    try:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[DefinitionWorkflow, DslWorkflow, *HANDWRITTEN_WORKFLOWS],
            activities=[noop, cancel_run, take_break, library.resolve],
            workflow_runner=runner,
            max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
            max_concurrent_workflow_tasks=MAX_CONCURRENT_WORKFLOW_TASKS,
            workflow_task_executor=pool,
        ) as running:
            if not deadlock_detection:
                # Profiling only: cProfile slows activations past the SDK's 2 s deadlock
                # limit. `debug_mode=True` would also move activations onto the event
                # loop's thread, so the private timeout is lifted instead.
                running._workflow_worker._deadlock_timeout_seconds = None  # type: ignore[union-attr]
            pool.stats.reset()  # the worker validated each workflow by instantiating it
            with settled_heap(pool.stats):
                yield task_queue, pool.stats
    finally:
        pool.shutdown()


_libraries: weakref.WeakKeyDictionary[Client, DefinitionLibrary] = weakref.WeakKeyDictionary()


def _library(client: Client) -> DefinitionLibrary:
    """The definition lookup of one long-lived worker process, shared by every worker
    of *client*: the directory is indexed and each definition checked once, as a
    deployed worker does, not once per measurement."""
    found = _libraries.get(client)
    if found is None:
        codec = payload_codec(client)
        found = _libraries[client] = DefinitionLibrary(
            [PUBLISHED], store=codec.store if codec is not None else None, client=client
        )
    return found


def server_processes() -> list[psutil.Process]:
    """The dev server: a child process of ours (the SDK's bridge spawned it)."""
    children = psutil.Process(os.getpid()).children(recursive=True)
    return [p for p in children if "temporal" in p.name()]


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


@dataclass(frozen=True)
class Measurement:
    seconds: float
    """Wall time from `start_workflow` to the result."""
    worker_cpu: float
    """CPU seconds of this Python process (worker + client) over the same span."""
    workflow_cpu: float
    """Thread CPU seconds of the workflow code: activations and instance creation."""
    activations: int
    longest_activation: float
    """Wall seconds of the longest activation (the SDK's deadlock limit is 2 s)."""
    instance_cpu: float
    """Part of `workflow_cpu`: creating the sandboxed instance (module re-import)."""
    gc_cpu: float
    """Part of `workflow_cpu`: garbage collections on a workflow thread."""
    server_cpu: float
    """CPU seconds of the dev server process over the same span."""


async def measure_run(
    client: Client, scenario: Scenario, side: str, *, sandboxed: bool = True
) -> Measurement:
    """Run one workflow to completion on a fresh worker and time it."""
    name, args = scenario.start_args(side)
    servers = server_processes()
    async with worker(client, sandboxed=sandboxed) as (task_queue, stats):
        cpu0, server0, wall0 = time.process_time(), _cpu(servers), time.perf_counter()
        handle = await client.start_workflow(
            name, args=args, id=f"{scenario.key}-{side}-{uuid4()}", task_queue=task_queue
        )
        result = await wait_result(handle)
        wall1, cpu1, server1 = time.perf_counter(), time.process_time(), _cpu(servers)
    _check_result(scenario, result)
    return Measurement(
        seconds=wall1 - wall0,
        worker_cpu=cpu1 - cpu0,
        workflow_cpu=stats.cpu + stats.instance_cpu,
        activations=stats.activations,
        longest_activation=stats.longest,
        instance_cpu=stats.instance_cpu,
        gc_cpu=stats.gc_cpu,
        server_cpu=server1 - server0,
    )


async def wait_result(handle: WorkflowHandle[Any, Any], *, timeout: float = RUN_TIMEOUT) -> Any:
    """The run's result; a run that does not finish is terminated, never left behind."""
    try:
        return await asyncio.wait_for(handle.result(), timeout)
    except TimeoutError:
        await handle.terminate(reason="benchmark run timed out")
        raise RuntimeError(
            f"workflow {handle.id} did not finish within {timeout:g} s; a workflow task "
            "failing on every attempt is logged above"
        ) from None


def _check_result(scenario: Scenario, result: Any) -> None:
    """Both sides return step id → activity output; a wrong count means a broken run."""
    if not isinstance(result, dict) or len(result) != scenario.steps:
        raise AssertionError(
            f"{scenario.key}: expected {scenario.steps} outputs, got {str(result)[:200]}"
        )


async def measure_starts(
    client: Client, scenario: Scenario, sides: Sequence[str], count: int
) -> dict[str, list[float]]:
    """Client-side latency of `start_workflow` (call → handle), `count` per side.

    The sides alternate call by call (ABBA) on one worker, so both see the same
    server state and background load. Each run is awaited (untimed) before the next
    start: the worker shares this process, and a worker busy with earlier runs would
    otherwise hold the GIL and measure itself (5-9 ms starts became 60-90 ms).
    """
    latencies: dict[str, list[float]] = {side: [] for side in sides}
    async with worker(client) as (task_queue, _):
        for i in range(count):
            for side in sides if i % 2 == 0 else sides[::-1]:
                name, args = scenario.start_args(side)
                began = time.perf_counter()
                handle = await client.start_workflow(
                    name, args=args, id=f"{scenario.key}-{side}-{uuid4()}", task_queue=task_queue
                )
                latencies[side].append(time.perf_counter() - began)
                _check_result(scenario, await wait_result(handle))
    return latencies


async def profile_run(
    client: Client, scenario: Scenario, side: str, *, sandboxed: bool = True
) -> cProfile.Profile:
    """One run with the workflow code under cProfile (thread CPU; one workflow thread)."""
    name, args = scenario.start_args(side)
    profile = cProfile.Profile(time.thread_time)
    pool = ActivationTimer(WorkflowCpu(), 1, initializer=profile.enable)
    async with worker(client, pool, deadlock_detection=False, sandboxed=sandboxed) as (
        task_queue,
        _,
    ):
        handle = await client.start_workflow(
            name,
            args=args,
            id=f"profile-{scenario.key}-{side}-{uuid4()}",
            task_queue=task_queue,
            # a profiled first activation can outlast the default 10 s task timeout; the
            # server would then hand the task over again and the profile would hold replays
            task_timeout=timedelta(seconds=120),
        )
        _check_result(scenario, await wait_result(handle))
        pool.submit(profile.disable).result()  # the pool's only thread: the profiled one
    return profile
