"""The floor: hand-written workflows doing the same activities as the interpreter.

Each workflow is what an engineer would write by hand for the scenario: plain
`workflow.execute_activity` calls (no activity id, no summary) with exactly the
options the interpreter derives for a task step that sets none: start-to-close
5 minutes and `DEFAULT_RETRY` (3 attempts, 1 s initial, backoff 2, 1 min max).
`scenarios.check_options` verifies at start-up that the interpreter really uses these.

Import-light like the interpreter's workflow module: stdlib and temporalio only.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

__all__ = [
    "ACTIVITY",
    "CHAIN",
    "DAG",
    "FANOUT",
    "HANDWRITTEN_WORKFLOWS",
    "RETRY",
    "SAMPLE",
    "SAMPLE_STORE_TIMEOUT",
    "START_TO_CLOSE",
    "HandwrittenChain",
    "HandwrittenDag",
    "HandwrittenFanout",
    "HandwrittenSample",
]

ACTIVITY = "bench.noop"
START_TO_CLOSE = timedelta(minutes=5)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=3,
)
SAMPLE_STORE_TIMEOUT = timedelta(seconds=60)
"""The seed sample's `store` step sets `timeoutSeconds: 60`."""

CHAIN = "bench.HandwrittenChain"
FANOUT = "bench.HandwrittenFanout"
DAG = "bench.HandwrittenDag"
SAMPLE = "bench.HandwrittenSample"


async def _noop(parameters: dict[str, Any], timeout: timedelta = START_TO_CLOSE) -> Any:
    return await workflow.execute_activity(
        ACTIVITY, parameters, start_to_close_timeout=timeout, retry_policy=RETRY
    )


@workflow.defn(name=CHAIN)
class HandwrittenChain:
    """n activities one after the other."""

    @workflow.run
    async def run(self, n: int) -> dict[str, Any]:
        outputs: dict[str, Any] = {}
        for i in range(n):
            outputs[f"s{i:04d}"] = await _noop({"i": i})
        return outputs


@workflow.defn(name=FANOUT)
class HandwrittenFanout:
    """n activities at once, then one join activity after all of them."""

    @workflow.run
    async def run(self, n: int) -> dict[str, Any]:
        results = await asyncio.gather(*(_noop({"i": i}) for i in range(n)))
        outputs = {f"p{i:04d}": result for i, result in enumerate(results)}
        outputs["join"] = await _noop({})
        return outputs


@workflow.defn(name=DAG)
class HandwrittenDag:
    """Any DAG given as data: one asyncio task per node, awaiting its dependencies."""

    @workflow.run
    async def run(self, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        # nodes: [{"id": ..., "deps": [...], "parameters": {...}}] in topological order
        tasks: dict[str, asyncio.Task[Any]] = {}

        async def node(deps: list[asyncio.Task[Any]], parameters: dict[str, Any]) -> Any:
            for dep in deps:
                await dep
            return await _noop(parameters)

        for spec in nodes:
            deps = [tasks[d] for d in spec["deps"]]
            tasks[spec["id"]] = asyncio.create_task(node(deps, spec["parameters"]))
        return {node_id: await task for node_id, task in tasks.items()}


@workflow.defn(name=SAMPLE)
class HandwrittenSample:
    """The seed sample (validate → process → store) written by hand."""

    @workflow.run
    async def run(self) -> dict[str, Any]:
        return {
            "validate": await _noop({}),
            "process": await _noop({}),
            "store": await _noop({}, SAMPLE_STORE_TIMEOUT),
        }


HANDWRITTEN_WORKFLOWS = (HandwrittenChain, HandwrittenFanout, HandwrittenDag, HandwrittenSample)
