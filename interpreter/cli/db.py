"""`tdsl db migrate`, `register`, `definitions`, `runs`: the PostgreSQL registry and run history.

Every command here needs `DATABASE_URL` (exit 2 without it) and talks to the
database through `interpreter.history.store.Store`; a database that does not answer is one
line and exit 1. Lists are rich tables, or exactly one JSON document with `--json`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dsl.errors import (
    ConflictError,
    DefinitionError,
    DslError,
    InputError,
    NotFoundError,
    ServiceError,
)
from interpreter.cli.support import (
    STEP_STYLES,
    add_tenant_option,
    positive_int,
    print_diagnostics,
    print_json,
    tenant_of,
)

if TYPE_CHECKING:
    from interpreter.history.store import Store

__all__ = ["DEFINITION_KEYS", "EVENT_KEYS", "RUN_KEYS", "RUN_SHOW_KEYS", "STEP_KEYS", "register"]

DEFINITION_KEYS = ("name", "version", "sha256", "registered_at", "deprecated_at", "tenant")
"""The keys of each object of `tdsl definitions --json`."""
RUN_KEYS = (
    "workflow_id",
    "run_id",
    "definition",
    "version",
    "status",
    "started_at",
    "ended_at",
    "tenant",
)
"""The keys of each object of `tdsl runs --json`."""
RUN_SHOW_KEYS = (*RUN_KEYS, "input", "output", "error", "continued", "steps")
"""The keys of `tdsl runs show ID --json`; `continued`: how many times the run
continued as new (its `run_id` is then the first run's)."""
STEP_KEYS = ("step_id", "status", "attempts", "started_at", "ended_at", "output", "error")
"""The keys of each object of its `steps`."""
EVENT_KEYS = ("at", "step_id", "attempt", "event", "error")
"""The keys of each object of its `events`, with `--events` (`interpreter.history.timeline`)."""

_NO_URL = "DATABASE_URL is not set; run tdsl dev or point it at PostgreSQL"

_RUN_STYLES = {
    "RUNNING": "yellow",
    "COMPLETED": "green",
    "FAILED": "bold red",
    "CANCELED": "magenta",
    "TERMINATED": "red",
    "TIMED_OUT": "red",
}
_EVENT_STYLES = {**STEP_STYLES, "started": "yellow", "retried": "yellow"}


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add this area's commands to `tdsl`."""
    db = commands.add_parser("db", help="the PostgreSQL database of the registry and run history")
    db_commands = db.add_subparsers(dest="db_command", metavar="COMMAND", parser_class=type(db))
    db_commands.required = True
    migrate = db_commands.add_parser("migrate", help="apply the SQL migrations not applied yet")
    migrate.set_defaults(handler=_migrate)

    store = commands.add_parser(
        "register", help="store definition versions in the registry (a version is immutable)"
    )
    store.add_argument("files", nargs="+", metavar="FILE")
    store.add_argument(
        "--definitions",
        action="append",
        default=[],
        metavar="DIR",
        help="more directories where subworkflow definitions are looked up",
    )
    add_tenant_option(store, "the tenant the definitions belong to")
    store.set_defaults(handler=_register)

    listing = commands.add_parser(
        "definitions",
        help="list the registered definitions; `deprecate` / `undeprecate NAME@VERSION`",
    )
    listing.add_argument("--json", action="store_true", help="print one JSON list")
    add_tenant_option(listing, "only this tenant's definitions")
    listing.set_defaults(handler=_definitions)
    lifecycle = listing.add_subparsers(
        dest="definitions_command", metavar="deprecate|undeprecate", parser_class=type(listing)
    )
    for command, help_text in (
        ("deprecate", "NAME no longer starts this version; pinned it still does, runs replay"),
        ("undeprecate", "undo `deprecate`"),
    ):
        change = lifecycle.add_parser(command, help=help_text)
        change.add_argument("pinned", metavar="NAME@VERSION", type=_pinned_version)
        change.set_defaults(handler=_deprecate, deprecated=command == "deprecate")

    runs = commands.add_parser(
        "runs", help="list recorded runs, latest first; `tdsl runs show ID` shows one"
    )
    runs.add_argument(
        "--status", type=_run_status, metavar="S", help="only runs in this status (e.g. FAILED)"
    )
    runs.add_argument("--definition", metavar="NAME", help="only runs of this definition")
    add_tenant_option(runs, "only this tenant's runs")
    runs.add_argument("--limit", type=positive_int, default=50, metavar="N", help="default 50")
    runs.add_argument("--json", action="store_true", help="print one JSON list")
    runs.set_defaults(handler=_runs)
    runs_commands = runs.add_subparsers(
        dest="runs_command", metavar="show", parser_class=type(runs)
    )
    show = runs_commands.add_parser("show", help="one run with every step")
    show.add_argument("workflow_id", metavar="ID")
    show.add_argument("--run-id", metavar="RUN_ID", help="default the latest run of ID")
    show.add_argument(
        "--events",
        action="store_true",
        help="every step attempt and step start and end, in time order",
    )
    # SUPPRESS: `tdsl runs --json show ID` keeps the flag given before `show`.
    show.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object"
    )
    show.set_defaults(handler=_runs_show)


