"""The run's start gate: where pause and Temporal's per-run limits hold new work back.

Temporal refuses a workflow task that would leave more than 2,000 activities or child
workflows pending in one run, and retries it for ever: a DAG level, a parallel or a
foreach wider than that used to hang the run. So every activity and child workflow of
a step takes a slot here first, at most `MAX_IN_FLIGHT` at once; the rest wait, in
the order they asked (first come, first served). Pause closes the gate for new work
at every depth — top-level steps, branch steps, foreach items and batches; running
work finishes.

Waiters are futures in a FIFO, so a release wakes exactly the next one: O(1) per
start, whatever the number waiting (a `workflow.wait_condition` per waiter would be
re-evaluated on every activation). Part of the replay-critical runtime.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["MAX_IN_FLIGHT", "Deferred", "Slot", "StartGate"]

MAX_IN_FLIGHT = 1000
"""Activities and child workflows one run keeps pending at most: half of Temporal's
2,000, leaving room for compensations, control activities and batches' own."""


class Deferred(Exception):
    """A deferrable request got no slot before the run began to continue as new: the
    step never started and the continued run starts it."""


class StartGate:
    """Counts work in flight; hands out slots in request order while not paused.

    A request marked *deferrable* (a top-level step's) is refused with `Deferred` once
    `defer()` was called — the run is draining to continue as new — whether it was
    already waiting or comes later; other requests (nested work of a step that runs)
    are served as before, so that running steps can finish.
    """

    def __init__(self, limit: int = MAX_IN_FLIGHT) -> None:
        self.limit = limit
        self.paused = False
        self.in_flight = 0
        self.deferring = False
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._deferrable: dict[asyncio.Future[None], None] = {}
        self._unpaused: deque[asyncio.Future[None]] = deque()

    async def unpaused(self) -> None:
        """Return at once unless paused; else when resumed (a start that takes no slot)."""
        if not self.paused:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unpaused.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._unpaused:
                self._unpaused.remove(waiter)

    def slot(self, *, deferrable: bool = False) -> Slot:
        """Hold one of the run's slots while the body runs (an activity, a child)."""
        return Slot(self, deferrable)

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def pause(self) -> None:
        self.paused = True

    def defer(self) -> None:
        """Refuse every deferrable request from now on, those waiting first."""
        self.deferring = True
        self._waiting = deque(w for w in self._waiting if w not in self._deferrable)  # one pass
        for waiter in list(self._deferrable):
            if not waiter.done():
                waiter.set_exception(Deferred())
        self._deferrable.clear()

    def resume(self) -> None:
        self.paused = False
        while self._unpaused:
            waiter = self._unpaused.popleft()
            if not waiter.done():
                waiter.set_result(None)
        self._wake()

    async def acquire(self, deferrable: bool) -> None:
        if deferrable and self.deferring:
            raise Deferred
        if not self.paused and not self._waiting and self.in_flight < self.limit:
            self.in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        if deferrable:
            self._deferrable[waiter] = None
        try:
            await waiter  # `_wake` counted the slot for us before waking us
        except Deferred:
            raise  # `defer` took it out of the queue already
        except BaseException:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self.in_flight -= 1  # woken and cancelled at once: give the slot back
                self._wake()
            raise
        finally:
            self._deferrable.pop(waiter, None)

    def _wake(self) -> None:
        while self._waiting and not self.paused and self.in_flight < self.limit:
            waiter = self._waiting.popleft()
            if waiter.done():
                continue
            self.in_flight += 1
            waiter.set_result(None)


class Slot:
    """`StartGate.slot`: a plain class rather than `contextlib.asynccontextmanager`,
    whose generator machinery cost more than the gate itself, once per step."""

    __slots__ = ("_deferrable", "_gate")

    def __init__(self, gate: StartGate, deferrable: bool) -> None:
        self._gate = gate
        self._deferrable = deferrable

    async def __aenter__(self) -> None:
        await self._gate.acquire(self._deferrable)

    async def __aexit__(self, *_exc: object) -> None:
        self._gate.release()
