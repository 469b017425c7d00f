"""JSON values: the only kind of data templates and conditions read and produce.

What ``dsl.templates`` and ``dsl.conditions`` both need, and nothing else. Pure for
the same reason they are: it also runs inside the Temporal workflow sandbox.
"""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["JsonPath", "JsonValue", "copy_value", "json_type"]

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None
"""Any value JSON can express; the only kind of data templates and conditions see."""

JsonPath: TypeAlias = tuple[str | int, ...]
"""A parsed path: object keys as ``str``, list indices as ``int``."""


def json_type(value: object) -> str:
    """How an error message names a JSON value's type: `a list (length 3)`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return f"a list (length {len(value)})"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__  # pragma: no cover - not JSON


def copy_value(value: JsonValue) -> JsonValue:
    """A fresh copy so results never alias (and let callers mutate) the context."""
    if isinstance(value, list):
        return [copy_value(item) for item in value]
    if isinstance(value, dict):
        return {key: copy_value(item) for key, item in value.items()}
    return value
