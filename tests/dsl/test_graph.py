"""The graph: scopes, decision edges, deterministic order, cycle messages."""

from __future__ import annotations

import gc
import weakref

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl.errors import DefinitionError
from dsl.graph import MAIN, ON_FAILURE
from dsl.validate import validate_text

DEFINITION = """
name: g
steps:
  - {id: a, action: echo}
  - {id: b, action: echo}
  - {id: d, type: decision, dependencies: [a, b], branches: [{when: true, next: [yes]}], default: [no]}
  - {id: "yes", action: echo}
  - {id: "no", action: echo}
  - id: p
    type: parallel
    dependencies: ["yes", "no"]
    branches:
      - {name: left, steps: [{id: l1, action: echo}, {id: l2, action: echo, dependencies: [l1]}]}
      - {name: right, steps: [{id: r1, action: echo}]}
  - {id: f, type: foreach, items: [1, 2], step: {id: body, action: echo}, dependencies: [p]}
on_failure:
  - {id: alert, action: log}
"""


def test_scopes_and_edges() -> None:
    graph = validate_text(DEFINITION).graph
    assert list(graph.scopes) == [MAIN, "p/left", "p/right", "f/step", ON_FAILURE]
    assert graph.main.order == ["a", "b", "d", "yes", "no", "p", "f"]
    assert graph.main.prerequisites("yes") == ["d"]
    assert graph.main.dependents("d") == ["yes", "no"]
    assert graph.decided_by == {"yes": ["d"], "no": ["d"]}
    assert graph.scopes["p/left"].order == ["l1", "l2"]
    assert graph.enclosing("l2") == "p"
    assert graph.enclosing("body") == "f"
    assert graph.enclosing("a") is None
    assert graph.on_failure.order == ["alert"]
    assert graph.paths["l2"] == ("steps", 5, "branches", 0, "steps", 1)


def test_order_follows_source_order_among_ready_steps() -> None:
    graph = validate_text(
        "name: g\nsteps:\n  - {id: z, action: echo}\n  - {id: m, action: echo, dependencies: [z]}\n"
        "  - {id: a, action: echo}\n"
    ).graph
    assert graph.main.order == ["z", "m", "a"]


@pytest.mark.parametrize(
    ("steps", "cycle"),
    [
        (
            "[{id: a, action: echo, dependencies: [b]}, {id: b, action: echo, dependencies: [a]}]",
            "a -> b -> a",
        ),
        (
            "[{id: a, action: echo, dependencies: [c]}, {id: b, action: echo, dependencies: [a]},"
            " {id: c, action: echo, dependencies: [b]}]",
            "a -> b -> c -> a",
        ),
    ],
)
def test_cycles_name_their_steps(steps: str, cycle: str) -> None:
    with pytest.raises(DefinitionError, match=f"dependency cycle: {cycle}"):
        validate_text(f"name: g\nsteps: {steps}\n")


def test_decision_cannot_branch_upstream() -> None:
    with pytest.raises(DefinitionError, match="decision 'd' branches to 'a', which runs before it"):
        validate_text(
            "name: g\nsteps:\n  - {id: a, action: echo}\n"
            "  - {id: d, type: decision, dependencies: [a], branches: [{when: true, next: [a]}]}\n"
        )


def test_nested_steps_cannot_depend_outside_their_branch() -> None:
    with pytest.raises(
        DefinitionError, match="which is in the top-level steps; a step may only refer"
    ):
        validate_text(
            "name: g\nsteps:\n  - {id: a, action: echo}\n  - id: p\n    type: parallel\n    branches:\n"
            "      - {name: one, steps: [{id: n, action: echo, dependencies: [a]}]}\n"
        )


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_order_is_networkx_lexicographical_topological_order(data: st.DataObject) -> None:
    """Recorded histories depend on the order: it must stay exactly networkx's."""
    size = data.draw(st.integers(1, 40))
    names = data.draw(st.permutations([f"s{i}" for i in range(size)]))
    lines = ["name: random", "steps:"]
    for index, name in enumerate(names):
        earlier = names[:index]
        deps = (
            data.draw(st.lists(st.sampled_from(earlier), unique=True, max_size=4))
            if earlier
            else []
        )
        lines.append(f"  - {{id: {name}, action: echo, dependencies: [{', '.join(deps)}]}}")
    # the file lists steps in a random order, not the topological one, or in that one
    # (every edge forward: the sort takes a short cut)
    shuffled = data.draw(st.permutations(lines[2:]) | st.just(lines[2:]))
    graph = validate_text("\n".join([*lines[:2], *shuffled]) + "\n", file="r.yaml").graph
    scope = graph.scopes[MAIN]
    position = {step_id: i for i, step_id in enumerate(scope.steps)}
    expected = list(nx.lexicographical_topological_sort(scope.graph, key=position.__getitem__))
    assert scope.order == expected


def test_a_validated_graph_is_freed_without_the_cycle_collector() -> None:
    """No view cached on a graph refers back to it (`in_degree` did): a dropped
    10,000-step definition was left to a 100 ms collection."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        validated = validate_text(DEFINITION)
        assert validated.graph.main.roots() == ["a", "b"]
        graphs = [weakref.ref(scope.graph) for scope in validated.graph.scopes.values()]
        del validated
        assert [ref() for ref in graphs] == [None] * len(graphs)
    finally:
        if collecting:
            gc.enable()
