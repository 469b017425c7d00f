"""A run context as the interpreter builds it, shared by the template and condition tests."""

from __future__ import annotations

from dsl.values import JsonValue

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
