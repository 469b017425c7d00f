"""A fast road for block YAML as people write it: a line reader for a strict subset.

libyaml hands Python one event object per scalar and per collection; for a
10,000-step file that alone costs more than the whole budget for loading and
validating it. Most definitions use only a small part of YAML: block mappings and
sequences, one key or ``- `` item per line, plain or quoted one-line scalars and
one-line flow collections (``{type: number}``, ``["a", "b"]``). This module reads
exactly that, with string methods for the lines and json's C scanner for the flow
collections, and gives up (returns None) on anything else — anchors,
aliases, tags, merge keys, directives, block or multi-line scalars, tabs, odd
characters, duplicate keys, indentation it does not expect, nesting near the
loader's limit — so the loader's event road decides it, with its messages. Too many
values it decides itself (`TooManyValues`): it counts them as the event road does.

Whatever this road accepts, it must read as the event road does; the scalar rules
here are the loader's (YAML 1.2 core, see `resolve_plain`) and the tests feed the
same texts to both roads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import chain
from json.scanner import make_scanner
from typing import Any, cast

__all__ = [
    "FALSE",
    "FLOAT",
    "INT",
    "NON_FINITE",
    "NULL",
    "TRUE",
    "Refused",
    "TooManyValues",
    "load_block_yaml",
    "refuse_constant",
    "resolve_plain",
    "unique_keys",
]

NULL = frozenset({"", "~", "null", "Null", "NULL"})
TRUE = frozenset({"true", "True", "TRUE"})
FALSE = frozenset({"false", "False", "FALSE"})
INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
NON_FINITE = re.compile(r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")

_MAYBE_NOT_TEXT = frozenset("~nNtTfF+-.0123456789")
"""First characters of every plain scalar that is not a string (see `resolve_plain`)."""


class Refused(Exception):
    """This text is outside the subset: the event road decides."""


class TooManyValues(Exception):
    """The text is in the subset and holds more values than allowed: decided here, since
    the event road would only count the same values again, ten times slower."""

    def __init__(self, line: int, column: int) -> None:
        super().__init__(line, column)
        self.line = line
        self.column = column


def resolve_plain(text: str) -> Any:
    """A plain (unquoted, untagged) scalar as the loader resolves it: YAML 1.2 core.

    Raises `ValueError` for ``.inf`` and ``.nan`` (no JSON number: the event road
    reports them) and for an integer too long for `int`.
    """
    if text[:1] not in _MAYBE_NOT_TEXT:
        return text
    if text in NULL:
        return None
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    if INT.fullmatch(text):
        return int(text, 0) if text[:2] in ("0o", "0x") else int(text)
    if FLOAT.fullmatch(text):
        return float(text)
    if NON_FINITE.fullmatch(text):
        raise ValueError(f"{text} is not a JSON number")
    return text


# Characters libyaml reads as we do: no tab, CR, C0/C1 controls, DEL, NEL, U+2028/9,
# BOM, non-characters (and no lone surrogates: the loader refused them already).
_UNSAFE = re.compile(
    "[^\n -~\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)

# A JSON string whose escapes mean the same in a YAML double-quoted scalar (no
# escaped surrogates), and a single-quoted one; both on one line.
_DQ = r'"(?:[^"\\\n]++|\\["\\/bfnrt]|\\u(?![dD][89a-fA-F])[0-9a-fA-F]{4})*+"'
_SQ = r"'(?:[^'\n]++|'')*+'"
# Keys stay far below libyaml's 1024-character limit for implicit keys.
_SHORT_DQ = r'"(?:[^"\\\n]|\\["\\/bfnrt]|\\u(?![dD][89a-fA-F])[0-9a-fA-F]{4}){0,200}"'
_SHORT_SQ = r"'(?:[^'\n]|''){0,200}'"
_PLAIN_KEY = r"[A-Za-z0-9_$](?:[-A-Za-z0-9_./$ ]{0,200}[-A-Za-z0-9_./$])?"

_KEY = re.compile(rf"{_PLAIN_KEY}|{_SHORT_DQ}|{_SHORT_SQ}")
_SAFE_ASCII = bytes([10, *range(32, 127)])

_QUOTED_VALUE = re.compile(rf"({_DQ}|{_SQ})(?: *| +#.*)")

# Flow collections that are JSON already, written with JSON's separators.
_PUNCT = r"[\[{] *| *[\]}]|, *"
_JSON_TOKEN = (
    rf"{_PUNCT}|{_SHORT_DQ}: +|{_DQ}"
    r"|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null"
)
_JSON_FLOW = re.compile(rf"((?:{_JSON_TOKEN})*+)(?: *| +#.*)")
"""Tokens are taken greedily and never split again (``*+``): linear on any line."""

# Other flow collections: plain scalars of safe characters, quoted scalars, keys.
_FLOW_WORD = r"[A-Za-z0-9_$/][-A-Za-z0-9_.+/$]*"
_FLOW_PLAIN = rf"(?:{_FLOW_WORD}|[-+.][A-Za-z0-9_.][-A-Za-z0-9_.+/$]*)(?: +{_FLOW_WORD})*"
_FLOW_TOKEN = re.compile(
    rf"(?P<punct>{_PUNCT})"
    rf"|(?P<dqkey>{_SHORT_DQ}): +|(?P<dq>{_DQ})"
    rf"|(?P<sqkey>{_SHORT_SQ}): +|(?P<sq>{_SQ})"
    rf"|(?P<key>{_FLOW_PLAIN}): +|(?P<plain>{_FLOW_PLAIN})"
)
_FLOW_END = re.compile(r" *| +#.*")

_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_UNSEEN: Any = object()
"""The key cache's answer for a key not seen before."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` of both fast roads (this one and the loader's JSON road)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        raise Refused  # a duplicate key: the slow road says where
    return found


