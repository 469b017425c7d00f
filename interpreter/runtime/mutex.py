"""`mutex`: at most one step holding a name runs at a time, across every run of the namespace.

Each name is held by a workflow of its own, `MutexWorkflow` (type ``tdsl.mutex``, id
``tdsl-mutex/<name>``), which keeps the queue: requests arrive as signals and are
granted first come, first served, one at a time, by a signal back to the requesting
run. A step with a mutex (`Mutexes._holding`):

1. asks for it — a short activity does a signal-with-start of the mutex workflow,
   since a workflow can start no other workflow but its children — and shows
   ``waiting`` until the grant arrives;
2. runs, and
3. gives it back however it ends: completed, failed, cancelled (`cancel_step`, the
   run's cancel or fail-fast) or deferred, by a signal from a ``finally``.

What no ``finally`` covers is a run that runs no more code: terminated, timed out,
or reset. So while a request is granted, the mutex workflow runs a watch activity
(`interpreter.control.watch_holder`) that returns once the holder's run is no longer
running; it then takes the mutex back and grants the next request. A worker that dies
ends nothing by itself — its workflows and activities go on on another worker, and the
step gives the mutex back when it ends (an activity of the dead worker fails the step
after its timeout, if it retries no more); the watch activity heartbeats, so it too
moves to another worker. A grant to a run that ended meanwhile fails to deliver and
the next request is served.

The mutex workflow ends once nobody holds or waits for the name; it continues as new
when its history grows, carrying the queue. Both classes are part of the
replay-critical runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

from interpreter.contract import (
    MUTEX_GRANTED_SIGNAL,
    MUTEX_ID_PREFIX,
    MUTEX_RELEASE_SIGNAL,
    MUTEX_REQUEST_ACTIVITY,
    MUTEX_REQUEST_SIGNAL,
    MUTEX_WATCH_ACTIVITY,
    MUTEX_WORKFLOW_NAME,
)
from interpreter.runtime.gate import StartGate

__all__ = ["IDLE_FOR", "MutexWorkflow", "Mutexes", "mutex_id"]

IDLE_FOR = timedelta(seconds=30)
"""How long a mutex workflow with nothing to do waits for a request before it ends."""
MUTEX_HISTORY_LIMIT = 2_000
"""Events after which a mutex workflow continues as new (each request costs about ten)."""
WATCH_HEARTBEAT = timedelta(seconds=10)


def mutex_id(name: str) -> str:
    return MUTEX_ID_PREFIX + name


@workflow.defn(name=MUTEX_WORKFLOW_NAME)
class MutexWorkflow:
    """One mutex name: its FIFO of requests and the one granted, if any."""

    @workflow.init
    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.queue: list[dict[str, Any]] = list(state.get("queue", []))
        self.holder: dict[str, Any] | None = state.get("holder")
        self.withdrawn: dict[str, None] = dict.fromkeys(state.get("withdrawn", []))
        """Requests released before they arrived (the two signals come by different
        roads: a release may overtake its request). Kept until the request comes."""
        self.served = int(state.get("served", 0))

    @workflow.signal(name=MUTEX_REQUEST_SIGNAL)
    def request(self, request: dict[str, Any]) -> None:
        key = request["request"]
        if key in self.withdrawn:
            del self.withdrawn[key]
            return
        known = self.holder is not None and self.holder["request"] == key
        if known or any(waiting["request"] == key for waiting in self.queue):
            return  # the request activity ran twice
        self.queue.append(request)

    @workflow.signal(name=MUTEX_RELEASE_SIGNAL)
    def release(self, release: dict[str, Any]) -> None:
        key = release["request"]
        if self.holder is not None and self.holder["request"] == key:
            self.holder = None
            return
        before = len(self.queue)
        self.queue = [waiting for waiting in self.queue if waiting["request"] != key]
        if len(self.queue) == before:
            self.withdrawn[key] = None

    @workflow.query(name="state")
    def state(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "queue": self.queue,
            "withdrawn": list(self.withdrawn),
            "served": self.served,
        }

    @workflow.run
    async def run(self, state: dict[str, Any] | None = None) -> dict[str, Any]:
        info = workflow.info()
        while True:
            if self.holder is not None:
                await self._hold(self.holder)
                continue
            if not self.queue:
                try:
                    await workflow.wait_condition(
                        lambda: bool(self.queue), timeout=IDLE_FOR, timeout_summary="idle"
                    )
                except TimeoutError:
                    return {"served": self.served}
            if info.is_continue_as_new_suggested() or (
                info.get_current_history_length() >= MUTEX_HISTORY_LIMIT
            ):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self.state())
            self.holder = self.queue.pop(0)
            try:
                await workflow.get_external_workflow_handle(
                    self.holder["workflow_id"], run_id=self.holder["run_id"]
                ).signal(
                    MUTEX_GRANTED_SIGNAL,
                    {
                        "request": self.holder["request"],
                        "mutex": info.workflow_id.removeprefix(MUTEX_ID_PREFIX),
                    },
                )
            except FailureError:  # the run ended while it waited: serve the next
                self.holder = None
                continue
            self.served += 1

    async def _hold(self, holder: dict[str, Any]) -> None:
        """Until the holder gives the mutex back, or its run ends without doing so."""
        watch = workflow.start_activity(
            MUTEX_WATCH_ACTIVITY,
            {"workflow_id": holder["workflow_id"], "run_id": holder["run_id"]},
            start_to_close_timeout=timedelta(days=3650),
            heartbeat_timeout=WATCH_HEARTBEAT,
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
            cancellation_type=workflow.ActivityCancellationType.TRY_CANCEL,
            summary=f"holder {holder['workflow_id']} · {holder['step']}",
        )
        try:
            await workflow.wait_condition(lambda: self.holder is not holder or watch.done())
        finally:
            if not watch.done():
                watch.cancel()
        if self.holder is holder:  # its run ended while it held the mutex
            workflow.logger.info(
                "mutex taken back from %s (%s): its run ended",
                holder["workflow_id"],
                holder["step"],
            )
            self.holder = None
        with contextlib.suppress(asyncio.CancelledError, FailureError):
            await watch


class Mutexes:
    """The requesting side, a mixin of `DslWorkflow`: hold a mutex around a step."""

    granted: dict[str, None]
    mutex_waiting: dict[str, None]
    mutex_requests: int
    gate: StartGate
    gated: bool

    @workflow.signal(
        name=MUTEX_GRANTED_SIGNAL, unfinished_policy=workflow.HandlerUnfinishedPolicy.ABANDON
    )
    async def mutex_granted(self, grant: dict[str, Any]) -> None:
        """A grant; one nobody waits for any more (its request arrived after the step
        had ended) goes straight back, so that the next run gets the mutex."""
        request = str(grant.get("request"))
        if request in self.mutex_waiting:
            self.granted[request] = None
            return
        handle = workflow.get_external_workflow_handle(mutex_id(str(grant.get("mutex"))))
        with contextlib.suppress(FailureError):
            await handle.signal(MUTEX_RELEASE_SIGNAL, {"request": request})

    @contextlib.asynccontextmanager
    async def _holding(self, name: str, key: str, on_waiting: Any) -> AsyncIterator[None]:
        """Wait for *name* (calling *on_waiting* first), yield while holding it, and
        give it back however the block ends."""
        info = workflow.info()
        self.mutex_requests += 1
        request = f"{info.run_id}/{key}/{self.mutex_requests}"
        handle = workflow.get_external_workflow_handle(mutex_id(name))
        on_waiting()
        self.mutex_waiting[request] = None
        evicted = False
        try:
            await workflow.execute_activity(
                MUTEX_REQUEST_ACTIVITY,
                {
                    "mutex": name,
                    "request": request,
                    "workflow_id": info.workflow_id,
                    "run_id": info.run_id,
                    "step": key,
                    "task_queue": info.task_queue,
                },
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=0),
                summary=f"{key}: ask for mutex {name!r}",
            )
            await workflow.wait_condition(lambda: request in self.granted)
            del self.mutex_waiting[request]
            if self.gated:
                await self.gate.unpaused()  # granted while paused: held, still waiting
            yield
        except GeneratorExit:  # evicted from the worker's cache: nothing may run any more
            evicted = True
            raise
        finally:
            self.mutex_waiting.pop(request, None)
            self.granted.pop(request, None)
            if not evicted:
                await self._release(handle, request)

    @staticmethod
    async def _release(handle: workflow.ExternalWorkflowHandle[Any], request: str) -> None:
        # Sent even when cancelled: a task of its own, which a second cancel of this
        # one does not stop.
        release = asyncio.create_task(handle.signal(MUTEX_RELEASE_SIGNAL, {"request": request}))
        with contextlib.suppress(asyncio.CancelledError, FailureError):
            await asyncio.shield(release)
