"""Cancelling the asyncio tasks that run steps, and cleaning up after a cancellation.

Part of the replay-critical runtime. These use asyncio's own task API.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["being_cancelled", "cancel_all", "uncancel"]


async def cancel_all(tasks: dict[str, asyncio.Task[None]]) -> None:
    """Cancel still-running steps and let them record their cancellation."""
    for task in tasks.values():
        task.cancel()
    for task in tasks.values():
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def uncancel() -> None:
    """Forget a delivered cancellation so cleanup can await; the caller re-raises it."""
    task = asyncio.current_task()
    if task is not None:
        while task.cancelling():
            task.uncancel()


def being_cancelled() -> bool:
    """Whether the current task was asked to stop (then an activity's cancellation is ours)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
