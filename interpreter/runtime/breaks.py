"""Breaks in long workflow tasks, so no activation passes the SDK's deadlock limit.

The SDK fails an activation that runs its workflow code for over 2 s (TMPRL1101,
"potential deadlock") and retries it for ever, so the run stops moving. Two things
can run that long in one activation:

- steps that issue no command (`set`, `decision`, `fail`) run inside the workflow
  task that readied them, and so does every step they ready in turn: a level of
  10,000 set steps, or a long chain of them, is one activation;
- a wide level starts up to 1,000 activities at once (the start gate's limit), about
  2.5 s of sandboxed code on a loaded machine.

So each step pays a cost before it starts (`INLINE_COST` or `START_COST`) out of a
budget of `BUDGET` per workflow task. When the budget is spent, the next step waits
for a break: a no-op local activity (`tdsl.break`, registered by every worker). The
activation ends there, and the worker runs the activity and activates the workflow
again at once, within the same workflow task: no server round trip, one marker
event per break. (A 1 ms timer, tried first, fired only after about 0.8 s on the dev
server.) A new workflow task brings a fresh budget, so a chain, whose every step is
a workflow task of its own, never takes a break.

Whether a workflow task is new is read from the history length at its start
(`workflow.Info.get_current_history_length`), which replays the same. Part of the
replay-critical runtime; behind its own `workflow.patched()` marker.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from interpreter.contract import BREAK_ACTIVITY

__all__ = ["BUDGET", "INLINE_COST", "START_COST", "Breaks", "take_break"]

BUDGET = 1000
"""Cost units one activation may spend: about 0.2 s of sandboxed workflow code."""
INLINE_COST = 1
"""A step without a command (measured: 0.19 ms sandboxed per set step)."""
START_COST = 4
"""A step that starts an activity or a child workflow: 250 starts per activation."""


class Breaks:
    """Spends each workflow task's budget; when it is spent, one break.

    Steps held by a break wait as futures in a FIFO, and a break admits exactly the
    next ones that fit: O(1) per step however many wait (a shared future would wake
    them all after every break).
    """

    def __init__(self, budget: int = BUDGET) -> None:
        self.budget = budget
        self.left = budget
        """Cost units this activation may still spend."""
        self._task_length = -1
        self._info = workflow.info()
        """Kept: `workflow.info()` runs through every outbound interceptor at each call
        (0.2 s of 10,000 calls), and the history length is read from the runtime."""
        self._waiting: deque[tuple[asyncio.Future[None], int]] = deque()
        self._breaking = False

    async def turn(self, cost: int) -> None:
        """Return when a step of this *cost* may start: at once, or after a break."""
        length = self._info.get_current_history_length()
        if length != self._task_length:  # a new workflow task: a fresh budget
            self._task_length = length
            if not self._waiting:
                self.left = self.budget
        if self.left >= cost and not self._waiting:
            self.left -= cost
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((waiter, cost))
        if not self._breaking:
            self._breaking = True
            asyncio.get_running_loop().create_task(self._take_breaks())
        await waiter  # a cancelled waiter is passed over when its turn comes

    async def _take_breaks(self) -> None:
        while self._waiting:
            await take_break()
            self.left = self.budget
            while self._waiting and self._waiting[0][1] <= self.left:
                waiter, cost = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    self.left -= cost
        self._breaking = False


async def take_break() -> None:
    """End this activation; the workflow goes on in the next, in the same task."""
    try:
        await workflow.execute_local_activity(
            BREAK_ACTIVITY,
            start_to_close_timeout=timedelta(seconds=10),
            summary="break: a long workflow task goes on in the next activation",
        )
    except ValueError:  # a worker without `tdsl.break`: slower, but no hang
        await workflow.sleep(
            timedelta(milliseconds=1), summary="break (this worker lacks tdsl.break)"
        )
