"""Runs larger than one Temporal history should hold, through the interpreter alone.

A hand-written workflow cannot do these without the same machinery (a 3,000-wide
`asyncio.gather` is refused by the server: more than 2,000 pending activities), so
these rows have no ratio. What they show is that each run ends, how long it took,
and the largest history among all the runs it took — continuations and foreach
batches included — which must stay below 10,240 events.

They run as production does for such runs, with the claim-check payload store (a
`FileStore` in a temporary directory): a 10,000-step definition alone is 1.5 MB,
and a continuation carries it with the state of every finished step, past
Temporal's 2 MB payload limit without a store.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from benchmarks import harness, scenarios
from interpreter.payloads.stores import FileStore
from interpreter.payloads.wiring import with_payload_codec

__all__ = ["EVENT_LIMIT", "FIRST_EVENT_LIMIT", "LargeRun", "large_runs"]

EVENT_LIMIT = 10_240
"""Temporal warns at 10,240 events; no run of ours may reach it."""

FIRST_EVENT_LIMIT = 10_000
"""A run started by type carries the user's input, not its definition: its first
event, less that input, stays under 10 KB however large the definition."""

_CONTINUED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
_CHILD_STARTED = EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED


@dataclass(frozen=True)
class LargeRun:
    label: str
    steps: int
    seconds: float
    runs: int
    """Workflow runs it took: the first, its continuations, and every child's runs."""
    max_events: int
    """Events in the largest of those histories."""
    workflow_cpu: float
    first_event: int
    """Bytes of the first run's first history event (its input, started by type)."""
    user_input: int
    """Bytes of the user's input in it (JSON): the rest is the run's own overhead."""


async def _histories(client: Client, workflow_id: str, run_id: str) -> list[int]:
    """Event counts of every run of the logical run and of its children, followed
    through the histories themselves (visibility may lag)."""
    counts: list[int] = []
    pending: list[tuple[str, str | None]] = [(workflow_id, run_id)]
    while pending:
        current_id, current_run = pending.pop()
        while current_run:
            handle = client.get_workflow_handle(current_id, run_id=current_run)
            events = [event async for event in handle.fetch_history_events()]
            counts.append(len(events))
            for event in events:
                if event.event_type == _CHILD_STARTED:
                    child = event.child_workflow_execution_started_event_attributes
                    pending.append(
                        (child.workflow_execution.workflow_id, child.workflow_execution.run_id)
                    )
            last = events[-1]
            current_run = (
                last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                if last.event_type == _CONTINUED
                else None
            )
    return counts


async def _measure(
    client: Client, label: str, steps: int, start: tuple[str, tuple[Any, ...]], check: Any
) -> LargeRun:
    print(f"  {label}", flush=True)
    workflow_type, args = start
    async with harness.worker(client) as (task_queue, stats):
        began = time.perf_counter()
        handle = await client.start_workflow(
            workflow_type, args=list(args), id=f"large-{uuid4()}", task_queue=task_queue
        )
        result = await harness.wait_result(handle, timeout=1800)
        seconds = time.perf_counter() - began
        cpu = stats.cpu + stats.instance_cpu
    check(result)
    assert handle.result_run_id is not None
    counts = await _histories(client, handle.id, handle.result_run_id)
    first = client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    async for event in first.fetch_history_events():
        first_event = event.ByteSize()  # the started event: the run's input and options
        break
    user_input = len(json.dumps(list(args), separators=(",", ":")))
    return LargeRun(label, steps, seconds, len(counts), max(counts), cpu, first_event, user_input)


def _outputs(expected: int) -> Any:
    def check(result: Any) -> None:
        if not isinstance(result, dict) or len(result) != expected:
            raise AssertionError(f"expected {expected} outputs, got {str(result)[:200]}")

    return check


def _foreach_outputs(expected: int) -> Any:
    def check(result: Any) -> None:
        each = result["each"]
        if len(each) != expected or each[-1] != {"i": expected - 1} or None in each:
            raise AssertionError(f"foreach: wrong outputs {str(result)[:200]}")

    return check


def _loop_output(expected: int) -> Any:
    def check(result: Any) -> None:
        loop = result["poll"]
        if loop != {"iterations": expected, "last": {"check": {"i": expected - 1}}}:
            raise AssertionError(f"loop: wrong output {str(result)[:200]}")

    return check


async def large_runs(
    client: Client, chain: int, fanout: int, foreach: int, loop: int
) -> list[LargeRun]:
    """A chain that must continue as new, a fan-out wider than Temporal's pending
    limit, a foreach with a count join over as many items, and a top-level loop of
    one activity per iteration, which continues as new between iterations."""
    with tempfile.TemporaryDirectory(prefix="tdsl-bench-payloads-") as directory:
        stored = with_payload_codec(client, FileStore(directory, create=True), worker=True)
        return await _large_runs(stored, chain, fanout, foreach, loop)


async def _large_runs(
    client: Client, chain: int, fanout: int, foreach: int, loop: int
) -> list[LargeRun]:
    return [
        await _measure(
            client,
            f"chain of {chain} (continues as new)",
            chain,
            scenarios.chain(chain).start_args("interpreter"),
            _outputs(chain),
        ),
        await _measure(
            client,
            f"fan-out of {fanout} + join",
            fanout + 1,
            scenarios.fanout(fanout).start_args("interpreter"),
            _outputs(fanout + 1),
        ),
        await _measure(
            client,
            f"foreach of {foreach}, join count {foreach} (batched)",
            foreach,
            scenarios.foreach(foreach, join={"count": foreach}),
            _foreach_outputs(foreach),
        ),
        await _measure(
            client,
            f"loop of {loop} iterations (continues as new)",
            loop,
            scenarios.loop(loop),
            _loop_output(loop),
        ),
    ]


def large_table(rows: list[LargeRun]) -> list[str]:
    lines = [
        "| large run (interpreter only) | wall | runs (continued + children) "
        "| largest history (events) | workflow CPU per step | first event (user input) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        flag = "" if row.max_events < EVENT_LIMIT else " ✗"
        small = "" if row.first_event - row.user_input < FIRST_EVENT_LIMIT else " ✗"
        lines.append(
            f"| {row.label} | {row.seconds:.1f} s | {row.runs} | {row.max_events}{flag} "
            f"| {row.workflow_cpu / row.steps * 1000:.2f} ms "
            f"| {row.first_event} B ({row.user_input} B){small} |"
        )
    return lines
