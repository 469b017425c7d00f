"""JsonLogic conditions (``when``, decision branches, named ``rules``): how a run decides.

One of the two ways data flows; the other is templates (``dsl.templates``). Everything
here is pure and deterministic because it also runs inside the Temporal workflow
sandbox, where a replay must compute exactly what the first run computed: no I/O, no
clocks, no randomness, no dependence on set iteration order, and no ``eval``. A
condition can only *read* JSON data; no operator can reach a Python object.

A ``var`` naming a value that is not there is ``null``, because that is what JsonLogic
specifies and conditions rely on it (``{"!": {"var": "x"}}``). This is deliberately
unlike a template, where a missing value is an error.

Templates are not resolved inside conditions (``"${{ input.x }}"`` is a plain string
there): conditions read the same context through ``{"var": "steps.a.output.total"}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from json_logic.apply import apply as _jsonlogic_apply
from json_logic.builtins import BUILTINS as _JSONLOGIC_BUILTINS
from json_logic.builtins import to_bool as _jsonlogic_to_bool

from dsl.errors import ExpressionError
from dsl.values import JsonPath, JsonValue, copy_value

__all__ = [
    "ITERATING_OPERATORS",
    "KNOWN_OPERATORS",
    "OPERATIONS",
    "condition_vars",
    "evaluate",
    "evaluate_condition",
    "expand_rules",
    "unknown_operators",
]

OPERATIONS: dict[str, Callable[..., Any]] = {
    name: op for name, op in _JSONLOGIC_BUILTINS.items() if name != "log" and callable(op)
}
"""The library's builtins minus ``log``, which prints (a side effect in a workflow).

Every entry is a plain function over JSON values; there is no ``method`` operator,
so nothing can call into Python objects.
"""

ITERATING_OPERATORS = frozenset({"map", "filter", "reduce", "all", "some", "none"})
"""Operators whose later arguments are logic run per element, with the element as data."""

_SPECIAL_FORMS = frozenset({"if", "?:", "and", "or"}) | ITERATING_OPERATORS

KNOWN_OPERATORS: frozenset[str] = frozenset(OPERATIONS) | _SPECIAL_FORMS | {"rule"}
"""Operator names a condition may use: builtins, the library's special forms, ``rule``."""


def _operation(logic: object) -> tuple[str, list[Any]] | None:
    """``(operator, args)`` when ``logic`` is an operation, else None.

    JsonLogic treats exactly-one-key dicts as operations; others are literal data.
    A non-list argument is shorthand for a one-element list.
    """
    if isinstance(logic, dict) and len(logic) == 1:
        ((op, args),) = logic.items()
        return op, args if isinstance(args, list) else [args]
    return None


def expand_rules(logic: JsonValue, rules: Mapping[str, JsonValue]) -> JsonValue:
    """Replace every ``{"rule": name}`` with that rule's logic, recursively.

    Done before evaluation (and before static checks) so that named rules behave
    exactly like the logic written inline. Unknown names and cycles raise.
    """
    expanded: dict[str, JsonValue] = {}

    def expand(node: JsonValue, stack: tuple[str, ...]) -> JsonValue:
        if isinstance(node, list):
            return [expand(item, stack) for item in node]
        if not (isinstance(node, dict) and len(node) == 1):
            return copy_value(node)
        ((op, args),) = node.items()
        if op != "rule":
            return {op: expand(args, stack)}
        if not isinstance(args, str):
            raise ExpressionError(f"a rule reference needs a rule name, got {json.dumps(args)}")
        name = args
        if name in stack:
            cycle = [*stack[stack.index(name) :], name]
            raise ExpressionError("rule cycle: " + " -> ".join(cycle))
        if name not in expanded:
            if name not in rules:
                known = ", ".join(rules) if rules else "none are defined"
                raise ExpressionError(f"unknown rule {name!r} (rules: {known})")
            expanded[name] = expand(rules[name], (*stack, name))
        return copy_value(expanded[name])

    return expand(logic, ())


def _var_path(arg: object) -> JsonPath | None:
    """The path a ``var`` argument names, if it is a literal (not computed)."""
    if isinstance(arg, bool):
        return None
    if isinstance(arg, int):
        return (arg,) if arg >= 0 else None
    if not isinstance(arg, str) or arg == "":
        return None
    return tuple(
        int(p) if p.isascii() and p.isdigit() and str(int(p)) == p else p for p in arg.split(".")
    )


