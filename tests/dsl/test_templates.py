"""Unit tests for dsl.templates: paths, templates, lookup and rendering."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsl.errors import ExpressionError
from dsl.templates import (
    ROOTS,
    TemplateRef,
    _split,
    _Template,
    check_root,
    find_templates,
    format_path,
    is_templated,
    lookup,
    parse_path,
    render,
    string_templates,
)
from dsl.values import JsonPath, JsonValue
from tests.dsl.run_context import CONTEXT

# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("input", ("input",)),
        ("steps.a.output.items[0].name", ("steps", "a", "output", "items", 0, "name")),
        ("  steps.a.output  ", ("steps", "a", "output")),
        ("\tvars.total\n", ("vars", "total")),
        ("steps.my-step_2.output", ("steps", "my-step_2", "output")),
        ("_x.__y", ("_x", "__y")),
        ("a[0][12]", ("a", 0, 12)),
        ('a["any key"]', ("a", "any key")),
        ("a['any key']", ("a", "any key")),
        ('a["dotted.key"].b', ("a", "dotted.key", "b")),
        ('a["with \\"quote\\""]', ("a", 'with "quote"')),
        ("a['it\\'s']", ("a", "it's")),
        ('a["back\\\\slash"]', ("a", "back\\slash")),
        ('a[""]', ("a", "")),
        ('a["]"]', ("a", "]")),
        ('a["0"]', ("a", "0")),
        ("a[007]", ("a", 7)),
    ],
)
def test_parse_path_valid(text: str, expected: JsonPath) -> None:
    assert parse_path(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the path is empty"),
        ("   ", "the path is empty"),
        ("a..b", "expected an identifier after '.', found '.' at column 3"),
        ("a.", "found the end of the path at column 3"),
        (".a", "expected an identifier, found '.' at column 1"),
        ("a.0", "cannot start with a digit (use [n] to index a list) at column 3"),
        ("0a", "expected an identifier, found '0'"),
        ("[0]", "expected an identifier, found '['"),
        ("a b", "expected '.' or '[', found ' ' at column 2"),
        ("a.b c", "found ' ' at column 4"),
        ("a[x]", "expected a non-negative integer or a quoted key after '[' at column 3"),
        ("a[-1]", "expected a non-negative integer"),
        ("a[ 0]", "expected a non-negative integer"),
        ("a[0", "expected ']' after index at column 4"),
        ("a[0x]", "expected ']' after index"),
        ("a[", "unclosed '['"),
        ('a["x]', "unterminated quoted key"),
        ('a["x"', "expected ']' after quoted key"),
        ('a["x"b]', "expected ']' after quoted key"),
        ("a.b$", "found '$'"),
        ("a.é", "found 'é'"),
        ("  a..b", "at column 5"),
    ],
)
def test_parse_path_invalid(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_path(text)
    message = str(info.value)
    assert fragment in message
    assert repr(text) in message


def test_parse_path_does_not_check_roots() -> None:
    assert parse_path("whatever.x") == ("whatever", "x")


def test_roots() -> None:
    assert ROOTS == ("input", "steps", "vars", "item", "index", "iteration", "run")


@pytest.mark.parametrize("root", ROOTS)
def test_check_root_accepts_known_roots(root: str) -> None:
    check_root((root, "x"))


def test_check_root_rejects_unknown_root() -> None:
    with pytest.raises(ExpressionError) as info:
        check_root(("inputs", "x"))
    assert str(info.value) == (
        "unknown root 'inputs'; expected one of input, steps, vars, item, index, iteration, run"
    )


def test_check_root_rejects_empty_and_index_roots() -> None:
    with pytest.raises(ExpressionError):
        check_root(())
    with pytest.raises(ExpressionError, match="unknown root 0"):
        check_root((0,))


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("steps", "a", "output", "items", 0, "name"), "steps.a.output.items[0].name"),
        (("a", "any key"), 'a["any key"]'),
        (("a", 'q"uote', "b\\s"), 'a["q\\"uote"]["b\\\\s"]'),
        (("a", ""), 'a[""]'),
    ],
)
def test_format_path(path: JsonPath, text: str) -> None:
    assert format_path(path) == text
    assert parse_path(text) == path


IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True)
SEGMENT = st.one_of(IDENT, st.integers(min_value=0, max_value=10**6), st.text(max_size=8))


@given(first=IDENT, rest=st.lists(SEGMENT, max_size=6))
def test_parse_path_round_trips_format_path(first: str, rest: list[str | int]) -> None:
    path: JsonPath = (first, *rest)
    assert parse_path(format_path(path)) == path


@given(first=IDENT, rest=st.lists(st.one_of(IDENT, st.integers(0, 999)), max_size=6))
def test_parse_path_of_hand_built_path(first: str, rest: list[str | int]) -> None:
    text = first + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in rest)
    assert parse_path(f" {text} ") == (first, *rest)


# ----------------------------------------------------------------------- templates


def test_find_templates_document_order_and_locations() -> None:
    value: JsonValue = {
        "a": "plain",
        "b": ["x ${{ input.name }} y ${{steps.a.output.x}}", 3, None],
        "${{ input.ignored }}": "${{ vars.total }}",
        "c": {"d": [{"e": "${{ item['sku'] }}"}]},
    }
    assert find_templates(value) == [
        TemplateRef(("input", "name"), "${{ input.name }}", ("b", 0)),
        TemplateRef(("steps", "a", "output", "x"), "${{steps.a.output.x}}", ("b", 0)),
        TemplateRef(("vars", "total"), "${{ vars.total }}", ("${{ input.ignored }}",)),
        TemplateRef(("item", "sku"), "${{ item['sku'] }}", ("c", "d", 0, "e")),
    ]


def test_find_templates_top_level_string_and_scalars() -> None:
    assert find_templates("${{ index }}") == [TemplateRef(("index",), "${{ index }}", ())]
    assert find_templates(None) == []
    assert find_templates(3) == []
    assert find_templates([True, 1.5, {"a": "no template"}]) == []


def test_find_templates_quoted_key_may_contain_braces() -> None:
    refs = find_templates('${{ steps.a.output["}}"] }}')
    assert [r.path for r in refs] == [("steps", "a", "output", "}}")]


def test_template_ref_is_frozen() -> None:
    ref = TemplateRef(("input",), "${{ input }}", ())
    with pytest.raises(AttributeError):
        ref.text = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("${{ }}", "${{ }}: invalid path ' ': the path is empty"),
        ("${{}}", "${{}}: invalid path ''"),
        ("x ${{ a..b }} y", "${{ a..b }}: invalid path"),
        ("${{ input.x", "unclosed template '${{ input.x'"),
        ("${{ a }} and ${{ b", "unclosed template '${{ b'"),
        ("${{ a ${{ b }} }}", "${{ a ${{ b }}: invalid path"),
        ({"k": ["${{ 1x }}"]}, "${{ 1x }}"),
        ('${{ a["x }}', "unclosed template"),
    ],
)
def test_malformed_templates_raise(value: JsonValue, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        find_templates(value)
    assert fragment in str(info.value)
    with pytest.raises(ExpressionError):
        render(value, CONTEXT)


def test_is_templated() -> None:
    assert is_templated("${{ input.x }}")
    assert is_templated({"a": [1, {"b": "pre ${{ x"}]})  # cheap: malformed still counts
    assert not is_templated({"${{ key }}": "value"})
    assert not is_templated(["$", "{{ x }}", "${ x }", 1, None, True])
    assert not is_templated(None)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${{ input.count }}", 3),
        ("${{ input.ratio }}", 1.5),
        ("${{ input.flag }}", True),
        ("${{ input.off }}", False),
        ("${{ input.nothing }}", None),
        ("${{ input.name }}", "Ada"),
        ("${{ input.tags }}", ["a", "b"]),
        ("${{ input.obj }}", {"k": 1, "l": [1, 2]}),
        ("${{ input.empty }}", {}),
        ("${{index}}", 0),
        ("  ${{ input.count }}\n", 3),
        ("${{ steps.a.output.items[1].name }}", "second"),
        ('${{ steps["odd keys"].output["a key"] }}', "spaced"),
        ("${{ steps['odd keys'].output['dotted.key'] }}", "dotted"),
    ],
)
def test_render_whole_template_keeps_json_type(template: str, expected: JsonValue) -> None:
    result = render(template, CONTEXT)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("n=${{ input.count }}", "n=3"),
        ("r=${{ input.ratio }}", "r=1.5"),
        ("big=${{ input.big }}", "big=1e+20"),
        ("f=${{ input.flag }}/${{ input.off }}", "f=true/false"),
        ("n=${{ input.nothing }}", "n=null"),
        ("hello ${{ input.name }}!", "hello Ada!"),
        ("tags=${{ input.tags }}", 'tags=["a","b"]'),
        ("obj=${{ input.obj }}", 'obj={"k":1,"l":[1,2]}'),
        ("${{ input.name }}${{ input.count }}", "Ada3"),
        ("${{ input.count }} ${{ input.count }}", "3 3"),
        ("u=${{ input.unicode }} ${{ input.obj.l }}", "u=grüße [1,2]"),
        ("${{ run.workflow_id }}/${{ run.run_id }}", "wf-1/r-1"),
    ],
)
def test_render_embedded_formatting(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


def test_render_embedded_object_keeps_key_order_and_unicode() -> None:
    context: dict[str, JsonValue] = {"input": {"o": {"z": 1, "a": "ü"}}}
    assert render("${{ input.o }}!", context) == '{"z":1,"a":"ü"}!'


def test_render_nested_structure() -> None:
    value: JsonValue = {
        "url": "https://x/${{ item.sku }}",
        "body": {"count": "${{ input.count }}", "tags": ["${{ input.tags[0] }}", "lit", 7]},
        "none": None,
        "${{ input.name }}": "${{ vars.total }}",
    }
    assert render(value, CONTEXT) == {
        "url": "https://x/s-1",
        "body": {"count": 3, "tags": ["a", "lit", 7]},
        "none": None,
        "${{ input.name }}": 10,
    }


def test_render_does_not_mutate_and_does_not_alias() -> None:
    value: JsonValue = {"a": ["${{ input.obj }}", {"b": "${{ input.tags }}"}]}
    before = copy.deepcopy(value)
    context = copy.deepcopy(CONTEXT)
    context_before = copy.deepcopy(context)
    result = render(value, context)
    assert value == before
    assert isinstance(result, dict)
    inner = result["a"]
    assert isinstance(inner, list)
    obj = inner[0]
    assert isinstance(obj, dict)
    obj["k"] = 99  # mutating the result must not reach the context
    assert context == context_before


def test_render_returns_new_containers_without_templates() -> None:
    value: JsonValue = {"a": [1, {"b": 2}]}
    result = render(value, CONTEXT)
    assert result == value
    assert result is not value


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "${{ steps.a.output.total }}",
            "${{ steps.a.output.total }}: 'total' not found in steps.a.output (keys: x, y, items)",
        ),
        ("${{ nope.x }}", "${{ nope.x }}: 'nope' not found in the context (keys: input, steps,"),
        ("${{ input.empty.x }}", "'x' not found in input.empty (it is an empty object)"),
        ("${{ steps.b.output }}", "'b' not found in steps (keys: a, odd keys)"),
        (
            "${{ input.tags[2] }}",
            "${{ input.tags[2] }}: index [2] out of range for input.tags (length 2)",
        ),
        (
            "${{ input.tags.first }}",
            "cannot look up 'first' in input.tags: it is a list (length 2); use [n] to index it",
        ),
        (
            "${{ input.count.x }}",
            "cannot look up 'x' in input.count: it is a number, not an object or a list",
        ),
        ("${{ input.name[0] }}", "cannot look up [0] in input.name: it is a string"),
        ("${{ input.nothing.x }}", "cannot look up 'x' in input.nothing: it is null"),
        ("${{ input.flag.x }}", "it is a boolean"),
        ("${{ input.obj[0] }}", "cannot use [0] on input.obj: it is an object, not a list"),
        ('${{ steps["odd keys"].output.b }}', 'not found in steps["odd keys"].output'),
        ("pre ${{ input.missing }} post", "${{ input.missing }}: 'missing' not found in input"),
    ],
)
def test_render_missing_path_errors(template: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        render({"wrapped": [template]}, CONTEXT)
    assert message in str(info.value)


def test_render_error_lists_many_keys_truncated() -> None:
    context: dict[str, JsonValue] = {"input": {f"k{i:02d}": i for i in range(25)}}
    with pytest.raises(ExpressionError) as info:
        render("${{ input.zz }}", context)
    assert "keys: k00, k01," in str(info.value)
    assert "k19, ... (5 more)" in str(info.value)


def test_lookup() -> None:
    assert lookup(CONTEXT, ("steps", "a", "status")) == "completed"
    assert lookup(CONTEXT, ("input", "nothing")) is None
    assert lookup(CONTEXT, ("input",)) is CONTEXT["input"]
    with pytest.raises(ExpressionError, match="empty path"):
        lookup(CONTEXT, ())
    with pytest.raises(ExpressionError, match="'q' not found in vars"):
        lookup(CONTEXT, ("vars", "q"))
    with pytest.raises(ExpressionError, match=r"index \[-1\] out of range"):
        lookup(CONTEXT, ("input", "tags", -1))  # never Python's index-from-the-end


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text().filter(lambda s: "${{" not in s),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_render_without_templates_is_identity(value: JsonValue) -> None:
    assert not is_templated(value)
    assert find_templates(value) == []
    assert render(value, {}) == value


@given(st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(), st.text()))
def test_render_whole_template_is_exact(value: JsonValue) -> None:
    result = render("${{ input.v }}", {"input": {"v": value}})
    assert result == value
    assert type(result) is type(value)


def test_render_is_deterministic() -> None:
    value: JsonValue = {"a": "${{ input.obj }} ${{ input.tags }}"}
    first = json.dumps(render(value, CONTEXT))
    for _ in range(3):
        assert json.dumps(render(value, CONTEXT)) == first


def _split_templates(s: str) -> list[tuple[JsonPath, str]] | str:
    """What the general scanner makes of `s` (or its error), to compare the shortcut with."""
    try:
        return [(p.path, p.text) for p in _split(s) if isinstance(p, _Template)]
    except ExpressionError as exc:
        return str(exc)


_TEMPLATE_PARTS = st.sampled_from(
    ["${{", "}}", " ", "steps", ".", "a", "-", "_", "1", "[0]", '"', "'", "$", "{", "}", "x y"]
)


@given(st.lists(_TEMPLATE_PARTS, max_size=8).map("".join))
def test_one_string_reads_as_the_general_scanner_reads_it(body: str) -> None:
    for s in (body, f"${{{{{body}}}}}", f"${{{{ {body} }}}}"):
        try:
            got: list[tuple[JsonPath, str]] | str = string_templates(s)
        except ExpressionError as exc:
            got = str(exc)
        assert got == _split_templates(s)
