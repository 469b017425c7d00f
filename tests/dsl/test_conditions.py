"""Unit tests for dsl.conditions: JsonLogic evaluation, rules and static analysis."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from dsl.conditions import (
    KNOWN_OPERATORS,
    OPERATIONS,
    condition_vars,
    evaluate,
    evaluate_condition,
    expand_rules,
    unknown_operators,
)
from dsl.errors import ExpressionError
from dsl.values import JsonValue
from tests.dsl.run_context import CONTEXT

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
    ]
    for _ in range(3):
        assert first == [
            json.dumps(expand_rules(logic, RULES)),
            condition_vars(expand_rules(logic, RULES)),
            unknown_operators(logic),
        ]
