"""The fast road for block YAML reads whatever it accepts exactly as the event road does.

Every test feeds the same text to both roads (`load_block_yaml` and the loader's
event road, `_load_events`): when the fast road accepts a text, the event road must
read it without error into the same data, types included; when it declines, the
loader's answer (data or message) is the event road's. Texts come from tables of
each construct, from random values written in random block/flow/quoting styles,
and from random lines of YAML-ish tokens, most of them outside the subset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ruamel.yaml.events import ScalarEvent

from benchmarks.validation import _definition, _yaml
from dsl import loader
from dsl.catalog import is_definition_file
from dsl.errors import DefinitionError
from dsl.fastyaml import TooManyValues, load_block_yaml, resolve_plain
from dsl.loader import (
    MAX_DEPTH,
    MAX_NODES,
    Position,
    _Builder,
    _checked_unicode,
    _load_events,
    load_text,
)
from dsl.validate import validate_text
from tests.dsl.test_properties import near_valid_definitions, same

ROOT = Path(__file__).resolve().parents[2]


def fast(text: str, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> Any:
    return load_block_yaml(text, max_depth, max_nodes)


def slow(text: str) -> tuple[str, Any]:
    """The event road's reading: ("data", value) or ("error", the message lines)."""
    try:
        return "data", _load_events(_checked_unicode(text, "f.yaml"), "f.yaml").data
    except DefinitionError as exc:
        return "error", str(exc)


def loaded(text: str) -> tuple[str, Any]:
    try:
        return "data", load_text(text, file="f.yaml").data
    except DefinitionError as exc:
        return "error", str(exc)


def check(text: str) -> bool:
    """Both roads agree on `text`; True when the fast road took it."""
    reading = fast(text)
    kind, value = slow(text)
    if reading is not None:
        assert kind == "data", f"fast road accepted what the event road refuses: {value}"
        assert same(reading, value), (reading, value)
    ours = loaded(text)
    assert ours[0] == kind
    assert same(ours[1], value) if kind == "data" else ours[1] == value
    return reading is not None


def _values(data: Any) -> int:
    """Values as the event road counts them (keys are not values)."""
    if isinstance(data, dict):
        return 1 + sum(_values(v) for v in data.values())
    if isinstance(data, list):
        return 1 + sum(_values(v) for v in data)
    return 1


def _depth(data: Any) -> int:
    if isinstance(data, dict):
        return 1 + max((_depth(v) for v in data.values()), default=0)
    if isinstance(data, list):
        return 1 + max((_depth(v) for v in data), default=0)
    return 0


# --------------------------------------------------------------------------- scalars

PLAIN_SCALARS = [
    *["~", "null", "Null", "NULL", "nULL", "none", "true", "True", "TRUE", "tRUE", "false"],
    *["False", "FALSE", "yes", "no", "on", "off", "0", "-0", "+0", "00", "007", "1", "-1"],
    *["+1", "12_3", "1,000", "0x1F", "0X1F", "0x", "0xg", "-0x1", "0o17", "0o8", "0O17", "0b1"],
    *["1.5", "-1.5", "+.5", ".5", "5.", "1e3", "1E3", "1e+3", "1e-3", "-1.5e-3", ".5e1", "1e"],
    *["1e+", "e3", "1.2.3", "1_0.5", ".inf", "-.inf", "+.inf", ".Inf", ".INF", ".nan", ".NaN"],
    *[".NAN", "nan", "inf", "Infinity", "-Infinity", "NaN", "2026-01-01", "12:30", "10s"],
    *["1h30m", "v1", "s0", "echo", "${{ a.b }}", "<<", "1e400", "-1e400", "\u0663", "\uff11"],
]  # fmt: skip


def _event_resolve(text: str) -> Any:
    event = ScalarEvent(None, None, (True, False), text)
    return _Builder("f.yaml").resolve(event)


