"""Templates (``${{ path }}``): how parameters, inputs and outputs read the run's data.

One of the two ways data flows; the other is JsonLogic conditions (``dsl.conditions``).
Everything here is pure and deterministic because it also runs inside the Temporal
workflow sandbox, where a replay must compute exactly what the first run computed: no
I/O, no clocks, no randomness, no dependence on set iteration order, and no ``eval``.
A template can only *read* JSON data.

A template naming a value that is not there is an error (``ExpressionError``):
silently rendering ``""`` or ``null`` would pass garbage to an activity. This is
deliberately unlike a JsonLogic ``var``, which is ``null`` for a missing value because
JsonLogic specifies it and conditions rely on it (``{"!": {"var": "x"}}``).

Templates are not resolved inside conditions: conditions read the same context
through ``{"var": "steps.a.output.total"}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from dsl.errors import ExpressionError
from dsl.values import JsonPath, JsonValue, copy_value, json_type

__all__ = [
    "ROOTS",
    "TemplateRef",
    "check_root",
    "find_templates",
    "format_path",
    "is_templated",
    "lookup",
    "parse_path",
    "render",
    "string_templates",
]

ROOTS: tuple[str, ...] = ("input", "steps", "vars", "item", "index", "iteration", "run")
"""The allowed first segments of a path (docs/language.md, "Templates")."""

_OPEN = "${{"
_CLOSE = "}}"
_IDENT_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_IDENT_REST = _IDENT_START | frozenset("0123456789-")
_DIGITS = frozenset("0123456789")
_DOTTED = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*)\s*")
"""The common shape ``steps.a.output``: split at once; anything else is parsed below."""
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
    dotted = _DOTTED.fullmatch(text)
    if dotted is not None:
        return tuple(dotted[1].split("."))
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


class _Template(NamedTuple):
    """A parsed template in a string (a tuple: made for every string rendered or checked)."""

    path: JsonPath
    text: str


def _find_close(s: str, start: int) -> int:
    """Index of the ``}}`` closing a template body starting at ``start``, or -1.

    Quotes are skipped so that a quoted key may itself contain ``}}``.
    """
    first = s.find(_CLOSE, start)
    if first < 0:
        return -1
    if '"' not in s[start:first] and "'" not in s[start:first]:
        return first  # no quote before it: the first ``}}`` closes the template
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
        for path, text in string_templates(s):
            refs.append(TemplateRef(path, text, location))
    return refs


def string_templates(s: str) -> list[tuple[JsonPath, str]]:
    """The (path, text) of each template in one string, in order; malformed ones raise
    as `find_templates` does (validation checks each string of a definition).

    A string that is one dotted template (``${{ steps.a.output }}``, the usual case)
    is read at once: what `_split` would make of it, without the scan.
    """
    if s.startswith(_OPEN) and s.endswith(_CLOSE):
        dotted = _DOTTED.fullmatch(s, len(_OPEN), len(s) - len(_CLOSE))
        if dotted is not None:
            return [(tuple(dotted[1].split(".")), s)]
    return [(piece.path, piece.text) for piece in _split(s) if isinstance(piece, _Template)]


# ------------------------------------------------------------------ lookup, render


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
            return copy_value(value)
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
