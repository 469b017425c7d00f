"""Drawing a definition's DAG: Mermaid (for READMEs and PRs), DOT (Graphviz) and JSON.

Nested scopes (parallel branches, foreach bodies, on_failure) are drawn as
subgraphs/clusters inside the step that owns them, so the picture matches what runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from dsl.graph import (
    MAIN,
    ON_FAILURE,
    Scope,
    WorkflowGraph,
    branch_scope_key,
    foreach_scope_key,
    loop_scope_key,
)
from dsl.models import DecisionStep, ForeachStep, LoopStep, ParallelStep, Step, TaskStep

__all__ = ["FORMATS", "STATE_COLOURS", "render_diagram", "to_json"]

Format = Literal["mermaid", "dot", "json"]
FORMATS: tuple[Format, ...] = ("mermaid", "dot", "json")


STATE_COLOURS = {
    "pending": ("#f4f4f5", "#a1a1aa"),
    "waiting": ("#e0f2fe", "#0284c7"),
    "running": ("#fef9c3", "#ca8a04"),
    "completed": ("#dcfce7", "#16a34a"),
    "skipped": ("#f4f4f5", "#71717a"),
    "failed": ("#fee2e2", "#dc2626"),
    "cancelled": ("#f3e8ff", "#9333ea"),
}
"""Step state → (fill, stroke): `tdsl graph --run ID` colours each step by its state."""


def render_diagram(
    graph: WorkflowGraph, fmt: Format = "mermaid", states: Mapping[str, str] | None = None
) -> str:
    """The graph in one of `FORMATS`; with *states* (step id → state, as in a run's
    status), each step coloured (and, in JSON, given its `status`)."""
    if fmt == "mermaid":
        return "\n".join(_Mermaid(graph, states or {}).lines()) + "\n"
    if fmt == "dot":
        return "\n".join(_Dot(graph, states or {}).lines()) + "\n"
    return json.dumps(to_json(graph, states), indent=2) + "\n"


def to_json(graph: WorkflowGraph, states: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Nodes and edges as plain data, for tools that draw their own pictures."""
    nodes = []
    edges = []
    for scope in graph.scopes.values():
        for step_id in scope.order or list(scope.steps):
            step = scope.steps[step_id]
            node: dict[str, Any] = {
                "id": step_id,
                "name": step.display_name,
                "type": step.type,
                "scope": scope.key,
            }
            if isinstance(step, TaskStep):
                node["action"] = step.action
            if scope.parent is not None:
                node["parent"] = scope.parent
            if states is not None:
                node["status"] = states.get(step_id, "pending")
            nodes.append(node)
        for source, target, kind, label in _edges(scope):
            edge = {"from": source, "to": target, "kind": kind}
            if label:
                edge["label"] = label
            edges.append(edge)
    definition = graph.definition
    return {"name": definition.name, "version": definition.version, "nodes": nodes, "edges": edges}


def _edges(scope: Scope) -> Iterator[tuple[str, str, str, str]]:
    """(from, to, kind, label) of a scope, in a stable order."""
    for step_id in scope.order or list(scope.steps):
        step = scope.steps[step_id]
        for dependency in step.dependencies:
            if dependency in scope.steps:
                yield dependency, step_id, "dependency", ""
        if isinstance(step, DecisionStep):
            seen: set[tuple[str, str]] = set()
            for index, branch in enumerate(step.branches, start=1):
                for target in branch.next:
                    label = _condition_label(branch.when, index)
                    if target in scope.steps and (target, label) not in seen:
                        seen.add((target, label))
                        yield step_id, target, "decision", label
            for target in step.default:
                if target in scope.steps:
                    yield step_id, target, "decision", "default"


def _condition_label(condition: Any, index: int) -> str:
    if isinstance(condition, dict) and set(condition) == {"rule"}:
        return str(condition["rule"])
    return f"branch {index}"


def _nested_scopes(graph: WorkflowGraph, step: Step) -> list[tuple[str, str]]:
    """(scope key, title) of the scopes a step owns."""
    if isinstance(step, ParallelStep):
        return [(branch_scope_key(step.id, b.name), b.name) for b in step.branches]
    if isinstance(step, ForeachStep):
        return [(foreach_scope_key(step.id), "for each item")]
    if isinstance(step, LoopStep):
        repeat = "repeat until" if step.until is not None else "repeat while"
        return [(loop_scope_key(step.id), f"{repeat} (at most {step.max_iterations})")]
    return []


def _label(step: Step) -> str:
    detail = step.action if isinstance(step, TaskStep) else step.type
    title = step.display_name
    return title if title == detail else f"{title}\n{detail}"


