"""Cancelling the asyncio tasks that run steps, and telling our cancellations apart.

Part of the replay-critical runtime. An activity or child workflow whose step this
run cancelled comes back as an `ActivityError` / `ChildWorkflowError` caused by a
cancellation (`temporalio.exceptions.is_cancelled_exception`); one cancelled from
outside (say `temporal workflow cancel` on a child) looks exactly the same, but it
fails its step. `Stops` remembers the step tasks this run asked to stop, which
tells the two apart without reading asyncio's cancel counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterable
from typing import Any

from temporalio.exceptions import is_cancelled_exception

__all__ = ["Stops", "uncancel"]


class Stops:
    """The step tasks this run cancelled (membership only: no order is ever read)."""

    def __init__(self) -> None:
        self._tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    async def cancel_all(self, tasks: Iterable[asyncio.Task[None]]) -> None:
        """Cancel still-running steps and let them record their cancellation."""
        tasks = list(tasks)
        for task in tasks:
            self.cancel(task)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def cancel(self, task: asyncio.Task[Any]) -> None:
        """Cancel one step's task (not waiting for it), remembering that we did."""
        self._tasks.add(task)
        task.cancel()

    def ours(self, exc: BaseException) -> bool:
        """Whether *exc* is the cancellation of a step this run itself cancelled."""
        return is_cancelled_exception(exc) and asyncio.current_task() in self._tasks


def uncancel() -> None:
    """Forget a delivered run cancellation so compensation can await; the caller
    re-raises it, so the run still ends CANCELED."""
    task = asyncio.current_task()
    if task is not None:
        while task.cancelling():
            task.uncancel()