@pytest.mark.parametrize("text", PLAIN_SCALARS)
def test_plain_scalars_resolve_as_the_event_road_does(text: str) -> None:
    try:
        expected = _event_resolve(text)
    except (DefinitionError, AttributeError):  # .inf: a message (no mark to point at here)
        with pytest.raises(ValueError, match="not a JSON number"):
            resolve_plain(text)
        return
    assert same(resolve_plain(text), expected)


SCALAR_LIKE = st.from_regex(
    r"[-+~.]?(0[xXoObB])?[0-9a-fA-F._eE+-]{0,6}|[.~]?[a-zA-Z]{0,6}|[-+]?\.?(inf|nan|Inf|NaN)",
    fullmatch=True,
)


@given(st.one_of(SCALAR_LIKE, st.text(max_size=6)).filter(bool))
def test_any_plain_scalar_resolves_as_the_event_road_does(text: str) -> None:
    try:
        expected = _event_resolve(text)
    except (DefinitionError, AttributeError):
        with pytest.raises(ValueError, match="not a JSON number"):
            resolve_plain(text)
        return
    assert same(resolve_plain(text), expected)


# --------------------------------------------------------------------------- constructs

ACCEPTED = [
    "a: 1\n",
    "a: 1\nb: two words\nc: ~\nd: 'it''s'\ne: \"x\\ty\\u00e9\\/\"\n",
    "# comment\n\na: 1 # trailing\nb:   spaced   \n",
    "---\na: 1\n",
    "a:\n  b:\n    c: 1\n  d: 2\ne: 3\n",
    "a:\n- 1\n- 2\nb: 3\n",
    "a:\n  - 1\n  -   x: 1\n      y: 2\n  - [1, 2]\n",
    "- a: 1\n  b: 2\n- c\n-\n  d: 4\n-\n",
    "- a:\n  - x\n  b: 2\n",
    "a:\nb:\n",
    "a:\n  -\n  - y\n",
    'k: {"a": 1, "b": [true, null, -1.5e3]}\n',
    "k: {type: string, default: someone}\n",
    "k: [amount, \"x y\", 'z', 1.0.0, -1, +2, .5, /api/x]\n",
    'k: {"a":1,"b":[1,2]}  # c\n',
    "k: { a: 1 }\nl: [ 1, 2 ]\n",
    "k: []\nl: {}\n",
    '"==": [1, 2]\n\'x y\': 3\n"": 4\n',
    "a: b:c\n",
    "1: a\ntrue: b\nnull: c\n",
    "a: http://x/y#z\n",
    "  a: 1\n  b: 2\n",
    "a: \u00e9t\u00e9 \U0001f600\n",
    "a: --x\nb: -1\nc: <<\nd: ~x\n",
    "k: [a  b, c   d]\n",
    "a: x\xa0#c\n",  # no space before '#': no comment (a no-break space is no space)
    "a: \xa0x\xa0\n",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_the_subset_is_taken_and_read_as_the_event_road_reads_it(text: str) -> None:
    assert check(text)


DECLINED = [
    "",
    "# only a comment\n",
    "just a scalar\n",
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "base: {x: 1}\nm:\n  <<: {y: 2}\n",
    "%YAML 1.2\n---\na: 1\n",
    "a: 1\n---\nb: 2\n",
    "a: 1\n...\n",
    "a: |\n  text\n",
    "a: >\n  text\n",
    "a: x\n  continued\n",
    'a: "x\n  y"\n',
    "a:\n  x\n",
    "a:\n\t- b\n",
    "a: 1\r\nb: 2\r\n",
    "a: 1\na: 2\n",
    "k: {a: 1, a: 2}\n",
    "? a\n: 1\n",
    "a: b: c\n",
    "a #b: 1\n",
    "a: - b\n",
    "a: .inf\n",
    "k: [1, .nan]\n",
    "a: 1\n b: 2\n",
    "a:\n    b: 1\n  c: 2\n",
    "- a: 1\n b: 2\n",
    "- - 1\n",
    "a: [1\nb: 2\n",
    "a: [1] x\n",
    'a: "x" y\n',
    "a: {x: ${{ input.x }}}\n",
    "k: [0?]\n",
    'a: "\\x41"\n',
    'a: "\\ud800"\n',
    "# pasted \u2028 text\na: 1\n",
    "a: x\x85y\n",
    "a: \ufeffx\n",
    "k: {" + '"' + "k" * 1100 + '": 1}\n',
    "k" * 1100 + ": 1\n",
    "k: " + "[" * 70 + "]" * 70 + "\n",
]


@pytest.mark.parametrize("text", DECLINED)
def test_what_is_outside_the_subset_goes_the_event_road(text: str) -> None:
    assert fast(text) is None
    check(text)


@pytest.mark.parametrize("text", ACCEPTED)
def test_a_document_at_the_limits_goes_the_event_road(text: str) -> None:
    data = fast(text)
    with pytest.raises(TooManyValues):  # refused at once: the event road would cost more
        fast(text, max_nodes=_values(data) - 1)
    assert fast(text, max_nodes=_values(data)) is not None
    assert fast(text, max_depth=_depth(data)) is None


def test_an_integer_too_long_for_python_goes_the_event_road() -> None:
    assert fast("a: " + "1" * 5000 + "\n") is None


def test_nesting_at_the_limit_goes_the_event_road_with_its_message() -> None:
    deep = (
        "".join(f"{'  ' * i}k{i}:\n" for i in range(MAX_DEPTH + 2))
        + "  " * (MAX_DEPTH + 2)
        + "x: 1\n"
    )
    assert fast(deep) is None
    assert "nesting deeper than" in loaded(deep)[1]
    shallow = "".join(f"{'  ' * i}k{i}:\n" for i in range(20)) + "  " * 20 + "x: [[[1]]]\n"
    assert check(shallow)


def test_the_generated_definitions_and_the_examples_take_the_fast_road() -> None:
    texts = [_yaml(_definition(50))]
    examples = sorted(p for p in (ROOT / "definitions").glob("*.yaml") if is_definition_file(p))
    texts += [p.read_text(encoding="utf-8") for p in examples]
    assert all(check(text) for text in texts)


@pytest.mark.parametrize(
    "path", sorted((ROOT / "tests" / "corpus").glob("*.yaml")), ids=lambda p: p.name
)
def test_the_broken_corpus_reads_and_fails_the_same_way(path: Path) -> None:
    check(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- random styles

KEY_TEXT = st.one_of(
    st.sampled_from(["id", "a", "b-c", "x.y", "a b", "1", "true", "null", "<<", "$s", "k_2"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=5),
)
STRINGS = st.one_of(
    st.sampled_from(
        [
            "echo",
            "two words",
            "${{ steps.a.output }}",
            "a: b",
            "a #b",
            "a#b",
            "- x",
            "-x",
            "1.0.0",
            "",
            " lead",
            "trail ",
            "it's",
            'say "hi"',
            "x\\y",
            "é",
            "\U0001f600",
            "tab\there",
            "line\nbreak",
            "[a]",
            "{a}",
            "&a",
            "*a",
            "!t",
            "|",
            "@x",
            "%x",
            "?x",
            ":x",
            "~",
            "<<",
        ]
    ),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False),
    STRINGS,
)
NICE_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6),
    st.from_regex(r"[a-z][a-z0-9 _.-]{0,6}[a-z0-9]", fullmatch=True),
)
NICE_VALUES = st.recursive(
    NICE_SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.from_regex(r"[a-z][a-z0-9_]{0,4}", fullmatch=True), children, max_size=4
        )
    ),
    max_leaves=16,
)
VALUES = st.recursive(
    SCALARS | NICE_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(KEY_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)
YAML_SCALAR_SPELLINGS = {
    None: ["~", "null", "Null", "NULL", ""],
    True: ["true", "True", "TRUE"],
    False: ["false", "False", "FALSE"],
}


@st.composite
def scalar_text(draw: st.DrawFn, value: Any, *, key: bool = False) -> str:
    """`value` written plain, double-quoted (JSON) or single-quoted, or spelled as YAML."""
    style = draw(st.sampled_from(["plain", "json", "single", "yaml"]))
    if style == "yaml" and not key and (value is None or isinstance(value, bool)):
        return draw(st.sampled_from(YAML_SCALAR_SPELLINGS[value]))
    if style == "yaml" and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return draw(st.sampled_from([hex(value), f"0o{value:o}", f"+{value}", f"00{value}"]))
    if isinstance(value, str):
        if style == "json":
            return json.dumps(value, ensure_ascii=draw(st.booleans()))
        if style == "single":
            return "'" + value.replace("'", "''") + "'"
        return value
    return json.dumps(value)


@st.composite
def flow_text(draw: st.DrawFn, value: Any) -> str:
    if isinstance(value, dict):
        pairs = [
            f"{draw(scalar_text(k, key=True))}{draw(st.sampled_from([': ', ':', ' : ']))}"
            f"{draw(flow_text(v))}"
            for k, v in value.items()
        ]
        inner = draw(st.sampled_from([", ", ",", " , "])).join(pairs)
        return draw(st.sampled_from(["{%s}", "{ %s }"])) % inner
    if isinstance(value, list):
        inner = draw(st.sampled_from([", ", ",", " ,"])).join(draw(flow_text(v)) for v in value)
        return draw(st.sampled_from(["[%s]", "[ %s ]"])) % inner
    if draw(st.booleans()):
        return json.dumps(value)
    return draw(scalar_text(value))


@st.composite
def block_text(draw: st.DrawFn, value: Any, indent: int = 0) -> list[str]:
    """Lines writing `value` at `indent` in block style, nested values in any style."""
    pad = " " * indent
    step = draw(st.integers(1, 4))
    lines: list[str] = []
    if isinstance(value, dict) and value:
        for key, item in value.items():
            head = f"{pad}{draw(scalar_text(key, key=True))}:"
            lines += _item(draw, head, item, indent, step, in_mapping=True)
    elif isinstance(value, list) and value:
        for item in value:
            dash = "-" + " " * draw(st.integers(1, 3))
            lines += _item(draw, f"{pad}{dash}".rstrip(" ") + " ", item, indent, step, dash=dash)
    else:
        lines.append(pad + draw(flow_text(value)))
    if draw(st.integers(0, 5)) == 0:
        lines.insert(
            draw(st.integers(0, len(lines))), pad + draw(st.sampled_from(["", "# c", "  #x: y"]))
        )
    return lines


def _item(
    draw: st.DrawFn,
    head: str,
    item: Any,
    indent: int,
    step: int,
    *,
    in_mapping: bool = False,
    dash: str = "",
) -> list[str]:
    nested = isinstance(item, dict | list) and bool(item)
    how = draw(st.sampled_from(["inline", "block", "compact"])) if nested else "inline"
    if how == "inline":
        text = draw(flow_text(item)) if nested else draw(scalar_text(item))
        comment = draw(st.sampled_from(["", "", " # note", "  #"]))
        return [f"{head.rstrip(' ')} {text}{comment}".rstrip(" ") if text else head.rstrip(" ")]
    if how == "compact" and dash and isinstance(item, dict):
        inner = draw(block_text(item, indent + len(dash)))
        first = inner[0].lstrip(" ") if inner[0].strip() else ""
        return [head.rstrip(" ") + " " + first, *inner[1:]] if first else [head.rstrip(" "), *inner]
    deeper = indent + (0 if in_mapping and isinstance(item, list) and how == "compact" else step)
    return [head.rstrip(" "), *draw(block_text(item, deeper))]


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(st.one_of(VALUES, NICE_VALUES).flatmap(lambda v: block_text(v)), st.booleans())
def test_random_values_in_random_styles_read_the_same_on_both_roads(
    lines: list[str], document_start: bool
) -> None:
    text = "\n".join((["---"] if document_start else []) + lines) + "\n"
    check(text)


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), VALUES, min_size=1, max_size=3))
def test_values_that_round_trip_take_the_fast_road(value: dict[str, Any]) -> None:
    """Written in the subset's own style, the fast road must take most of them."""
    lines = [f"{key}: {json.dumps(item)}" for key, item in value.items()]
    text = "\n".join(lines) + "\n"
    check(text)
    assume("\\ud" not in text.lower() and "Infinity" not in text)
    assume(all(len(line) < 1000 for line in lines))
    assert fast(text) is not None


