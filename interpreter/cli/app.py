"""`tdsl`: the command line. Thin: each command calls library code.

One handler turns our errors into messages and exit codes, so no input — however
broken — ends in a traceback: definition problems print ``FILE:LINE:COL: error: …``
(exit 1, or 2 where a run was refused), bad command-line input prints one line
(exit 2). Commands that talk to Temporal run their coroutine with `asyncio.run`;
the library behind them is `interpreter.client` (runs) and `interpreter.worker`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from dsl.catalog import Catalog
from dsl.errors import DefinitionError, DslError, InputError
from dsl.render import FORMATS, render
from dsl.schema import schema_text
from dsl.validate import validate_file
from interpreter.cli import db as cli_db
from interpreter.cli import schedules as cli_schedules
from interpreter.cli.support import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    STEP_STYLES,
    activity_names_of,
    add_connection_options,
    add_definition_options,
    client_for,
    positive_int,
    print_diagnostics,
    print_json,
    task_queue_of,
)

if TYPE_CHECKING:
    from temporalio.client import WorkflowHandle

    from activities.http_guard import HttpAllowList
    from interpreter.dev.databases import DevDatabases
    from interpreter.payloads import PayloadStore

__all__ = ["main"]


Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tdsl", description="Declarative YAML workflows on Temporal.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    validate = commands.add_parser("validate", help="check definitions; one line per problem")
    validate.add_argument("files", nargs="+", metavar="FILE")
    add_definition_options(validate)
    validate.set_defaults(handler=_validate)

    graph = commands.add_parser("graph", help="print a definition's DAG")
    graph.add_argument("file", metavar="FILE")
    graph.add_argument("--format", choices=FORMATS, default="mermaid")
    add_definition_options(graph)
    graph.set_defaults(handler=_graph)

    schema = commands.add_parser("schema", help="print the JSON Schema of the language")
    schema.set_defaults(handler=_schema)

    _add_run_commands(commands)
    _add_server_commands(commands)
    return parser


def _add_run_commands(commands: Any) -> None:
    run = commands.add_parser("run", help="validate a definition and start a run")
    run.add_argument("file", metavar="FILE")
    run.add_argument("--input", metavar="JSON|@FILE", help="run input as JSON, or @file.json")
    run.add_argument(
        "--id", dest="workflow_id", metavar="ID", help="workflow id (default NAME-xxxxxxxx)"
    )
    run.add_argument("--wait", action="store_true", help="wait for the end, showing step progress")
    run.add_argument(
        "--json", action="store_true", help="wait, then print one JSON object with the result"
    )
    run.add_argument(
        "--task-queue", metavar="Q", help="default TEMPORAL_TASK_QUEUE or temporal-dsl"
    )
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
    cancel.add_argument(
        "--native", action="store_true", help="use Temporal's cancellation request, not the signal"
    )
    add_connection_options(cancel)
    cancel.set_defaults(handler=_control, uses_temporal=True)

    terminate = commands.add_parser("terminate", help="end a run at once, without compensation")
    terminate.add_argument("workflow_id", metavar="ID")
    terminate.add_argument("--reason", metavar="R", help="recorded in the run's history")
    add_connection_options(terminate)
    terminate.set_defaults(handler=_control, uses_temporal=True)


def _add_server_commands(commands: Any) -> None:
    worker = commands.add_parser("worker", help="run a worker for the interpreter and activities")
    worker.add_argument(
        "--activities",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module of @activity.defn functions to register too",
    )
    worker.add_argument(
        "--task-queue", metavar="Q", help="default TEMPORAL_TASK_QUEUE or temporal-dsl"
    )
    worker.add_argument("--max-concurrent-activities", type=positive_int, metavar="N", default=None)
    worker.add_argument(
        "--http-allow",
        action="append",
        default=[],
        metavar="HOSTS",
        help="internal hosts, host:ports, IPs or CIDR ranges http.request may reach "
        "(comma-separated, repeatable; added to TDSL_HTTP_ALLOW)",
    )
    add_connection_options(worker)
    worker.set_defaults(handler=_worker, uses_temporal=True)

    dev = commands.add_parser(
        "dev", help="a local Temporal dev server with the Web UI, PostgreSQL and a worker"
    )
    dev.add_argument("--port", type=_port, default=7233, help="gRPC port (default 7233)")
    dev.add_argument("--ui-port", type=_port, default=8233, help="Web UI port (default 8233)")
    dev.add_argument("--state-dir", default=".tdsl", metavar="DIR", help="default .tdsl")
    dev.add_argument(
        "--activities", action="append", default=[], metavar="MODULE", help="as for `worker`"
    )
    dev.add_argument(
        "--no-postgres", action="store_true", help="do not start the embedded PostgreSQL"
    )
    dev.add_argument(
        "--http-allow", action="append", default=[], metavar="HOSTS", help="as for `worker`"
    )
    dev.set_defaults(handler=_dev, uses_temporal=True)

    cli_db.register(commands)
    cli_schedules.register(commands)


def _port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return value


def _validate(args: argparse.Namespace) -> int:
    names = activity_names_of(args.activities)
    failed = False
    for file in args.files:
        try:
            checked = validate_file(
                file, definitions=args.definitions, catalog=_registry(), activities=names
            )
        except DefinitionError as exc:
            failed = True
            print_diagnostics(exc)
            continue
        definition = checked.definition
        steps = sum(len(scope.steps) for scope in checked.graph.scopes.values())
        print(f"{file}: ok ({definition.name} {definition.version}, {steps} steps)")
    return EXIT_FAILED if failed else EXIT_OK


def _registry() -> Catalog | None:
    """The PostgreSQL registry when DATABASE_URL is set, consulted only for unknown names."""
    from interpreter.client.submit import registry_catalog

    return registry_catalog()


def _graph(args: argparse.Namespace) -> int:
    checked = validate_file(
        args.file,
        definitions=args.definitions,
        catalog=_registry(),
        activities=activity_names_of(args.activities),
    )
    sys.stdout.write(render(checked.graph, args.format))
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return EXIT_OK


# --------------------------------------------------------------------------- runs


def _exit_for(state: dict[str, Any]) -> int:
    return EXIT_OK if state["status"] == "COMPLETED" else EXIT_FAILED


def _steps_table(state: dict[str, Any]) -> Any:
    """Steps as a rich table; ids and titles as plain `Text`, never parsed as markup."""
    from rich.table import Table
    from rich.text import Text

    title = f"{state['workflow_id']}: {state['status']}"
    if state.get("paused"):
        title += " (paused)"
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
    person at a terminal wants.
    """

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self.tty = sys.stdout.isatty()
        self.live = Live(console=self.console, refresh_per_second=4) if self.tty else None
        self.seen: dict[str, tuple[str, int]] = {}
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
        for step_id, step in state["steps"].items():
            now = (step["status"], int(step["attempts"] or 0))
            if self.seen.get(step_id) == now or (step_id not in self.seen and now[0] == "pending"):
                self.seen.setdefault(step_id, now)
                continue
            self.seen[step_id] = now
            attempt = f" (attempt {now[1]})" if now[1] > 1 else ""
            print(f"  {step_id}: {now[0]}{attempt}", flush=True)


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


