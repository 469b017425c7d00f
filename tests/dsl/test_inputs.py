"""Run input: schema defaults and validation messages."""

from __future__ import annotations

import pytest

from dsl.errors import InputError
from dsl.inputs import apply_defaults, prepare_input

SCHEMA = {
    "type": "object",
    "required": ["order_id"],
    "properties": {
        "order_id": {"type": "string"},
        "total": {"type": "number", "default": 0},
        "customer": {
            "type": "object",
            "properties": {"tier": {"type": "string", "default": "basic"}},
        },
        "lines": {
            "type": "array",
            "items": {"type": "object", "properties": {"qty": {"default": 1}}},
        },
    },
}


def test_defaults_fill_missing_properties_recursively() -> None:
    value = {"order_id": "A", "customer": {}, "lines": [{}, {"qty": 3}]}
    assert apply_defaults(SCHEMA, value) == {
        "order_id": "A",
        "total": 0,
        "customer": {"tier": "basic"},
        "lines": [{"qty": 1}, {"qty": 3}],
    }
    assert value == {"order_id": "A", "customer": {}, "lines": [{}, {"qty": 3}]}  # not mutated


def test_no_input_becomes_an_object_when_the_schema_wants_one() -> None:
    assert apply_defaults({"type": "object", "properties": {"a": {"default": 1}}}, None) == {"a": 1}


def test_invalid_input_names_each_path() -> None:
    with pytest.raises(InputError) as caught:
        prepare_input(SCHEMA, {"total": "x", "lines": [{"qty": 1}, 5]})
    assert str(caught.value) == (
        "invalid input: input: 'order_id' is a required property; "
        "input.lines[1]: 5 is not of type 'object'; input.total: 'x' is not of type 'number'"
    )


def test_without_a_schema_any_object_goes() -> None:
    assert prepare_input(None, {"a": [1, 2]}) == {"a": [1, 2]}
    assert prepare_input(None, None) == {}


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ([1, 2, 3], r"a list \(length 3\)"),
        ("str", "a string"),
        (3, "a number"),
        (True, "a boolean"),
    ],
)
def test_the_input_must_be_an_object(value: object, kind: str) -> None:
    with pytest.raises(InputError, match=f"^the run input must be a JSON object, got {kind}$"):
        prepare_input(None, value)
    with pytest.raises(InputError, match="must be a JSON object"):
        prepare_input(SCHEMA, value)


def test_runs_from_before_the_rule_keep_their_leniency() -> None:
    assert prepare_input(None, [1, 2], require_object=False) == [1, 2]
