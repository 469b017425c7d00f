"""Which worker announced which activities: the `tdsl_workers` table.

Apart from the store and the run history because it is neither: `Store` takes
`WorkerRows` as a mixin, and `interpreter.worker_registry` writes and reads it (a
worker announces its activities, `tdsl run` asks what the pollers of a queue announced).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

__all__ = ["WorkerRows"]


class WorkerRows:
    """The worker side, a mixin of `Store`: announcements of the activities a worker runs."""

    pool: asyncpg.Pool

    async def announce_worker(
        self, *, namespace: str, task_queue: str, identity: str, activities: Sequence[str]
    ) -> None:
        """Record that *identity* polls *task_queue* with these activities, as of now."""
        await self.pool.execute(
            "insert into tdsl_workers (namespace, task_queue, identity, activities)"
            " values ($1, $2, $3, $4)"
            " on conflict (namespace, task_queue, identity)"
            " do update set activities = excluded.activities, seen_at = now()",
            namespace,
            task_queue,
            identity,
            sorted(activities),
        )

    async def worker_activities(
        self, *, namespace: str, task_queue: str, identities: Sequence[str], fresh_seconds: float
    ) -> dict[str, list[str]]:
        """Identity → announced activities, for those of *identities* seen recently."""
        rows = await self.pool.fetch(
            "select identity, activities from tdsl_workers"
            " where namespace = $1 and task_queue = $2 and identity = any($3::text[])"
            " and seen_at > now() - make_interval(secs => $4)",
            namespace,
            task_queue,
            list(identities),
            fresh_seconds,
        )
        return {row["identity"]: list(row["activities"]) for row in rows}
