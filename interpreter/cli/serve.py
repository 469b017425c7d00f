"""`tdsl serve [--port N] [--host H] [--definitions DIR]...`: the HTTP API of docs/api.md.

It listens on 127.0.0.1 unless told otherwise, and refuses any other address without
`TDSL_API_TOKEN`: the routes that change something would be open to the network.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
from pathlib import Path
from typing import Any

from dsl.errors import InputError
from interpreter.cli.support import (
    EXIT_OK,
    add_connection_options,
    add_task_queue_option,
    client_for,
    task_queue_of,
)

DEFAULT_PORT = 8800
DEFAULT_HOST = "127.0.0.1"
TOKEN_ENV = "TDSL_API_TOKEN"


def register(commands: Any) -> None:
    """`serve`."""
    serve = commands.add_parser("serve", help="the HTTP API (and run pages) on a port")
    serve.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    serve.add_argument(
        "--host",
        default=DEFAULT_HOST,
        metavar="H",
        help=f"default {DEFAULT_HOST}; any other address needs {TOKEN_ENV}",
    )
    serve.add_argument(
        "--definitions",
        action="append",
        default=[],
        metavar="DIR",
        help="directories of definitions runs may be started of (besides the registry)",
    )
    add_task_queue_option(serve)
    add_connection_options(serve)
    serve.set_defaults(handler=_serve, uses_temporal=True)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535, not {port}")
    return port


def is_local(host: str) -> bool:
    """Whether *host* is a loopback address (or `localhost`)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _serve(args: argparse.Namespace) -> int:
    token = os.environ.get(TOKEN_ENV) or None
    if not is_local(args.host) and token is None:
        raise InputError(
            f"refusing to listen on {args.host} without {TOKEN_ENV}: anyone who reaches it "
            f"could start and stop runs; set {TOKEN_ENV}, or keep --host {DEFAULT_HOST}"
        )
    for directory in args.definitions:
        if not Path(directory).is_dir():
            raise InputError(f"--definitions {directory}: not a directory")
    from interpreter.serve.api import ServeSettings, build_app

    async def connect() -> Any:
        return await client_for(args)

    settings = ServeSettings(
        connect=connect,
        task_queue=task_queue_of(args),
        database_url=os.environ.get("DATABASE_URL") or None,
        token=token,
        definitions=[Path(d) for d in args.definitions],
    )
    await settings.client()  # an unreachable server is one line now, not at the first request
    from interpreter.serve.server import serving
    from interpreter.worker import stop_on_signals

    stop = asyncio.Event()
    with stop_on_signals(stop):
        async with serving(build_app(settings), args.host, args.port):
            print(
                f"serving on http://{args.host}:{args.port} "
                "(API under /api, OpenAPI at /openapi.json); Ctrl-C stops it",
                flush=True,
            )
            await stop.wait()
    return EXIT_OK
