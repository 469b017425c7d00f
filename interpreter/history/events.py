"""Every attempt of every task step, recorded on the worker that runs it (issue 14).

Temporal's history keeps only an activity's last attempt and the failure before it,
so the earlier attempts of a retried step leave no trace there, and the projector
(`interpreter.history.projector`) cannot see them. The worker runs each attempt, so
it notes them where they run:

    StepEventsInterceptor   an activity inbound interceptor: each attempt's start and
                            its end (completed, failed with its error, cancelled)
    StepEvents.note()       appends to a bounded in-memory buffer; never blocks, never raises
    StepEvents.run()        a task beside the worker that inserts the buffer into
                            `step_events` in batches (`on conflict do nothing`)

The workflow is not involved (no activity, no command), so replay is untouched.
Recording must never slow or fail an activity: noting is a deque append, and while
PostgreSQL is down the buffer keeps the latest `capacity` events, drops the oldest,
says so in one warning per outage and catches up when the database is back. Every
worker records its own attempts (no writer lock as for the projector: an attempt
runs on exactly one worker).

Internal activities (`tdsl.*`) and the mutex workflow's are not steps and are skipped.
What is stored is the attempt's ids, times and the error type and message the
step's error shows anyway: never parameters, heartbeat details or task tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from interpreter.contract import MUTEX_WORKFLOW_NAME
from interpreter.history.store import Store

__all__ = [
    "ATTEMPT_EVENTS",
    "DEFAULT_CAPACITY",
    "StepEvent",
    "StepEvents",
    "StepEventsInterceptor",
    "attempt_end",
]

log = logging.getLogger(__name__)

ATTEMPT_EVENTS = ("started", "completed", "failed", "cancelled")
"""What `step_events.event` holds; "retried" is derived when read (`timeline`)."""

DEFAULT_CAPACITY = 10_000
"""Events kept in memory while PostgreSQL is away (about 3 MB)."""

BATCH_SIZE = 500
"""Rows per insert; a buffer this full is written at once, not at the next tick."""

FLUSH_INTERVAL = 0.5
"""Seconds between two writes while the database answers."""

FINAL_FLUSH_TIMEOUT = 5.0
"""Seconds a stopping worker spends writing what is left."""

ERROR_LIMIT = 2000
"""Characters of an error message kept (the step's error in run_steps has it whole)."""

_INTERNAL_PREFIX = "tdsl."

_INSERT = """
insert into step_events (workflow_id, temporal_run_id, step_id, attempt, event, at,
                         activity_type, workflow_type, error_type, error)
select * from unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[],
                     $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[])
on conflict do nothing
"""


@dataclass(frozen=True, slots=True)
class StepEvent:
    """One row of `step_events`: an attempt started or ended."""

    workflow_id: str
    temporal_run_id: str
    step_id: str
    attempt: int
    event: str
    at: datetime
    activity_type: str
    workflow_type: str
    error_type: str | None = None
    error: str | None = None


# --------------------------------------------------------------------------- the interceptor


def _is_step(info: activity.Info) -> bool:
    """An attempt of a definition's step (not an internal or a mutex activity)."""
    return (
        bool(info.workflow_id)
        and not info.activity_type.startswith(_INTERNAL_PREFIX)
        and info.workflow_type != MUTEX_WORKFLOW_NAME
    )


def _clean(text: str) -> str:
    """PostgreSQL's text refuses NUL; a huge message is cut, not stored twice over."""
    text = text.replace("\x00", "")
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 1] + "…"


def _event(info: activity.Info, event: str, error: tuple[str, str] | None = None) -> StepEvent:
    return StepEvent(
        workflow_id=info.workflow_id or "",
        temporal_run_id=info.workflow_run_id or "",
        step_id=info.activity_id,
        attempt=info.attempt,
        event=event,
        at=datetime.now(UTC),
        activity_type=info.activity_type,
        workflow_type=info.workflow_type or "",
        error_type=error[0] if error else None,
        error=_clean(error[1]) if error else None,
    )


