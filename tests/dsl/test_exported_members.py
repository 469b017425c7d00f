"""The public API of `dsl` is what `__all__` says, and nothing disappears silently."""

from __future__ import annotations

import dsl


def test_public_api_is_frozen() -> None:
    assert sorted(dsl.__all__) == [
        "Definition",
        "DefinitionError",
        "Diagnostic",
        "DslError",
        "ExpressionError",
        "InputError",
        "LoadedDocument",
        "NotFoundError",
        "ValidatedDefinition",
        "WorkflowGraph",
        "build_graph",
        "evaluate_condition",
        "json_schema",
        "load_file",
        "load_text",
        "render",
        "validate_data",
        "validate_file",
        "validate_text",
    ]
    for name in dsl.__all__:
        assert getattr(dsl, name) is not None