def _pinned_version(text: str) -> tuple[str, str]:
    name, at, version = text.partition("@")
    if not (name and at and version):
        raise argparse.ArgumentTypeError(f"expected NAME@VERSION, got {text!r}")
    return name, version


def _run_status(text: str) -> str:
    from interpreter.contract import RUN_STATUSES

    value = text.strip().upper().replace("-", "_")
    value = {"CANCELLED": "CANCELED", "TIMEDOUT": "TIMED_OUT"}.get(value, value)
    if value not in RUN_STATUSES:
        raise argparse.ArgumentTypeError(
            f"unknown status {text!r} (one of {', '.join(RUN_STATUSES)})"
        )
    return value


# --------------------------------------------------------------------------- plumbing


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        raise InputError(_NO_URL)
    return url


@contextlib.asynccontextmanager
async def _open_store() -> AsyncIterator[Store]:
    """The store at `DATABASE_URL`; database failures become one-line `DslError`s."""
    import asyncpg

    from interpreter.history.store import Store, redact_url

    url = _database_url()
    where = redact_url(url)
    store = await Store.connect(url)
    try:
        async with store:
            yield store
    except asyncpg.UndefinedTableError:
        raise ServiceError(
            f"the database at {where} has no temporal-dsl tables; run `tdsl db migrate`"
        ) from None
    except DslError:
        raise
    except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as err:
        raise ServiceError(f"lost the connection to PostgreSQL at {where}: {err}") from None
    except asyncpg.PostgresError as err:
        raise ServiceError(f"PostgreSQL at {where}: {' '.join(str(err).split())}") from None


def _console() -> Any:
    from rich.console import Console

    # Piped output is not cut at 80 columns: ids and hashes stay whole and greppable.
    return Console(width=None if sys.stdout.isatty() else 200)


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def _took(started: datetime | None, ended: datetime | None) -> str:
    if started is None or ended is None:
        return ""
    seconds = (ended - started).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def _short(value: Any, limit: int = 100) -> str:
    """An error or value on one line: a failure's message, else compact JSON."""
    if value is None:
        return ""
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        value = value["message"]
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- commands


async def _migrate(args: argparse.Namespace) -> int:
    async with _open_store() as store:
        applied = await store.migrate()
        total = len(await store.migrations())
    for name in applied:
        print(f"applied {name}")
    if not applied:
        print(f"the database is up to date ({total} migration{'s' if total != 1 else ''})")
    return 0


async def _register(args: argparse.Namespace) -> int:
    from dsl.bundle import content_hash
    from dsl.validate import validate_file
    from interpreter.history.registry import registry_catalog

    failed = False
    tenant = tenant_of(args)
    async with _open_store() as store:
        registry = await registry_catalog(store)
        for file in args.files:
            try:
                checked = validate_file(file, definitions=args.definitions, catalog=registry)
            except DefinitionError as exc:
                failed = True
                print_diagnostics(exc)
                continue
            definition = checked.definition
            label = f"{definition.name} {definition.version}"
            try:
                outcome = await store.register(definition, checked.document.text, tenant=tenant)
            except ConflictError as exc:  # another version's content, or tenant
                failed = True
                print(f"tdsl: error: {exc}", file=sys.stderr)
                continue
            if outcome == "registered":
                print(f"registered {label} (sha256 {content_hash(definition)[:12]})")
            else:
                print(f"{label} is already registered with this content; nothing to do")
    return 1 if failed else 0


async def _definitions(args: argparse.Namespace) -> int:
    tenant = tenant_of(args)
    async with _open_store() as store:
        found = await store.definitions(tenant=tenant)
    if args.json:
        print_json([{key: d[key] for key in DEFINITION_KEYS} for d in found])
        return 0
    if not found:
        print("no definitions registered yet; add one with `tdsl register FILE`")
        return 0
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text("registered definitions"), title_justify="left")
    tenants = any(d.get("tenant") for d in found)
    for column in ("name", "version", "sha256", "registered", "description"):
        table.add_column(column)
    if tenants:
        table.add_column("tenant")
    for d in found:
        table.add_row(
            Text(d["name"]),
            Text(d["version"] + (" (deprecated)" if d.get("deprecated_at") else "")),
            Text(d["sha256"][:12]),
            _when(d["registered_at"]),
            Text(_short(d.get("description"), 60)),
            *([Text(d.get("tenant") or "")] if tenants else []),
        )
    _console().print(table)
    return 0