class _Mermaid:
    def __init__(self, graph: WorkflowGraph, states: Mapping[str, str]) -> None:
        self.graph = graph
        self.states = states

    def lines(self) -> list[str]:
        out = ["flowchart TD"]
        out += self.scope(self.graph.scopes[MAIN], "  ")
        if self.graph.scopes[ON_FAILURE].steps:
            out.append('  subgraph on_failure["on failure"]')
            out += self.scope(self.graph.scopes[ON_FAILURE], "    ")
            out.append("  end")
        if self.states:
            out += self.colours()
        return out

    def colours(self) -> list[str]:
        """One class per state, and each step in its state's class."""
        by_state: dict[str, list[str]] = {}
        for step_id in self.graph.scope_of:
            state = self.states.get(step_id, "pending")
            by_state.setdefault(state if state in STATE_COLOURS else "pending", []).append(
                _mermaid_id("s", step_id)
            )
        out = []
        for state, nodes in by_state.items():
            fill, stroke = STATE_COLOURS[state]
            out.append(f"  classDef {state} fill:{fill},stroke:{stroke},stroke-width:2px")
            out.append(f"  class {','.join(nodes)} {state}")
        return out

    def scope(self, scope: Scope, indent: str) -> list[str]:
        out: list[str] = []
        for step_id in scope.order or list(scope.steps):
            step = scope.steps[step_id]
            nested = _nested_scopes(self.graph, step)
            if nested:
                node = _mermaid_id("s", step_id)
                out.append(f'{indent}subgraph {node}["{_mermaid_text(_label(step))}"]')
                for key, title in nested:
                    inner = self.graph.scopes[key]
                    out.append(
                        f'{indent}  subgraph {_mermaid_id("g", key)}["{_mermaid_text(title)}"]'
                    )
                    out += self.scope(inner, indent + "    ")
                    out.append(f"{indent}  end")
                out.append(f"{indent}end")
            else:
                out.append(f"{indent}{_mermaid_id('s', step_id)}{_mermaid_shape(step)}")
        for source, target, _kind, label in _edges(scope):
            arrow = f'-->|"{_mermaid_text(label)}"|' if label else "-->"
            out.append(f"{indent}{_mermaid_id('s', source)} {arrow} {_mermaid_id('s', target)}")
        return out


def _mermaid_id(prefix: str, key: str) -> str:
    """A Mermaid node id for a step id or scope key that no Mermaid word or edge syntax
    can be confused with (`end`, `graph`, `x--y` are legal step ids): letters and digits
    kept, `_` doubled, anything else `_` and its hex code, after a prefix — one id per
    key, never two keys on one id."""
    encoded = "".join(
        c if c.isascii() and c.isalnum() else "__" if c == "_" else f"_{ord(c):x}_" for c in key
    )
    return f"{prefix}_{encoded}"


def _mermaid_text(text: str) -> str:
    """A label inside double quotes: quotes and the entity sign as entities, new lines
    as breaks."""
    return text.replace("#", "#35;").replace('"', "#quot;").replace("\n", "<br/>")


def _mermaid_shape(step: Step) -> str:
    text = _mermaid_text(_label(step))
    shapes = {
        "decision": '{"%s"}',
        "wait": '(["%s"])',
        "signal": '>"%s"]',
        "fail": '[["%s"]]',
        "succeed": '((("%s")))',
        "set": '[/"%s"/]',
    }
    return shapes.get(step.type, '["%s"]') % text


class _Dot:
    def __init__(self, graph: WorkflowGraph, states: Mapping[str, str]) -> None:
        self.graph = graph
        self.states = states

    def lines(self) -> list[str]:
        name = _quoted(f"{self.graph.definition.name} {self.graph.definition.version}")
        out = [
            f"digraph {name} {{",
            "  rankdir=TB;",
            '  node [shape=box, style=rounded, fontname="Helvetica"];',
        ]
        out += self.scope(self.graph.scopes[MAIN], "  ")
        if self.graph.scopes[ON_FAILURE].steps:
            out += [
                "  subgraph cluster_on_failure {",
                '    label="on failure";',
                "    style=dashed;",
            ]
            out += self.scope(self.graph.scopes[ON_FAILURE], "    ")
            out.append("  }")
        out.append("}")
        return out

    def scope(self, scope: Scope, indent: str) -> list[str]:
        out: list[str] = []
        for step_id in scope.order or list(scope.steps):
            step = scope.steps[step_id]
            shape = {
                "decision": "diamond",
                "wait": "ellipse",
                "signal": "cds",
                "fail": "octagon",
                "succeed": "doublecircle",
            }.get(step.type, "box")
            colour = ""
            if self.states:
                state = self.states.get(step_id, "pending")
                fill, stroke = STATE_COLOURS.get(state, STATE_COLOURS["pending"])
                colour = f', style="rounded,filled", fillcolor="{fill}", color="{stroke}"'
            out.append(
                f"{indent}{_quoted(step_id)} [label={_quoted(_label(step))}, shape={shape}{colour}];"
            )
            for key, title in _nested_scopes(self.graph, step):
                out += [
                    f"{indent}subgraph {_quoted('cluster_' + key)} {{",
                    f"{indent}  label={_quoted(title)};",
                ]
                out += self.scope(self.graph.scopes[key], indent + "  ")
                first = self.graph.scopes[key].roots()
                out.append(f"{indent}}}")
                out += [
                    f"{indent}{_quoted(step_id)} -> {_quoted(r)} [style=dotted];" for r in first
                ]
        for source, target, _kind, label in _edges(scope):
            attrs = f" [label={_quoted(label)}]" if label else ""
            out.append(f"{indent}{_quoted(source)} -> {_quoted(target)}{attrs};")
        return out


def _quoted(text: str) -> str:
    """A DOT quoted string (DOT reads JSON's escapes of quotes, backslashes and new
    lines the same way; other characters are written as they are)."""
    return json.dumps(text, ensure_ascii=False)
