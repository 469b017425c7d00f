"""Data-flow checks: who is upstream of whom, and which strings are read for templates.

`upstream` answers a direct prerequisite without the ancestry bits and builds the
bits only when a read needs them; both must agree with networkx's ancestors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings

from dsl.graph import ON_FAILURE, WorkflowGraph, build_graph
from dsl.models import Definition
from dsl.references import _Checker, _Reader, _templated_strings, check_references
from dsl.values import JsonPath
from tests.dsl.test_properties import JSON_VALUES, valid_definitions


def _expected_upstream(graph: WorkflowGraph, target: str, reader: str) -> bool:
    """The rule, spelled with networkx: an ancestor in the reader's scope or around it."""
    if target not in graph.scope_of:
        return False
    current: str | None = reader
    while current is not None:
        home = graph.scope_of[current]
        if home == ON_FAILURE and graph.scope_of[target] != ON_FAILURE:
            return True
        if graph.scope_of[target] == home and target in nx.ancestors(
            graph.scopes[home].graph, current
        ):
            return True
        current = graph.enclosing(current)
    return False


def _check_every_pair(graph: WorkflowGraph) -> None:
    checker = _Checker(graph)
    steps = list(graph.scope_of)
    for reader in steps:
        for target in [*steps, "nowhere"]:
            got = checker.upstream(target, _Reader(reader, False, False))
            assert got is _expected_upstream(graph, target, reader), (reader, target)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(valid_definitions(max_steps=15))
def test_upstream_is_ancestry_in_the_scope_or_around_it(data: dict[str, Any]) -> None:
    graph, problems = build_graph(Definition.model_validate(data))
    assert not problems
    _check_every_pair(graph)


def test_upstream_through_parallel_and_foreach_scopes() -> None:
    body = {"id": "each", "action": "echo", "dependencies": []}
    definition = Definition.model_validate(
        {
            "name": "nested",
            "steps": [
                {"id": "a", "action": "echo"},
                {"id": "b", "action": "echo", "dependencies": ["a"]},
                {
                    "id": "p",
                    "type": "parallel",
                    "dependencies": ["b"],
                    "branches": [
                        {
                            "name": "x",
                            "steps": [
                                {"id": "x1", "action": "echo"},
                                {"id": "x2", "action": "echo", "dependencies": ["x1"]},
                                {"id": "x3", "action": "echo", "dependencies": ["x2"]},
                                {
                                    "id": "f",
                                    "type": "foreach",
                                    "items": [1, 2],
                                    "dependencies": ["x3"],
                                    "step": body,
                                },
                            ],
                        },
                        {"name": "y", "steps": [{"id": "y1", "action": "echo"}]},
                    ],
                },
                {"id": "c", "action": "echo", "dependencies": ["p"]},
            ],
            "on_failure": [
                {"id": "o1", "action": "echo"},
                {"id": "o2", "action": "echo", "dependencies": ["o1"]},
            ],
        }
    )
    graph, problems = build_graph(definition)
    assert not problems
    _check_every_pair(graph)
    checker = _Checker(graph)
    reader = _Reader("each", True, False)
    assert checker.upstream("a", reader)  # two scopes out, two steps up
    assert not checker.upstream("c", reader)
    assert checker._ancestors is not None  # a read beyond a direct prerequisite


def test_direct_prerequisites_need_no_ancestry_bits() -> None:
    steps = [{"id": "s0", "action": "echo"}]
    steps += [
        {"id": f"s{i}", "action": "echo", "dependencies": [f"s{i - 1}"]} for i in range(1, 50)
    ]
    graph, _ = build_graph(Definition.model_validate({"name": "chain", "steps": steps}))
    checker = _Checker(graph)
    for i in range(1, 50):
        reader = _Reader(f"s{i}", False, False)
        assert checker.upstream(f"s{i - 1}", reader)
    assert checker._ancestors is None
    assert checker.upstream("s0", _Reader("s49", False, False))
    assert not checker.upstream("s49", _Reader("s0", False, False))


def _every_string(value: Any, path: JsonPath) -> Iterator[tuple[str, JsonPath]]:
    if isinstance(value, str):
        yield value, path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _every_string(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _every_string(item, (*path, index))


@given(JSON_VALUES.map(lambda v: [v, "${{ a }}", {"k": ["x ${{ b }}", v]}]))
def test_templated_strings_are_the_strings_with_templates_in_document_order(value: Any) -> None:
    expected = [(s, p) for s, p in _every_string(value, ("at",)) if "${{" in s]
    assert _templated_strings(value, ("at",)) == expected
    assert _templated_strings("${{ x }}", ("at",)) == [("${{ x }}", ("at",))]
    assert _templated_strings(3, ("at",)) == []


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${{ steps.a.output.x }}", None),
        ("${{ steps.a.status }}", None),
        ("${{ steps.a.outputs }}", "after steps.a comes one of output, status, error"),
        ("${{ steps.a }}", "after steps.a comes one of output, status, error"),
        ("${{ steps.c.output }}", "step 'c' is not upstream of step 'b'"),
    ],
)
def test_reads_of_a_direct_prerequisite_are_checked_like_any_other(
    template: str, message: str | None
) -> None:
    steps = [
        {"id": "a", "action": "echo"},
        {"id": "b", "action": "echo", "dependencies": ["a"], "parameters": {"x": template}},
        {"id": "c", "action": "echo"},
    ]
    graph, _ = build_graph(Definition.model_validate({"name": "d", "steps": steps}))
    problems = check_references(graph)
    if message is None:
        assert problems == []
    else:
        assert [p.path for p in problems] == [("steps", 1, "parameters", "x")]
        assert message in problems[0].message
