"""Run definitions with mocked actions on Temporal's time-skipping test server.

What `tdsl test` runs each case of a `*.test.yaml` with, and what a user's own test
suite can use directly::

    from interpreter.testing import DefinitionTester

    async def test_big_orders_ship_by_freight():
        async with DefinitionTester() as tester:
            result = await tester.run(
                "definitions/order-fulfilment.yaml",
                input={"order_id": "A1", "total": 500},
                mocks={"charge": [{"error": {"type": "CardDeclined"}}, {"output": {"ok": True}}]},
            )
        assert result.status == "COMPLETED"
        assert result.steps["ship_freight"] == "completed"

The real interpreter runs the definition (the worker `tdsl worker` runs, sandboxed), so
what passes here passes there. Each run gets a worker of its own on a fresh task queue,
with the built-in activities, the given activity modules and the mocks, which replace
the activities of those names: each call of a mocked action (each retry attempt
too) takes the next entry of its list, the last one repeating. Timers skip: a `wait:
2h` or a signal sent `after: 2h` takes no real time; a run still waiting after
*timeout* seconds of real time (a signal nobody sends) is terminated and reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from uuid import uuid4

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, TemporalError
from temporalio.testing import WorkflowEnvironment

from dsl.errors import DslError
from dsl.testfiles import MockCall, SignalAt, TestCase, TestFile, first_difference
from interpreter.client.status import failure_message, run_status, status_name
from interpreter.client.submit import prepare_run, run_start
from interpreter.contract import MUTEX_ID_PREFIX, MUTEX_REQUEST_ACTIVITY

__all__ = ["CaseOutcome", "DefinitionTester", "RunResult"]

DEFAULT_TIMEOUT = 60.0
"""Real seconds a run may take (timers skip, so only a run stuck on a signal gets near)."""

_LEFTOVER_WAIT = 5.0
"""Real seconds the activities of a leftover may take to stop before it is terminated."""

_POLL = 0.02
"""Real seconds between two looks at a run while signals wait for their time."""


@dataclass(frozen=True)
class RunResult:
    """How a run ended, shaped like `tdsl run --json` (the error as type and message)."""

    status: str
    output: Any = None
    error: dict[str, Any] | None = None
    step_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    workflow_id: str = ""

    @property
    def steps(self) -> dict[str, str]:
        """Step id → status."""
        return {key: state["status"] for key, state in self.step_states.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "steps": self.step_states,
        }


@dataclass(frozen=True)
class CaseOutcome:
    """One case of a test file: passed, or the first difference."""

    name: str
    difference: str | None
    seconds: float
    result: RunResult | None

    @property
    def passed(self) -> bool:
        return self.difference is None


def _mock(action: str, calls: Sequence[MockCall]) -> Callable[..., Any]:
    """An activity named *action* answering each call with the next entry of *calls*."""
    counter = itertools.count()

    @activity.defn(name=action)
    async def mocked(parameters: Any = None) -> Any:
        call = calls[min(next(counter), len(calls) - 1)]
        if call.error is not None:
            raise ApplicationError(
                call.error.message, type=call.error.type, non_retryable=call.error.non_retryable
            )
        return call.output

    return mocked


def _calls(mocks: Mapping[str, Any]) -> dict[str, list[MockCall]]:
    return {
        action: [c if isinstance(c, MockCall) else MockCall.model_validate(c) for c in calls]
        for action, given in mocks.items()
        for calls in [given if isinstance(given, list) else [given]]
    }


class DefinitionTester:
    """A time-skipping test server (started here unless *env* is given) and the worker
    settings each run gets."""

    def __init__(
        self,
        env: WorkflowEnvironment | None = None,
        *,
        activity_modules: Sequence[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._given = env
        self._env = env
        self._stale = False
        self.activity_modules = tuple(activity_modules)
        self.timeout = timeout

    async def __aenter__(self) -> Self:
        if self._env is None:
            from interpreter.dev.servers import start_time_skipping_env

            self._env = await start_time_skipping_env()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._given is None and self._env is not None:
            await self._env.shutdown()
            self._env = None

    @property
    def env(self) -> WorkflowEnvironment:
        if self._env is None:
            raise RuntimeError("use DefinitionTester in `async with`")
        return self._env

    async def run(
        self,
        definition: str | Path,
        input: Mapping[str, Any] | None = None,
        *,
        mocks: Mapping[str, Any] | None = None,
        signals: Sequence[SignalAt | Mapping[str, Any]] = (),
    ) -> RunResult:
        """Run the definition file with *input*, *mocks* (action → one call, or a list
        of calls: `{"output": ...}` or `{"error": {"type", "message", "non_retryable"}}`)
        and *signals* (`{"name", "payload", "after"}`), until it ends."""
        run_input, _ = prepare_run(definition, input_value=dict(input or {}), catalog=None)
        if self._stale and self._given is None:  # an earlier run left an activity in flight
            await self.env.shutdown()
            from interpreter.dev.servers import start_time_skipping_env

            self._env = await start_time_skipping_env()
            self._stale = False
        sends = sorted(
            (s if isinstance(s, SignalAt) else SignalAt.model_validate(s) for s in signals),
            key=lambda s: s.after,
        )
        overrides = [_mock(action, calls) for action, calls in _calls(mocks or {}).items()]
        task_queue = f"tdsl-test-{uuid4()}"
        async with self._worker(task_queue, overrides):
            start = run_start(run_input, stored=False, searchable=False)
            handle = await self.env.client.start_workflow(
                start.workflow_type,
                args=start.args,
                memo=start.memo,
                id=f"test-{run_input.definition['name']}-{uuid4().hex[:8]}",
                task_queue=task_queue,
            )
            try:
                return await self._finish(handle, sends)
            finally:
                await self._end_leftovers(handle, task_queue)

    @contextlib.asynccontextmanager
    async def _worker(
        self, task_queue: str, overrides: Sequence[Callable[..., Any]]
    ) -> AsyncIterator[None]:
        from activities.builtin import BuiltinActivities
        from interpreter.worker import build_worker

        builtin = BuiltinActivities()
        try:
            async with build_worker(
                self.env.client,
                task_queue=task_queue,
                activity_modules=self.activity_modules,
                builtin=builtin,
                graceful_shutdown_timeout=timedelta(0),
                sandboxed=True,
                overrides=overrides,
                database_url="",
            ):
                yield
        finally:
            await builtin.close()

    async def _finish(self, handle: WorkflowHandle[Any, Any], sends: list[SignalAt]) -> RunResult:
        output: Any = None
        error: dict[str, Any] | None = None
        try:
            output = await asyncio.wait_for(self._outcome(handle, sends), self.timeout)
        except WorkflowFailureError as failure:
            error = _error(failure)
        except TimeoutError:
            await handle.terminate("tdsl test: the run did not end in time")
            error = {
                "type": "TestTimeout",
                "message": f"the run did not end within {self.timeout:g} s of real time "
                "(waiting for a signal the case does not send?)",
            }
        status = status_name((await handle.describe()).status)
        return RunResult(
            status=status,
            output=output,
            error=error,
            step_states=await _steps(handle),
            workflow_id=handle.id,
        )

    async def _outcome(self, handle: WorkflowHandle[Any, Any], sends: list[SignalAt]) -> Any:
        """The run's result; with *sends*, the clock only moves as `_send` drives it
        until the last signal is out, so a signal `after: 2h` meets a run that has
        done everything it would have done in two hours (a 1h timeout has fired)."""
        if not sends:
            return await handle.result()
        with self.env.auto_time_skipping_disabled():  # the clock is ours while we send
            result = asyncio.ensure_future(handle.result())
            sender = asyncio.ensure_future(self._send(handle, sends))
            try:
                await asyncio.wait({result, sender}, return_when=asyncio.FIRST_COMPLETED)
                if not result.done():
                    await sender
                    service = self.env.client.test_service
                    await service.unlock_time_skipping(UnlockTimeSkippingRequest())
                    try:
                        return await result
                    finally:
                        await service.lock_time_skipping(LockTimeSkippingRequest())
                return result.result()
            finally:
                for task in (result, sender):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, TemporalError):
                        await task

    async def _send(self, handle: WorkflowHandle[Any, Any], sends: list[SignalAt]) -> None:
        """Each signal once the run has been going for its `after` on the test server's
        clock: time skips to the run's next timer (or the signal) only while nothing
        else can happen, it passes at real speed while an activity runs, and a signal
        waits until the run has handled what came before it."""
        started = (await handle.describe()).start_time
        for send in sends:
            target = started + send.after
            while True:
                pending = await _pending(self.env, handle)
                if pending is None:
                    return  # the run ended: the rest of the signals come too late to matter
                now = await self.env.get_current_time()
                if pending.workflow_task:
                    await asyncio.sleep(_POLL)  # the run has not handled what happened yet
                elif now >= target:
                    break
                elif pending.activities:
                    await asyncio.sleep(min(_POLL * 5, (target - now).total_seconds()))
                else:
                    due = min([target, *pending.timers])
                    if due > now:
                        await self.env.sleep(due - now)
                    else:
                        await asyncio.sleep(_POLL)  # a timer is firing
            await handle.signal(send.name, send.payload)

    async def _end_leftovers(self, handle: WorkflowHandle[Any, Any], task_queue: str) -> None:
        """Let the activities still in flight stop while their worker runs — one the run
        cancelled without waiting (`cancel_step`), a mutex's watch — and terminate what
        the run left running on its task queue (a mutex workflow idling before it
        ends, a child started with `wait: false`): an activity left in flight keeps
        the shared test server from skipping time again (every later case would wait
        in real time), so when one stays, the next run gets a fresh test server (when
        the tester started its own)."""
        client = self.env.client
        seen: set[str] = set()
        todo = [handle]
        while todo:
            current = todo.pop()
            async for event in current.fetch_history_events():
                found: str | None = None
                if (
                    event.event_type
                    == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
                ):
                    found = (
                        event.start_child_workflow_execution_initiated_event_attributes.workflow_id
                    )
                elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                    scheduled = event.activity_task_scheduled_event_attributes
                    if scheduled.activity_type.name == MUTEX_REQUEST_ACTIVITY:
                        (request,) = await client.data_converter.decode(scheduled.input.payloads)
                        found = MUTEX_ID_PREFIX + str(request["mutex"])
                if found is not None and found not in seen:
                    seen.add(found)
                    todo.append(client.get_workflow_handle(found))
        if not await _drained(handle):  # a cancelled activity the run did not wait for
            self._stale = True
        for workflow_id in seen:
            leftover = client.get_workflow_handle(workflow_id)
            with contextlib.suppress(TemporalError):
                description = await leftover.describe()
                if (
                    description.status == WorkflowExecutionStatus.RUNNING
                    and description.task_queue == task_queue
                ):
                    if not await _drained(leftover):  # a mutex's watch sees the run ended
                        self._stale = True
                    await leftover.terminate("tdsl test: left running when its case ended")

    async def run_case(self, test_file: TestFile, case: TestCase) -> CaseOutcome:
        """One case: the run, and the first way it differs from what the case expects."""
        started = time.monotonic()
        result = await self.run(
            test_file.definition_path,
            case.input,
            mocks=case.mocks,
            signals=case.signals,
        )
        difference = first_difference(case, result.to_json())
        return CaseOutcome(case.name, difference, time.monotonic() - started, result)


def _error(failure: WorkflowFailureError) -> dict[str, Any]:
    cause = failure.cause
    if isinstance(cause, ApplicationError):
        error: dict[str, Any] = {"type": cause.type or "Error", "message": cause.message}
        details = cause.details[0] if cause.details else None
        if isinstance(details, dict) and "step" in details:
            error["step"] = details["step"]
        return error
    return {"type": type(cause or failure).__name__, "message": failure_message(failure)}


async def _steps(handle: WorkflowHandle[Any, Any]) -> dict[str, dict[str, Any]]:
    """Step states as `tdsl status --json` has them (attempts from the history)."""
    try:
        status = await run_status(handle)
    except (TemporalError, DslError):
        return {}
    return {key: dict(state) for key, state in status["steps"].items()}


async def _drained(handle: WorkflowHandle[Any, Any]) -> bool:
    """Wait (a while) until no activity of the workflow is in flight; False if some
    still is."""
    deadline = time.monotonic() + _LEFTOVER_WAIT
    with contextlib.suppress(TemporalError):
        while time.monotonic() < deadline:
            if not (await handle.describe()).raw_description.pending_activities:
                return True
            await asyncio.sleep(_POLL * 5)
        return False
    return True


@dataclass
class _Pending:
    """What a run (its children included) still has to do before time can skip."""

    workflow_task: bool = False
    activities: bool = False
    timers: list[datetime] = field(default_factory=list)


_ACTIVITY_ENDS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}
_WORKFLOW_TASK_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED: True,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED: True,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: False,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED: True,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT: True,
}


async def _pending(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> _Pending | None:
    """From the history: a workflow task not yet completed, activities scheduled and
    not ended (running, or waiting for their next attempt), timers not fired, of the
    run and of its running children; None once the run has ended."""
    description = await handle.describe()
    if description.status != WorkflowExecutionStatus.RUNNING:
        return None
    pending = _Pending()
    activities: set[int] = set()
    timers: dict[int, datetime] = {}
    async for event in handle.fetch_history_events():
        kind = event.event_type
        if kind in _WORKFLOW_TASK_EVENTS:
            pending.workflow_task = _WORKFLOW_TASK_EVENTS[kind]
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activities.add(event.event_id)
        elif kind in _ACTIVITY_ENDS:
            activities.discard(getattr(event, _ACTIVITY_ENDS[kind]).scheduled_event_id)
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            fire = event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            timers[event.event_id] = event.event_time.ToDatetime(tzinfo=UTC) + fire
        elif kind == EventType.EVENT_TYPE_TIMER_FIRED:
            timers.pop(event.timer_fired_event_attributes.started_event_id, None)
        elif kind == EventType.EVENT_TYPE_TIMER_CANCELED:
            timers.pop(event.timer_canceled_event_attributes.started_event_id, None)
    pending.activities = bool(activities)
    pending.timers = list(timers.values())
    for child in description.raw_description.pending_children:
        inner = await _pending(
            env, env.client.get_workflow_handle(child.workflow_id, run_id=child.run_id or None)
        )
        if inner is not None:
            pending.workflow_task |= inner.workflow_task
            pending.activities |= inner.activities
            pending.timers += inner.timers
    return pending