def refuse_constant(text: str) -> Any:
    """`parse_constant` of both fast roads: NaN, Infinity (an overflowing 1e999)."""
    raise Refused


_DECODER = json.JSONDecoder(object_pairs_hook=unique_keys, parse_constant=refuse_constant)
_scan = make_scanner(cast(Any, _DECODER))
"""json's C scanner: one value from a position, returning it and where it ends."""


def _decode_quoted(token: str) -> str:
    if token[0] == "'":
        return token[1:-1].replace("''", "'")
    return token[1:-1] if "\\" not in token else str(json.loads(token))


def _as_json(text: str) -> str:
    """A one-line flow collection as JSON text; raises `Refused` when unsure."""
    match = _JSON_FLOW.fullmatch(text)
    return match[1] if match is not None else _translate_flow(text)


def _translate_flow(text: str) -> str:
    """A one-line flow collection that is not JSON (plain scalars, quotes), as JSON."""
    pieces: list[str] = []
    end = 0
    for match in _FLOW_TOKEN.finditer(text):
        if match.start() != end:
            break
        end = match.end()
        kind = match.lastgroup
        token = match[kind or 0]
        if kind == "punct":
            pieces.append(token.strip(" "))
        elif kind == "dqkey":
            pieces.append(token + ":")
        elif kind == "dq":
            pieces.append(token)
        elif kind == "sqkey":
            pieces.append(json.dumps(_decode_quoted(token)) + ":")
        elif kind == "sq":
            pieces.append(json.dumps(_decode_quoted(token)))
        elif kind == "key":
            if len(token) > 200:
                raise Refused
            pieces.append(json.dumps(token) + ":")
        else:
            pieces.append(json.dumps(resolve_plain(token)))
    tail = text[end:]
    if _FLOW_END.fullmatch(tail) is None:
        raise Refused
    return "".join(pieces)


def _flow(rest: str, flows: dict[str, str]) -> Any:
    """A one-line flow collection that is not plain JSON, translated once per text."""
    text = flows.get(rest)
    if text is None:
        text = flows[rest] = _as_json(rest)
    value, end = _scan(text, 0)
    if end != len(text):
        raise Refused
    return value


