"""`tdsl worker` and `tdsl dev`: the processes that run definitions."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsl.errors import ConfigurationError, DslError, InputError
from interpreter.cli.support import (
    EXIT_OK,
    activity_names_of,
    add_connection_options,
    add_task_queue_option,
    client_for,
    positive_int,
    task_queue_of,
)

if TYPE_CHECKING:
    from activities.http_guard import HttpAllowList
    from interpreter.dev.databases import DevDatabases
    from interpreter.payloads import PayloadStore


def register(commands: Any) -> None:
    """`worker`, `dev`."""
    worker = commands.add_parser("worker", help="run a worker for the interpreter and activities")
    worker.add_argument(
        "--activities",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module of @activity.defn functions to register too",
    )
    add_task_queue_option(worker)
    worker.add_argument("--max-concurrent-activities", type=positive_int, metavar="N", default=None)
    worker.add_argument(
        "--http-allow",
        action="append",
        default=[],
        metavar="HOSTS",
        help="internal hosts, host:ports, IPs or CIDR ranges http.request may reach "
        "(comma-separated, repeatable; added to TDSL_HTTP_ALLOW)",
    )
    worker.add_argument(
        "--sandbox",
        action="store_true",
        default=None,
        help="run the interpreter in Temporal's workflow sandbox (slower; catches a "
        "nondeterministic change; default TDSL_WORKFLOW_SANDBOX, off)",
    )
    worker.add_argument(
        "--definitions",
        action="append",
        default=[],
        metavar="DIR",
        type=_directory,
        help="a directory of definitions, each a workflow type this worker runs "
        "(repeatable; the registry at DATABASE_URL adds its own)",
    )
    worker.add_argument(
        "--health-port",
        type=_port,
        metavar="N",
        help="serve GET /livez and /readyz (503 until polling and while draining) on port N",
    )
    from interpreter.health import DEFAULT_HEALTH_HOST
    from interpreter.telemetry import DEFAULT_METRICS_HOST

    worker.add_argument(
        "--health-host",
        default=DEFAULT_HEALTH_HOST,
        metavar="HOST",
        help="address of the health port (default 127.0.0.1; 0.0.0.0 for a Kubernetes probe)",
    )
    worker.add_argument(
        "--metrics-port",
        type=_port,
        metavar="N",
        help="serve Prometheus metrics (temporal_* and tdsl_*) at GET /metrics on port N",
    )
    worker.add_argument(
        "--metrics-host",
        default=DEFAULT_METRICS_HOST,
        metavar="HOST",
        help="address of the metrics port (default 127.0.0.1; 0.0.0.0 to be scraped)",
    )
    _add_log_format(worker)
    add_connection_options(worker)
    worker.set_defaults(handler=_worker, uses_temporal=True)

    dev = commands.add_parser(
        "dev", help="a local Temporal dev server with the Web UI, PostgreSQL and a worker"
    )
    dev.add_argument("--port", type=_port, default=7233, help="gRPC port (default 7233)")
    dev.add_argument("--ui-port", type=_port, default=8233, help="Web UI port (default 8233)")
    dev.add_argument(
        "--serve-port",
        type=int,
        default=8800,
        metavar="N",
        help="port of the HTTP API and run pages, `tdsl serve` (default 8800; 0: none)",
    )
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
    dev.add_argument(
        "--definitions",
        action="append",
        default=[],
        metavar="DIR",
        type=_directory,
        help="as for `worker`",
    )
    _add_log_format(dev)
    dev.set_defaults(handler=_dev, uses_temporal=True)


def _add_log_format(command: Any) -> None:
    from interpreter.logs import LOG_FORMATS

    command.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text lines, or one JSON object per line (time, level, message, workflow "
        "id, run id, step, attempt); default text",
    )


def _directory(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"not a directory: {text!r}")
    return path


def _port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return value


def _http_allow(args: argparse.Namespace) -> HttpAllowList:
    """`TDSL_HTTP_ALLOW` plus every `--http-allow`; a bad entry is InputError (exit 2)."""
    from activities.http_guard import HttpAllowList

    return HttpAllowList.from_env() | HttpAllowList.parse(args.http_allow, source="--http-allow")


async def _worker(args: argparse.Namespace) -> int:
    from interpreter.worker import run_worker, sandbox_from_env

    activity_names_of(args.activities)  # a bad module is exit 2 before connecting
    http_allow = _http_allow(args)
    sandboxed = args.sandbox or sandbox_from_env()  # a bad value is exit 2 too
    from interpreter.logs import configure_logging
    from interpreter.telemetry import install_runtime
    from interpreter.tracing import flush_tracing

    configure_logging(args.log_format)
    metrics = f"{args.metrics_host}:{args.metrics_port}" if args.metrics_port else None
    install_runtime(metrics)  # before the client connects: the runtime is the process's
    await run_worker(
        await client_for(args),
        task_queue=task_queue_of(args),
        activity_modules=args.activities,
        max_concurrent_activities=args.max_concurrent_activities,
        http_allow=http_allow,
        sandboxed=sandboxed,
        definitions=args.definitions,
        health_port=args.health_port,
        health_host=args.health_host,
    )
    flush_tracing()
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


@contextlib.asynccontextmanager
async def _dev_postgres(state_dir: Path, enabled: bool) -> AsyncIterator[DevDatabases | None]:
    """The embedded PostgreSQL with its two roles (history, `sql.query`), unless
    DATABASE_URL already names a database; a failure to start it is a warning, not
    the end of `tdsl dev`."""
    from interpreter.dev.databases import DevDatabases, provision_databases

    if not enabled or os.environ.get("DATABASE_URL"):
        url = os.environ.get("DATABASE_URL")
        yield DevDatabases(url, os.environ.get("TDSL_SQL_URL") or None) if url else None
        return
    from interpreter.dev.servers import EmbeddedPostgres

    server = EmbeddedPostgres(state_dir / "postgres")
    try:
        await server.astart()
        databases = await provision_databases(server.url)
    except DslError as exc:
        await server.astop()
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
        await server.astop()


async def _dev(args: argparse.Namespace) -> int:
    activity_names_of(args.activities)
    http_allow = _http_allow(args)  # a bad entry is exit 2 before anything starts
    if args.port == args.ui_port:
        raise InputError("--port and --ui-port must differ")
    ip = "127.0.0.1"
    if not 0 <= args.serve_port <= 65535:
        raise InputError(f"--serve-port is a port (or 0 for none), not {args.serve_port}")
    ports = [("--port", args.port), ("--ui-port", args.ui_port)]
    if args.serve_port:
        ports.append(("--serve-port", args.serve_port))
    for flag, port in ports:
        if _port_taken(ip, port):
            raise ConfigurationError(
                f"port {port} on {ip} is already in use (another Temporal server or `tdsl dev`?); "
                f"stop it or choose another with {flag}"
            )
    from interpreter.logs import configure_logging
    from interpreter.telemetry import install_runtime
    from interpreter.tracing import flush_tracing

    configure_logging(args.log_format)
    install_runtime()
    state_dir = Path(args.state_dir)
    async with _dev_postgres(state_dir, not args.no_postgres) as databases:
        await _serve_dev(args, state_dir, databases, http_allow)
    flush_tracing()
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


@contextlib.asynccontextmanager
async def _dev_api(
    args: argparse.Namespace, server: Any, queue: str, database_url: str | None
) -> AsyncIterator[None]:
    """`tdsl serve` beside the dev worker, on 127.0.0.1 (`--serve-port 0`: none)."""
    if not args.serve_port:
        yield
        return
    from interpreter.serve.api import ServeSettings, build_app
    from interpreter.serve.server import serving

    async def connect() -> Any:
        return server.client

    settings = ServeSettings(
        connect=connect,
        task_queue=queue,
        database_url=database_url,
        token=os.environ.get("TDSL_API_TOKEN") or None,
        definitions=[Path(d) for d in args.definitions],
    )
    async with serving(build_app(settings), "127.0.0.1", args.serve_port):
        print(f"HTTP API, run pages  http://127.0.0.1:{args.serve_port}  (tdsl serve)")
        yield


async def _serve_dev(
    args: argparse.Namespace,
    state_dir: Path,
    databases: DevDatabases | None,
    http_allow: HttpAllowList,
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
                sql_url=databases.sql_url if databases else None,
                http_allow=http_allow,
                definitions=args.definitions,
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
            async with _dev_api(args, server, queue, database_url):
                print("Ctrl-C stops the worker, then the server.", flush=True)
                await stop.wait()
