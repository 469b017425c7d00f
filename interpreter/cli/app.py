"""`tdsl`: the command line. Thin: each command calls library code.

One module per command group (`language`, `runs`, `servers`, `db`, `schedules`),
each with a `register(commands)`. A handler returns its exit code; one that talks to
a server is a coroutine function, and `_dispatch` is the one place that enters
asyncio for it. One handler turns our errors into messages and exit codes, so no
input — however broken — ends in a traceback: definition problems print
``FILE:LINE:COL: error: …`` (exit 1, or 2 where a run was refused), bad command-line
input prints one line (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn

from dsl.errors import DefinitionError, DslError, InputError
from interpreter.cli import db, doctor, language, runs, schedules, serve, servers, testing
from interpreter.cli.support import EXIT_FAILED, EXIT_USAGE, print_diagnostics

__all__ = ["build_parser", "main", "run"]

Handler = Callable[[argparse.Namespace], int | Awaitable[int]]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tdsl", description="Declarative YAML workflows on Temporal.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for group in (language, runs, servers, db, schedules, doctor, testing, serve):
        group.register(commands)
    return parser


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
        code = handler(args)
        if inspect.isawaitable(code):  # the one way a command enters asyncio
            return asyncio.run(_awaited(code))
        return code
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


async def _awaited(code: Awaitable[int]) -> int:
    return await code


def run() -> NoReturn:
    sys.exit(main())
