"""Which activities the workers of a task queue register, so `tdsl run` can tell.

Temporal knows who polls a task queue (`DescribeTaskQueue`: identities) but not what
they can run. So each worker with `DATABASE_URL` announces its activity names in the
`tdsl_workers` table at start and every `ANNOUNCE_EVERY`, and `tdsl run` asks Temporal
for the pollers of the run's task queue and the table for what those pollers
announced. Only when every poller has a fresh row is the answer trusted: a worker
without a database, of an older version or of another SDK makes it "cannot tell",
and the run starts as before (an unknown action then fails on its first attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Sequence

import asyncpg
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.client import Client
from temporalio.service import RPCError

from dsl.errors import DslError
from interpreter.client.pollers import polling_identities
from interpreter.history.store import Store

__all__ = ["ANNOUNCE_EVERY", "announce_worker", "registered_activities"]

log = logging.getLogger(__name__)

ANNOUNCE_EVERY = 30.0
"""Seconds between a worker's announcements; a row older than 3 of them is stale."""
_FRESH = 3 * ANNOUNCE_EVERY
_POLLED_WITHIN = dt.timedelta(seconds=_FRESH)
_LOOKUP_TIMEOUT = 5.0


async def announce_worker(
    client: Client, database_url: str, *, task_queue: str, activities: Sequence[str]
) -> None:
    """Announce this worker's activities until cancelled; an outage only delays it."""
    store: Store | None = None
    warned = False
    try:
        while True:
            try:
                if store is None:
                    store = await Store.connect(database_url, min_size=0, max_size=1)
                await store.announce_worker(
                    namespace=client.namespace,
                    task_queue=task_queue,
                    identity=client.identity,
                    activities=activities,
                )
                warned = False
            except (DslError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
                if not warned:  # the table may not be migrated yet: the projector does it
                    log.info("cannot announce the worker's activities yet: %s", err)
                    warned = True
            await asyncio.sleep(ANNOUNCE_EVERY)
    finally:
        if store is not None:
            with contextlib.suppress(Exception):
                await store.close()


async def registered_activities(
    client: Client, database_url: str, task_queue: str
) -> frozenset[str] | None:
    """The activities every worker polling *task_queue* registers, or None when that
    cannot be told (no pollers, a poller that did not announce, no database)."""
    try:
        async with asyncio.timeout(_LOOKUP_TIMEOUT):
            identities = await polling_identities(
                client, task_queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, _POLLED_WITHIN
            )
            if not identities:
                return None
            async with await Store.connect(database_url, min_size=1, max_size=1) as store:
                announced = await store.worker_activities(
                    namespace=client.namespace,
                    task_queue=task_queue,
                    identities=identities,
                    fresh_seconds=_FRESH,
                )
    except (
        TimeoutError,
        RPCError,
        DslError,
        OSError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as err:
        log.debug("cannot tell what the workers of %r register: %s", task_queue, err)
        return None
    if set(identities) - announced.keys():
        return None
    # Tasks go to any poller: an action counts only when every worker registers it.
    sets = [frozenset(names) for names in announced.values()]
    return frozenset.intersection(*sets)
