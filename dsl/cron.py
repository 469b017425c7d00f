"""Schedule triggers checked as the Temporal server checks them, before `tdsl deploy`.

The rules follow the server's cron parser (its schedule spec), field by field, with
its own wording: `tests/dsl/test_cron.py` compares every verdict here with what a
real server answers to the same cron string.

- an optional `TZ=zone` / `CRON_TZ=zone` prefix and a `#` comment;
- `@every DURATION[/OFFSET]` (Go durations: `90m`, `1h30m`, `1.5h`; at least 1 s, the
  offset no longer than the interval) or `@yearly @annually @monthly @weekly @daily
  @midnight @hourly`;
- else 5 fields (minute hour day-of-month month day-of-week), 6 (and year) or 7
  (second first); each a comma list of `*`, `N`, `A-B`, each with an optional `/STEP`;
  months and weekdays may be names (`jan`, `january`, `mon`, `th`).
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["MIN_INTERVAL", "cron_problem", "interval_problem"]

MIN_INTERVAL = timedelta(seconds=1)
"""The server's smallest schedule interval."""

_PREDEFINED = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
# name, lowest, highest, (names, shortest prefix)
_FIELDS = {
    "second": ("Second", 0, 59, None),
    "minute": ("Minute", 0, 59, None),
    "hour": ("Hour", 0, 23, None),
    "day": ("DayOfMonth", 1, 31, None),
    "month": ("Month", 1, 12, (_MONTHS, 3, 1)),
    "weekday": ("DayOfWeek", 0, 7, (_WEEKDAYS, 2, 0)),
    "year": ("Year", 2000, 2100, None),
}
_LAYOUTS = {
    5: ("minute", "hour", "day", "month", "weekday"),
    6: ("minute", "hour", "day", "month", "weekday", "year"),
    7: ("second", "minute", "hour", "day", "month", "weekday", "year"),
}
_GO_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+")
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def cron_problem(text: str) -> str | None:
    """Why the server would refuse *text* as a cron string; None if it would take it."""
    cron = text.strip()
    if cron.startswith(("TZ=", "CRON_TZ=")):
        zone, _, cron = cron.partition(" ")
        if not cron.strip():
            return "the cron string has a time zone but no fields"
        problem = _zone_problem(zone.partition("=")[2])
        if problem is not None:
            return problem
    cron = cron.partition("#")[0].strip()
    if cron.startswith("@every"):
        return _every_problem(cron.removeprefix("@every").strip())
    cron = _PREDEFINED.get(cron, cron)
    fields = cron.split()
    layout = _LAYOUTS.get(len(fields))
    if layout is None:
        return (
            f"a cron string has 5 to 7 fields (minute hour day-of-month month day-of-week "
            f"[year], or second first), not {len(fields)}"
        )
    for field, value in zip(layout, fields, strict=True):
        problem = _field_problem(field, value)
        if problem is not None:
            return problem
    return None


def interval_problem(every: timedelta) -> str | None:
    """Why the server would refuse *every* as a schedule interval."""
    if every < MIN_INTERVAL:
        return f"a schedule interval is at least {MIN_INTERVAL.total_seconds():g} s"
    return None


def _zone_problem(zone: str) -> str | None:
    if zone in ("UTC", "Local"):
        return None
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(zone)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return f"unknown time zone {zone!r}"
    return None


def _every_problem(text: str) -> str | None:
    every, slash, offset = text.partition("/")
    interval = _go_duration(every)
    if isinstance(interval, str):
        return interval
    if interval < MIN_INTERVAL:
        return f"@every needs an interval of at least {MIN_INTERVAL.total_seconds():g} s"
    if slash:
        phase = _go_duration(offset)
        if isinstance(phase, str):
            return phase
        if phase > interval:
            return "the @every offset is longer than its interval"
    return None


def _go_duration(text: str) -> timedelta | str:
    """A duration as Go writes them (`1h30m`, `1.5h`, `500ms`), or why it is not one."""
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if body == "0":
        return timedelta(0)
    if not _GO_DURATION.fullmatch(body):
        if re.fullmatch(r"[\d.]+", body):
            return f"the duration {text!r} has no unit (ns, us, ms, s, m or h)"
        return f"{text!r} is not a duration like 90s, 15m or 1h30m"
    seconds = sum(float(n) * _GO_UNITS[unit] for n, unit in _GO_PART.findall(body))
    return timedelta(seconds=sign * seconds)


def _field_problem(field: str, value: str) -> str | None:
    label, low, high, _ = _FIELDS[field]
    for item in value.split(","):
        span, slash, step = item.partition("/")
        if slash:
            if "/" in step:
                return f"{label} {value!r} has more than one '/'"
            if step == "":
                return f"{label} {value!r} has a '/' without a step"
            if not re.fullmatch(r"\+?\d+", step) or int(step) < 1:
                return f"{label} {value!r} has an invalid step {step!r}"
        if span == "*":
            continue
        start, dash, end = span.partition("-")
        if "-" in end:
            return f"{label} {value!r} has more than one '-'"
        first = _number(field, start)
        if not dash:
            if first is None:
                return f"{label} {value!r} is not in range [{low}-{high}]"
            continue
        if first is None:
            return f"{label} {value!r} starts outside [{low}-{high}]"
        last = _number(field, end)
        if last is None or last < first:
            return f"{label} {value!r} ends before it starts or outside [{low}-{high}]"
    return None


def _number(field: str, text: str) -> int | None:
    """The field's value *text* stands for (a number, or a month or weekday name)."""
    _, low, high, names = _FIELDS[field]
    if re.fullmatch(r"\+?\d+", text):
        number = int(text)
        return number if low <= number <= high else None
    if names is not None:
        known, shortest, first = names
        lowered = text.lower()
        if len(lowered) >= shortest:
            for index, name in enumerate(known):
                if name.startswith(lowered):
                    return index + first
    return None
