"""Run history: Temporal's runs projected into PostgreSQL, beside the worker.

Temporal is the source of truth and the workflow does no database work (no extra
activity, no extra event): a `Projector` next to the worker reads what Temporal
knows and UPSERTs it into the `runs` and `run_steps` tables of `interpreter.history.store`.

One cycle (every *interval* seconds)::

    list_workflows(WorkflowType = 'DslWorkflow' [AND TaskQueue = Q]
                   AND (ExecutionStatus = 'Running' OR CloseTime >= checkpoint - margin))
        running run, history grew since last written ─┐
        closed run, not yet written with its final status ─┤
                                                            ▼
        describe / history (input, attempts) / result / `status` query /
        `outputs` query (a closed completed run's outputs come from its result when
        it has no `output` of its own and no nested step: a query on a closed run
        replays its whole history on the worker)
                                                            ▼
        Store.save_run: run and steps in one transaction (idempotent: any run can be redone)

A run that continued as new is one logical run: it is written under its chain's first
run id (`first_run_id` of `describe()`: listings leave it empty), with the steps of all its runs
(the latest run's `status` query holds them) and `continued`; a run that handed over
to its successor is skipped, as the successor carries all it knew.

The projection never puts a run at risk. PostgreSQL down: one warning per outage,
the cycle stops, the checkpoint stays where it was, and the next cycles retry until
writes succeed ("run history caught up"); the runs themselves go on and finish, as
they never touch the database. The checkpoint only moves past a closed run once its
final state is written, so nothing is skipped; the *margin* covers visibility lag.
A restarted worker starts without a checkpoint and skips closed runs whose final
status is already stored, so catching up after downtime costs one read per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError, RPCStatusCode

from interpreter.client.status import (
    RunHistory,
    failure_message,
    merge_steps,
    query_status,
    status_name,
)
from interpreter.contract import (
    DSL_TENANT,
    MEMO_HASH,
    MEMO_NAME,
    MEMO_TENANT,
    MEMO_VERSION,
    MUTEX_WORKFLOW_NAME,
    OUTPUTS_QUERY,
    WORKFLOW_NAME,
    RunEnvelope,
)
from interpreter.history.store import RunRecord, StepRecord, Store

__all__ = ["DEFAULT_INTERVAL", "DEFAULT_MARGIN", "Projector", "record_history"]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 1.0
"""Seconds between two cycles."""

DEFAULT_MARGIN = timedelta(seconds=60)
"""How far before the checkpoint closed runs are listed again: visibility lags a little."""

GIVE_UP_AFTER = 5
"""Cycles a run may fail to project for a reason other than an outage before it is dropped."""

_QUERY_TIMEOUT = timedelta(seconds=5)

_Key = tuple[str, str]

_TRANSIENT = (
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
)


class _Unreachable(Exception):
    """PostgreSQL cannot be reached: stop this cycle, retry the next."""


class _Incomplete(Exception):
    """A closed run's queries found no worker to answer: its final state would lack steps."""


def _unreachable(err: BaseException) -> bool:
    """True for errors that mean "the database is not there", not "this row is wrong"."""
    return isinstance(
        err,
        OSError
        | TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.InsufficientResourcesError,
    )


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass
class _Snapshot:
    """One run as read from Temporal, ready to write."""

    run: RunRecord
    steps: list[StepRecord]
    history_length: int
    close_time: datetime | None


