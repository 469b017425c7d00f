"""`tdsl deploy`, `schedules`, `complete`, `fail`: schedules from triggers and asynchronously completed tasks."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add this area's commands to `tdsl`."""
