"""The workflow's clock for step times, read the cheap way.

`workflow.now()` walks four SDK layers to the running workflow each time, and a wide
level records a start and an end for thousands of steps in one activation. The
workflow's asyncio event loop is the workflow instance, and its `time()` is the same
workflow time `workflow.now()` is built from (seconds since the epoch, as of the
activation), so the datetime is equal, and as deterministic. Part of the
replay-critical runtime.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

__all__ = ["step_clock"]


def step_clock() -> datetime:
    """`workflow.now()`: the current activation's time, in UTC."""
    return datetime.fromtimestamp(asyncio.get_running_loop().time(), UTC)
