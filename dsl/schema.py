"""The JSON Schema of the language, generated from the models.

Editors use it (``# yaml-language-server: $schema=...``), so it accepts every key
spelling the loader accepts: pydantic writes the canonical snake_case names, and we
add the camelCase and seed-format spellings as extra properties of the same schema.
"""

from __future__ import annotations

import json
from typing import Any

from dsl.models import Definition, spellings

__all__ = ["SCHEMA_ID", "json_schema", "schema_text"]

SCHEMA_ID = "https://temporal-dsl.dev/schema/workflow.schema.json"


def json_schema() -> dict[str, Any]:
    """The schema as data, camelCase spellings included."""
    schema = Definition.model_json_schema(mode="validation", by_alias=False)
    _add_spellings(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    """Exactly what `tdsl schema` prints and `schema/workflow.schema.json` holds."""
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


def _add_spellings(node: Any) -> None:
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict) and node.get("additionalProperties") is False:
            # A field named after a Python keyword (`while_`) is written without the "_".
            renamed = {spellings(name)[0]: value for name, value in properties.items()}
            if list(renamed) != list(properties):
                properties.clear()
                properties.update(renamed)
                if "required" in node:
                    node["required"] = [spellings(name)[0] for name in node["required"]]
            for name in list(properties):
                for spelling in spellings(name)[1:]:
                    properties.setdefault(spelling, properties[name])
        for value in node.values():
            _add_spellings(value)
    elif isinstance(node, list):
        for value in node:
            _add_spellings(value)