def _run(args: argparse.Namespace) -> int:
    from interpreter.client.submit import check_workflow_id, prepare_run

    if args.workflow_id is not None:
        check_workflow_id(args.workflow_id)
    run_input, _ = prepare_run(
        args.file,
        input_text=args.input,
        definitions=args.definitions,
        activities=activity_names_of(args.activities),
    )
    return asyncio.run(_run_async(args, run_input))


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


async def _run_async(args: argparse.Namespace, run_input: Any) -> int:
    from interpreter.client.status import run_json, ui_link, wait_for_run
    from interpreter.client.submit import start_run

    client = await client_for(args)
    await _check_actions_against_workers(args, client, run_input)
    handle = await start_run(
        client, run_input, workflow_id=args.workflow_id, task_queue=task_queue_of(args)
    )
    if args.json:
        state = await wait_for_run(handle)
        print_json(run_json(state))
        return _exit_for(state)
    print(f"workflow id: {handle.id}")
    print(f"UI: {ui_link(handle.id, handle.result_run_id, client.namespace)}", flush=True)
    if not args.wait:
        return EXIT_OK
    return _exit_for(await _watch(handle))


def _status(args: argparse.Namespace) -> int:
    return asyncio.run(_status_async(args))


async def _status_async(args: argparse.Namespace) -> int:
    from interpreter.client.control import get_handle
    from interpreter.client.status import run_status, ui_link, wait_for_run

    client = await client_for(args)
    handle = get_handle(client, args.workflow_id)
    if args.json:
        state = await (wait_for_run(handle) if args.wait else run_status(handle))
        print_json(state)
        return _exit_for(state) if args.wait else EXIT_OK
    if args.wait:
        return _exit_for(await _watch(handle))
    from rich.console import Console

    state = await run_status(handle)
    Console().print(_steps_table(state))
    _print_outcome(state)
    print(f"UI: {ui_link(state['workflow_id'], state['run_id'], client.namespace)}")
    return EXIT_OK