# --------------------------------------------------------------------------- random lines

_TOKENS = [
    "a", "b", "id", "x y", "1", "-1", "1.5", "0x1F", ".inf", "~", "null", "true", "<<",
    "${{ a }}", "'q'", "'it''s'", '"d"', '"\\t"', '"\\x41"', "[", "]", "{", "}", ", ", ",",
    ": ", ":", "- ", "-", "#", " #c", "&a ", "*a", "!!str ", "!t ", "|", ">", "? ", "%",
    "@", "`", "---", "...", "\t", "\u2028", "\x85", "\ufeff", " ", "  ", "é", "\U0001f600",
]  # fmt: skip
_SOUP = st.tuples(
    st.integers(0, 6).map(" ".__mul__),
    st.lists(st.sampled_from(_TOKENS), max_size=7).map("".join),
).map("".join)
# Lines shaped like the subset's (indent, dash, key, value, comment), with odd parts.
_KEYS = [
    "a", "b", "id", "x y", "1", "true", "<<", '"q"', '"a: b"', "'s'", "'it''s'", '""',
    "a #b", "a:b", "a#b", "-a", "?a", "&x a", "!t a", "a ", "$a", "é", "[a]",
]  # fmt: skip
_VALUES = [
    "", "1", "-1", "+1", "0x1F", "1e3", "x", "x y", "x  y", "a #c", "a#c", "a: b", "a:b", "a:",
    "'q'", "'it''s'", '"d"', '"\\u00e9\\n"', '"\\x41"', "[1, 2]", "[ 1 , 2 ]", "{a: 1}",
    '{"a": 1}', '{"a":1}', "[a, b]", "[a b, 'c', \"d\"]", "~", ".inf", "&a x", "*a", "!!str x",
    "|", ">", "- x", "-", "--", "---", "...", "[1", "{a: 1, a: 2}", "x ", "# c", "${{ a }}",
    "[${{ a }}]", "[a #b]", "é", "[0?]", "{a:1}", "[a: 1]", "[1, ]", "{a, b}", "{a: }", "[-]",
    "[- a]", "[/x]", "[.5, -.5]", "'a' b", '"a" # c', '"a"#c', "[1] # c", "[1]#c", "@x", "%x",
]  # fmt: skip


