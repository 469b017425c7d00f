"""What every `tdsl` command module shares: exit codes and how results and problems print."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from dsl.errors import DefinitionError

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "STEP_STYLES",
    "positive_int",
    "print_diagnostics",
    "print_json",
]

STEP_STYLES = {
    "pending": "dim",
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
