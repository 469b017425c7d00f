"""Templates (``${{ path }}``) and JsonLogic conditions: the only ways data flows.

Everything here is pure and deterministic because it also runs inside the Temporal
workflow sandbox, where a replay must compute exactly what the first run computed:
no I/O, no clocks, no randomness, no dependence on set iteration order, and no
``eval``. A template or condition can only *read* JSON data; no operator can reach
a Python object.

Two deliberately different notions of "missing":

* A template naming a value that is not there is an error (``ExpressionError``):
  silently rendering ``""`` or ``null`` would pass garbage to an activity.
* A JsonLogic ``var`` naming a value that is not there is ``null``, because that is
  what JsonLogic specifies and conditions rely on it (``{"!": {"var": "x"}}``).

Templates are not resolved inside conditions: conditions read the same context
through ``{"var": "steps.a.output.total"}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

from json_logic.apply import apply as _jsonlogic_apply
from json_logic.builtins import BUILTINS as _JSONLOGIC_BUILTINS
from json_logic.builtins import to_bool as _jsonlogic_to_bool

from dsl.errors import ExpressionError

__all__ = [
    "KNOWN_OPERATORS",
    "OPERATIONS",
    "ROOTS",
    "JsonPath",
    "JsonValue",
    "TemplateRef",
    "check_root",
    "condition_vars",
    "evaluate",
    "evaluate_condition",
    "expand_rules",
    "find_templates",
    "format_path",
    "is_templated",
    "json_type",
    "lookup",
    "parse_path",
    "render",
    "unknown_operators",
]

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None
"""Any value JSON can express; the only kind of data templates and conditions see."""

JsonPath: TypeAlias = tuple[str | int, ...]
"""A parsed path: object keys as ``str``, list indices as ``int``."""

ROOTS: tuple[str, ...] = ("input", "steps", "vars", "item", "index", "run")
"""The allowed first segments of a path (spec section 3)."""

_OPEN = "${{"
_CLOSE = "}}"
_IDENT_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_IDENT_REST = _IDENT_START | frozenset("0123456789-")
_DIGITS = frozenset("0123456789")
_MAX_KEYS_SHOWN = 20


# --------------------------------------------------------------------------- paths


def _path_error(text: str, problem: str, pos: int) -> ExpressionError:
    """One message shape for every path mistake, with a 1-based column to find it."""
    return ExpressionError(f"invalid path {text!r}: {problem} at column {pos + 1}")


def _scan_identifier(text: str, pos: int) -> int:
    """Return the end of the identifier starting at ``pos`` (== pos when there is none)."""
    end = pos
    if end < len(text) and text[end] in _IDENT_START:
        end += 1
        while end < len(text) and text[end] in _IDENT_REST:
            end += 1
    return end


def _parse_bracket(text: str, body: str, pos: int) -> tuple[str | int, int]:
    """Parse ``[n]``, ``["key"]`` or ``['key']`` at ``body[pos]`` (which is ``[``).

    ``body`` is ``text`` without trailing whitespace; ``text`` is only for messages.
    """
    start = pos + 1
    if start >= len(body):
        raise _path_error(text, "unclosed '['", pos)
    quote = body[start]
    if quote in "\"'":
        chars: list[str] = []
        i = start + 1
        while True:
            if i >= len(body):
                raise _path_error(text, f"unterminated quoted key (missing {quote})", start)
            ch = body[i]
            if ch == "\\":
                if i + 1 >= len(body):
                    raise _path_error(text, "dangling backslash in quoted key", i)
                chars.append(body[i + 1])
                i += 2
                continue
            if ch == quote:
                break
            chars.append(ch)
            i += 1
        close = i + 1
        if close >= len(body) or body[close] != "]":
            raise _path_error(text, "expected ']' after quoted key", close)
        return "".join(chars), close + 1
    end = start
    while end < len(body) and body[end] in _DIGITS:
        end += 1
    if end == start:
        raise _path_error(text, "expected a non-negative integer or a quoted key after '['", start)
    if end >= len(body) or body[end] != "]":
        raise _path_error(text, "expected ']' after index", end)
    return int(body[start:end]), end + 1


def parse_path(text: str) -> JsonPath:
    """Parse ``steps.a.output.items[0]["a key"]`` into its segments.

    Hand-written rather than a regex so that every mistake is reported with what was
    expected and where. Roots are not checked here (see ``check_root``).
    """
    body = text.rstrip()  # positions in ``body`` are positions in ``text``
    pos = len(body) - len(body.lstrip())
    if pos == len(body):
        raise ExpressionError(f"invalid path {text!r}: the path is empty")
    segments: list[str | int] = []

    end = _scan_identifier(body, pos)
    if end == pos:
        raise _path_error(text, f"expected an identifier, found {body[pos]!r}", pos)
    segments.append(body[pos:end])
    pos = end
    while pos < len(body):
        ch = body[pos]
        if ch == ".":
            end = _scan_identifier(body, pos + 1)
            if end == pos + 1:
                if end >= len(body):
                    problem = "expected an identifier after '.', found the end of the path"
                elif body[end] in _DIGITS:
                    problem = "a segment cannot start with a digit (use [n] to index a list)"
                else:
                    problem = f"expected an identifier after '.', found {body[end]!r}"
                raise _path_error(text, problem, pos + 1)
            segments.append(body[pos + 1 : end])
            pos = end
        elif ch == "[":
            segment, pos = _parse_bracket(text, body, pos)
            segments.append(segment)
        else:
            raise _path_error(text, f"expected '.' or '[', found {ch!r}", pos)
    return tuple(segments)


def _is_identifier(key: str) -> bool:
    return bool(key) and _scan_identifier(key, 0) == len(key)


def format_path(path: JsonPath) -> str:
    """Render a path the way a user writes it; ``parse_path`` reads it back unchanged."""
    parts: list[str] = []
    for i, segment in enumerate(path):
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif _is_identifier(segment):
            parts.append(segment if i == 0 else f".{segment}")
        else:
            escaped = segment.replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'["{escaped}"]')
    return "".join(parts)


def check_root(path: JsonPath) -> None:
    """Reject a path whose first segment is not one of ``ROOTS`` (validation time)."""
    if not path:
        raise ExpressionError("empty path; expected one of " + ", ".join(ROOTS))
    root = path[0]
    if root not in ROOTS:
        raise ExpressionError(f"unknown root {root!r}; expected one of {', '.join(ROOTS)}")


# ----------------------------------------------------------------------- templates


@dataclass(frozen=True)
class TemplateRef:
    """One ``${{ path }}`` found in a value, with where it sits, for validation messages."""

    path: JsonPath
    text: str
    location: JsonPath


@dataclass(frozen=True)
class _Template:
    path: JsonPath
    text: str


def _find_close(s: str, start: int) -> int:
    """Index of the ``}}`` closing a template body starting at ``start``, or -1.

    Quotes are skipped so that a quoted key may itself contain ``}}``.
    """
    quote: str | None = None
    i = start
    while i < len(s):
        ch = s[i]
        if quote is not None:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif s.startswith(_CLOSE, i):
            return i
        i += 1
    return -1


def _split(s: str) -> list[str | _Template]:
    """Split a string into literal text and parsed templates, in order."""
    pieces: list[str | _Template] = []
    pos = 0
    while True:
        start = s.find(_OPEN, pos)
        if start < 0:
            if pos < len(s):
                pieces.append(s[pos:])
            return pieces
        if start > pos:
            pieces.append(s[pos:start])
        close = _find_close(s, start + len(_OPEN))
        if close < 0:
            raise ExpressionError(f"unclosed template {s[start:]!r}: missing '}}}}'")
        text = s[start : close + len(_CLOSE)]
        body = s[start + len(_OPEN) : close]
        try:
            path = parse_path(body)
        except ExpressionError as exc:
            raise ExpressionError(f"{text}: {exc}") from None
        pieces.append(_Template(path, text))
        pos = close + len(_CLOSE)


def _walk_strings(value: JsonValue, location: JsonPath) -> Iterator[tuple[str, JsonPath]]:
    """Every string in ``value`` (not dict keys) in document order, with its location."""
    if isinstance(value, str):
        yield value, location
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk_strings(item, (*location, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_strings(item, (*location, key))


def is_templated(value: JsonValue) -> bool:
    """Cheap check whether any string in ``value`` contains ``${{`` (keys excluded)."""
    return any(_OPEN in s for s, _ in _walk_strings(value, ()))


def find_templates(value: JsonValue) -> list[TemplateRef]:
    """Every template in ``value`` in document order; malformed ones raise.

    Used by validation to check roots and upstream dependencies before anything runs.
    """
    refs: list[TemplateRef] = []
    for s, location in _walk_strings(value, ()):
        if _OPEN not in s:
            continue
        for piece in _split(s):
            if isinstance(piece, _Template):
                refs.append(TemplateRef(piece.path, piece.text, location))
    return refs


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


def _describe_keys(obj: Mapping[str, Any]) -> str:
    if not obj:
        return "it is an empty object"
    keys = list(obj)
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    more = len(keys) - _MAX_KEYS_SHOWN
    return f"keys: {shown}" + (f", ... ({more} more)" if more > 0 else "")


def _where(path: JsonPath, depth: int) -> str:
    """The part of ``path`` already resolved, for messages (only built on error)."""
    return format_path(path[:depth]) if depth else "the context"


def lookup(context: Mapping[str, JsonValue], path: JsonPath) -> JsonValue:
    """Resolve ``path`` in ``context``; anything missing is an error, never ``None``.

    The result is the value in ``context`` itself (not a copy).
    """
    if not path:
        raise ExpressionError("empty path")
    current: Any = context
    for depth, segment in enumerate(path):
        if isinstance(current, Mapping):
            if not isinstance(segment, str):
                where = _where(path, depth)
                raise ExpressionError(
                    f"cannot use [{segment}] on {where}: it is an object, not a list "
                    f"({_describe_keys(current)})"
                )
            if segment not in current:
                raise ExpressionError(
                    f"{segment!r} not found in {_where(path, depth)} ({_describe_keys(current)})"
                )
            current = current[segment]
        elif isinstance(current, list):
            if not isinstance(segment, int):
                raise ExpressionError(
                    f"cannot look up {segment!r} in {_where(path, depth)}: it is "
                    f"{json_type(current)}; use [n] to index it"
                )
            if not 0 <= segment < len(current):
                where = _where(path, depth)
                raise ExpressionError(
                    f"index [{segment}] out of range for {where} (length {len(current)})"
                )
            current = current[segment]
        else:
            what = f"[{segment}]" if isinstance(segment, int) else repr(segment)
            raise ExpressionError(
                f"cannot look up {what} in {_where(path, depth)}: it is {json_type(current)}, "
                "not an object or a list"
            )
    return cast(JsonValue, current)


def _copy(value: JsonValue) -> JsonValue:
    """A fresh copy so results never alias (and let callers mutate) the context."""
    if isinstance(value, list):
        return [_copy(item) for item in value]
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    return value


def _format(value: JsonValue) -> str:
    """How a value appears when a template is embedded in a longer string."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=False, ensure_ascii=False)
    # None, bools, ints and floats: JSON spelling (null, true, 1.5, 1e+20).
    return json.dumps(value)


def _render_string(s: str, context: Mapping[str, JsonValue]) -> JsonValue:
    if _OPEN not in s:
        return s
    pieces = _split(s)
    templates = [p for p in pieces if isinstance(p, _Template)]
    whole = len(templates) == 1 and all(isinstance(p, _Template) or not p.strip() for p in pieces)
    out: list[str] = []
    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
            continue
        try:
            value = lookup(context, piece.path)
        except ExpressionError as exc:
            raise ExpressionError(f"{piece.text}: {exc}") from None
        if whole:
            return _copy(value)
        out.append(_format(value))
    return "".join(out)


def render(value: JsonValue, context: Mapping[str, JsonValue]) -> JsonValue:
    """Return a new value with every template resolved against ``context``.

    A string that is exactly one template (whitespace around it allowed) becomes the
    referenced value with its JSON type, so ``"${{ input.count }}"`` stays an int.
    Embedded templates are formatted into the string. ``value`` is never mutated.
    """
    if isinstance(value, str):
        return _render_string(value, context)
    if isinstance(value, list):
        return [render(item, context) for item in value]
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    return value


# ----------------------------------------------------------------------- JsonLogic

OPERATIONS: dict[str, Callable[..., Any]] = {
    name: op for name, op in _JSONLOGIC_BUILTINS.items() if name != "log" and callable(op)
}
"""The library's builtins minus ``log``, which prints (a side effect in a workflow).

Every entry is a plain function over JSON values; there is no ``method`` operator,
so nothing can call into Python objects.
"""

_ITERATING = frozenset({"map", "filter", "reduce", "all", "some", "none"})
_SPECIAL_FORMS = frozenset({"if", "?:", "and", "or"}) | _ITERATING

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
            return _copy(node)
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
        return _copy(expanded[name])

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
    if skip_item_logic and op in _ITERATING:
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
    return _copy(cast(JsonValue, result))


def evaluate_condition(
    logic: JsonValue,
    context: Mapping[str, JsonValue] | JsonValue,
    rules: Mapping[str, JsonValue] | None = None,
) -> bool:
    """Evaluate and apply JsonLogic truthiness (``[]``, ``""``, ``0``, null are false)."""
    return bool(_jsonlogic_to_bool(evaluate(logic, context, rules)))