@st.composite
def shaped_lines(draw: st.DrawFn) -> str:
    """Lines whose indentation mostly follows the one before, as in a real file."""
    lines: list[str] = []
    indent = 0
    for _ in range(draw(st.integers(1, 10))):
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(_SOUP))
            continue
        indent = max(0, indent + draw(st.sampled_from([0, 0, 0, 2, 2, -2, -4, 1, 3, -1])))
        dash = draw(st.sampled_from(["", "", "- ", "- ", "-  ", "-"]))
        odd = draw(st.integers(0, 5)) == 0
        keys = _KEYS if odd else _KEYS[:8]
        key = draw(st.sampled_from(["", ""] + [f"{k}: " for k in keys] + [f"{k}:" for k in keys]))
        value = "" if key.endswith(":") else draw(st.sampled_from(_VALUES if odd else _VALUES[:24]))
        tail = draw(st.sampled_from(["", "", "", " # c", "  "] + (["\t", "#c"] if odd else [])))
        lines.append(" " * indent + dash + key + value + tail)
        indent += len(dash)
    return "\n".join(lines)


YAML_LINES = st.one_of(shaped_lines(), st.lists(_SOUP, min_size=1, max_size=10).map("\n".join))


@settings(max_examples=1000)
@given(YAML_LINES)
def test_random_lines_read_or_fail_the_same_on_both_roads(text: str) -> None:
    check(text)


