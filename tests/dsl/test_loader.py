"""The loader: plain JSON data, exact positions, and refusal of hostile files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsl.errors import DefinitionError
from dsl.loader import (
    MAX_BYTES,
    MAX_DEPTH,
    Position,
    _within_limits,
    load_file,
    load_text,
    read_bounded,
)


def _error(text: str) -> str:
    with pytest.raises(DefinitionError) as caught:
        load_text(text, file="f.yaml")
    (diagnostic,) = caught.value.diagnostics
    return str(diagnostic)


def test_scalars_follow_yaml_1_2_core_and_become_plain_json_types() -> None:
    data = load_text(
        "a: 1\nb: 1.5\nc: 0x1F\nd: yes\ne: ~\nf: true\ng: '1'\nh: 2026-01-01\ni: 1e3\nj: !!str 5\nk: -0\n"
    ).data
    assert data == {
        "a": 1,
        "b": 1.5,
        "c": 31,
        "d": "yes",
        "e": None,
        "f": True,
        "g": "1",
        "h": "2026-01-01",
        "i": 1000.0,
        "j": "5",
        "k": 0,
    }
    assert all(type(v) in (int, float, str, bool, type(None)) for v in data.values())
    assert type(data["a"]) is int
    assert type(data["h"]) is str


def test_keys_are_their_source_text() -> None:
    assert load_text("1: a\ntrue: b\nnull: c\n").data == {"1": "a", "true": "b", "null": "c"}


def test_positions_of_keys_and_values_are_one_based() -> None:
    document = load_text("name: x\nsteps:\n  - id: a\n    action: echo\n")
    assert document.source.key(("steps", 0, "action")) == Position(4, 5)
    assert document.source.value(("steps", 0, "action")) == Position(4, 13)
    assert document.source.value(("steps", 0)) == Position(3, 5)
    assert document.source.value(("steps", 0, "missing", "deeper")) == Position(3, 5)


def test_json_loads_like_json() -> None:
    value = {"a": [1, 2.5, "x", None, True, {"b": {}}], "c": "é ${{ input.x }}"}
    assert load_text(json.dumps(value)).data == value
    assert load_text(json.dumps(value, indent=2)).data == value


def test_merge_keys_add_what_the_mapping_does_not_set() -> None:
    data = load_text("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n").data
    assert data["m"] == {"y": 3, "x": 1}


def test_aliases_expand_to_the_anchored_value() -> None:
    assert load_text("a: &x [1, 2]\nb: *x\n").data == {"a": [1, 2], "b": [1, 2]}


def test_alias_bomb_is_rejected_quickly_with_its_position() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    started = time.perf_counter()
    message = _error("\n".join(lines))
    elapsed = time.perf_counter() - started
    assert "alias bomb" in message
    assert message.startswith("f.yaml:7:")
    assert elapsed < 5  # generous: it is rejected while counting, never expanded


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a: !!python/object:os.system x\n",
            "f.yaml:1:4: error: tag 'tag:yaml.org,2002:python/object:os.system'",
        ),
        ("a: !!python/name:os.system\n", "f.yaml:1:4: error: tag"),
        ("a: !custom x\n", "f.yaml:1:4: error: tag '!custom' is not allowed"),
        ("a: !!binary aGk=\n", "f.yaml:1:4: error: tag"),
        ("a: 1\nb: 2\na: 3\n", "f.yaml:3:1: error: duplicate key 'a'"),
        ("a: *nope\n", "f.yaml:1:4: error: alias *nope has no anchor"),
        ("a: &r [*r]\n", "f.yaml:1:8: error: alias *r refers to a value that contains it"),
        ("a: .inf\n", "f.yaml:1:4: error: .inf is not a JSON number"),
        (
            "a: 1\n---\nb: 2\n",
            "f.yaml:2:1: error: a definition file holds exactly one YAML document",
        ),
        ("a: [1\nb: 2\n", "f.yaml:2:2: error: invalid YAML"),
        ("a:\n\t- b\n", "f.yaml:2:1: error: invalid YAML"),
        ("? [a]\n: 1\n", "f.yaml:1:3: error: mapping keys must be plain strings"),
        ("a: !!int x\n", "f.yaml:1:4: error: 'x' is not a valid int"),
    ],
)
def test_hostile_or_broken_yaml_gets_one_positioned_line(text: str, expected: str) -> None:
    assert _error(text).startswith(expected)


def test_nesting_is_capped() -> None:
    assert f"nesting deeper than {MAX_DEPTH}" in _error(
        "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    )


def test_unquoted_template_in_flow_mapping_gets_a_hint() -> None:
    assert "must be quoted" in _error("a: {x: ${{ input.x }}}\n")


def test_files_too_large_or_not_utf8_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(DefinitionError, match="the limit is"):
        load_file(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(DefinitionError) as caught:
        load_file(latin)
    assert str(caught.value.diagnostics[0]).endswith(
        "latin.yaml:1:10: error: file is not UTF-8 text"
    )


def test_missing_file_is_a_diagnostic(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read file"):
        load_file(tmp_path / "nope.yaml")


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: 1\n")
    assert load_file(path).data == {"a": 1}


def _diagnostic(path: Path | str) -> str:
    with pytest.raises(DefinitionError) as caught:
        load_file(path)
    (diagnostic,) = caught.value.diagnostics
    return str(diagnostic)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_devices_are_refused_without_reading() -> None:
    """`tdsl validate /dev/zero` used to read until the host killed it (24 GB)."""
    began = time.monotonic()
    assert _diagnostic("/dev/zero") == (
        "/dev/zero:1:1: error: cannot read file: it is a character device, not a regular file"
    )
    assert time.monotonic() - began < 1


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert _diagnostic(fifo).endswith("cannot read file: it is a FIFO, not a regular file")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert "cannot read file" in _diagnostic(tmp_path)


def test_a_huge_sparse_file_is_refused_by_its_size_without_reading_it(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(64 * 1024**3)  # 64 GiB of nothing, allocated lazily
    began = time.monotonic()
    assert _diagnostic(huge).endswith(f"the limit is {MAX_BYTES}")
    assert time.monotonic() - began < 1


def test_read_bounded_never_reads_past_the_cap(tmp_path: Path) -> None:
    """A file whose size is not what stat says (/proc, growing files) is read to cap + 1."""
    proc = Path("/proc/self/maps")
    if proc.exists():  # st_size 0, content larger than a tiny cap
        with pytest.raises(OSError, match="over the limit of 10 bytes"):
            read_bounded(proc, 10)
    exact = tmp_path / "exact.yaml"
    exact.write_bytes(b"a" * 100)
    assert read_bounded(exact, 100) == b"a" * 100


# ------------------------------------------------------------------ the JSON fast road

JSON_STEPS = '{\n  "name": "j",\n  "steps": [\n    {"id": "a", "action": "echo"}%s\n  ]\n}\n'


@pytest.mark.parametrize(
    ("extra", "line", "column", "message"),
    [
        (', {"id": "b", "id": "c", "action": "echo"}', 4, 48, "duplicate key 'id'"),
        (
            ', {"id": "b", "action": "echo", "parameters": ' + "[" * 70 + "]" * 70 + "}",
            4,
            0,
            "nesting",
        ),
    ],
    ids=["duplicate-key", "too-deep"],
)
def test_json_the_fast_road_refuses_goes_the_normal_way(
    extra: str, line: int, column: int, message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        load_text(JSON_STEPS % extra, file="d.json")
    (problem,) = caught.value.diagnostics
    assert message in problem.message
    assert problem.line == line
    if column:
        assert problem.column == column


def test_json_positions_are_built_only_when_a_message_needs_one() -> None:
    document = load_text(JSON_STEPS % ', {"id": "b", "acton": "echo"}', file="p.json")
    assert document.data["steps"][1]["acton"] == "echo"
    assert not document.source.values  # nothing asked yet
    assert not document.source.keys
    assert document.source.key(("steps", 1, "acton")) == Position(4, 48)
    assert document.source.value(("steps", 0, "action")) == Position(4, 27)


def test_json_that_is_not_quite_json_loads_as_yaml_reads_it() -> None:
    """NaN is no JSON: the fast road declines, and YAML reads a plain string."""
    document = load_text(JSON_STEPS % ', {"id": "b", "action": "echo", "x": NaN}', file="n.json")
    assert document.data["steps"][1]["x"] == "NaN"


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize(
    ("text", "within"),
    [
        ("[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2), True),
        ("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1), False),
        ('{"a": ' * (MAX_DEPTH - 2) + "{}" + "}" * (MAX_DEPTH - 2), False),
        ('["' + "]" * 70 + '"]', True),  # brackets in a string are no nesting
        ("[" * (MAX_DEPTH - 1) + '"' + "]" * 70 + '"' + "]" * (MAX_DEPTH - 1), False),
        ("[" * (MAX_DEPTH - 1) + '"\\"]]]\\\\"' + "]" * (MAX_DEPTH - 1), False),
        ('["\\"", "[[[", "\\\\", "]]]"]', True),
    ],
)
def test_json_limits_are_read_from_the_text(text: str, within: bool) -> None:
    assert _within_limits(text) is within
    assert _within_limits(text) is (_depth(json.loads(text)) <= MAX_DEPTH - 2)


_JSON_STRINGS = st.text(st.sampled_from('ab[]{}"\\,:é \u2028'), max_size=6)
_NESTED = st.recursive(
    st.none() | st.integers() | _JSON_STRINGS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(_JSON_STRINGS, children, max_size=3)
    ),
    max_leaves=8,
)


@given(_NESTED, st.integers(0, MAX_DEPTH + 2), st.booleans(), st.sampled_from([None, 0, 2]))
def test_json_limits_from_the_text_are_its_depth(
    value: object, wrap: int, ascii_only: bool, indent: int | None
) -> None:
    for level in range(wrap):
        value = [value] if level % 2 else {"k[": value}
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    assert _within_limits(text) is (_depth(value) <= MAX_DEPTH - 2)