class Projector:
    """Keeps the run history in *store* up to date with the runs Temporal knows.

    *task_queue* limits it to the runs of one task queue (the worker's own: a closed
    run's `status` query needs a worker of that queue). `run()` loops until
    cancelled and never raises anything else; `sync_once()` is one cycle.
    """

    def __init__(
        self,
        client: Client,
        store: Store,
        *,
        namespace: str | None = None,
        task_queue: str | None = None,
        interval: float = DEFAULT_INTERVAL,
        margin: timedelta = DEFAULT_MARGIN,
    ) -> None:
        if namespace is not None and namespace != client.namespace:
            raise ValueError(
                f"the client is bound to namespace {client.namespace!r}, not {namespace!r}"
            )
        self.client = client
        self.store = store
        self.namespace = client.namespace
        self.task_queue = task_queue
        self.interval = interval
        self.margin = margin
        self.checkpoint: datetime | None = None
        """Every run closed before this (minus *margin*) has its final state written."""
        self.paused = False
        """True during an outage, from its first failed write until a clean cycle."""
        self._temporal_down = False
        self._finished: dict[_Key, datetime] = {}
        """Closed runs whose final state is written, with their close time."""
        self._lengths: dict[_Key, int] = {}
        """History length last written of each running run: unchanged means skip."""
        self._failures: dict[_Key, int] = {}

    # ------------------------------------------------------------------ loop

    async def run(self) -> None:
        """One cycle every *interval* seconds until cancelled."""
        while True:
            try:
                await self.sync_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the history take the worker down
                log.exception("run history: unexpected error; retrying")
            await asyncio.sleep(self.interval)

    def query(self) -> str:
        """The visibility query of the next cycle."""
        parts = [f"WorkflowType != '{MUTEX_WORKFLOW_NAME}'"]
        if self.task_queue is not None:
            parts.append(f"TaskQueue = '{_quote(self.task_queue)}'")
        if self.checkpoint is not None:
            since = _rfc3339(self.checkpoint - self.margin)
            parts.append(f"(ExecutionStatus = 'Running' OR CloseTime >= '{since}')")
        return " AND ".join(parts)

    async def sync_once(self) -> int:
        """Project what changed since the last cycle; returns how many runs were written."""
        began = datetime.now(UTC)
        try:
            executions = [execution async for execution in self.client.list_workflows(self.query())]
        except (RPCError, RuntimeError) as err:
            if not self._temporal_down:
                log.warning("run history: cannot list runs from Temporal: %s", _one_line(err))
                self._temporal_down = True
            return 0
        if self._temporal_down:
            self._temporal_down = False
            log.info("run history: Temporal reachable again")
        written = 0
        pending_closes: list[datetime] = []
        for execution in executions:
            key = (execution.id, execution.run_id)
            closed = _closed(execution.status)
            if closed and key in self._finished:
                continue
            if execution.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
                # Its successor carries all it knew, and is projected in its place.
                self._finished[key] = execution.close_time or began
                continue
            try:
                if await self._project(execution, closed):
                    written += 1
                self._failures.pop(key, None)
            except _Unreachable:
                return written  # the checkpoint stays; the next cycle retries
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if isinstance(err, RPCError) and err.status in _TRANSIENT:
                    if not self._temporal_down:  # Temporal went away mid-cycle
                        log.warning("run history: cannot read from Temporal: %s", _one_line(err))
                        self._temporal_down = True
                    return written
                if self._failed(key, err) and execution.close_time is not None:
                    pending_closes.append(execution.close_time)
        self._advance(min([began, *pending_closes]))
        if self.paused:
            self.paused = False
            log.info("run history caught up")
        return written

    # ------------------------------------------------------------------ one run

    async def _project(self, execution: WorkflowExecution, closed: bool) -> bool:
        """Write one run if it changed; False if there was nothing to write."""
        key = (execution.id, execution.run_id)
        if closed and await self._already_final(execution, execution.run_id):
            self._finished[key] = execution.close_time or datetime.now(UTC)
            self._lengths.pop(key, None)
            return False
        logical = await self._logical_run_id(execution)
        if closed and logical != execution.run_id and await self._already_final(execution, logical):
            self._finished[key] = execution.close_time or datetime.now(UTC)
            self._lengths.pop(key, None)
            return False
        snapshot = await self._read(execution, closed, logical)
        if snapshot is None:
            return False
        await self._write(snapshot)
        if snapshot.close_time is not None:
            self._finished[key] = snapshot.close_time
            self._lengths.pop(key, None)
        else:
            self._lengths[key] = snapshot.history_length
        return True

    async def _logical_run_id(self, execution: WorkflowExecution) -> str:
        """The run id a run is recorded under: its continue-as-new chain's first."""
        if execution.raw_info.first_run_id:
            return execution.raw_info.first_run_id
        handle = self.client.get_workflow_handle(execution.id, run_id=execution.run_id)
        return (await handle.describe()).raw_info.first_run_id or execution.run_id

    async def _already_final(self, execution: WorkflowExecution, run_id: str) -> bool:
        """A closed run stored with its final status (by us before a restart, or a peer)."""
        try:
            stored = await self.store.run(execution.id, run_id)
        except Exception as err:
            if _unreachable(err):
                self._outage(err)
                raise _Unreachable from err
            raise
        # Run and steps are written in one transaction (Store.save_run); a run without
        # steps is one written by an older version, run by run: project it again.
        return (
            stored is not None
            and stored.get("status") == status_name(execution.status)
            and bool(stored.get("steps"))
        )

    async def _read(
        self, execution: WorkflowExecution, closed: bool, logical_run_id: str
    ) -> _Snapshot | None:
        handle = self.client.get_workflow_handle(execution.id, run_id=execution.run_id)
        info = execution
        pending: dict[str, int] = {}
        if not closed:  # visibility may lag: describe says what the run is now
            description = await handle.describe()
            info = description
            closed = _closed(description.status)
            key = (execution.id, execution.run_id)
            if not closed and self._lengths.get(key) == description.history_length:
                return None
            pending = {
                activity.activity_id: activity.attempt
                for activity in description.raw_description.pending_activities
            }
        status = status_name(info.status)
        history = RunHistory()
        started: list[Any] = []
        async for event in handle.fetch_history_events():
            history.feed(event)
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                started = await info.data_converter.decode(list(payloads))
        user_input, definition, carried = _started_with(execution.workflow_type, started)
        output, error = await _outcome(handle) if closed else (None, None)
        query = await query_status(handle)
        outputs = _outputs_from_result(definition, status, output, query)
        if outputs is None:
            outputs = await self._outputs(handle)
        if closed and (query is None or outputs is None):
            key = (execution.id, execution.run_id)
            if self._failures.get(key, 0) < GIVE_UP_AFTER - 1:
                raise _Incomplete("no worker answered the status and outputs queries")
            # last try: what the history shows is better than nothing
        memo = await info.memo()
        run = RunRecord(
            workflow_id=execution.id,
            run_id=logical_run_id,
            definition=str(memo.get(MEMO_NAME) or definition.get("name") or ""),
            version=str(memo.get(MEMO_VERSION) or definition.get("version") or ""),
            definition_hash=str(memo.get(MEMO_HASH) or definition.get("hash") or ""),
            status=status,
            input=user_input,
            output=output,
            error=error,
            started_at=_time(carried.get("start_time")) or info.start_time,
            ended_at=info.close_time if closed else None,
            continued=int(carried.get("continued") or 0),
            tenant=_tenant(memo, info),
        )
        merged = merge_steps(query, history, pending)
        steps = _steps(merged, query, outputs or {}, closed=closed)
        return _Snapshot(
            run=run,
            steps=steps,
            history_length=info.history_length,
            close_time=(info.close_time or datetime.now(UTC)) if closed else None,
        )

    async def _outputs(self, handle: WorkflowHandle[Any, Any]) -> dict[str, Any] | None:
        """The `outputs` query's answer; None when no worker answered."""
        try:
            result = await handle.query(OUTPUTS_QUERY, rpc_timeout=_QUERY_TIMEOUT)
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError, TemporalError):
            return None
        return result if isinstance(result, dict) else None

    async def _write(self, snapshot: _Snapshot) -> None:
        try:
            await self.store.save_run(snapshot.run, snapshot.steps)
        except Exception as err:
            if _unreachable(err):
                self._outage(err)
                raise _Unreachable from err
            raise

    # ------------------------------------------------------------------ bookkeeping

    def _outage(self, err: BaseException) -> None:
        if not self.paused:
            self.paused = True
            log.warning(
                "run history paused: PostgreSQL unreachable: %s; will catch up", _one_line(err)
            )

    def _failed(self, key: _Key, err: Exception) -> bool:
        """Count a failure that is not an outage; True while the run is still retried."""
        if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
            return False  # gone from Temporal (retention): nothing left to project
        count = self._failures.get(key, 0) + 1
        if count >= GIVE_UP_AFTER:
            self._failures.pop(key, None)
            log.error(
                "run history: giving up on run %s/%s after %d attempts: %s",
                *key,
                count,
                _one_line(err),
            )
            return False
        self._failures[key] = count
        log.warning(
            "run history: cannot project run %s/%s (attempt %d of %d): %s",
            *key,
            count,
            GIVE_UP_AFTER,
            _one_line(err),
        )
        return True

    def _advance(self, to: datetime) -> None:
        """Move the checkpoint forward (never back) and forget runs it leaves behind."""
        if self.checkpoint is None or to > self.checkpoint:
            self.checkpoint = to
        horizon = self.checkpoint - 2 * self.margin
        for key in [key for key, closed_at in self._finished.items() if closed_at < horizon]:
            del self._finished[key]