def attempt_end(err: BaseException) -> tuple[str, tuple[str, str] | None] | None:
    """(event, (error type, message)) for an attempt that raised *err*; None when it
    did not end (completed asynchronously, from outside: the step's end says when).

    The type and message are those the step's error shows (`describe_failure`). A
    cancellation is "cancelled" only when the workflow asked for it (or the run is
    gone); a timeout or the worker shutting down fails the attempt, and Temporal
    retries it.
    """
    if type(err).__name__ == "_CompleteAsyncError":  # activity.raise_complete_async()
        return None
    if isinstance(err, asyncio.CancelledError | CancelledError):
        details = activity.cancellation_details() if activity.in_activity() else None
        if details is None or details.cancel_requested or details.not_found:
            return "cancelled", ("CancelledError", "cancelled")
        if details.timed_out:
            return "failed", ("Timeout", "the attempt timed out")
        if details.worker_shutdown:
            return "failed", ("WorkerShutdown", "the worker shut down during the attempt")
        if details.paused:
            return "failed", ("ActivityPause", "the activity was paused")
        return "failed", ("ActivityReset", "the activity was reset")
    if isinstance(err, ApplicationError):
        return "failed", (err.type or "ApplicationError", err.message)
    return "failed", (type(err).__name__, str(err))


class _Recording(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, events: StepEvents) -> None:
        super().__init__(next)
        self.events = events

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if not _is_step(info):
            return await self.next.execute_activity(input)
        self.events.note_safely(lambda: _event(info, "started"))
        try:
            result = await self.next.execute_activity(input)
        except BaseException as err:
            ended = attempt_end(err)
            if ended is not None:
                event, error = ended
                self.events.note_safely(lambda: _event(info, event, error))
            raise
        self.events.note_safely(lambda: _event(info, "completed"))
        return result


class StepEventsInterceptor(Interceptor):
    """Notes each step attempt this worker runs into *events*; list it first among
    the worker's interceptors, so that failures raised by the others count too."""

    def __init__(self, events: StepEvents) -> None:
        self.events = events

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Recording(next, self.events)


# --------------------------------------------------------------------------- the writer


