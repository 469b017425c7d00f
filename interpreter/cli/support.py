"""What every `tdsl` command module shares: exit codes and how results and problems print."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from temporalio.client import Client

from dsl.errors import DefinitionError, InputError, NotFoundError

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "STEP_STYLES",
    "activity_names_of",
    "add_connection_options",
    "add_definition_options",
    "add_task_queue_option",
    "add_tenant_option",
    "client_for",
    "positive_int",
    "print_diagnostics",
    "print_json",
    "task_queue_of",
]

STEP_STYLES = {
    "pending": "dim",
    "waiting": "cyan",
    "running": "yellow",
    "completed": "green",
    "skipped": "dim",
    "failed": "bold red",
    "cancelled": "magenta",
}
"""How a step status is coloured wherever a table of steps is printed."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def print_json(value: Any) -> None:
    """Exactly one JSON value, one line, on stdout (datetimes as ISO 8601)."""
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=_iso) + "\n")
    sys.stdout.flush()


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def print_diagnostics(error: DefinitionError) -> None:
    """One ``FILE:LINE:COL: error: message`` line per problem, on stderr."""
    for diagnostic in error.diagnostics:
        print(diagnostic, file=sys.stderr)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def add_connection_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--address", metavar="HOST:PORT", help="Temporal frontend (default TEMPORAL_ADDRESS)"
    )
    command.add_argument("--namespace", metavar="NS", help="default TEMPORAL_NAMESPACE or default")


def add_definition_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--definitions",
        action="append",
        default=[],
        metavar="DIR",
        help="more directories where subworkflow definitions are looked up",
    )
    command.add_argument(
        "--activities",
        action="append",
        default=None,
        metavar="MODULE",
        help="activity modules a worker registers; unknown actions then become errors",
    )


def activity_names_of(modules: list[str] | None) -> set[str] | None:
    """Names the worker would register, when the user told us its modules."""
    if modules is None:
        return None
    from activities.builtin import BuiltinActivities
    from activities.registry import activity_names, default_activities, load_activities

    try:
        extra = load_activities(modules)
    except NotFoundError as exc:
        raise InputError(str(exc)) from None
    return set(activity_names([*default_activities(BuiltinActivities()), *extra]))


def add_task_queue_option(parser: argparse.ArgumentParser, what: str = "") -> None:
    """`--task-queue Q`, read back by `task_queue_of`: one default wherever it appears."""
    default = "default TEMPORAL_TASK_QUEUE or temporal-dsl"
    parser.add_argument(
        "--task-queue", metavar="Q", help=f"{what} ({default})" if what else default
    )


def task_queue_of(args: argparse.Namespace) -> str:
    from interpreter.client.connection import task_queue

    queue: str = args.task_queue or task_queue()
    return queue


async def client_for(args: argparse.Namespace) -> Client:
    from interpreter.client.connection import connect

    return await connect(address=args.address, namespace=args.namespace)


TENANT_ENV = "TDSL_TENANT"


def add_tenant_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--tenant", metavar="T", help=f"{help} (default {TENANT_ENV})")


def tenant_of(args: argparse.Namespace) -> str | None:
    """The command's tenant: `--tenant`, else `TDSL_TENANT`, else none; a malformed one
    is the user's mistake (exit 2)."""
    import re

    from interpreter.contract import TENANT_PATTERN

    flag: str | None = getattr(args, "tenant", None)
    source = "--tenant" if flag is not None else TENANT_ENV
    tenant = flag if flag is not None else os.environ.get(TENANT_ENV, "").strip()
    if not tenant and flag is None:
        return None
    if not re.fullmatch(TENANT_PATTERN, tenant):
        raise InputError(
            f"{source} {tenant!r} is not a tenant: 1 to 100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return tenant
