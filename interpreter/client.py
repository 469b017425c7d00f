"""Submit, watch and steer runs: the library behind `tdsl run|status|signal|…`.

Everything a command does lives here so that the CLI stays a thin layer of
argument parsing and printing, and so that tests and the demo drive runs through
the same code a user does.

The run state a user sees (spec §5) joins three sources: `describe()` for the run's
status, the workflow's `status` query for step states, and the history for the
attempt numbers of activities (the workflow cannot see retries; the server can).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import temporalio.api.history.v1
import temporalio.client
import temporalio.converter
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import TemporalError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from dsl.bundle import normalise, resolve_bundle
from dsl.catalog import Catalog, ChainedCatalog, DirectoryCatalog
from dsl.errors import DslError, InputError, NotFoundError
from dsl.inputs import prepare_input
from dsl.loader import MAX_BYTES, read_bounded
from dsl.validate import ValidatedDefinition, validate_file
from interpreter.connection import connect_config
from interpreter.contract import (
    CANCEL_SIGNAL,
    DSL_NAME,
    DSL_VERSION,
    PAUSE_SIGNAL,
    RESUME_SIGNAL,
    SEARCH_ATTRIBUTES,
    STATUS_QUERY,
    WORKFLOW_NAME,
    RunInput,
)

__all__ = [
    "DEFAULT_UI_URL",
    "FINAL_STATUSES",
    "RUN_KEYS",
    "RunHistory",
    "cancel_run",
    "check_workflow_id",
    "failure_message",
    "get_handle",
    "merge_steps",
    "new_workflow_id",
    "open_client",
    "parse_json_argument",
    "pause_run",
    "prepare_run",
    "query_status",
    "resume_run",
    "run_json",
    "run_status",
    "signal_run",
    "start_run",
    "status_name",
    "terminate_run",
    "ui_link",
    "wait_for_run",
]

DEFAULT_UI_URL = "http://localhost:8233"
"""Where `tdsl dev` and `temporal server start-dev` serve the Web UI."""

RUN_KEYS = ("workflow_id", "run_id", "status", "output", "error", "steps")
"""The keys of `tdsl run --json`, in order; `tdsl status --json` adds `paused`."""

FINAL_STATUSES = ("COMPLETED", "FAILED", "CANCELED", "TERMINATED", "TIMED_OUT")

_STATUS_NAMES = {
    WorkflowExecutionStatus.RUNNING: "RUNNING",
    WorkflowExecutionStatus.COMPLETED: "COMPLETED",
    WorkflowExecutionStatus.FAILED: "FAILED",
    WorkflowExecutionStatus.CANCELED: "CANCELED",
    WorkflowExecutionStatus.TERMINATED: "TERMINATED",
    WorkflowExecutionStatus.TIMED_OUT: "TIMED_OUT",
    # The run handed over to its successor; the chain as a whole still runs.
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "RUNNING",
}

_QUERY_TIMEOUT = timedelta(seconds=5)
"""A query waits for a worker; without one we fall back to the history, not hang."""

_MAX_MESSAGE = 300

ProgressCallback = Callable[[dict[str, Any]], Awaitable[None] | None]


# --------------------------------------------------------------------------- submit


def parse_json_argument(text: str, *, what: str = "--input") -> Any:
    """JSON text, or `@path` to read it from a file; `InputError` with the reason.

    NaN and Infinity are refused: they are not JSON and no other client could send them.
    """
    source = what
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = read_bounded(path, MAX_BYTES).decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            raise InputError(f"{what}: cannot read {str(path)!r}: {reason}") from None
        source = f"{what} file {str(path)!r}"

    def _no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as err:
        raise InputError(
            f"{source} is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
        ) from None
    except ValueError as err:
        raise InputError(f"{source} is not valid JSON: {err}") from None


def _shorten(text: str, limit: int = _MAX_MESSAGE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def prepare_run(
    file: str | Path,
    *,
    input_text: str | None = None,
    input_value: Any = None,
    definitions: Sequence[str | Path] = (),
    catalog: Catalog | None = None,
    activities: Iterable[str] | None = None,
) -> tuple[RunInput, ValidatedDefinition]:
    """Everything a run needs, checked before anything is started.

    The definition is validated, its subworkflows resolved and pinned (beside the
    file, in *definitions*, then in *catalog*, by default the PostgreSQL registry
    when `DATABASE_URL` is set), and the input (*input_text* as JSON
    or ``@file``, else *input_value*, else ``{}``) completed with the `input`
    schema's defaults and checked against it, so the pinned input is exactly what
    the templates see. Raises `DefinitionError` or `InputError`.
    """
    names = set(activities) if activities is not None else None
    if catalog is None:
        catalog = registry_catalog()
    checked = validate_file(file, definitions=definitions, catalog=catalog, activities=names)
    local = DirectoryCatalog([Path(file).parent, *definitions])
    lookup: Catalog = local if catalog is None else ChainedCatalog([local, catalog])
    bundle = resolve_bundle(checked, lookup)
    if input_text is not None:
        value = parse_json_argument(input_text)
    else:
        value = {} if input_value is None else input_value
    run_input = RunInput(
        definition=normalise(bundle.definition),
        input=prepare_input(checked.definition.input, value),
        subworkflows={key: normalise(child) for key, child in bundle.subworkflows.items()},
        latest=dict(bundle.latest),
        definition_hash=bundle.hash,
    )
    return run_input, checked


# --------------------------------------------------------------------------- registry


def registry_catalog() -> Catalog | None:
    """The PostgreSQL registry when `DATABASE_URL` is set (spec §4: after the files).

    Read only when a subworkflow is not found in files; unreachable, it is one
    warning on stderr and the lookup goes on with files only.
    """
    from activities.store import registry_from_env

    return registry_from_env()


MAX_WORKFLOW_ID_BYTES = 1000
"""Temporal's default `limit.maxIDLength`; a longer id is refused by the server."""


