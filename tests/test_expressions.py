"""Unit tests for dsl.expressions: paths, templates, rules and JsonLogic."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsl.errors import ExpressionError
from dsl.expressions import (
    KNOWN_OPERATORS,
    OPERATIONS,
    ROOTS,
    JsonPath,
    JsonValue,
    TemplateRef,
    check_root,
    condition_vars,
    evaluate,
    evaluate_condition,
    expand_rules,
    find_templates,
    format_path,
    is_templated,
    lookup,
    parse_path,
    render,
    unknown_operators,
)

CONTEXT: dict[str, JsonValue] = {
    "input": {
        "count": 3,
        "ratio": 1.5,
        "big": 1e20,
        "flag": True,
        "off": False,
        "nothing": None,
        "name": "Ada",
        "tags": ["a", "b"],
        "obj": {"k": 1, "l": [1, 2]},
        "empty": {},
        "unicode": "grüße",
    },
    "steps": {
        "a": {
            "status": "completed",
            "output": {"x": 1, "y": 2, "items": [{"name": "first"}, {"name": "second"}]},
        },
        "odd keys": {"output": {"a key": "spaced", "dotted.key": "dotted"}},
    },
    "vars": {"total": 10},
    "item": {"sku": "s-1"},
    "index": 0,
    "run": {"workflow_id": "wf-1", "run_id": "r-1", "start_time": "2024-01-01T00:00:00Z"},
}


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
    assert ROOTS == ("input", "steps", "vars", "item", "index", "run")


@pytest.mark.parametrize("root", ROOTS)
def test_check_root_accepts_known_roots(root: str) -> None:
    check_root((root, "x"))


def test_check_root_rejects_unknown_root() -> None:
    with pytest.raises(ExpressionError) as info:
        check_root(("inputs", "x"))
    assert str(info.value) == (
        "unknown root 'inputs'; expected one of input, steps, vars, item, index, run"
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


# ----------------------------------------------------------------------- JsonLogic


def test_operations_exclude_log_and_are_builtins() -> None:
    assert "log" not in OPERATIONS
    assert "log" not in KNOWN_OPERATORS
    assert "method" not in KNOWN_OPERATORS
    for name in ("==", "===", "!=", "<", ">", "!", "!!", "+", "var", "missing", "in", "cat"):
        assert name in OPERATIONS
    assert all(callable(op) for op in OPERATIONS.values())


def test_known_operators() -> None:
    special = {"if", "?:", "and", "or", "filter", "reduce", "map", "all", "some", "none"}
    assert special <= KNOWN_OPERATORS
    assert "rule" in KNOWN_OPERATORS
    assert frozenset(OPERATIONS) | special | {"rule"} == KNOWN_OPERATORS
    assert isinstance(KNOWN_OPERATORS, frozenset)


@pytest.mark.parametrize(
    ("logic", "expected"),
    [
        ({"var": "input.count"}, 3),
        ({"var": "steps.a.output.items.0.name"}, "first"),
        ({"var": "steps.a.output.items.5.name"}, None),
        ({"var": "nowhere.at.all"}, None),
        ({"var": ["nowhere", "dflt"]}, "dflt"),
        ({">": [{"var": "input.count"}, 2]}, True),
        ({"+": [{"var": "vars.total"}, {"var": "index"}, 1]}, 11),
        ({"map": [{"var": "steps.a.output.items"}, {"var": "name"}]}, ["first", "second"]),
        ({"in": ["b", {"var": "input.tags"}]}, True),
        ({"cat": ["run ", {"var": "run.run_id"}]}, "run r-1"),
        ({"a": 1, "b": 2}, {"a": 1, "b": 2}),
        ("${{ input.count }}", "${{ input.count }}"),  # templates are not resolved here
    ],
)
def test_evaluate(logic: JsonValue, expected: JsonValue) -> None:
    assert evaluate(logic, CONTEXT) == expected


def test_evaluate_accepts_any_json_data() -> None:
    assert evaluate({"var": 1}, ["x", "y"]) == "y"
    assert evaluate({"var": ""}, 5) == 5
    assert evaluate({"var": "a"}, None) is None


def test_evaluate_result_does_not_alias_context() -> None:
    context = copy.deepcopy(CONTEXT)
    result = evaluate({"var": "input.obj"}, context)
    assert isinstance(result, dict)
    result["k"] = 99
    assert context == CONTEXT


def test_evaluate_condition_truthiness() -> None:
    assert evaluate_condition({"var": "input.count"}, CONTEXT) is True
    falsy_values: list[JsonValue] = [[], "", 0, None, False, {"var": "input.empty"}]
    for falsy in falsy_values:
        expected = falsy == {"var": "input.empty"}  # an object, even empty, is truthy
        assert evaluate_condition(falsy, CONTEXT) is expected
    assert evaluate_condition({"!": {"var": "input.missing"}}, CONTEXT) is True
    assert evaluate_condition("0", CONTEXT) is True


@pytest.mark.parametrize(
    ("logic", "fragment"),
    [
        ({"/": [1, 0]}, "ZeroDivisionError: division by zero"),
        ({"%": [1, 0]}, "ZeroDivisionError"),
        ({"==": ["a", None, None]}, None),
        ({"==": [{"var": "input.ratio"}, None]}, None),
    ],
)
def test_evaluate_library_errors_become_expression_errors(
    logic: JsonValue, fragment: str | None
) -> None:
    if fragment is None:  # these are fine in JsonLogic: no error expected
        evaluate(logic, CONTEXT)
        return
    with pytest.raises(ExpressionError) as info:
        evaluate(logic, CONTEXT)
    assert "cannot evaluate " + json.dumps(logic) in str(info.value)
    assert fragment in str(info.value)


def test_evaluate_overflow_is_an_expression_error() -> None:
    # "1e400" becomes float infinity, which substr cannot turn into an index.
    with pytest.raises(ExpressionError, match="OverflowError"):
        evaluate({"substr": ["abc", {"+": ["1e400"]}]}, CONTEXT)


def test_evaluate_bare_library_exception_is_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    # The library raises some exceptions without a message (e.g. a bare TypeError).
    def bare(*_args: object) -> bool:
        raise TypeError

    monkeypatch.setitem(OPERATIONS, "==", bare)
    with pytest.raises(ExpressionError) as info:
        evaluate({"==": [1, 1]}, CONTEXT)
    assert str(info.value) == 'cannot evaluate {"==": [1, 1]}: TypeError'


def test_evaluate_rejects_unknown_and_removed_operators() -> None:
    with pytest.raises(ExpressionError, match="unknown JsonLogic operator 'log'"):
        evaluate({"log": "hi"}, CONTEXT)
    with pytest.raises(ExpressionError, match="'fubar'"):
        evaluate({"if": [False, {"fubar": []}, 1]}, CONTEXT)  # even in an untaken branch
    # Dotted names would make the library walk attributes of its operation table.
    with pytest.raises(ExpressionError, match=r"'var\.__globals__'"):
        evaluate({"var.__globals__": []}, CONTEXT)
    with pytest.raises(ExpressionError, match="'method'"):
        evaluate({"method": ["abc", "upper"]}, CONTEXT)


def test_evaluate_log_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ExpressionError):
        evaluate({"log": "hi"}, CONTEXT)
    assert capsys.readouterr().out == ""


def test_evaluate_deep_nesting_is_an_expression_error() -> None:
    logic: Any = 1
    for _ in range(5000):
        logic = {"!": [logic]}
    with pytest.raises(ExpressionError):
        evaluate(logic, CONTEXT)


# --------------------------------------------------------------------------- rules

RULES: dict[str, JsonValue] = {
    "big": {">": [{"var": "input.count"}, 2]},
    "named": {"==": [{"var": "input.name"}, "Ada"]},
    "both": {"and": [{"rule": "big"}, {"rule": "named"}]},
    "literal": True,
}


def test_expand_rules_nested() -> None:
    logic: JsonValue = {"or": [{"rule": "both"}, {"!": {"rule": "literal"}}]}
    assert expand_rules(logic, RULES) == {
        "or": [
            {
                "and": [
                    {">": [{"var": "input.count"}, 2]},
                    {"==": [{"var": "input.name"}, "Ada"]},
                ]
            },
            {"!": True},
        ]
    }


def test_expand_rules_top_level_and_inside_lists() -> None:
    assert expand_rules({"rule": "literal"}, RULES) is True
    assert expand_rules([{"rule": "literal"}, 1], RULES) == [True, 1]


def test_expand_rules_leaves_literal_dicts_and_inputs_alone() -> None:
    logic: JsonValue = {"and": [{"rule": "big"}, {"rule": "named"}]}
    before = copy.deepcopy(logic)
    rules = copy.deepcopy(RULES)
    out = expand_rules(logic, rules)
    assert logic == before
    assert rules == RULES
    assert isinstance(out, dict)
    # A dict with two keys is data, not an operation: "rule" in it is not a reference.
    data: JsonValue = {"rule": "nope", "other": 1}
    assert expand_rules(data, {}) == data


def test_expand_rules_same_rule_twice_is_not_shared() -> None:
    out = expand_rules([{"rule": "big"}, {"rule": "big"}], RULES)
    assert isinstance(out, list)
    assert out[0] == out[1]
    assert out[0] is not out[1]


def test_expand_rules_unknown_rule() -> None:
    with pytest.raises(ExpressionError) as info:
        expand_rules({"and": [{"rule": "nope"}]}, RULES)
    assert "unknown rule 'nope' (rules: big, named, both, literal)" in str(info.value)
    with pytest.raises(ExpressionError, match="none are defined"):
        expand_rules({"rule": "x"}, {})


def test_expand_rules_unknown_rule_inside_a_rule() -> None:
    with pytest.raises(ExpressionError, match="unknown rule 'ghost'"):
        expand_rules({"rule": "a"}, {"a": {"!": {"rule": "ghost"}}})


@pytest.mark.parametrize(
    ("rules", "start", "cycle"),
    [
        ({"a": {"rule": "a"}}, "a", "rule cycle: a -> a"),
        ({"a": {"rule": "b"}, "b": {"!": [{"rule": "a"}]}}, "a", "rule cycle: a -> b -> a"),
        (
            {"top": {"rule": "a"}, "a": {"and": [{"rule": "b"}]}, "b": {"or": [{"rule": "a"}]}},
            "top",
            "rule cycle: a -> b -> a",
        ),
    ],
)
def test_expand_rules_cycles(rules: dict[str, JsonValue], start: str, cycle: str) -> None:
    with pytest.raises(ExpressionError) as info:
        expand_rules({"rule": start}, rules)
    assert str(info.value) == cycle


def test_expand_rules_requires_a_name() -> None:
    with pytest.raises(ExpressionError, match="needs a rule name"):
        expand_rules({"rule": ["a"]}, RULES)


def test_evaluate_with_rules() -> None:
    assert evaluate_condition({"rule": "both"}, CONTEXT, RULES) is True
    assert (
        evaluate_condition(
            {"and": [{"rule": "big"}, {">": [{"var": "input.count"}, 5]}]}, CONTEXT, RULES
        )
        is False
    )
    with pytest.raises(ExpressionError, match="unknown rule"):
        evaluate({"rule": "big"}, CONTEXT)


# ----------------------------------------------------------------- static analysis


def test_condition_vars_forms_and_order() -> None:
    logic: JsonValue = {
        "and": [
            {"var": "steps.a.output.items.0"},
            {"var": ["vars.total", 0]},
            {"var": 2},
            {"var": ""},
            {"var": []},
            {"var": None},
            {">": [{"var": "input.count"}, {"var": "steps.a.output.x"}]},
            {"var": "input.count"},  # duplicate: reported once
            {"var": "a.01.b"},  # "01" is not an index for JsonLogic either
        ]
    }
    assert condition_vars(logic) == [
        ("steps", "a", "output", "items", 0),
        ("vars", "total"),
        (2,),
        ("input", "count"),
        ("steps", "a", "output", "x"),
        ("a", "01", "b"),
    ]


def test_condition_vars_computed_var_reports_inner_vars() -> None:
    logic: JsonValue = {
        "var": [{"if": [{"var": "input.flag"}, "steps.a.output", "steps.b.output"]}, {"var": "x"}]
    }
    assert condition_vars(logic) == [("input", "flag"), ("x",)]


@pytest.mark.parametrize("op", ["map", "filter", "all", "some", "none"])
def test_condition_vars_skips_item_logic(op: str) -> None:
    logic: JsonValue = {
        "and": [
            {op: [{"var": "steps.a.output.items"}, {">": [{"var": "qty"}, {"var": "x.y"}]}]},
            {"var": "input.after"},
        ]
    }
    assert condition_vars(logic) == [("steps", "a", "output", "items"), ("input", "after")]


def test_condition_vars_skips_reduce_sub_logic() -> None:
    logic: JsonValue = {
        "reduce": [
            {"filter": [{"var": "input.tags"}, {"var": "ignored"}]},
            {"+": [{"var": "current"}, {"var": "accumulator"}]},
            {"var": "not.evaluated"},
        ]
    }
    assert condition_vars(logic) == [("input", "tags")]


def test_condition_vars_missing_and_missing_some() -> None:
    logic: JsonValue = {
        "or": [
            {"missing": ["input.a", "input.b"]},
            {"missing": "input.c"},
            {"missing_some": [1, ["input.d", "input.e"]]},
            {"missing": {"merge": ["input.f", {"var": "input.g"}]}},
        ]
    }
    assert condition_vars(logic) == [
        ("input", "a"),
        ("input", "b"),
        ("input", "c"),
        ("input", "d"),
        ("input", "e"),
        ("input", "g"),
    ]


def test_condition_vars_ignores_literal_data_and_rules() -> None:
    assert condition_vars({"var": "a", "other": 1}) == []
    assert condition_vars({"rule": "big"}) == []
    assert condition_vars([{"var": "a"}, "b", 3]) == [("a",)]
    assert condition_vars(True) == []


def test_unknown_operators() -> None:
    logic: JsonValue = {
        "and": [
            {"foo": [{"bar": 1}, {"var": "x"}]},
            {"map": [[1], {"baz": {"foo": 2}}]},  # item logic is still checked
            {"a": 1, "b": 2},  # literal data
            {"rule": "whatever"},
            {"log": 1},
            {"if": [{"method": []}, {"var.x": 1}]},
        ]
    }
    assert unknown_operators(logic) == ["foo", "bar", "baz", "log", "method", "var.x"]
    assert unknown_operators({"==": [1, 1]}) == []
    assert unknown_operators([{"x": 1}, {"y": 2}]) == ["x", "y"]
    assert unknown_operators("plain") == []


def test_everything_is_deterministic() -> None:
    logic: JsonValue = {"and": [{"rule": "both"}, {"var": "steps.a.output.x"}]}
    first = [
        json.dumps(expand_rules(logic, RULES)),
        condition_vars(expand_rules(logic, RULES)),
        unknown_operators(logic),
        json.dumps(render({"a": "${{ input.obj }} ${{ input.tags }}"}, CONTEXT)),
    ]
    for _ in range(3):
        assert first == [
            json.dumps(expand_rules(logic, RULES)),
            condition_vars(expand_rules(logic, RULES)),
            unknown_operators(logic),
            json.dumps(render({"a": "${{ input.obj }} ${{ input.tags }}"}, CONTEXT)),
        ]
