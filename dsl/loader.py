"""Safe loading of YAML and JSON definitions into plain JSON data plus positions.

We build the data ourselves from the parser's event stream instead of using a
constructor: it is several times faster than composing nodes (a 10,000-step file
loads in well under a second with the C parser), and it lets us refuse what a
workflow definition never needs before it can do harm — explicit tags such as
``!!python/object``, duplicate keys, runaway nesting and alias bombs (aliases are
allowed, but every expansion is charged to a node budget).

Positions live beside the data, not in it: a `SourceMap` from a value's path
(``("steps", 2, "action")``) to where its key and value start in the file, found
by a second pass only for the paths a message names, so that memory stays a small
multiple of the data however many values a document holds.

JSON text takes a faster road when it can: `json.loads` (C), with duplicate keys,
non-finite numbers, escaped surrogates, depth and size checked. Anything the fast
road refuses or is unsure of goes the normal way, so both give the same data and
the same errors; only a valid file is faster (5-10x for a 10,000-step definition).
Block YAML has such a road too (`dsl.fastyaml`), for the subset people write.
"""

from __future__ import annotations

import gc
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

try:
    import ruamel.yaml.cyaml as _cyaml

    CParser: Any = getattr(_cyaml, "CParser")  # noqa: B009 - libyaml via ruamel.yaml.clib
except ImportError:  # pragma: no cover - the pure parser is the fallback
    CParser = None

from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from dsl.errors import DefinitionError, Diagnostic
from dsl.fastyaml import FALSE as _FALSE
from dsl.fastyaml import FLOAT as _FLOAT
from dsl.fastyaml import INT as _INT
from dsl.fastyaml import NON_FINITE as _NON_FINITE
from dsl.fastyaml import NULL as _NULL
from dsl.fastyaml import TRUE as _TRUE
from dsl.fastyaml import (
    Refused,
    TooManyValues,
    load_block_yaml,
    refuse_constant,
    unique_keys,
)
from dsl.values import JsonPath

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "LoadedDocument",
    "Position",
    "SourceMap",
    "load_file",
    "load_text",
    "paused_gc",
    "read_bounded",
]

MAX_BYTES = 16 * 1024 * 1024
"""Largest definition file accepted; a 10,000-step definition is about 1.5 MiB."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences; real definitions stay under 15."""
MAX_NODES = 2_000_000
"""Values a document may expand to, aliases counted at their full size."""


_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {
    "!",
    *(f"{_CORE}{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")),
}
_ESCAPE = re.compile(r"\\.")
_NOT_MARKS = bytes(c for c in range(256) if c not in b'[]{}"')
_QUOTED = re.compile(rb'"[^"]*"')
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")
_SURROGATE_PAIR = re.compile(
    r"(?<!\\)((?:\\\\)*)\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE
)


class Position(NamedTuple):
    """A 1-based line and column, as editors show them."""

    line: int
    column: int


@dataclass
class SourceMap:
    """Where values (and mapping keys) of a document start in its file.

    Positions are found on demand: *locate* reads the text again and keeps only the
    paths asked for (and their ancestors, the fallbacks), so a document of two million
    values costs no position at all until a message needs one. Callers with many
    messages ask for all their paths first (`locate_all`): one pass, not one each.
    """

    file: str
    values: dict[JsonPath, Position] = field(default_factory=dict)
    keys: dict[JsonPath, Position] = field(default_factory=dict)
    locate: Callable[[frozenset[JsonPath]], SourceMap] | None = field(
        default=None, repr=False, compare=False
    )
    asked: set[JsonPath] = field(default_factory=set, repr=False, compare=False)

    def locate_all(self, paths: Iterable[JsonPath]) -> None:
        """Find the positions of *paths* and their ancestors in one pass over the text."""
        if self.locate is None:
            return
        wanted = {path[:depth] for path in paths for depth in range(len(path) + 1)}
        wanted -= self.asked
        if not wanted:
            return
        found = self.locate(frozenset(wanted))
        self.values.update(found.values)
        self.keys.update(found.keys)
        self.asked |= wanted

    def value(self, path: JsonPath) -> Position:
        """Position of the value at `path`, else of its nearest ancestor that has one."""
        self.locate_all((path,))
        for depth in range(len(path), -1, -1):
            found = self.values.get(path[:depth])
            if found is not None:
                return found
        return Position(1, 1)

    def key(self, path: JsonPath) -> Position:
        """Position of the key naming `path`; falls back like `value`."""
        self.locate_all((path,))
        found = self.keys.get(path)
        return found if found is not None else self.value(path)

    def error(self, path: JsonPath, message: str, *, at_key: bool = False) -> Diagnostic:
        """A diagnostic pointing at the key or the value at `path`."""
        where = self.key(path) if at_key else self.value(path)
        return Diagnostic(self.file, where.line, where.column, message)