def check_workflow_id(text: str) -> str:
    """*text* if it can name a run: non-empty printable text within Temporal's limit.

    An empty id used to be replaced silently by a generated one, and a newline or
    another control character breaks every listing and log that shows the id.
    """
    if not text:
        raise InputError("the workflow id must not be empty")
    if not text.isprintable():
        bad = next(ch for ch in text if not ch.isprintable())
        raise InputError(
            f"the workflow id must be printable text; {bad!a} at position {text.index(bad)} is not"
        )
    if text != text.strip():
        raise InputError("the workflow id must not start or end with white space")
    size = len(text.encode("utf-8"))
    if size > MAX_WORKFLOW_ID_BYTES:
        raise InputError(
            f"the workflow id is {size} bytes; Temporal's limit is {MAX_WORKFLOW_ID_BYTES}"
        )
    return text


def new_workflow_id(name: str) -> str:
    """`<definition name>-<8 hex>`: readable in lists, unique enough for humans."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def open_client(*, address: str | None = None, namespace: str | None = None) -> Client:
    """Connect like the `temporal` CLI does; one-line errors.

    A malformed address is the user's typo (`InputError`, exit 2); a server that
    does not answer is `DslError` (exit 1).
    """
    config = connect_config(address=address, namespace=namespace)
    target = config["target_host"]
    from interpreter.payloads import data_converter, payload_store_from_env

    # Values over Temporal's payload limit go to the configured store (claim check).
    converter = data_converter(payload_store_from_env())
    try:
        return await Client.connect(**config, data_converter=converter)
    except ValueError as err:
        raise InputError(f"invalid Temporal address {target!r}: {err}") from None
    except RuntimeError as err:
        found = re.search(r'message: "([^"]+)"', str(err))
        reason = found.group(1).lower() if found else _shorten(str(err), 200)
        raise DslError(
            f"cannot reach Temporal at {target}: {reason} "
            "(is it running? `tdsl dev` starts one; TEMPORAL_ADDRESS points elsewhere)"
        ) from None


def start_options(run_input: RunInput) -> dict[str, Any]:
    """How every run is started, by `tdsl run` or by a schedule: search attributes
    (``typed_search_attributes``), memo with the content hash, and the UI's summary."""
    definition = run_input.definition
    name, version = str(definition["name"]), str(definition.get("version", "1.0.0"))
    description = definition.get("description")
    return {
        "typed_search_attributes": TypedSearchAttributes(
            [SearchAttributePair(DSL_NAME, name), SearchAttributePair(DSL_VERSION, version)]
        ),
        "memo": {"dsl_name": name, "dsl_version": version, "dsl_hash": run_input.definition_hash},
        "static_summary": f"{name} {version}",
        "static_details": description if isinstance(description, str) else None,
    }


