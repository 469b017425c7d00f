"""Durations as people write them: ``250ms``, ``10s``, ``1h30m``, ``PT10S`` or a bare number.

A bare number means seconds, except where a key's convention says milliseconds
(the seed format's ``initialInterval``); callers say which with `bare_unit`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

__all__ = ["format_duration", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_COMPACT = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_ISO = re.compile(
    r"P(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


def parse_duration(value: object, *, bare_unit: Literal["s", "ms"] = "s") -> timedelta:
    """Parse one duration; raises ValueError with the accepted forms on anything else."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError("a duration is a string such as '10s', not a boolean")
    elif isinstance(value, int | float):
        seconds = float(value) * (_UNITS[bare_unit])
    elif isinstance(value, str):
        seconds = _parse_text(value.strip())
    else:
        raise ValueError(f"a duration is a string such as '10s', not {type(value).__name__}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:  # 1e14 seconds, "inf": was a crash, not a message
        raise ValueError("a duration cannot be longer than 999999999 days") from None


def _parse_text(text: str) -> float:
    if _COMPACT.fullmatch(text):
        return sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    iso = _ISO.fullmatch(text.upper())
    if iso and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
        parts = iso.groupdict()
        return sum(float(parts[k] or 0) * _UNITS[k] for k in ("d", "h", "m", "s"))
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"invalid duration {text!r}; use a number with a unit "
            "(250ms, 10s, 5m, 2h, 1d, 1h30m) or ISO 8601 (PT10S)"
        ) from None


def format_duration(value: timedelta) -> str:
    """The shortest compact form, for display (``90s`` → ``1m30s``)."""
    micros = value // timedelta(microseconds=1)
    if micros % 1000:
        return f"{micros / 1_000_000:f}".rstrip("0") + "s"  # below a millisecond: exact seconds
    millis = micros // 1000
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
