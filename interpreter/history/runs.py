"""The run history's tables: one row per run in `runs`, one per step in `run_steps`.

Apart from the store so that what the projector writes, and `tdsl runs` and the API
read, can be followed in one file; `Store` takes `RunRows` as a mixin. Every write is an idempotent
UPSERT keyed by workflow id, run id and step id, and an older record never replaces
a newer one, because activities and projections can run more than once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

__all__ = ["RunRecord", "RunRows", "StepRecord"]


@dataclass(frozen=True)
class RunRecord:
    """One row of `runs`; JSON columns hold Python values, times are aware datetimes.

    `updated_at` None means "now" (the database's clock). A record older than the
    stored row (by `updated_at`) changes nothing, and a final status is never
    replaced by RUNNING, so a late retry of an earlier projection is harmless.
    `input` and `started_at` left None keep what is stored.
    """

    workflow_id: str
    run_id: str
    definition: str
    version: str
    definition_hash: str
    status: str
    input: Any = None
    output: Any = None
    error: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime | None = None
    continued: int = 0
    """Times the logical run continued as new; `run_id` is then its first run's."""
    tenant: str | None = None


@dataclass(frozen=True)
class StepRecord:
    """One row of `run_steps`; the run it belongs to is given to `Store.upsert_steps`.

    `workflow_id` and `run_id` are keyword-only and optional: when set they must
    match the run the step is written for. As for runs, an older record (by
    `updated_at`) changes nothing, a final step status (completed, skipped, failed,
    cancelled) is never replaced by pending or running, and `started_at` left None
    keeps what is stored.
    """

    step_id: str
    status: str
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    output: Any = None
    error: Any = None
    updated_at: datetime | None = None
    workflow_id: str = field(default="", kw_only=True)
    run_id: str = field(default="", kw_only=True)


# --------------------------------------------------------------------------- SQL

_UPSERT_RUN = """
insert into runs as r (workflow_id, run_id, definition, version, definition_hash, status,
                       input, output, error, started_at, ended_at, updated_at, continued,
                       tenant)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, coalesce($12::timestamptz, now()), $13,
        $14)
on conflict (workflow_id, run_id) do update set
    definition = excluded.definition,
    version = excluded.version,
    definition_hash = excluded.definition_hash,
    status = excluded.status,
    input = coalesce(excluded.input, r.input),
    output = excluded.output,
    error = excluded.error,
    started_at = coalesce(excluded.started_at, r.started_at),
    ended_at = excluded.ended_at,
    updated_at = excluded.updated_at,
    continued = greatest(excluded.continued, r.continued),
    tenant = coalesce(excluded.tenant, r.tenant)
where r.updated_at <= excluded.updated_at
  and not (excluded.status = 'RUNNING' and r.status <> 'RUNNING')
"""

_UPSERT_STEP = """
insert into run_steps as s (workflow_id, run_id, step_id, status, attempts,
                            started_at, ended_at, output, error, updated_at)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, coalesce($10::timestamptz, now()))
on conflict (workflow_id, run_id, step_id) do update set
    status = excluded.status,
    attempts = excluded.attempts,
    started_at = coalesce(excluded.started_at, s.started_at),
    ended_at = excluded.ended_at,
    output = excluded.output,
    error = excluded.error,
    updated_at = excluded.updated_at
where s.updated_at <= excluded.updated_at
  and not (excluded.status in ('pending', 'waiting', 'running')
           and s.status in ('completed', 'skipped', 'failed', 'cancelled'))
"""

_RUN_COLUMNS = "workflow_id, run_id, definition, version, status, started_at, ended_at, tenant"


class RunRows:
    """The run-history side, a mixin of `Store`: the `runs` and `run_steps` tables."""

    pool: asyncpg.Pool

    async def upsert_run(self, run: RunRecord) -> None:
        """Insert or update one run (see `RunRecord` for what an update may change)."""
        await self.pool.execute(_UPSERT_RUN, *_run_row(run))

    async def save_run(self, run: RunRecord, steps: Sequence[StepRecord]) -> None:
        """`upsert_run` and `upsert_steps` in one transaction.

        The projector relies on it: a run stored with its final status must have its
        final steps too, or a write cut off between the two would leave a COMPLETED run
        with the steps of an earlier, running snapshot, and nothing would correct it.
        """
        rows = _step_rows(run.workflow_id, run.run_id, steps)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_UPSERT_RUN, *_run_row(run))
            if rows:
                await conn.executemany(_UPSERT_STEP, rows)

    async def upsert_steps(
        self, workflow_id: str, run_id: str, steps: Sequence[StepRecord]
    ) -> None:
        """Insert or update the steps of one run, in one transaction.

        The run's row must exist (`upsert_run` first): steps reference it.
        """
        rows = _step_rows(workflow_id, run_id, steps)
        if not rows:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(_UPSERT_STEP, rows)

    async def runs(
        self,
        *,
        status: str | None = None,
        definition: str | None = None,
        tenant: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """The latest runs first: `workflow_id`, `run_id`, `definition`, `version`,
        `status`, `started_at`, `ended_at`, `tenant`; optionally only one status,
        definition or tenant."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        rows = await self.pool.fetch(
            f"select {_RUN_COLUMNS} from runs"
            " where ($1::text is null or status = $1) and ($2::text is null or definition = $2)"
            " and ($4::text is null or tenant = $4)"
            " order by started_at desc nulls last, updated_at desc, workflow_id"
            " limit $3",
            status,
            definition,
            limit,
            tenant,
        )
        return [dict(row) for row in rows]

    async def run(self, workflow_id: str, run_id: str | None = None) -> dict[str, Any] | None:
        """One run with `definition_hash`, `input`, `output`, `error`, `continued` and its `steps`
        (ordered by start, unstarted last, then id); the latest run of the workflow id
        when *run_id* is None."""
        row = await self.pool.fetchrow(
            f"select {_RUN_COLUMNS}, definition_hash, input, output, error, continued, updated_at"
            " from runs where workflow_id = $1 and ($2::text is null or run_id = $2)"
            " order by started_at desc nulls last, updated_at desc limit 1",
            workflow_id,
            run_id,
        )
        if row is None:
            return None
        run = dict(row)
        steps = await self.pool.fetch(
            "select step_id, status, attempts, started_at, ended_at, output, error, updated_at"
            " from run_steps where workflow_id = $1 and run_id = $2"
            " order by started_at nulls last, step_id",
            run["workflow_id"],
            run["run_id"],
        )
        run["steps"] = [dict(step) for step in steps]
        return run


def _run_row(run: RunRecord) -> tuple[Any, ...]:
    """The parameters of `_UPSERT_RUN`, in order."""
    return (
        run.workflow_id,
        run.run_id,
        run.definition,
        run.version,
        run.definition_hash,
        run.status,
        run.input,
        run.output,
        run.error,
        run.started_at,
        run.ended_at,
        run.updated_at,
        run.continued,
        run.tenant,
    )


def _step_rows(workflow_id: str, run_id: str, steps: Sequence[StepRecord]) -> list[tuple[Any, ...]]:
    """The parameters of `_UPSERT_STEP` for each step; a step of another run is refused."""
    rows = []
    for step in steps:
        if (step.workflow_id and step.workflow_id != workflow_id) or (
            step.run_id and step.run_id != run_id
        ):
            raise ValueError(
                f"step {step.step_id!r} belongs to {step.workflow_id}/{step.run_id}, "
                f"not {workflow_id}/{run_id}"
            )
        rows.append(
            (
                workflow_id,
                run_id,
                step.step_id,
                step.status,
                step.attempts,
                step.started_at,
                step.ended_at,
                step.output,
                step.error,
                step.updated_at,
            )
        )
    return rows