async def start_run(
    client: Client,
    run_input: RunInput,
    *,
    workflow_id: str | None = None,
    task_queue: str,
) -> WorkflowHandle[Any, Any]:
    """Start the interpreter on a prepared run; returns at once with the handle.

    The run is findable by definition name and version (search attributes), carries
    name, version and content hash in its memo, and shows "name version" and the
    description in the Web UI.
    """
    options = start_options(run_input)
    if workflow_id is None:
        workflow_id = new_workflow_id(str(run_input.definition["name"]))
    else:
        check_workflow_id(workflow_id)
    try:
        return await client.start_workflow(
            WORKFLOW_NAME,
            run_input,
            id=workflow_id,
            task_queue=task_queue,
            search_attributes=options.pop("typed_search_attributes"),
            **options,
        )
    except WorkflowAlreadyStartedError:
        raise InputError(
            f"a run with workflow id {workflow_id!r} is already running; choose another --id"
        ) from None
    except RPCError as err:
        if err.status == RPCStatusCode.INVALID_ARGUMENT and "search attribute" in err.message:
            commands = "; ".join(
                f"temporal operator search-attribute create --name {key.name} --type Keyword"
                for key in SEARCH_ATTRIBUTES
            )
            raise DslError(
                f"namespace {client.namespace!r} lacks the search attributes "
                f"{', '.join(k.name for k in SEARCH_ATTRIBUTES)} ({err.message}); "
                f"register them once: {commands}"
            ) from None
        raise DslError(f"cannot start the run: {err.message}") from None


def ui_link(
    workflow_id: str, run_id: str | None, namespace: str, *, base: str | None = None
) -> str:
    """The run's page in the Web UI: *base*, else `TEMPORAL_UI_URL`, else the dev server's."""
    base = (base or os.environ.get("TEMPORAL_UI_URL") or DEFAULT_UI_URL).rstrip("/")
    link = f"{base}/namespaces/{quote(namespace, safe='')}/workflows/{quote(workflow_id, safe='')}"
    return f"{link}/{quote(run_id, safe='')}/history" if run_id else link


# --------------------------------------------------------------------------- state


def status_name(status: WorkflowExecutionStatus | None) -> str:
    """The spec's spelling of a workflow execution status."""
    return _STATUS_NAMES.get(status, "RUNNING") if status is not None else "RUNNING"


def failure_message(error: BaseException) -> str:
    """One line: the outermost message, and the innermost cause when it adds something.

    ``step 'store' (Store Result) failed: boom`` stays as it is; an error wrapping
    an activity failure gets the activity's own message appended.
    """
    messages: list[str] = []
    current: BaseException | None = error
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if not isinstance(current, WorkflowFailureError):
            text = getattr(current, "message", None) or str(current)
            if text:
                messages.append(" ".join(str(text).split()))
        current = current.cause if isinstance(current, TemporalError) else current.__cause__
    if not messages:
        return type(error).__name__
    outer, inner = messages[0], messages[-1]
    return outer if inner in outer else f"{outer}: {inner}"


_ACTIVITY_CLOSED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "completed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "failed",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "cancelled",
}


class RunHistory:
    """What the history says about activities: attempts and a coarse state per id.

    The `ActivityTaskStarted` event of a retried activity carries its last attempt
    number; it is written when the activity finishes, so running activities get
    theirs from `describe()` instead.
    """

    def __init__(self) -> None:
        self.activity_ids: dict[int, str] = {}
        self.attempts: dict[str, int] = {}
        self.states: dict[str, str] = {}
        self.declared: dict[str, int] = {}
        """Step ids in the order the pinned definition declares them, for display."""

    def feed(self, event: temporalio.api.history.v1.HistoryEvent) -> None:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            with contextlib.suppress(Exception):  # a custom codec: order is cosmetic
                (run,) = temporalio.converter.default().payload_converter.from_payloads(
                    list(payloads)
                )
                definition = run.get("definition", {}) if isinstance(run, dict) else {}
                order = _declared_steps(
                    [*definition.get("steps", []), *definition.get("on_failure", [])]
                )
                self.declared = {step_id: index for index, step_id in enumerate(order)}
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes.activity_id
            self.activity_ids[event.event_id] = scheduled
            self.states[scheduled] = "running"
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            activity_id = self.activity_ids.get(started.scheduled_event_id)
            if activity_id is not None:
                self.attempts[activity_id] = max(self.attempts.get(activity_id, 0), started.attempt)
        elif kind in _ACTIVITY_CLOSED:
            closed = getattr(event, event.WhichOneof("attributes") or "")
            activity_id = self.activity_ids.get(getattr(closed, "scheduled_event_id", -1))
            if activity_id is not None:
                self.states[activity_id] = _ACTIVITY_CLOSED[kind]

    async def read(self, handle: WorkflowHandle[Any, Any], *, follow: bool = False) -> None:
        """Feed every event of the run; with *follow*, keep waiting for new ones."""
        async for event in handle.fetch_history_events(wait_new_event=follow):
            self.feed(event)


