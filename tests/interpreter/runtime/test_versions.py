"""A query during the definition lookup must not make the run unreplayable.

When core answers a query while a local activity's result is pending, it completes the
workflow task without the code that follows the local activity and forces a new task.
That code then runs in the second task live but in the first on replay
(`interpreter.runtime.versions`). Before the baseline patch, the patches asked after
the lookup were answered "no" on that replay: a query on the closed run failed with
"patch marker encountered for change start-gate, but there is no corresponding change
command". The race is made certain here: the lookup ends while a query is answered.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import (
    HandleQueryInput,
    Interceptor,
    Replayer,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from interpreter.contract import DEFINITION_ACTIVITY, STATUS_QUERY
from interpreter.library import DefinitionLibrary
from interpreter.worker import WORKFLOWS, workflow_runner

pytestmark = pytest.mark.integration

CHAIN = """\
name: looked-up
steps:
  - {id: first, action: echo, parameters: {n: 1}}
  - {id: second, action: echo, parameters: {n: 2}, dependencies: [first]}
"""
QUERY_SECONDS = 0.5
"""How long the worker takes to answer a query: the lookup ends meanwhile."""

query_answered = threading.Event()
"""Set by the first query the worker answers; the lookup waits for it."""


class _SlowQueries(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _SlowQuery


class _SlowQuery(WorkflowInboundInterceptor):
    def handle_query(self, input: HandleQueryInput) -> Any:
        if not query_answered.is_set():
            query_answered.set()
            time.sleep(QUERY_SECONDS)  # unsandboxed worker: the workflow thread waits
        return super().handle_query(input)


@activity.defn(name="echo")
async def echo(params: dict[str, Any]) -> dict[str, Any]:
    return params


def _split_after_lookup(history: WorkflowHistory) -> bool:
    """Whether the task that recorded the lookup's marker ended there, the commands of
    the code after the lookup going into a task its completion asked for."""
    events = list(history.events)
    marker = next(
        e
        for e in events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and (e.marker_recorded_event_attributes.marker_name == "core_local_activity")
    )
    follow = events[events.index(marker) + 1 : events.index(marker) + 3]
    return [e.event_type for e in follow] == [
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    ]


async def test_a_query_during_the_lookup_leaves_the_run_replayable(
    client: Client, tmp_path: Path, task_queue: str
) -> None:
    (tmp_path / "looked-up.yaml").write_text(CHAIN)
    library = DefinitionLibrary([tmp_path])
    query_answered.clear()

    @activity.defn(name=DEFINITION_ACTIVITY)
    async def lookup_ending_during_a_query(request: dict[str, Any]) -> dict[str, Any]:
        answer = await library.resolve(request)
        async with asyncio.timeout(10):
            while not query_answered.is_set():
                await asyncio.sleep(0.005)
        return answer

    async with Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=[lookup_ending_during_a_query, echo],
        interceptors=[_SlowQueries()],
        workflow_runner=workflow_runner(False),
        graceful_shutdown_timeout=timedelta(0),
    ):
        handle = await client.start_workflow(
            "looked-up", args=[{}], id=f"versions-{uuid4()}", task_queue=task_queue
        )
        await handle.query(STATUS_QUERY)
        assert await handle.result() == {"first": {"n": 1}, "second": {"n": 2}}
        history = await handle.fetch_history()
        assert _split_after_lookup(history), "the query did not end the first task early"
        # A query on the closed run replays all of it on the worker.
        assert (await handle.query(STATUS_QUERY))["status"] == "COMPLETED"
    replayer = Replayer(workflows=list(WORKFLOWS), workflow_runner=workflow_runner(True))
    await replayer.replay_workflow(history)
