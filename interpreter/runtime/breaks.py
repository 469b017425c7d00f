"""Breaks between steps that issue no command, so no workflow task runs too long.

A `set` or `decision` step runs inside the workflow task that readied it, and so
does every step it readies in turn: a level of 10,000 set steps, or a long chain of
them, is one activation. The SDK fails an activation that runs its workflow code for
over 2 s (TMPRL1101, "potential deadlock") and retries it for ever, so the run stops
moving. After `INLINE_STEPS_PER_BREAK` such steps, the next waits for a break: a
no-op local activity (`tdsl.break`, registered by every worker). The activation ends
there, and the worker runs the activity and activates the workflow again at once,
within the same workflow task: no server round trip, one marker event per break. (A
1 ms timer, tried first, fired only after about 0.8 s on the dev server.)
Activities and child workflows need no break — each start is a command, and the
start gate bounds them.

The count runs over the whole run, not per activation, so it is the same on replay.
Part of the replay-critical runtime; behind its own `workflow.patched()` marker.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from interpreter.contract import BREAK_ACTIVITY

__all__ = ["INLINE_STEPS_PER_BREAK", "Breaks"]

INLINE_STEPS_PER_BREAK = 1000
"""About 0.2 s of sandboxed workflow code (measured: 0.19 ms per set step); 10,000
such steps add 10 local activities, and 10 marker events to the history."""


class Breaks:
    """Counts commandless steps; after every *every* of them, one break.

    Steps held by a break wait as futures in a FIFO, and a break admits exactly the
    next *every*: O(1) per step however many wait (a shared future would wake them
    all after every break).
    """

    def __init__(self, every: int = INLINE_STEPS_PER_BREAK) -> None:
        self.every = every
        self.left = every
        """Steps that may still run before the next break."""
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._breaking = False

    async def turn(self) -> None:
        """Return when this step may run: at once, or after the break it waits for."""
        if self.left > 0 and not self._waiting:
            self.left -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        if not self._breaking:
            self._breaking = True
            asyncio.get_running_loop().create_task(self._take_breaks())
        await waiter  # a cancelled waiter is passed over when its turn comes

    async def _take_breaks(self) -> None:
        while self._waiting:
            await workflow.execute_local_activity(
                BREAK_ACTIVITY,
                start_to_close_timeout=timedelta(seconds=10),
                summary=f"break after {self.every} steps without an activity",
            )
            self.left = self.every
            while self.left > 0 and self._waiting:
                waiter = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    self.left -= 1
        self._breaking = False