def _declared_steps(steps: Iterable[Any]) -> list[str]:
    """Every step id of a normalised definition, nested ones right after their parent."""
    found: list[str] = []
    for step in steps:
        if not isinstance(step, dict) or "id" not in step:
            continue
        found.append(str(step["id"]))
        for branch in step.get("branches") or []:
            if isinstance(branch, dict) and isinstance(branch.get("steps"), list):
                found += _declared_steps(branch["steps"])
        if isinstance(step.get("step"), dict):
            found += _declared_steps([step["step"]])
    return found


def _natural(text: str) -> list[Any]:
    """`item[2]` before `item[10]`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _step_key(activity_id: str, steps: dict[str, Any]) -> str | None:
    """The step an activity belongs to: itself, or `step` for a foreach item `step[3]`."""
    if activity_id in steps:
        return activity_id
    base = activity_id.split("[", 1)[0]
    return base if base in steps else None


def merge_steps(
    query: dict[str, Any] | None,
    history: RunHistory,
    pending_attempts: dict[str, int],
) -> dict[str, dict[str, Any]]:
    """`{id: {status, attempts}}`: the query's states with the server's attempt counts."""
    steps: dict[str, dict[str, Any]]
    if query is not None and isinstance(query.get("steps"), dict):
        steps = {
            str(step_id): {
                "status": str(state.get("status", "pending")),
                "attempts": int(state.get("attempts") or 0),
            }
            for step_id, state in query["steps"].items()
            if isinstance(state, dict)
        }
    else:  # no worker to answer: what the history shows of the activities
        steps = {
            activity_id: {"status": state, "attempts": 0}
            for activity_id, state in history.states.items()
        }
    for source in (history.attempts, pending_attempts):
        for activity_id, attempt in source.items():
            key = _step_key(activity_id, steps)
            if key is not None:
                steps[key]["attempts"] = max(steps[key]["attempts"], attempt)
    # JSON payloads come back with sorted keys: restore the definition's order.
    last = len(history.declared)

    def position(step_id: str) -> tuple[float, list[Any]]:
        declared = history.declared.get(step_id)
        if declared is not None:
            return declared, _natural(step_id)
        # a foreach item `body[3]` goes right after its body step
        return history.declared.get(step_id.split("[", 1)[0], last) + 0.5, _natural(step_id)

    ordered = sorted(steps, key=position)
    return {step_id: steps[step_id] for step_id in ordered}


async def query_status(handle: WorkflowHandle[Any, Any]) -> dict[str, Any] | None:
    try:
        result = await handle.query(STATUS_QUERY, rpc_timeout=_QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError, TemporalError):
        return None
    return result if isinstance(result, dict) else None


async def _describe(
    handle: WorkflowHandle[Any, Any],
) -> temporalio.client.WorkflowExecutionDescription:
    try:
        return await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NotFoundError(f"no run with workflow id {handle.id!r}") from None
        raise DslError(f"cannot describe run {handle.id!r}: {err.message}") from None


async def _outcome(handle: WorkflowHandle[Any, Any], status: str) -> tuple[Any, str | None]:
    """(output, error) of a closed run, decoded by the SDK from its close event."""
    if status == "RUNNING":
        return None, None
    try:
        return await handle.result(), None
    except WorkflowFailureError as err:
        return None, failure_message(err.cause if err.cause is not None else err)
    except TemporalError as err:
        return None, failure_message(err)


async def _snapshot(
    handle: WorkflowHandle[Any, Any], history: RunHistory, *, final: bool
) -> dict[str, Any]:
    description = await _describe(handle)
    status = status_name(description.status)
    query = await query_status(handle)
    pending = {
        activity.activity_id: activity.attempt
        for activity in description.raw_description.pending_activities
    }
    output, error = await _outcome(handle, status) if final else (None, None)
    return {
        "workflow_id": description.id,
        "run_id": description.run_id,
        "status": status,
        "output": output,
        "error": error,
        "steps": merge_steps(query, history, pending),
        "paused": bool(query.get("paused", False)) if query is not None else False,
    }


async def run_status(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    """Spec §5's `status --json` object for the run *handle* names (latest run by id).

    `output` is set once the run completed, `error` (one line) once it ended any
    other way; `steps` comes from the workflow's query when a worker answers it,
    else from the history, with attempt numbers from the server either way.
    """
    history = RunHistory()
    await _describe(handle)  # a clear NotFoundError before anything else
    with contextlib.suppress(RPCError):
        await history.read(handle)
    return await _snapshot(handle, history, final=True)


def run_json(status: dict[str, Any]) -> dict[str, Any]:
    """The `run --json` object: the status object without `paused`."""
    return {key: status[key] for key in RUN_KEYS}


async def wait_for_run(
    handle: WorkflowHandle[Any, Any],
    *,
    on_progress: ProgressCallback | None = None,
    poll_interval: float = 0.5,
) -> dict[str, Any]:
    """Wait until the run ends and return its final `run_status` object.

    While waiting, every *poll_interval* seconds *on_progress* (if given) gets the
    current status object; the history is followed live, so attempt numbers cost
    one long poll rather than a full read per update.
    """
    await _describe(handle)  # NotFoundError for a wrong id, before any waiting
    result = asyncio.ensure_future(handle.result())
    tasks: list[asyncio.Future[Any]] = [result]
    history = RunHistory()
    if on_progress is not None:
        tasks.append(asyncio.ensure_future(history.read(handle, follow=True)))
    try:
        while not result.done():
            if on_progress is not None:
                reported = on_progress(await _snapshot(handle, history, final=False))
                if reported is not None:
                    await reported
            await asyncio.wait({result}, timeout=poll_interval)
        with contextlib.suppress(TemporalError):
            result.result()
        # The history long poll ends with the run; let it, rather than abandon an
        # RPC that the SDK's native thread would complete during interpreter exit.
        await asyncio.wait(tasks, timeout=5)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    final = await run_status(handle)
    if on_progress is not None:
        reported = on_progress(final)
        if reported is not None:
            await reported
    return final


# --------------------------------------------------------------------------- control


def get_handle(client: Client, workflow_id: str) -> WorkflowHandle[Any, Any]:
    """The latest run of *workflow_id*."""
    return client.get_workflow_handle(workflow_id)


def _control_error(workflow_id: str, action: str, err: RPCError) -> DslError:
    if err.status == RPCStatusCode.NOT_FOUND:
        return NotFoundError(f"cannot {action} {workflow_id!r}: no running workflow with that id")
    return DslError(f"cannot {action} {workflow_id!r}: {err.message}")


_NO_PAYLOAD = object()


async def signal_run(
    client: Client, workflow_id: str, name: str, payload: Any = _NO_PAYLOAD
) -> None:
    """Send signal *name* (with one JSON argument, if given); returns once accepted."""
    handle = get_handle(client, workflow_id)
    try:
        if payload is _NO_PAYLOAD:
            await handle.signal(name)
        else:
            await handle.signal(name, payload)
    except RPCError as err:
        raise _control_error(workflow_id, f"signal {name!r} to", err) from None


async def pause_run(client: Client, workflow_id: str) -> None:
    """No new step starts until `resume_run`; running steps finish."""
    await signal_run(client, workflow_id, PAUSE_SIGNAL)


async def resume_run(client: Client, workflow_id: str) -> None:
    await signal_run(client, workflow_id, RESUME_SIGNAL)


async def cancel_run(client: Client, workflow_id: str, *, native: bool = False) -> None:
    """Ask the run to cancel itself: running steps are cancelled, compensation runs,
    and it ends CANCELED. *native* uses Temporal's cancellation request instead."""
    if not native:
        await signal_run(client, workflow_id, CANCEL_SIGNAL)
        return
    try:
        await get_handle(client, workflow_id).cancel()
    except RPCError as err:
        raise _control_error(workflow_id, "cancel", err) from None


async def terminate_run(client: Client, workflow_id: str, *, reason: str | None = None) -> None:
    """End the run at once: no compensation, no cleanup, ends TERMINATED."""
    try:
        await get_handle(client, workflow_id).terminate(reason=reason)
    except RPCError as err:
        raise _control_error(workflow_id, "terminate", err) from None