def _closed(status: WorkflowExecutionStatus | None) -> bool:
    return status is not None and status not in (
        WorkflowExecutionStatus.RUNNING,
        WorkflowExecutionStatus.CONTINUED_AS_NEW,
    )


async def _outcome(handle: WorkflowHandle[Any, Any]) -> tuple[Any, str | None]:
    """(output, error) of a closed run, as `tdsl status` shows them; unlike the client's
    helper, an RPC error propagates rather than being recorded as the run's error."""
    try:
        return await handle.result(), None
    except WorkflowFailureError as err:
        return None, failure_message(err.cause if err.cause is not None else err)


def _started_with(
    workflow_type: str | None, started: list[Any]
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(user input, definition, carried state) from a run's start arguments.

    A `DslWorkflow` run's one argument holds its definition; a run by type has the
    user's input and perhaps an envelope (`RunEnvelope`), and no definition: its
    `output` is unknown here (the ``unknown`` marker keeps `_outputs_from_result` off).
    """
    if workflow_type == WORKFLOW_NAME:
        run_input = started[0] if started and isinstance(started[0], dict) else {}
        definition = dict(run_input.get("definition") or {})
        definition["hash"] = run_input.get("definition_hash")
        return run_input.get("input"), definition, run_input.get("carried") or {}
    envelope = RunEnvelope.from_json(started[1] if len(started) > 1 else None)
    return (started[0] if started else None), {"output": "unknown"}, envelope.carried or {}


def _outputs_from_result(
    definition: dict[str, Any], status: str, result: Any, query: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The step outputs of a completed run without its own `output`, read off its result.

    Such a run's result is `{step_id: output}` of its completed top-level steps
    (docs/language.md, "Data flow"), so the `outputs` query, which replays the whole history on a closed
    run, is needed only when nested steps (parallel branches) completed too.
    """
    if status != "COMPLETED" or definition.get("output") is not None or query is None:
        return None
    steps = query.get("steps")
    if not isinstance(result, dict) or not isinstance(steps, dict):
        return None
    completed = [
        step_id
        for step_id, state in steps.items()
        if isinstance(state, dict) and state.get("status") == "completed" and "[" not in step_id
    ]
    if not all(step_id in result for step_id in completed):
        return None
    return {step_id: result[step_id] for step_id in completed}


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _steps(
    merged: dict[str, dict[str, Any]],
    query: dict[str, Any] | None,
    outputs: dict[str, Any],
    *,
    closed: bool,
) -> list[StepRecord]:
    """Step records: states and attempts merged as `tdsl status` does, plus times,
    errors and outputs. A step still `running` in a closed run (terminated, timed
    out) never finishes: it is recorded `cancelled`."""
    states = query.get("steps") if query is not None else None
    details: dict[str, Any] = states if isinstance(states, dict) else {}
    records = []
    for step_id, merged_state in merged.items():
        detail = details.get(step_id)
        detail = detail if isinstance(detail, dict) else {}
        status = merged_state["status"]
        if closed and status in ("running", "waiting"):
            status = "cancelled"
        error = detail.get("error")
        records.append(
            StepRecord(
                step_id=step_id,
                status=status,
                attempts=int(merged_state["attempts"]),
                started_at=_time(detail.get("started_at")),
                ended_at=_time(detail.get("ended_at")),
                output=outputs.get(step_id) if status == "completed" else None,
                error=error if isinstance(error, dict) else None,
            )
        )
    return records


# --------------------------------------------------------------------------- worker side


WRITER_RETRY = 5.0
"""Seconds between a standing-by worker's tries to become the history's writer: when
the writer dies, PostgreSQL ends its session and lock at once, and another worker
takes over within this."""


def writer_lock_key(namespace: str, task_queue: str | None) -> int:
    """The advisory lock of the history of one namespace's task queue (a signed bigint)."""
    digest = hashlib.sha256(f"tdsl-history:{namespace}:{task_queue or '*'}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _record_as_the_writer(projector: Projector, store: Store, task_queue: str | None) -> None:
    """Wait for the writer's lock, then project until cancelled; a last cycle on the way
    out (a graceful shutdown) writes what ended meanwhile.

    With several workers on a task queue, exactly one writes its history at a time:
    the one holding a session-level advisory lock, on a connection of its own that it
    checks each cycle. The others stand by.
    """
    key = writer_lock_key(projector.namespace, task_queue)
    async with store.pool.acquire() as session:
        if not await session.fetchval("select pg_try_advisory_lock($1)", key):
            log.info(
                "run history: another worker writes task queue %r's history; standing by",
                task_queue,
            )
            while not await session.fetchval("select pg_try_advisory_lock($1)", key):
                await asyncio.sleep(WRITER_RETRY)
        log.info("run history recorded in PostgreSQL by this worker (task queue %r)", task_queue)
        try:
            while True:
                await session.fetchval("select 1")  # the lock lives as long as this session
                try:
                    await projector.sync_once()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    raise
                except Exception:  # never let the history take the worker down
                    log.exception("run history: unexpected error; retrying")
                await asyncio.sleep(projector.interval)
        finally:
            with contextlib.suppress(Exception):  # cancelled: one last cycle, bounded
                await asyncio.wait_for(projector.sync_once(), FINAL_SYNC_TIMEOUT)
            with contextlib.suppress(Exception):
                await session.execute("select pg_advisory_unlock($1)", key)


FINAL_SYNC_TIMEOUT = 10.0
"""Seconds a stopping worker spends writing what ended since the last cycle."""


async def record_history(
    client: Client,
    database_url: str,
    *,
    task_queue: str | None = None,
    interval: float = DEFAULT_INTERVAL,
    retry: Iterable[float] = (1, 2, 5, 10, 30),
) -> None:
    """Connect (retrying in the background while PostgreSQL is not there), migrate once,
    then run a `Projector` until cancelled. What the worker runs beside itself."""
    delays = list(retry)
    failures = 0
    store: Store | None = None
    try:
        while store is None:
            try:
                # No pool floor: asyncpg would log a traceback on every retry to restore
                # it while PostgreSQL is down; the projector reports outages itself.
                store = await Store.connect(database_url, min_size=0, max_size=3)
                await store.migrate()
            except Exception as err:
                if store is not None:
                    with contextlib.suppress(Exception):
                        await store.close()
                    store = None
                if failures == 0:
                    log.warning(
                        "run history paused: PostgreSQL unreachable: %s; will catch up",
                        _one_line(err),
                    )
                await asyncio.sleep(delays[min(failures, len(delays) - 1)])
                failures += 1
        if failures:
            log.info("run history: PostgreSQL reachable again")
        projector = Projector(client, store, task_queue=task_queue, interval=interval)
        while True:  # as the one writer; again after losing the lock's session
            try:
                await _record_as_the_writer(projector, store, task_queue)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
                log.warning("run history: lost the writer's lock: %s; trying again", _one_line(err))
                await asyncio.sleep(WRITER_RETRY)
    finally:
        if store is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(store.close(), timeout=5)


def _tenant(memo: Mapping[str, Any], info: Any) -> str | None:
    """The run's tenant: its memo (`tdsl run --tenant`, children and continued runs),
    else the `DslTenant` a client set."""
    tenant = memo.get(MEMO_TENANT)
    if isinstance(tenant, str):
        return tenant
    found = info.typed_search_attributes.get(DSL_TENANT)
    return found if isinstance(found, str) else None
