"""Signals that arrived for `signal` steps, kept until a step takes them.

A payload that arrives before its step started waits here, oldest first per name.
Each also gets an arrival number, so that a step waiting for several names
(`signal: [approve, reject]`, deferred choice) takes whichever arrived first, even
when both were buffered or came in one workflow task.

Part of the replay-critical runtime: insertion-ordered dicts and deques only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

__all__ = ["SignalBuffer"]


class SignalBuffer:
    """Payloads per signal name, each with its arrival number."""

    def __init__(self) -> None:
        self._payloads: dict[str, deque[Any]] = {}
        self._arrivals: dict[str, deque[int]] = {}
        self._count = 0

    def add(self, name: str, payload: Any) -> None:
        self._payloads.setdefault(name, deque()).append(payload)
        self._arrivals.setdefault(name, deque()).append(self._count)
        self._count += 1

    def has_any(self, names: Sequence[str]) -> bool:
        return any(self._payloads.get(name) for name in names)

    def take_first(self, names: Sequence[str]) -> tuple[str, Any] | None:
        """The payload that arrived first among *names* (and its name), or None."""
        first: str | None = None
        for name in names:
            arrivals = self._arrivals.get(name)
            if arrivals and (first is None or arrivals[0] < self._arrivals[first][0]):
                first = name
        if first is None:
            return None
        self._arrivals[first].popleft()
        return first, self._payloads[first].popleft()

    def export(self) -> tuple[dict[str, list[Any]], dict[str, list[int]]]:
        """Payloads and arrival numbers per name, for a continuation (`Carried`)."""
        names = [name for name, payloads in self._payloads.items() if payloads]
        return (
            {name: list(self._payloads[name]) for name in names},
            {name: list(self._arrivals[name]) for name in names},
        )

    @classmethod
    def restore(
        cls, payloads: dict[str, list[Any]], arrivals: dict[str, list[int]]
    ) -> SignalBuffer:
        """The buffer a run carried; runs carried before arrival numbers existed get
        them in name order."""
        buffer = cls()
        for name, values in payloads.items():
            numbers = arrivals.get(name)
            if numbers is None or len(numbers) != len(values):
                numbers = list(range(buffer._count, buffer._count + len(values)))
            buffer._payloads[name] = deque(values)
            buffer._arrivals[name] = deque(numbers)
            buffer._count = max(buffer._count, max(numbers, default=-1) + 1)
        return buffer
