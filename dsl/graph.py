"""The DAG of a definition: one networkx graph per scope, and its structural checks.

A scope is a set of sibling steps that run as one DAG: the top-level steps, each
``parallel`` branch, each ``foreach`` body, and ``on_failure``. Edges go from each
dependency to its dependent, and from a decision to each of its targets (a target
implicitly depends on the decision). Nested steps may depend only on steps of their
own scope, so every scope is checked and walked on its own.

Everything here is deterministic (insertion-ordered dicts, lexicographic topological
order by source position) because the interpreter builds the same graph in workflow
code, where iteration order must not depend on hashing.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

import networkx as nx

from dsl.errors import Problem
from dsl.models import (
    MAX_NESTED_LOOP_ITERATIONS,
    DecisionStep,
    Definition,
    ForeachStep,
    JoinCount,
    LoopStep,
    ParallelStep,
    Step,
    SucceedStep,
)
from dsl.values import JsonPath

__all__ = [
    "MAIN",
    "ON_FAILURE",
    "Scope",
    "WorkflowGraph",
    "build_graph",
    "loop_scope_key",
    "scope_name",
    "suggest",
]

MAIN = "main"
ON_FAILURE = "on_failure"


@dataclass
class Scope:
    """Sibling steps that run as one DAG."""

    key: str
    steps: dict[str, Step]
    graph: nx.DiGraph[str]
    order: list[str] = field(default_factory=list)
    parent: str | None = None
    """The parallel, foreach or loop step this scope belongs to (None at top level)."""

    def dependents(self, step_id: str) -> list[str]:
        """Steps that wait for `step_id`, in source order."""
        return list(self.graph.successors(step_id))

    def prerequisites(self, step_id: str) -> list[str]:
        """Steps `step_id` waits for: its dependencies and any deciding decision."""
        return list(self.graph.predecessors(step_id))

    def roots(self) -> list[str]:
        """Steps with no prerequisites, in order (not `in_degree`: see the sort below)."""
        predecessors = self.graph.pred
        return [s for s in self.order if not predecessors[s]]


@dataclass
class WorkflowGraph:
    """Every scope of a definition and where each step sits in the source."""

    definition: Definition
    scopes: dict[str, Scope]
    paths: dict[str, JsonPath]
    scope_of: dict[str, str]
    decided_by: dict[str, list[str]]
    """For each decision target, the decisions that choose it."""

    @property
    def main(self) -> Scope:
        return self.scopes[MAIN]

    @property
    def on_failure(self) -> Scope:
        return self.scopes[ON_FAILURE]

    def step(self, step_id: str) -> Step:
        return self.scopes[self.scope_of[step_id]].steps[step_id]

    def enclosing(self, step_id: str) -> str | None:
        """The parallel, foreach or loop step around `step_id`, if any."""
        return self.scopes[self.scope_of[step_id]].parent

    def around(self, step_id: str) -> Iterator[str]:
        """The parallel, foreach and loop steps around `step_id`, innermost first."""
        current = self.enclosing(step_id)
        while current is not None:
            yield current
            current = self.enclosing(current)

    def inside(self, outer: str) -> list[str]:
        """Every step nested in `outer`, at any depth, in scope order."""
        return [
            step_id
            for scope in self.scopes.values()
            if scope.parent is not None
            and (scope.parent == outer or outer in self.around(scope.parent))
            for step_id in scope.steps
        ]

    def all_steps(self) -> Iterator[Step]:
        for scope in self.scopes.values():
            yield from scope.steps.values()


def branch_scope_key(step_id: str, branch: str) -> str:
    return f"{step_id}/{branch}"


def foreach_scope_key(step_id: str) -> str:
    return f"{step_id}/step"


def loop_scope_key(step_id: str) -> str:
    """``#`` cannot be in a branch name, so no parallel branch has this key."""
    return f"{step_id}/#loop"


def build_graph(definition: Definition) -> tuple[WorkflowGraph, list[Problem]]:
    """Build every scope's graph; problems come back instead of raising, all of them."""
    builder = _GraphBuilder(definition)
    builder.add_scope(MAIN, definition.steps, ("steps",), None)
    builder.refusing_succeed = _SUCCEED_IN_ON_FAILURE
    builder.add_scope(ON_FAILURE, definition.on_failure, ("on_failure",), None)
    graph = WorkflowGraph(
        definition=definition,
        scopes=builder.scopes,
        paths=builder.paths,
        scope_of=builder.scope_of,
        decided_by=builder.decided_by,
    )
    for scope in builder.scopes.values():
        builder.connect(scope)
    return graph, builder.problems


