"""Unit tests for dsl.values: how messages name JSON types, and copies that never alias."""

from __future__ import annotations

import pytest

from dsl.values import JsonValue, copy_value, json_type


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "null"),
        (True, "a boolean"),
        (0, "a number"),
        (1.5, "a number"),
        ("", "a string"),
        ([1, 2, 3], "a list (length 3)"),
        ({}, "an object"),
    ],
)
def test_json_type(value: JsonValue, name: str) -> None:
    assert json_type(value) == name


def test_copy_value_is_equal_and_shares_no_container() -> None:
    value: JsonValue = {"a": [1, {"b": None}], "c": "x"}
    copied = copy_value(value)
    assert copied == value
    assert isinstance(copied, dict)
    assert isinstance(value, dict)
    assert copied is not value
    assert copied["a"] is not value["a"]
    inner, original = copied["a"], value["a"]
    assert isinstance(inner, list)
    assert isinstance(original, list)
    assert inner[1] is not original[1]