def _scalar(rest: str) -> Any:
    """A quoted or plain scalar that ends a line (a comment may follow)."""
    first = rest[0]
    if first == '"' or first == "'":
        match = _QUOTED_VALUE.fullmatch(rest)
        if match is None:
            raise Refused
        return _decode_quoted(match[1])
    if first in _INDICATORS and (first != "-" or rest[1:2] in ("", " ")):
        raise Refused
    cut = rest.find(" #")
    text = (rest if cut < 0 else rest[:cut]).rstrip(" ")
    if ": " in text or text[-1] == ":":
        raise Refused
    return resolve_plain(text)


def load_block_yaml(text: str, max_depth: int, max_nodes: int) -> Any | None:
    """The data of `text` if it is in the subset (see the module's docs), else None."""
    if not _safe_characters(text):
        return None
    try:
        return _read(text, max_depth, max_nodes)
    except (Refused, ValueError, StopIteration, RecursionError):
        return None


_CHUNK = 1 << 20


def _line_chunks(text: str) -> Iterator[list[str]]:
    """The lines of *text*, about a mebibyte at a time: splitting a 16 MiB file at once
    would hold ten times its size in line strings."""
    start = 0
    while True:
        end = text.find("\n", start + _CHUNK)
        if end < 0:
            yield text[start:].split("\n")
            return
        yield text[start:end].split("\n")
        start = end + 1


def _count_values(value: Any) -> int:
    """Values in a flow collection as the event road counts them: containers and scalars."""
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        count += 1
        if type(item) is dict:
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return count


def _counted(flow_chars: int, uncounted: list[tuple[int, Any]]) -> int:
    """The flows' values with each uncounted flow's character bound replaced by its
    exact count (which empties *uncounted*): counting only near the limit keeps the
    usual document from walking its flows twice."""
    exact = flow_chars - sum(size - _count_values(flow) for size, flow in uncounted)
    uncounted.clear()
    return exact


def _value_column(line: str) -> int:
    """1-based column where the value of a block line starts (after dashes and key)."""
    body = line.lstrip(" ")
    while body[:2] == "- ":
        body = body[2:].lstrip(" ")
    _, colon, rest = body.partition(": ")
    value = rest.lstrip(" ") if colon else body
    return len(line) - len(value) + 1


def _safe_characters(text: str) -> bool:
    if text.isascii():  # the usual case, 5x faster than the expression
        return not text.encode("ascii").translate(None, _SAFE_ASCII)
    return _UNSAFE.search(text) is None