class StepEvents:
    """The bounded buffer between the interceptor and PostgreSQL, and its writer.

    `note` runs on the activity's path: an append, and a drop of the oldest event when
    *capacity* is reached. `run` writes in batches of *batch_size* every *interval*
    seconds; while the database is away it retries after *retry* delays (the last
    repeated) and keeps what it could not write, at most *capacity* (plus one batch in
    flight).
    """

    def __init__(
        self,
        *,
        capacity: int = DEFAULT_CAPACITY,
        batch_size: int = BATCH_SIZE,
        interval: float = FLUSH_INTERVAL,
        retry: Iterable[float] = (1, 2, 5, 10, 30),
    ) -> None:
        if capacity < 1 or batch_size < 1:
            raise ValueError("capacity and batch_size must be at least 1")
        self.capacity = capacity
        self.batch_size = batch_size
        self.interval = interval
        self.retry = list(retry) or [interval]
        self.pending: deque[StepEvent] = deque()
        self.written = 0
        self.dropped = 0
        """Events lost to a full buffer since the worker started."""
        self.outage = False
        """True from a failed connection or write until a write succeeds again."""
        self._warned = False
        self._dropped_in_outage = 0
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ the activity's side

    def note(self, event: StepEvent) -> None:
        """Buffer *event*; the oldest goes when the buffer is full (one warning per outage)."""
        if len(self.pending) >= self.capacity:
            self.pending.popleft()
            self._drop(1)
        self.pending.append(event)
        if len(self.pending) >= self.batch_size:
            self._wake.set()

    def note_safely(self, make: Callable[[], StepEvent]) -> None:
        """`note(make())`, where nothing may reach the activity: recording is best effort."""
        try:
            self.note(make())
        except Exception:  # a bug here must not fail somebody's step
            log.exception("step events: cannot note an attempt")

    def _drop(self, count: int) -> None:
        self.dropped += count
        self._dropped_in_outage += count
        if not self._warned:
            self._warned = True
            log.warning(
                "step events: more than %d waiting to be written; dropping the oldest",
                self.capacity,
            )

    # ------------------------------------------------------------------ the writer's side

    async def run(self, database_url: str) -> None:
        """Connect, migrate, then write until cancelled; a last bounded flush on the way out."""
        store: Store | None = None
        failures = 0
        try:
            while True:
                try:
                    if store is None:
                        store = await _connect(database_url)
                    await self.flush(store)
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    self._failed(err)
                    await asyncio.sleep(self.retry[min(failures, len(self.retry) - 1)])
                    failures += 1
                    continue
                failures = 0
                self._recovered()
                self._wake.clear()
                if len(self.pending) < self.batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.interval)
        finally:
            if store is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.flush(store), FINAL_FLUSH_TIMEOUT)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(store.close(), FINAL_FLUSH_TIMEOUT)
            if self.pending:
                log.warning("step events: %d not written (PostgreSQL away)", len(self.pending))

    async def flush(self, store: Store) -> int:
        """Write everything buffered, batch by batch; returns how many were written.

        A batch that fails goes back to the front of the buffer (the oldest of it
        dropped if the buffer filled meanwhile) and the error propagates, except a
        `DataError`: no retry would make those rows acceptable, so they are dropped
        with a warning and the next batch goes on.
        """
        total = 0
        while self.pending:
            batch = [self.pending.popleft() for _ in range(min(self.batch_size, len(self.pending)))]
            try:
                await store.pool.execute(_INSERT, *_columns(batch))
            except asyncpg.DataError as err:
                self.dropped += len(batch)
                log.warning(
                    "step events: PostgreSQL refused %d of them: %s; dropped",
                    len(batch),
                    _one_line(err),
                )
                continue
            except BaseException:
                self.pending.extendleft(reversed(batch))
                overflow = len(self.pending) - self.capacity
                for _ in range(max(0, overflow)):
                    self.pending.popleft()
                if overflow > 0:
                    self._drop(overflow)
                raise
            total += len(batch)
            self.written += len(batch)
        return total

    def _failed(self, err: BaseException) -> None:
        if not self.outage:
            self.outage = True
            log.warning(
                "step events paused: cannot write to PostgreSQL: %s; keeping the latest %d "
                "in memory",
                _one_line(err),
                self.capacity,
            )
            self._warned = True  # the drops of this outage are part of this warning

    def _recovered(self) -> None:
        """After a good write: say so once after an outage; warn again about drops only
        once the backlog is gone (a writer catching up is not a new outage)."""
        if self.outage:
            self.outage = False
            lost = self._dropped_in_outage
            log.info(
                "step events written again%s",
                f"; {lost} dropped meanwhile" if lost else "",
            )
            self._dropped_in_outage = 0
        if not self.pending:
            self._warned = False
            self._dropped_in_outage = 0


async def _connect(database_url: str) -> Store:
    """A small pool without a floor (no reconnect tracebacks while PostgreSQL is down),
    migrated: this writer may start before the projector has migrated."""
    store = await Store.connect(database_url, min_size=0, max_size=1)
    try:
        await store.migrate()
    except BaseException:
        with contextlib.suppress(Exception):
            await store.close()
        raise
    return store


def _columns(batch: list[StepEvent]) -> tuple[list[Any], ...]:
    """The batch as the ten arrays of `_INSERT`."""
    return (
        [e.workflow_id for e in batch],
        [e.temporal_run_id for e in batch],
        [e.step_id for e in batch],
        [e.attempt for e in batch],
        [e.event for e in batch],
        [e.at for e in batch],
        [e.activity_type for e in batch],
        [e.workflow_type for e in batch],
        [e.error_type for e in batch],
        [e.error for e in batch],
    )


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:199] + "…"
