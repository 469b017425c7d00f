"""The temporal-dsl language: models, loader, graph, templates, conditions; pure, no Temporal I/O.

What tools and the interpreter import lives here; the modules behind it may change.
"""

from dsl.conditions import evaluate_condition
from dsl.errors import (
    DefinitionError,
    Diagnostic,
    DslError,
    ExpressionError,
    InputError,
    NotFoundError,
)
from dsl.graph import WorkflowGraph, build_graph
from dsl.loader import LoadedDocument, load_file, load_text
from dsl.models import Definition
from dsl.schema import json_schema
from dsl.templates import render
from dsl.validate import ValidatedDefinition, validate_data, validate_file, validate_text

__all__ = [
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