def _read(text: str, max_depth: int, max_nodes: int) -> Any:
    """Block structure from the lines: open blocks as (indent, container, indentless)
    frames, the innermost also in locals, with the key (or True for a ``-``) whose
    value is on the next lines; the loop runs once per line.

    A flow collection on a line is first read as JSON (YAML reads JSON without
    escapes the same way; short, so that no key nears libyaml's 1024-character limit
    for implicit keys), else translated. Its nesting and its values are bounded by
    its length and, when that is not enough, by its brackets and commas.
    """
    if max_depth < 2:
        raise Refused
    stack: list[tuple[int, Any, bool]] = []
    indent = -1
    container: Any = None
    indentless = False
    pending: Any = None
    root: Any = None
    started = False
    nodes = 0
    flow_chars = 0  # the flows' values so far: counted, or bounded by their characters
    uncounted: list[tuple[int, Any]] = []
    last_number, last_line = 1, ""
    keys: dict[str, str | None] = {}
    flows: dict[str, str] = {}
    scan = _scan
    for number, line in enumerate(chain.from_iterable(_line_chunks(text)), 1):
        if nodes + flow_chars > max_nodes:  # through the last line: count its flows exactly
            flow_chars = _counted(flow_chars, uncounted)
            if nodes + flow_chars > max_nodes:
                raise TooManyValues(last_number, _value_column(last_line))
        body = line.lstrip(" ")
        if not body or body[0] == "#":
            continue  # blank or comment
        last_number, last_line = number, line
        column = len(line) - len(body)
        dash = 0
        if body[0] == "-":
            if len(body) == 1 or body[1] == " ":
                rest = body[1:].lstrip(" ")
                dash = len(body) - len(rest)
                body = rest
            elif body == "---" and not column and not started and root is None:
                started = True
                continue
        raw, colon, rest = body.partition(": ")
        if colon:
            name = keys.get(raw, _UNSEEN)
            if rest[:1] == " ":
                rest = rest.lstrip(" ")
        elif body[-1:] == ":":
            raw, rest = body[:-1], ""
            name = keys.get(raw, _UNSEEN)
        else:
            name = None
        if name is _UNSEEN:
            name = keys[raw] = _key(raw)
        if name is None:
            if not dash:
                raise Refused  # a bare scalar, a continuation line, a marker...
            rest = body
        if root is None:
            root = container = [] if dash else {}
            indent = column
            stack.append((indent, container, False))
            nodes += 1
        elif pending is not None:  # the previous line left a value open
            if column > indent or (column == indent and dash and type(container) is dict):
                opened: Any = [] if dash else {}
                if type(container) is dict:
                    container[pending] = opened
                else:
                    container.append(opened)
                if len(stack) >= max_depth - 1:
                    raise Refused
                nodes += 1
                indentless = column == indent
                indent, container = column, opened
                stack.append((indent, container, indentless))
            else:
                if type(container) is list:
                    container.append(None)  # a key's None is in place already
                nodes += 1
            pending = None
        while indent > column or (indentless and indent == column and not dash):
            stack.pop()
            if not stack:
                raise Refused
            indent, container, indentless = stack[-1]
        if indent != column:
            raise Refused
        if dash:
            if type(container) is not list:
                raise Refused
            if name is not None:  # "- key: ...": a mapping starts in the item
                if len(stack) >= max_depth - 1:
                    raise Refused
                nodes += 1
                mapping: dict[str, Any] = {}
                container.append(mapping)
                indent, container, indentless = column + dash, mapping, False
                stack.append((indent, container, False))
        elif type(container) is not dict:
            raise Refused
        if name is not None and name in container:
            raise Refused  # a duplicate key: the event road says where
        first = rest[:1]
        if first == "{" or first == "[":
            size = len(rest)
            if len(stack) + size // 2 >= max_depth - 1:  # each level takes two brackets
                closing = rest.count("]") + rest.count("}")
                if len(stack) + closing >= max_depth - 1:
                    raise Refused
            flow_chars += size  # each value takes a character
            value = _UNSEEN
            if "\\" not in rest and size <= 1000 and rest not in flows:
                try:
                    value, end = scan(rest, 0)
                except (StopIteration, ValueError):
                    value = _UNSEEN
                else:
                    if end != size and _FLOW_END.fullmatch(rest, end) is None:
                        value = _UNSEEN
            if value is _UNSEEN:
                value = _flow(rest, flows)
            uncounted.append((size, value))
        elif not first or first == "#":
            if name is None:
                pending = True
            else:
                container[name] = None  # keeps the key's place; the value comes later
                pending = name
            continue
        else:
            nodes += 1
            value = _scalar(rest)
        if name is None:
            container.append(value)
        else:
            container[name] = value
    if root is None:
        raise Refused
    if pending is not None:
        if type(container) is list:
            container.append(None)
        nodes += 1
    if nodes + _counted(flow_chars, uncounted) > max_nodes:
        raise TooManyValues(last_number, _value_column(last_line))
    return root


def _key(raw: str) -> str | None:
    """A mapping key as the event road reads it: its source text, quotes undone."""
    if _KEY.fullmatch(raw) is None:
        return None
    return _decode_quoted(raw) if raw[0] in "\"'" else raw