def _walk_operations(logic: object, skip_item_logic: bool) -> Iterator[tuple[str, list[Any]]]:
    """Every operation in document order, recursing through arguments.

    With ``skip_item_logic`` the per-item sub-logic of map/filter/reduce/all/some/none
    is not entered: it runs against each item, not against the run context.
    """
    if isinstance(logic, list):
        for item in logic:
            yield from _walk_operations(item, skip_item_logic)
        return
    found = _operation(logic)
    if found is None:
        return
    op, args = found
    yield op, args
    if op == "rule":
        return
    if skip_item_logic and op in ITERATING_OPERATORS:
        args = args[:1]
    for arg in args:
        yield from _walk_operations(arg, skip_item_logic)


def _dedupe(items: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def condition_vars(logic: JsonValue) -> list[JsonPath]:
    """Every statically known data path a condition reads, first occurrence order.

    Covers ``var`` with a literal string/number (or a list whose first element is
    one) and the literal key names of ``missing``/``missing_some``. Computed paths
    cannot be known statically and are skipped; their own ``var``s are reported.
    Vars inside map/filter/reduce/all/some/none item logic are relative to the item
    and are not reported. ``{"rule": ...}`` is not followed: expand rules first.
    """
    paths: list[JsonPath] = []
    for op, args in _walk_operations(logic, skip_item_logic=True):
        names: list[Any]
        if op == "var":
            names = args[:1]
        elif op == "missing":
            names = args[0] if args and isinstance(args[0], list) else args
        elif op == "missing_some":
            names = args[1] if len(args) > 1 and isinstance(args[1], list) else []
        else:
            continue
        for name in names:
            path = _var_path(name)
            if path is not None:
                paths.append(path)
    return _dedupe(paths)


def unknown_operators(logic: JsonValue) -> list[str]:
    """Every operator not in ``KNOWN_OPERATORS``, first occurrence order."""
    return _dedupe(
        [
            op
            for op, _ in _walk_operations(logic, skip_item_logic=False)
            if op not in KNOWN_OPERATORS
        ]
    )


def _short(logic: object) -> str:
    """The logic as compact-ish JSON for messages, cut to a readable length."""
    try:
        text = json.dumps(logic, ensure_ascii=False, default=repr)
    except RecursionError:
        return "a condition nested too deeply to show"
    return text if len(text) <= 200 else text[:197] + "..."


def evaluate(
    logic: JsonValue,
    context: Mapping[str, JsonValue] | JsonValue,
    rules: Mapping[str, JsonValue] | None = None,
) -> JsonValue:
    """Evaluate JsonLogic against ``context`` (any JSON data) after expanding rules.

    Unknown operators are rejected before anything runs, so the library never
    resolves dotted operator names itself. Library errors (a bad comparison, a
    division by zero, ...) become ``ExpressionError``. The result is a fresh value.
    """
    try:
        return _evaluate(logic, context, rules or {})
    except RecursionError:
        raise ExpressionError(f"cannot evaluate {_short(logic)}: nested too deeply") from None


def _evaluate(
    logic: JsonValue, context: Mapping[str, JsonValue] | JsonValue, rules: Mapping[str, JsonValue]
) -> JsonValue:
    expanded = expand_rules(logic, rules)
    unknown = unknown_operators(expanded)
    if unknown:
        names = ", ".join(repr(op) for op in unknown)
        raise ExpressionError(f"unknown JsonLogic operator {names} in {_short(logic)}")
    data: Any = dict(context) if isinstance(context, Mapping) else context
    try:
        result = _jsonlogic_apply(expanded, data, OPERATIONS)
    except (ArithmeticError, LookupError, ReferenceError, TypeError, ValueError) as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ExpressionError(f"cannot evaluate {_short(logic)}: {detail}") from None
    return copy_value(cast(JsonValue, result))


def evaluate_condition(
    logic: JsonValue,
    context: Mapping[str, JsonValue] | JsonValue,
    rules: Mapping[str, JsonValue] | None = None,
) -> bool:
    """Evaluate and apply JsonLogic truthiness (``[]``, ``""``, ``0``, null are false)."""
    return bool(_jsonlogic_to_bool(evaluate(logic, context, rules)))
