"""`tdsl db migrate`, `register`, `definitions`, `runs`: the PostgreSQL registry and run history."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add this area's commands to `tdsl`."""