@dataclass(frozen=True)
class LoadedDocument:
    """Plain JSON data (dict, list, str, int, float, bool, None) and where it came from."""

    data: Any
    source: SourceMap
    text: str


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def read_bounded(path: str | Path, limit: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most *limit* bytes, never reading more.

    `/dev/zero` or a FIFO would otherwise be read until memory runs out, and the
    cap applied too late. The file is opened without blocking (a FIFO with no writer
    would hang the open), checked to be a regular file, and read to *limit* + 1
    bytes at most, so a file growing while read is caught too. Raises `OSError`
    with a reason in `strerror` for anything refused.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb", buffering=0) as handle:
        info = os.fstat(fd)
        for is_kind, kind in _FILE_KINDS:
            if is_kind(info.st_mode):
                raise OSError(0, f"it is {kind}, not a regular file")
        if info.st_size > limit:
            raise OSError(0, f"file is {info.st_size} bytes; the limit is {limit}")
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0:
            chunk = handle.read(min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    raw = b"".join(chunks)
    if len(raw) > limit:
        raise OSError(0, f"file is over the limit of {limit} bytes")
    return raw


def load_file(path: str | Path) -> LoadedDocument:
    """Read and load a definition file; every problem becomes a `DefinitionError`."""
    name = str(path)
    try:
        raw = read_bounded(path, MAX_BYTES)
    except OSError as exc:
        raise DefinitionError(
            [Diagnostic(name, 1, 1, f"cannot read file: {exc.strerror}")]
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _fail(name, line, column, "file is not UTF-8 text") from None
    return load_text(text, file=name)


def load_text(text: str, *, file: str = "<string>") -> LoadedDocument:
    """Load one YAML (or JSON) document from `text` with positions."""
    if len(text) > MAX_BYTES:
        raise _fail(file, 1, 1, f"document is {len(text)} characters; the limit is {MAX_BYTES}")
    text = _checked_unicode(text, file)
    fast = _load_json(text, file)
    if fast is None:
        fast = _load_block_yaml(text, file)
    return fast if fast is not None else _load_events(text, file)


def _load_json(text: str, file: str) -> LoadedDocument | None:
    """The fast road for JSON (see the module's docs); None when it cannot decide."""
    if not (file.endswith(".json") or text.lstrip()[:1] == "{") or "\\ud" in text.lower():
        return None  # escaped surrogates: the normal loader joins pairs, refuses lone ones
    try:
        with paused_gc():
            data = json.loads(text, object_pairs_hook=unique_keys, parse_constant=refuse_constant)
    except (Refused, ValueError, RecursionError):
        return None
    if not _within_limits(text):
        return None
    return LoadedDocument(data=data, source=_located_later(text, file), text=text)


def _load_block_yaml(text: str, file: str) -> LoadedDocument | None:
    """The fast road for block YAML (`dsl.fastyaml`); None when it cannot decide."""
    try:
        with paused_gc():
            data = load_block_yaml(text, MAX_DEPTH, MAX_NODES)
    except TooManyValues as exc:
        raise _fail(file, exc.line, exc.column, _too_many(aliased=False)) from None
    if data is None:
        return None
    return LoadedDocument(data=data, source=_located_later(text, file), text=text)


def _within_limits(text: str) -> bool:
    """Depth and size of valid JSON text well inside the loader's limits (near them, it
    decides), from its brackets and commas: no walk over the values.

    Commas inside strings only make the count safer. Brackets inside strings must not
    count: escapes go first, then (of the brackets and quotes left) the strings.
    """
    raw = (_ESCAPE.sub("", text) if "\\" in text else text).encode("utf-8")
    if 1 + raw.count(b",") + raw.count(b"[") + raw.count(b"{") > MAX_NODES // 2:
        return False  # each value but a container's first follows a comma
    marks = raw.translate(None, _NOT_MARKS).replace(b'""', b"")  # still quote-balanced
    brackets = _QUOTED.sub(b"", marks) if b'"' in marks else marks
    for _ in range(MAX_DEPTH - 2):  # each pass takes off the innermost level
        if not brackets:
            return True
        brackets = _EMPTY_PAIR.sub(b"", brackets)
    return not brackets


def _load_events(text: str, file: str) -> LoadedDocument:
    """The normal road: the parser's event stream, positions found later on demand."""
    builder = _run_builder(text, file, frozenset())
    return LoadedDocument(data=builder.result, source=_located_later(text, file), text=text)


def _located_later(text: str, file: str) -> SourceMap:
    return SourceMap(file, locate=lambda wanted: _run_builder(text, file, wanted).source)


def _run_builder(text: str, file: str, wanted: frozenset[JsonPath]) -> _Builder:
    """One pass of the event stream through a `_Builder` keeping the *wanted* positions."""
    builder = _Builder(file, wanted)
    handlers = builder.handlers()
    language = "JSON" if file.endswith(".json") else "YAML"
    try:
        with paused_gc():
            for event in _events(text):
                handler = handlers.get(type(event))
                if handler is not None:
                    handler(event)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise _fail(
            file, line, column, f"invalid {language}: {problem}{_template_hint(text, line)}"
        ) from None
    except YAMLError as exc:
        raise _fail(file, 1, 1, f"invalid {language}: {_one_line(str(exc))}") from None
    return builder


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause cyclic GC while building large trees that only grow.

    Without it, repeated scans of the growing definition cost ~40% of load and
    graph time for a 10,000-step file; nothing built here holds reference cycles.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _events(text: str) -> Iterator[Any]:
    """Parser events, from libyaml when ruamel.yaml.clib is there (5x faster)."""
    if CParser is None:
        yield from YAML(typ="safe", pure=True).parse(text)
        return
    parser = CParser(text)
    while parser.check_event():
        yield parser.get_event()


def _checked_unicode(text: str, file: str) -> str:
    """Refuse lone surrogates; turn JSON's escaped surrogate pairs into one escape libyaml reads.

    ``json.dumps`` writes U+1F600 as ``"\\ud83d\\ude00"``, which libyaml rejects; the
    YAML escape ``\\U0001F600`` means the same character.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        column = exc.start - (text.rfind("\n", 0, exc.start) + 1) + 1
        code = ord(text[exc.start])
        raise _fail(file, line, column, f"text holds a lone surrogate U+{code:04X}") from None
    if "\\ud" not in text.lower():
        return text
    return _SURROGATE_PAIR.sub(_join_pair, text)


def _join_pair(match: re.Match[str]) -> str:
    high, low = int(match[2], 16), int(match[3], 16)
    code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
    return f"{match[1]}\\U{code:08X}"


def _too_many(*, aliased: bool) -> str:
    if aliased:
        return f"document expands to more than {MAX_NODES} values through its aliases (alias bomb?)"
    return f"document holds more than {MAX_NODES} values"


def _fail(file: str, line: int, column: int, message: str) -> DefinitionError:
    return DefinitionError([Diagnostic(file, line, column, message)])


def _template_hint(text: str, line: int) -> str:
    """YAML reads the braces of an unquoted ``${{ }}`` inside ``{...}`` or ``[...]`` as syntax."""
    nearby = text.splitlines()[max(0, line - 2) : line]
    if any(_has_unquoted_template(candidate) for candidate in nearby):
        return ' (a ${{ template }} inside { } or [ ] must be quoted: "${{ ... }}")'
    return ""


def _has_unquoted_template(line: str) -> bool:
    """Whether `line` holds ``${{`` outside quotes (a rough YAML scan, enough for a hint)."""
    quote = ""
    index = 0
    while index < len(line):
        char = line[index]
        if quote:
            if quote == '"' and char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'" and (index == 0 or line[index - 1] in " \t[{,:"):
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return False
        elif line.startswith("${{", index):
            return True
        index += 1
    return False


def _one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass
class _Frame:
    """A mapping or sequence being built, with what its next child needs to know."""

    container: dict[str, Any] | list[Any]
    path: JsonPath
    anchor: str | None
    position: Position
    size: int = 1
    key: str | None = None
    merges: list[tuple[Any, Position]] = field(default_factory=list)
    merging: bool = False


@dataclass
class _Anchored:
    value: Any
    size: int


class _Builder:
    """Turns parser events into plain data and budget checks, and keeps the positions of
    the *wanted* paths (none while loading: see `SourceMap`)."""

    def __init__(self, file: str, wanted: frozenset[JsonPath] = frozenset()) -> None:
        self.source = SourceMap(file)
        self.wanted = wanted
        self.file = file
        self.result: Any = None
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchored] = {}
        self.open_anchors: set[str] = set()
        self.nodes = 0
        self.aliased = False
        self.documents = 0

    def fail(self, event: Any, message: str) -> DefinitionError:
        mark = event.start_mark
        return _fail(self.file, mark.line + 1, mark.column + 1, message)

    def handlers(self) -> dict[type, Callable[[Any], None]]:
        """What to do per event type; the rest (stream and document ends) needs nothing."""
        return {
            ScalarEvent: self.scalar,
            MappingStartEvent: self.open,
            SequenceStartEvent: self.open,
            MappingEndEvent: self.close,
            SequenceEndEvent: self.close,
            AliasEvent: self.alias,
            DocumentStartEvent: self.document,
        }

    def document(self, event: Any) -> None:
        self.documents += 1
        if self.documents > 1:
            raise self.fail(event, "a definition file holds exactly one YAML document")

    def child_path(self, event: Any) -> JsonPath | None:
        """The path of the value this event starts, or None when it is a mapping key."""
        if not self.stack:
            return ()
        frame = self.stack[-1]
        if isinstance(frame.container, list):
            return (*frame.path, len(frame.container))
        if frame.key is not None:
            return (*frame.path, frame.key)
        return (*frame.path, "<<") if frame.merging else None

    def charge(self, event: Any, size: int) -> None:
        self.nodes += size
        if self.nodes > MAX_NODES:
            raise self.fail(event, _too_many(aliased=self.aliased))

    def check_tag(self, event: Any) -> None:
        tag = event.tag
        if tag is not None and tag not in _ALLOWED_TAGS:
            raise self.fail(event, f"tag {tag!r} is not allowed; definitions hold plain data only")

    def scalar(self, event: ScalarEvent) -> None:
        if event.tag is not None:
            self.check_tag(event)
        path = self.child_path(event)
        mark = event.start_mark
        position = Position(mark.line + 1, mark.column + 1)
        if path is None:
            self.mapping_key(event, position)
            return
        value = self.resolve(event)
        self.charge(event, 1)
        if self.wanted and path in self.wanted:
            self.source.values[path] = position
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchored(value, 1)
        self.attach(value, 1, position)

    def mapping_key(self, event: ScalarEvent, position: Position) -> None:
        frame = self.stack[-1]
        assert isinstance(frame.container, dict)
        key = str(event.value)
        if key == "<<" and event.tag is None and not event.style:
            frame.merging = True
            return
        if key in frame.container:
            raise self.fail(event, f"duplicate key {key!r}")
        frame.key = key
        if self.wanted:
            path = (*frame.path, key)
            if path in self.wanted:
                self.source.keys[path] = position

    def resolve(self, event: ScalarEvent) -> Any:
        """YAML 1.2 core schema for plain scalars; quoted ones are strings."""
        text: str = event.value
        tag = event.tag
        plain = tag is None and not event.style and event.implicit[0]
        if not plain and tag in (None, "!", f"{_CORE}str"):
            return text
        kind = tag[len(_CORE) :] if tag else None
        if kind in (None, "null") and text in _NULL:
            return None
        if kind in (None, "bool") and (text in _TRUE or text in _FALSE):
            return text in _TRUE
        if kind in (None, "int") and _INT.fullmatch(text):
            return int(text, 0) if text[:2] in ("0o", "0x") else int(text)
        if kind in (None, "float") and (_FLOAT.fullmatch(text) or _INT.fullmatch(text)):
            return float(text)
        if kind in (None, "float") and _NON_FINITE.fullmatch(text):
            raise self.fail(event, f"{text} is not a JSON number")
        if kind is None:
            return text
        raise self.fail(event, f"{text!r} is not a valid {kind}")

    def open(self, event: Any) -> None:
        self.check_tag(event)
        if len(self.stack) >= MAX_DEPTH:
            raise self.fail(event, f"nesting deeper than {MAX_DEPTH} levels")
        path = self.child_path(event)
        if path is None:
            raise self.fail(event, "mapping keys must be plain strings, not collections")
        self.charge(event, 1)
        position = Position(event.start_mark.line + 1, event.start_mark.column + 1)
        if self.wanted and path in self.wanted:
            self.source.values[path] = position
        container: dict[str, Any] | list[Any] = {} if isinstance(event, MappingStartEvent) else []
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        self.stack.append(_Frame(container, path, event.anchor, position))

    def close(self, event: Any) -> None:
        frame = self.stack.pop()
        value = frame.container
        if isinstance(value, dict):
            for merged, position in frame.merges:
                self.apply_merge(value, merged, position)
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = _Anchored(value, frame.size)
        self.attach(value, frame.size, frame.position)

    def alias(self, event: AliasEvent) -> None:
        name = event.anchor
        if name in self.open_anchors:
            raise self.fail(event, f"alias *{name} refers to a value that contains it")
        anchored = self.anchors.get(name)
        if anchored is None:
            raise self.fail(event, f"alias *{name} has no anchor &{name} before it")
        path = self.child_path(event)
        if path is None:
            raise self.fail(event, "mapping keys must be plain strings, not aliases")
        self.aliased = True
        self.charge(event, anchored.size)
        position = Position(event.start_mark.line + 1, event.start_mark.column + 1)
        if self.wanted and path in self.wanted:
            self.source.values[path] = position
        self.attach(anchored.value, anchored.size, position)

    def attach(self, value: Any, size: int, position: Position) -> None:
        """Put a finished value into its parent (or make it the document)."""
        if not self.stack:
            self.result = value
            return
        frame = self.stack[-1]
        frame.size += size
        if isinstance(frame.container, list):
            frame.container.append(value)
        elif frame.merging and frame.key is None:
            frame.merges.append((value, position))
            frame.merging = False
        else:
            assert frame.key is not None
            frame.container[frame.key] = value
            frame.key = None

    def apply_merge(self, target: dict[str, Any], merged: Any, position: Position) -> None:
        """YAML merge keys: `<<: *base` adds the keys the mapping does not set itself."""
        sources = merged if isinstance(merged, list) else [merged]
        for source in sources:
            if not isinstance(source, dict):
                raise _fail(self.file, position.line, position.column, "'<<' merges mappings only")
            for key, value in source.items():
                target.setdefault(key, value)
