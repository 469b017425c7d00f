"""The committed JSON Schema is what the models generate, and it accepts what the loader accepts."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator

from dsl.catalog import is_definition_file
from dsl.loader import load_file
from dsl.schema import json_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schema" / "workflow.schema.json"


def test_committed_schema_is_not_stale() -> None:
    assert COMMITTED.read_text() == schema_text(), "schema is stale: run `make schema`"


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(json_schema())


def test_every_example_passes_the_schema_too() -> None:
    validator = Draft202012Validator(json.loads(COMMITTED.read_text()))
    for file in sorted(p for p in (ROOT / "definitions").iterdir() if is_definition_file(p)):
        errors = [e.message for e in validator.iter_errors(load_file(file).data)]
        assert errors == [], file.name


def test_schema_rejects_unknown_keys() -> None:
    validator = Draft202012Validator(json_schema())
    definition = {"name": "x", "steps": [{"id": "a", "action": "echo", "actoin": 1}]}
    assert list(validator.iter_errors(definition))
