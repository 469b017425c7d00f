"""Run input: the definition's ``input`` JSON Schema fills defaults, then checks it.

Defaults matter because templates never turn a missing value into an empty string:
a property with a ``default`` in the schema is always there for ``${{ input.x }}``.
"""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft202012Validator

from dsl.errors import InputError
from dsl.values import json_type

__all__ = ["apply_defaults", "prepare_input"]


def apply_defaults(schema: Any, value: Any) -> Any:
    """A copy of `value` with every missing property that has a ``default`` filled in."""
    if not isinstance(schema, dict):
        return value
    if value is None and schema.get("type") == "object" and "properties" in schema:
        value = {}
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        filled = dict(value)
        for name, sub in schema["properties"].items():
            if name in filled:
                filled[name] = apply_defaults(sub, filled[name])
            elif isinstance(sub, dict) and "default" in sub:
                filled[name] = copy.deepcopy(sub["default"])
        return filled
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def prepare_input(schema: dict[str, Any] | None, value: Any, *, require_object: bool = True) -> Any:
    """Defaults applied, then validated; an invalid input raises `InputError` naming the path.

    A run's input is always a JSON object (no input is `{}`): templates address it
    as `input.<key>`, and a list or a string would only fail later, step by step.
    *require_object* False is the old leniency, kept for runs that started before
    the rule (the interpreter decides by `workflow.patched`).
    """
    if require_object:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise InputError(f"the run input must be a JSON object, got {json_type(value)}")
    if schema is None:
        return value
    filled = apply_defaults(schema, value)
    errors = sorted(
        Draft202012Validator(schema).iter_errors(filled), key=lambda e: list(e.absolute_path)
    )
    if errors:
        reasons = [f"{_where(list(e.absolute_path))}: {e.message}" for e in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise InputError("invalid input: " + "; ".join(reasons) + more)
    return filled


def _where(path: list[Any]) -> str:
    return "input" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