async def _deprecate(args: argparse.Namespace) -> int:
    name, version = args.pinned
    async with _open_store() as store:
        known = await store.deprecate(name, version, deprecated=args.deprecated)
        latest = await store.find_definition(name)
    if not known:
        raise NotFoundError(f"{name}@{version} is not registered (see `tdsl definitions`)")
    what = "deprecated" if args.deprecated else "no longer deprecated"
    now = f"`{name}` now starts {latest['version']}" if latest else f"`{name}` starts no version"
    print(f"{name}@{version} is {what}; {now} (pinned, every version still starts)")
    return 0


async def _runs(args: argparse.Namespace) -> int:
    tenant = tenant_of(args)
    async with _open_store() as store:
        found = await store.runs(
            status=args.status, definition=args.definition, tenant=tenant, limit=args.limit
        )
    if args.json:
        print_json([{key: run[key] for key in RUN_KEYS} for run in found])
        return 0
    if not found:
        filtered = args.status or args.definition or tenant
        print("no runs recorded" + (" that match" if filtered else ""))
        return 0
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"runs (latest {args.limit})"), title_justify="left")
    tenants = any(run.get("tenant") for run in found)
    for column in ("workflow id", "definition", "version", "status", "started", "took"):
        table.add_column(column, no_wrap=column == "workflow id")
    if tenants:
        table.add_column("tenant")
    for run in found:
        table.add_row(
            Text(run["workflow_id"]),
            Text(run["definition"]),
            Text(run["version"]),
            Text(run["status"], style=_RUN_STYLES.get(run["status"], "")),
            _when(run["started_at"]),
            _took(run["started_at"], run["ended_at"]),
            *([Text(run.get("tenant") or "")] if tenants else []),
        )
    _console().print(table)
    return 0


async def _runs_show(args: argparse.Namespace) -> int:
    events: list[dict[str, Any]] | None = None
    async with _open_store() as store:
        run = await store.run(args.workflow_id, args.run_id)
        if run is not None and args.events:
            from interpreter.history.timeline import run_events

            events = await run_events(store, run)
    if run is None:
        which = f"run {args.run_id!r} of " if args.run_id else ""
        raise NotFoundError(f"no {which}workflow id {args.workflow_id!r} in the run history")
    if getattr(args, "json", False):
        shown = {key: run[key] for key in RUN_SHOW_KEYS if key != "steps"}
        shown["steps"] = [{key: step[key] for key in STEP_KEYS} for step in run["steps"]]
        if events is not None:
            shown["events"] = [{key: event[key] for key in EVENT_KEYS} for event in events]
        print_json(shown)
        return 0
    _print_run(run)
    if events is not None:
        _print_events(events)
    return 0


def _print_events(events: list[dict[str, Any]]) -> None:
    """The `--events` table: times to the millisecond, as retries are often that close."""
    from rich.table import Table
    from rich.text import Text

    console = _console()
    if not events:
        console.print("no events recorded")
        return
    table = Table(title=Text("events"), title_justify="left")
    for column in ("time", "step", "attempt", "event", "error"):
        table.add_column(column, justify="right" if column == "attempt" else "left")
    for event in events:
        at = event["at"]
        table.add_row(
            at.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if at is not None else "",
            Text(event["step_id"]),
            str(event["attempt"] or ""),
            Text(event["event"], style=_EVENT_STYLES.get(event["event"], "")),
            Text(_short(event["error"]), style="red"),
        )
    console.print(table)


def _print_run(run: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    console = _console()
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("workflow id", Text(run["workflow_id"]))
    summary.add_row("run id", Text(run["run_id"]))
    if run.get("continued"):
        summary.add_row("continued", Text(f"as new {run['continued']} time(s), one logical run"))
    summary.add_row("definition", Text(f"{run['definition']} {run['version']}"))
    summary.add_row("status", Text(run["status"], style=_RUN_STYLES.get(run["status"], "")))
    summary.add_row("started", _when(run["started_at"]))
    if run["ended_at"] is not None:
        took = _took(run["started_at"], run["ended_at"])
        summary.add_row("ended", _when(run["ended_at"]) + (f"  ({took})" if took else ""))
    if run["error"]:
        summary.add_row("error", Text(str(run["error"]), style="red"))
    summary.add_row("input", Text(_short(run["input"], 160)))
    if run["output"] is not None:
        summary.add_row("output", Text(_short(run["output"], 160)))
    console.print(summary)
    if not run["steps"]:
        console.print("no steps recorded")
        return
    steps = Table(title=Text("steps"), title_justify="left")
    for column in ("step", "status", "attempts", "started", "took", "error"):
        steps.add_column(column, justify="right" if column == "attempts" else "left")
    for step in run["steps"]:
        steps.add_row(
            Text(step["step_id"]),
            Text(step["status"], style=STEP_STYLES.get(step["status"], "")),
            str(step["attempts"] or ""),
            _when(step["started_at"]),
            _took(step["started_at"], step["ended_at"]),
            Text(_short(step["error"]), style="red"),
        )
    console.print(steps)