def _signal(args: argparse.Namespace) -> int:
    from interpreter.client.control import signal_run
    from interpreter.client.submit import parse_json_argument

    payload = (
        parse_json_argument(args.payload, what="--payload") if args.payload is not None else None
    )

    async def send() -> None:
        await signal_run(await client_for(args), args.workflow_id, args.name, payload)

    asyncio.run(send())
    print(f"signal {args.name!r} sent to {args.workflow_id}")
    return EXIT_OK


def _control(args: argparse.Namespace) -> int:
    """pause, resume, cancel, terminate: one request, exit 0 once the server took it."""
    from interpreter import client as runs

    async def send() -> None:
        client = await client_for(args)
        if args.command == "pause":
            await runs.pause_run(client, args.workflow_id)
        elif args.command == "resume":
            await runs.resume_run(client, args.workflow_id)
        elif args.command == "cancel":
            await runs.cancel_run(client, args.workflow_id, native=args.native)
        else:
            await runs.terminate_run(client, args.workflow_id, reason=args.reason)

    asyncio.run(send())
    done = {
        "pause": "pause requested",
        "resume": "resume requested",
        "cancel": "cancellation requested",
    }
    print(f"{done.get(args.command, 'terminated')}: {args.workflow_id}")
    return EXIT_OK


# --------------------------------------------------------------------------- servers


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for chatty in ("httpx", "pgserver"):  # every request / every initdb line
        logging.getLogger(chatty).setLevel(logging.WARNING)


def _http_allow(args: argparse.Namespace) -> HttpAllowList:
    """`TDSL_HTTP_ALLOW` plus every `--http-allow`; a bad entry is InputError (exit 2)."""
    from activities.http_guard import HttpAllowList

    return HttpAllowList.from_env() | HttpAllowList.parse(args.http_allow, source="--http-allow")


def _worker(args: argparse.Namespace) -> int:
    activity_names_of(args.activities)  # a bad module is exit 2 before connecting
    http_allow = _http_allow(args)
    _configure_logging()

    async def serve() -> None:
        from interpreter.worker import run_worker

        await run_worker(
            await client_for(args),
            task_queue=task_queue_of(args),
            activity_modules=args.activities,
            max_concurrent_activities=args.max_concurrent_activities,
            http_allow=http_allow,
        )

    asyncio.run(serve())
    return EXIT_OK


@contextlib.contextmanager
def _worker_errors() -> Iterator[None]:
    from interpreter.worker import worker_failure

    try:
        yield
    except RuntimeError as err:
        raise worker_failure(err) from err