def _within(text: str, max_depth: int, max_nodes: int) -> None:
    """What the fast road takes is within its limits; it refuses only what is over them."""
    try:
        reading = fast(text, max_depth, max_nodes)
    except TooManyValues:
        kind, data = slow(text)
        assert kind == "error" or _values(data) > max_nodes, "refused a document within limits"
        return
    if reading is not None:
        assert _depth(reading) < max_depth
        assert _values(reading) <= max_nodes


@given(YAML_LINES, st.integers(1, 8), st.integers(0, 40))
def test_what_the_fast_road_takes_is_within_the_limits_it_was_given(
    text: str, max_depth: int, max_nodes: int
) -> None:
    _within(text, max_depth, max_nodes)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(NICE_VALUES.flatmap(lambda v: block_text(v)), st.integers(2, 8), st.integers(1, 40))
def test_random_documents_stay_within_the_limits_the_fast_road_was_given(
    lines: list[str], max_depth: int, max_nodes: int
) -> None:
    _within("\n".join(lines), max_depth, max_nodes)


# --------------------------------------------------------------------------- messages


def _messages(text: str) -> str:
    try:
        validate_text(text, file="d.yaml")
    except DefinitionError as exc:
        return str(exc)
    return ""


def _yaml_of(data: Any, indent: int = 0) -> list[str]:
    """Block YAML with JSON scalars and flow leaves, as the benchmark writes it."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(data, dict) and data:
        for key, item in data.items():
            if isinstance(item, dict | list) and item:
                lines += [f"{pad}{json.dumps(key)}:", *_yaml_of(item, indent + 2)]
            else:
                lines.append(f"{pad}{json.dumps(key)}: {json.dumps(item)}")
    elif isinstance(data, list) and data:
        for item in data:
            if isinstance(item, dict) and item:
                inner = _yaml_of(item, indent + 2)
                lines += [f"{pad}- {inner[0].lstrip(' ')}", *inner[1:]]
            else:
                lines.append(f"{pad}- {json.dumps(item)}")
    else:
        lines.append(pad + json.dumps(data))
    return lines


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(near_valid_definitions())
def test_validation_messages_are_the_same_without_the_fast_road(data: Any) -> None:
    text = "\n".join(_yaml_of(data)) + "\n"
    assert (
        fast(text) is not None
        or "\\u" in text
        or any(len(line) > 1000 for line in text.split("\n"))
    )
    with_fast = _messages(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loader, "load_block_yaml", lambda *args: None)
        assert _messages(text) == with_fast


def test_positions_are_built_only_when_a_message_needs_one() -> None:
    document = load_text("name: x\nsteps:\n  - id: a\n    action: echo\n", file="p.yaml")
    assert not document.source.values  # nothing asked yet
    assert not document.source.keys
    assert document.source.key(("steps", 0, "action")) == Position(4, 5)
    assert ("steps", 0, "action") in document.source.keys
    assert ("name",) not in document.source.keys  # only what was asked, and its ancestors
    assert document.source.value(("steps", 0)) == Position(3, 5)


@pytest.mark.parametrize(
    "body",
    ["  - 1\n", "  - [1, 2]\n", "  - {a: 1}\n", "  - x: [1, {b: 2}]\n"],
    ids=["scalars", "flow-lists", "flow-maps", "nested"],
)
def test_both_roads_refuse_too_many_values_on_the_same_line(
    monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    """The fast road refuses at once (the event road would cost far more memory), with the
    line the event road names; the column may be the flow collection's start."""
    monkeypatch.setattr(loader, "MAX_NODES", 200)
    text = "name: x\nsteps: [{id: a, action: echo}]\nparameters:\n  x:\n" + body * 200
    messages = []
    for road in (loader._load_block_yaml, loader._load_events):
        with pytest.raises(DefinitionError) as caught:
            road(text, "f.yaml")
        messages.append(str(caught.value))
    fast_line, slow_line = (message.split(":")[1] for message in messages)
    assert fast_line == slow_line, messages
    assert all("document holds more than 200 values" in message for message in messages)


def test_aliases_over_the_value_limit_are_named_an_alias_bomb() -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(6)
    )
    assert "through its aliases (alias bomb?)" in loaded(laughs)[1]