def suggest(name: str, candidates: list[str]) -> str:
    """A ``; did you mean 'x'?`` hint when one candidate is close to `name`."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_SUCCEED_IN_FOREACH = (
    "a succeed step cannot be inside a foreach body: it would end the whole run from "
    "one item; let the foreach finish, then decide"
)
_SUCCEED_IN_ON_FAILURE = (
    "a succeed step cannot be in on_failure: on_failure cannot change the run's error"
)


class _GraphBuilder:
    def __init__(self, definition: Definition) -> None:
        self.definition = definition
        self.scopes: dict[str, Scope] = {}
        self.paths: dict[str, JsonPath] = {}
        self.scope_of: dict[str, str] = {}
        self.decided_by: dict[str, list[str]] = {}
        self.problems: list[Problem] = []
        self.refusing_succeed: str | None = None
        """Why a `succeed` step may not be where steps are being added now, if it may not."""

    def add_scope(self, key: str, steps: list[Step], path: JsonPath, parent: str | None) -> None:
        scope = Scope(key=key, steps={}, graph=nx.DiGraph(), parent=parent)
        self.scopes[key] = scope
        for index, step in enumerate(steps):
            self.add_step(scope, step, (*path, index))

    def add_step(self, scope: Scope, step: Step, path: JsonPath) -> None:
        if step.id in self.paths:
            first = self.paths[step.id]
            where = "" if self.scope_of[step.id] == scope.key else " elsewhere"
            self.problems.append(
                Problem(
                    (*path, "id"),
                    f"duplicate step id {step.id!r} (already used{where} at {_describe(first)})",
                )
            )
            return
        self.paths[step.id] = path
        self.scope_of[step.id] = scope.key
        scope.steps[step.id] = step
        if isinstance(step, SucceedStep) and self.refusing_succeed is not None:
            self.problems.append(Problem((*path, "type"), self.refusing_succeed))
        scope.graph.add_node(step.id)
        if isinstance(step, ParallelStep):
            seen: set[str] = set()
            for b, branch in enumerate(step.branches):
                if branch.name in seen:
                    name_path = (*path, "branches", b, "name")
                    self.problems.append(
                        Problem(name_path, f"duplicate branch name {branch.name!r} in {step.id!r}")
                    )
                    continue
                seen.add(branch.name)
                branch_path = (*path, "branches", b, "steps")
                self.add_scope(
                    branch_scope_key(step.id, branch.name), branch.steps, branch_path, step.id
                )
        elif isinstance(step, ForeachStep):
            body = Scope(
                key=foreach_scope_key(step.id), steps={}, graph=nx.DiGraph(), parent=step.id
            )
            self.scopes[body.key] = body
            self.check_cancel_remaining(
                step, len(step.items) if isinstance(step.items, list) else 0, "items"
            )
            outside, self.refusing_succeed = (
                self.refusing_succeed,
                (self.refusing_succeed or _SUCCEED_IN_FOREACH),
            )
            self.add_step(body, step.step, (*path, "step"))
            self.refusing_succeed = outside
        elif isinstance(step, LoopStep):
            if scope.key != MAIN and step.max_iterations > MAX_NESTED_LOOP_ITERATIONS:
                self.problems.append(
                    Problem(
                        (*path, "max_iterations"),
                        f"max_iterations {step.max_iterations} is above "
                        f"{MAX_NESTED_LOOP_ITERATIONS}, the most for a loop inside "
                        f"{scope_name(scope.key)}: only a top-level loop continues as new "
                        "between iterations; make it a top-level step or a subworkflow",
                    )
                )
            self.add_scope(loop_scope_key(step.id), step.steps, (*path, "steps"), step.id)

    def connect(self, scope: Scope) -> None:
        """Add dependency and decision edges, then check the scope is a DAG.

        Dependency edges go in at once (`add_edges_from`, in the same order, so the
        graph is the same); decisions need them all in place first.
        """
        steps = scope.steps
        edges: list[tuple[str, str, dict[str, JsonPath]]] = []
        decisions: list[DecisionStep] = []
        parallels: list[ParallelStep] = []
        for step_id, step in steps.items():
            if step.dependencies:
                base = self.paths[step_id]
                for index, dependency in enumerate(step.dependencies):
                    where = (*base, "dependencies", index)
                    if dependency != step_id and dependency in steps:
                        edges.append((dependency, step_id, {"path": where}))
                    else:
                        self.known_in(scope, step_id, dependency, where, "depends on")
            if isinstance(step, DecisionStep):
                decisions.append(step)
            elif isinstance(step, ParallelStep):
                parallels.append(step)
        scope.graph.add_edges_from(edges)
        for decision in decisions:
            self.connect_decision(scope, decision, self.paths[decision.id])
        self.check_parallel_joins(parallels)
        order = _source_ordered_topological_sort(scope)
        if order is None:
            self.report_cycle(scope)
        else:
            scope.order = order

    def known_in(self, scope: Scope, step_id: str, target: str, where: JsonPath, verb: str) -> bool:
        """Whether `target` is a step of `scope`; reports why not."""
        if target == step_id:
            self.problems.append(Problem(where, f"step {step_id!r} {verb} itself"))
            return False
        if target in scope.steps:
            return True
        if target in self.scope_of:
            home = self.scope_of[target]
            self.problems.append(
                Problem(
                    where,
                    f"step {step_id!r} {verb} {target!r}, which is in {scope_name(home)}; "
                    f"a step may only refer to steps of its own {_scope_kind(scope.key)}",
                )
            )
        else:
            hint = suggest(target, list(scope.steps))
            self.problems.append(
                Problem(where, f"step {step_id!r} {verb} unknown step {target!r}{hint}")
            )
        return False

    def connect_decision(self, scope: Scope, step: DecisionStep, path: JsonPath) -> None:
        targets: list[tuple[str, JsonPath]] = []
        for b, branch in enumerate(step.branches):
            targets += [(t, (*path, "branches", b, "next", i)) for i, t in enumerate(branch.next)]
        targets += [(t, (*path, "default", i)) for i, t in enumerate(step.default)]
        for target, where in targets:
            if not self.known_in(scope, step.id, target, where, "branches to"):
                continue
            if step.id in self.decided_by.get(target, []):
                continue  # named twice by the same decision
            if scope.graph.has_edge(step.id, target):
                self.decided_by.setdefault(target, []).append(step.id)
                continue  # also a declared dependency: the edge exists, the choice still matters
            if target in nx.ancestors(scope.graph, step.id):
                self.problems.append(
                    Problem(
                        where, f"decision {step.id!r} branches to {target!r}, which runs before it"
                    )
                )
                continue
            scope.graph.add_edge(step.id, target, path=where)
            self.decided_by.setdefault(target, []).append(step.id)

    def check_parallel_joins(self, parallels: list[ParallelStep]) -> None:
        for step in parallels:
            if isinstance(step.join, JoinCount):
                count, available = step.join.count, len(step.branches)
                if count > available:
                    self.problems.append(
                        Problem(
                            (*self.paths[step.id], "join", "count"),
                            f"join count {count} is larger than the {available} branches "
                            f"of {step.id!r}",
                        )
                    )
                    continue
            self.check_cancel_remaining(step, len(step.branches), "branches")

    def check_cancel_remaining(
        self, step: ParallelStep | ForeachStep, size: int, what: str
    ) -> None:
        """`cancel_remaining: false` with a join that waits for everything does nothing."""
        if step.cancel_remaining:
            return
        everything = step.join == "all" or (
            isinstance(step.join, JoinCount) and size and step.join.count >= size
        )
        if everything:
            self.problems.append(
                Problem(
                    (*self.paths[step.id], "cancel_remaining"),
                    f"cancel_remaining: false has no effect on {step.id!r}: its join waits for "
                    f"all its {what}, so none is left running; set join to any or {{count: N}}",
                    at_key=True,
                )
            )

    def report_cycle(self, scope: Scope) -> None:
        cycle = nx.find_cycle(scope.graph)
        names = [edge[0] for edge in cycle] + [cycle[0][0]]
        closing = max(cycle, key=lambda edge: _source_index(self.paths[edge[1]]))
        where = scope.graph.edges[closing[0], closing[1]]["path"]
        self.problems.append(Problem(where, f"dependency cycle: {' -> '.join(names)}"))


def _source_index(path: JsonPath) -> tuple[int, ...]:
    return tuple(p for p in path if isinstance(p, int))


def _describe(path: JsonPath) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def scope_name(key: str) -> str:
    if key == MAIN:
        return "the top-level steps"
    if key == ON_FAILURE:
        return "on_failure"
    owner, _, branch = key.partition("/")
    if branch == "#loop":
        return f"the body of loop {owner!r}"
    return (
        f"the body of foreach {owner!r}" if branch == "step" else f"branch {branch!r} of {owner!r}"
    )


def _scope_kind(key: str) -> str:
    if key in (MAIN, ON_FAILURE):
        return "level" if key == MAIN else "on_failure list"
    if key.endswith("/#loop"):
        return "loop body"
    return "foreach body" if key.endswith("/step") else "branch"


def _source_ordered_topological_sort(scope: Scope) -> list[str] | None:
    """The steps in dependency order, the earliest in the file first among those
    ready; None for a cycle.

    The same (unique) order as `nx.lexicographical_topological_sort` keyed by source
    position — the runtime starts steps in it, so recorded histories depend on it —
    written out because networkx's generic version was a third of validating a
    10,000-step file.
    """
    names = list(scope.steps)
    position = {step_id: index for index, step_id in enumerate(names)}
    # The graph's own dicts (read only). Not `in_degree`: that view, cached on the
    # graph, refers back to it, and the cycle left whole graphs to the collector.
    successors = dict(scope.graph.adjacency())
    if all(
        position[dependent] > position[step_id]
        for step_id, dependents in successors.items()
        for dependent in dependents
    ):
        return names  # every edge points forward: each next step in the file is ready
    waiting = dict.fromkeys(names, 0)
    for dependents in successors.values():
        for dependent in dependents:
            waiting[dependent] += 1
    ready = [position[step_id] for step_id, degree in waiting.items() if degree == 0]
    heapq.heapify(ready)
    pop, push = heapq.heappop, heapq.heappush
    order: list[str] = []
    while ready:
        step_id = names[pop(ready)]
        order.append(step_id)
        for dependent in successors[step_id]:
            left = waiting[dependent] - 1
            waiting[dependent] = left
            if not left:
                push(ready, position[dependent])
    return order if len(order) == len(waiting) else None
