"""`tdsl run|status|signal|pause|resume|cancel|terminate`: submit, watch and steer runs.

The library behind them is `interpreter.client`; here are only arguments, printing
and the live progress view.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dsl.models import MAX_STEP_ID, STEP_ID_PATTERN
from dsl.statuses import ENDED_STEP_STATUSES
from dsl.validate import validate_file
from interpreter.cli.support import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    STEP_STYLES,
    activity_names_of,
    add_connection_options,
    add_definition_options,
    add_task_queue_option,
    add_tenant_option,
    client_for,
    print_json,
    task_queue_of,
    tenant_of,
)

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle

    from interpreter.contract import RunInput


def register(commands: Any) -> None:
    """`run`, `status`, `signal`, `pause`, `resume`, `cancel`, `terminate`."""
    run = commands.add_parser(
        "run", help="validate a definition (a file, or a registered NAME[@VERSION]) and start a run"
    )
    run.add_argument("file", metavar="FILE|NAME[@VERSION]")
    run.add_argument("--input", metavar="JSON|@FILE", help="run input as JSON, or @file.json")
    run.add_argument(
        "--id", dest="workflow_id", metavar="ID", help="workflow id (default NAME-xxxxxxxx)"
    )
    run.add_argument("--wait", action="store_true", help="wait for the end, showing step progress")
    run.add_argument(
        "--json", action="store_true", help="wait, then print one JSON object with the result"
    )
    add_task_queue_option(run)
    add_tenant_option(run, "the tenant the run, its children and its activities belong to")
    add_definition_options(run)
    add_connection_options(run)
    # Nothing is started when the definition is invalid: exit 2, like bad input.
    run.set_defaults(handler=_run, definition_exit_code=EXIT_USAGE, uses_temporal=True)

    status = commands.add_parser("status", help="show a run's state and steps")
    status.add_argument("workflow_id", metavar="ID")
    status.add_argument("--wait", action="store_true", help="follow the run until it ends")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    add_connection_options(status)
    status.set_defaults(handler=_status, uses_temporal=True)

    signal = commands.add_parser("signal", help="send a signal to a run (for a `signal` step)")
    signal.add_argument("workflow_id", metavar="ID")
    signal.add_argument("name", metavar="NAME")
    signal.add_argument("--payload", metavar="JSON|@FILE", help="the signal's payload")
    add_connection_options(signal)
    signal.set_defaults(handler=_signal, uses_temporal=True)

    for name, help_text in (
        ("pause", "start no new step until resumed; running steps finish"),
        ("resume", "resume a paused run"),
    ):
        control = commands.add_parser(name, help=help_text)
        control.add_argument("workflow_id", metavar="ID")
        add_connection_options(control)
        control.set_defaults(handler=_control, uses_temporal=True)

    cancel = commands.add_parser(
        "cancel", help="cancel a run: running steps are cancelled, compensation runs"
    )
    cancel.add_argument("workflow_id", metavar="ID")
    how = cancel.add_mutually_exclusive_group()
    how.add_argument(
        "--native", action="store_true", help="use Temporal's cancellation request, not the signal"
    )
    how.add_argument(
        "--step",
        metavar="STEP",
        type=_step_id,
        help="cancel only this running step (with all inside it); the run goes on",
    )
    add_connection_options(cancel)
    cancel.set_defaults(handler=_control, uses_temporal=True)

    terminate = commands.add_parser("terminate", help="end a run at once, without compensation")
    terminate.add_argument("workflow_id", metavar="ID")
    terminate.add_argument("--reason", metavar="R", help="recorded in the run's history")
    add_connection_options(terminate)
    terminate.set_defaults(handler=_control, uses_temporal=True)


def _step_id(text: str) -> str:
    """A step id as definitions spell them (`--step`), else a usage error (exit 2)."""
    if len(text) > MAX_STEP_ID or not re.fullmatch(STEP_ID_PATTERN, text):
        raise argparse.ArgumentTypeError(f"not a step id: {text!r}")
    return text


def _exit_for(state: dict[str, Any]) -> int:
    return EXIT_OK if state["status"] == "COMPLETED" else EXIT_FAILED


def _steps_table(state: dict[str, Any]) -> Any:
    """Steps as a rich table; ids and titles as plain `Text`, never parsed as markup."""
    from rich.table import Table
    from rich.text import Text

    title = f"{state['workflow_id']}: {state['status']}"
    if state.get("paused"):
        title += " (paused)"
    if state.get("continued"):
        count = state["continued"]
        title += f", continued as new {'once' if count == 1 else f'{count} times'}"
    table = Table(title=Text(title), title_justify="left")
    table.add_column("step")
    table.add_column("status")
    table.add_column("attempts", justify="right")
    for step_id, step in state["steps"].items():
        style = STEP_STYLES.get(step["status"], "")
        table.add_row(Text(step_id), Text(step["status"], style=style), str(step["attempts"] or ""))
    return table


class _ProgressView:
    """Live step progress: a table redrawn in place on a terminal, else one line per change.

    Plain lines keep logs and CI output readable and greppable; the table is what a
    person at a terminal wants. The lines follow the order things happened: the
    changes one poll brings are printed by the time the status query gives them
    (`started_at` for `running`, `ended_at` for an end), not in definition order,
    and a step's state is printed once: `running` once per attempt (`running
    (attempt 2)` is new), its end once, nothing after its end.
    """

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self.tty = sys.stdout.isatty()
        self.live = Live(console=self.console, refresh_per_second=4) if self.tty else None
        self.shown: dict[str, tuple[str, int]] = {}
        """Step id → (status, attempt) of the last line printed for it."""
        self.paused = False

    def __enter__(self) -> _ProgressView:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def update(self, state: dict[str, Any]) -> None:
        if self.live is not None:
            self.live.update(_steps_table(state))
            return
        if bool(state.get("paused")) != self.paused:
            self.paused = not self.paused
            print("run paused" if self.paused else "run resumed", flush=True)
        times = state.get("times") or {}
        changes: list[tuple[float, int, str]] = []
        for position, (step_id, step) in enumerate(state["steps"].items()):
            line = self._change(step_id, step["status"], max(1, int(step["attempts"] or 0)))
            if line is not None:
                moment = _moment(step["status"], int(step["attempts"] or 0), times.get(step_id))
                changes.append((moment, position, line))
        for _, _, line in sorted(changes):
            print(line, flush=True)

    def _change(self, step_id: str, status: str, attempt: int) -> str | None:
        """The line for a state not printed yet, or None (pending, seen, or stale)."""
        if status == "pending":
            return None
        shown = self.shown.get(step_id)
        if shown is not None and (
            shown[0] in ENDED_STEP_STATUSES  # nothing after the end: a later answer is stale
            or (
                status not in ENDED_STEP_STATUSES
                and (attempt < shown[1] or (status, attempt) == shown)
            )
        ):
            return None
        self.shown[step_id] = (status, attempt)
        suffix = f" (attempt {attempt})" if attempt > 1 else ""
        return f"  {step_id}: {status}{suffix}"


"""Step statuses a step ends with; after one, nothing more is printed for it."""


def _moment(status: str, attempts: int, times: dict[str, Any] | None) -> float:
    """When a step reached *status*, as the status query says; unknown sorts last.

    A retry's start is not known to the workflow (`started_at` is the first attempt's),
    so `running (attempt n)` counts as unknown too, as does any other state on the way
    (not `running`, not an end).
    """
    if times is None or (
        status not in ENDED_STEP_STATUSES and (status != "running" or attempts > 1)
    ):
        return math.inf
    text = times.get("ended_at") if status in ENDED_STEP_STATUSES else None
    text = text or times.get("started_at")
    try:
        return datetime.fromisoformat(text).timestamp() if isinstance(text, str) else math.inf
    except ValueError:
        return math.inf


def _print_outcome(state: dict[str, Any]) -> None:
    print(f"status: {state['status']}")
    if state["status"] == "COMPLETED":
        print("output:")
        print(json.dumps(state["output"], indent=2, ensure_ascii=False))
    elif state["error"]:
        print(f"error: {state['error']}")


async def _watch(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    from interpreter.client.status import wait_for_run

    try:
        with _ProgressView() as view:
            state = await wait_for_run(handle, on_progress=view.update)
    except asyncio.CancelledError:  # Ctrl-C: only the watching stops
        print(
            f"tdsl: the run goes on; see `tdsl status {handle.id}`, stop it with `tdsl cancel`",
            file=sys.stderr,
        )
        raise
    _print_outcome(state)
    return state


async def _run(args: argparse.Namespace) -> int:
    from interpreter.client.submit import (
        check_workflow_id,
        is_definition_file,
        prepare_registered,
        prepare_run,
    )
    from interpreter.contract import parse_definition_type
    from interpreter.tracing import cli_span

    if args.workflow_id is not None:
        check_workflow_id(args.workflow_id)
    tenant_of(args)  # a malformed tenant is exit 2 before anything is read
    from_file = is_definition_file(args.file)
    if from_file:
        run_input, _ = prepare_run(
            args.file,
            input_text=args.input,
            definitions=args.definitions,
            activities=activity_names_of(args.activities),
        )
    else:
        name, version = parse_definition_type(args.file)
        run_input, _ = prepare_registered(name, version, input_text=args.input)
    client = await client_for(args)
    definition = str(run_input.definition["name"])
    with cli_span(f"tdsl run {definition}", {"tdsl.definition": definition}):
        return await _start_and_follow(args, client, run_input, from_file)


async def _start_and_follow(
    args: argparse.Namespace, client: Client, run_input: RunInput, from_file: bool
) -> int:
    """Start the run and report it as the flags ask (inside the command's span)."""
    from interpreter.client.status import run_json, ui_link, wait_for_run
    from interpreter.client.submit import start_run

    if from_file:
        await _check_actions_against_workers(args, client, run_input)
    handle = await start_run(
        client,
        run_input,
        workflow_id=args.workflow_id,
        task_queue=task_queue_of(args),
        tenant=tenant_of(args),
    )
    if args.json:
        async with _no_worker_warning(client, handle):
            state = await wait_for_run(handle)
        print_json(run_json(state))
        return _exit_for(state)
    print(f"workflow id: {handle.id}")
    print(f"UI: {ui_link(handle.id, handle.result_run_id, client.namespace)}", flush=True)
    if not args.wait:
        return EXIT_OK
    async with _no_worker_warning(client, handle):
        return _exit_for(await _watch(handle))


def _no_worker_warning(client: Any, handle: WorkflowHandle[Any, Any]) -> Any:
    """While a command waits for a run: one line on stderr if no worker polls its queue."""
    from interpreter.client.pollers import warning_without_workers

    def say(message: str) -> None:
        print(f"tdsl: warning: {message}", file=sys.stderr, flush=True)

    return warning_without_workers(client, handle, say)


async def _check_actions_against_workers(
    args: argparse.Namespace, client: Any, run_input: Any
) -> None:
    """Exit 2 (positions included) when the workers polling the run's task queue
    announced their activities and an `action` is not among them; silent when that
    cannot be told (`interpreter.worker_registry`)."""
    database_url = os.environ.get("DATABASE_URL")
    if args.activities is not None or not database_url:
        return  # --activities was checked already; without a database we cannot tell
    if _mentions_key(run_input.definition, "task_queue"):
        return  # steps on other task queues have other workers
    from interpreter.client.submit import registry_catalog
    from interpreter.worker_registry import registered_activities

    names = await registered_activities(client, database_url, task_queue_of(args))
    if names is not None:
        catalog = registry_catalog()
        validate_file(args.file, definitions=args.definitions, catalog=catalog, activities=names)


def _mentions_key(value: Any, key: str) -> bool:
    if isinstance(value, dict):
        return key in value or any(_mentions_key(v, key) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_key(v, key) for v in value)
    return False


async def _status(args: argparse.Namespace) -> int:
    from interpreter.client.control import get_handle
    from interpreter.client.status import run_status, ui_link, wait_for_run

    client = await client_for(args)
    handle = get_handle(client, args.workflow_id)
    if args.json and args.wait:
        async with _no_worker_warning(client, handle):
            state = await wait_for_run(handle)
        print_json(state)
        return _exit_for(state)
    if args.json:
        print_json(await run_status(handle))
        return EXIT_OK
    if args.wait:
        async with _no_worker_warning(client, handle):
            return _exit_for(await _watch(handle))
    from rich.console import Console

    state = await run_status(handle)
    Console().print(_steps_table(state))
    _print_outcome(state)
    print(f"UI: {ui_link(state['workflow_id'], state['run_id'], client.namespace)}")
    return EXIT_OK


async def _signal(args: argparse.Namespace) -> int:
    from interpreter.client.control import signal_run
    from interpreter.client.submit import parse_json_argument

    payload = (
        parse_json_argument(args.payload, what="--payload") if args.payload is not None else None
    )
    await signal_run(await client_for(args), args.workflow_id, args.name, payload)
    print(f"signal {args.name!r} sent to {args.workflow_id}")
    return EXIT_OK


async def _control(args: argparse.Namespace) -> int:
    """pause, resume, cancel, terminate: one request, exit 0 once the server took it."""
    from interpreter import client as runs

    client = await client_for(args)
    if args.command == "pause":
        await runs.pause_run(client, args.workflow_id)
    elif args.command == "resume":
        await runs.resume_run(client, args.workflow_id)
    elif args.command == "cancel":
        await runs.cancel_run(client, args.workflow_id, native=args.native, step=args.step)
    else:
        await runs.terminate_run(client, args.workflow_id, reason=args.reason)
    done = {
        "pause": "pause requested",
        "resume": "resume requested",
        "cancel": "cancellation requested",
    }
    if args.command == "cancel" and args.step is not None:
        print(f"cancellation of step {args.step!r} requested: {args.workflow_id}")
        return EXIT_OK
    print(f"{done.get(args.command, 'terminated')}: {args.workflow_id}")
    return EXIT_OK