def _port_taken(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError:
            return True
    return False


@contextlib.contextmanager
def _dev_postgres(state_dir: Path, enabled: bool) -> Iterator[DevDatabases | None]:
    """The embedded PostgreSQL with its two roles (history, `sql.query`), unless
    DATABASE_URL already names a database; a failure to start it is a warning, not
    the end of `tdsl dev`."""
    from interpreter.dev.databases import DevDatabases, provision_databases

    if not enabled or os.environ.get("DATABASE_URL"):
        url = os.environ.get("DATABASE_URL")
        yield DevDatabases(url, os.environ.get("TDSL_SQL_URL", "")) if url else None
        return
    from interpreter.dev.servers import EmbeddedPostgres

    server = EmbeddedPostgres(state_dir / "postgres")
    try:
        server.start()
        databases = asyncio.run(provision_databases(server.url))
    except DslError as exc:
        server.stop()
        first = str(exc).splitlines()[0]
        print(
            f"tdsl: warning: PostgreSQL not started ({first}); no run history, sql.query off",
            file=sys.stderr,
        )
        yield None
        return
    try:
        yield databases
    finally:
        server.stop()


def _dev(args: argparse.Namespace) -> int:
    activity_names_of(args.activities)
    _http_allow(args)  # a bad entry is exit 2 before anything starts
    if args.port == args.ui_port:
        raise InputError("--port and --ui-port must differ")
    ip = "127.0.0.1"
    for flag, port in (("--port", args.port), ("--ui-port", args.ui_port)):
        if _port_taken(ip, port):
            raise DslError(
                f"port {port} on {ip} is already in use (another Temporal server or `tdsl dev`?); "
                f"stop it or choose another with {flag}"
            )
    _configure_logging()
    state_dir = Path(args.state_dir)
    with _dev_postgres(state_dir, not args.no_postgres) as databases:
        asyncio.run(_dev_async(args, state_dir, databases))
    return EXIT_OK


def _dev_payloads(state_dir: Path) -> tuple[PayloadStore | None, str, str | None]:
    """`tdsl dev` keeps large payloads in files under its state dir (unless
    TDSL_PAYLOAD_STORE says otherwise): the store, a line to print, and the setting
    other terminals need when they would not find that store by themselves."""
    from interpreter.payloads import (
        STORE_VARIABLE,
        FileStore,
        describe_store,
        payload_store_from_env,
        threshold_from_env,
    )

    explicit = bool(os.environ.get(STORE_VARIABLE, "").strip())
    store = payload_store_from_env() if explicit else FileStore(state_dir / "payloads", create=True)
    setting = describe_store(store)
    if store is None:
        line = "off: a value over 2 MiB fails its step"
    else:
        line = f"over {threshold_from_env() // 1024} KiB kept in {setting}"
    found = describe_store(payload_store_from_env())  # what `tdsl run` here would use
    return store, line, None if found == setting else f"{STORE_VARIABLE}={setting}"


async def _dev_async(
    args: argparse.Namespace, state_dir: Path, databases: DevDatabases | None
) -> None:
    from interpreter.client.connection import DEFAULT_ADDRESS, DEFAULT_TASK_QUEUE, task_queue
    from interpreter.dev.servers import DevServer
    from interpreter.payloads import with_payload_codec
    from interpreter.worker import running_worker, stop_on_signals

    payloads, payloads_line, payloads_env = _dev_payloads(state_dir)
    stop = asyncio.Event()
    server = DevServer(state_dir, port=args.port, ui_port=args.ui_port)
    queue = task_queue()
    with stop_on_signals(stop), _worker_errors():
        async with (
            server,
            running_worker(
                with_payload_codec(server.client, payloads),  # after `server` has started
                task_queue=queue,
                activity_modules=args.activities,
                database_url=databases.history_url if databases else None,
                sql_url=(databases.sql_url or None) if databases else None,
                http_allow=_http_allow(args),
            ),
        ):
            env = []
            if server.address != DEFAULT_ADDRESS.replace("localhost", "127.0.0.1"):
                env.append(f"TEMPORAL_ADDRESS={server.address}")
            if args.ui_port != 8233:
                env.append(f"TEMPORAL_UI_URL={server.ui_url}")
            if queue != DEFAULT_TASK_QUEUE:
                env.append(f"TEMPORAL_TASK_QUEUE={queue}")
            if payloads_env:
                env.append(payloads_env)
            prefix = " ".join(env) + (" " if env else "")
            print(
                f"Temporal dev server  {server.address} (namespace {server.namespace}), state in {state_dir}/"
            )
            print(f"Web UI               {server.ui_url}")
            database_url = databases.history_url if databases else None
            if database_url:
                print(f"PostgreSQL           {database_url}")
            if databases and databases.sql_url:
                print(f"sql.query            {databases.sql_url} (TDSL_SQL_URL)")
            print(f"Worker               task queue {queue!r}")
            print(f"Large payloads       {payloads_line}")
            print(f"Try                  {prefix}tdsl run definitions/sample-workflow.json --wait")
            if database_url:
                print(f"Run history          DATABASE_URL='{database_url}' tdsl runs")
            print("Ctrl-C stops the worker, then the server.", flush=True)
            await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tdsl` console script; returns the exit code.

    Called as the program (*argv* None) after a command that used Temporal, it
    leaves with `os._exit`: the SDK's native threads can abort CPython's own
    shutdown ("PyGILState_Release", temporalio/sdk-python#300), which would turn a
    clean exit code into 134. Everything of ours is stopped and flushed by then.
    """
    args = build_parser().parse_args(argv)
    code = _dispatch(args)
    if argv is None and getattr(args, "uses_temporal", False):
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    return code


def _dispatch(args: argparse.Namespace) -> int:
    handler: Handler = args.handler
    try:
        return handler(args)
    except DefinitionError as exc:
        print_diagnostics(exc)
        return getattr(args, "definition_exit_code", EXIT_FAILED)
    except InputError as exc:
        print(f"tdsl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DslError as exc:
        print(f"tdsl: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("tdsl: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug of ours: still one line, the traceback on request
        if os.environ.get("TDSL_DEBUG"):
            raise
        print(
            f"tdsl: internal error: {type(exc).__name__}: {exc} (set TDSL_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 70


def run() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    run()
