"""Run history on versus off: the same chain through the interpreter, with and without
the projector writing it to a real PostgreSQL (issue: within 10 % of each other)."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

from temporalio.client import Client

from benchmarks import harness
from benchmarks.scenarios import Scenario
from interpreter.dev.servers import EmbeddedPostgres
from interpreter.history.projector import Projector
from interpreter.history.store import Store


@dataclass(frozen=True)
class HistoryCost:
    off: float
    """Median seconds with no run history."""
    on: float
    """Median seconds with the projector recording the run."""
    lag: float
    """Median seconds from the run's end until PostgreSQL holds every step."""


async def _one(client: Client, scenario: Scenario, store: Store | None) -> tuple[float, float]:
    name, args = scenario.start_args("interpreter")
    async with harness.worker(client) as (task_queue, _stats):
        projector = None
        if store is not None:
            projector = asyncio.create_task(Projector(client, store, task_queue=task_queue).run())
        began = time.perf_counter()
        handle = await client.start_workflow(
            name, args=args, id=f"{scenario.key}-history-{uuid4()}", task_queue=task_queue
        )
        await harness.wait_result(handle)
        seconds = time.perf_counter() - began
        lag = 0.0
        if store is not None and projector is not None:
            while True:
                row = await store.run(handle.id)
                if row and row["status"] == "COMPLETED" and len(row["steps"]) == scenario.steps:
                    break
                await asyncio.sleep(0.05)
            lag = time.perf_counter() - began - seconds
            projector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await projector
    return seconds, lag


async def history_cost(client: Client, scenario: Scenario, repetitions: int) -> HistoryCost:
    """Interleaved off/on runs (so drift in machine load hits both), medians."""
    with tempfile.TemporaryDirectory(prefix="tdsl-bench-pg-") as directory:
        postgres = EmbeddedPostgres(Path(directory) / "data", delete_on_stop=True)
        await postgres.astart()
        try:
            store = await Store.connect(postgres.url, min_size=0, max_size=2)
            try:
                await store.migrate()
                offs, ons, lags = [], [], []
                for index in range(repetitions):
                    for recorded in (False, True) if index % 2 == 0 else (True, False):
                        seconds, lag = await _one(client, scenario, store if recorded else None)
                        (ons if recorded else offs).append(seconds)
                        if recorded:
                            lags.append(lag)
            finally:
                await store.close()
        finally:
            await postgres.astop()
    return HistoryCost(statistics.median(offs), statistics.median(ons), statistics.median(lags))
