"""Static checks of data flow: every template and condition names something that exists.

A step may read ``steps.<id>`` only for steps upstream of it (its transitive
dependencies, or those of the parallel/foreach/loop step around it), ``vars.<name>``
only when an upstream ``set`` step sets it, ``item``/``index`` only inside a foreach
body, ``iteration`` only inside a loop and ``run.error`` only in ``on_failure``. A
loop's ``until``/``while`` also read the steps inside it (the iteration just
finished); outside a loop only ``steps.<loop>.output`` is visible. Conditions may
name only known JsonLogic operators and the definition's rules. Checking this before a run starts is what keeps
a typo from becoming a run that fails an hour in.

Ancestry uses one bitset (a Python int) per step, built in topological order, so the
check stays linear in the size of the definition.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from dsl.conditions import ITERATING_OPERATORS, KNOWN_OPERATORS, condition_vars, expand_rules
from dsl.errors import ExpressionError, Problem
from dsl.graph import ON_FAILURE, Scope, WorkflowGraph, scope_name, suggest
from dsl.models import (
    DecisionStep,
    FailStep,
    ForeachStep,
    LoopStep,
    SetStep,
    Step,
    SubworkflowStep,
    SucceedStep,
    TaskStep,
    WaitStep,
)
from dsl.templates import ROOTS, format_path, string_templates
from dsl.values import JsonPath

__all__ = ["check_references"]

STEP_FIELDS = ("output", "status", "error")
RUN_FIELDS = ("workflow_id", "run_id", "start_time", "name", "version")


def check_references(graph: WorkflowGraph) -> list[Problem]:
    """Every data-flow problem in the definition, in source order."""
    checker = _Checker(graph)
    checker.check_rules()
    for scope in graph.scopes.values():
        if not scope.order and scope.steps:
            continue  # a cycle was already reported; ancestry is meaningless there
        reader = _Reader(
            None,
            checker.within(scope.parent, ForeachStep),
            checker.root_scope(scope) == ON_FAILURE,
            in_loop=checker.within(scope.parent, LoopStep),
        )  # one per scope: what it may read depends on the scope, and on its step
        prerequisites = dict(scope.graph.reverse(copy=False).adjacency())  # its own dicts
        for step_id in scope.order:
            reader.step_id = step_id
            reader.prerequisites = prerequisites[step_id]
            checker.check_step(scope.steps[step_id], reader)
    if graph.definition.output is not None:
        checker.check_value(graph.definition.output, ("output",), _Reader.run_output())
    return checker.problems


class _Reader:
    """Who reads a value, which decides what it may name."""

    __slots__ = ("in_foreach", "in_loop", "loop", "on_failure", "prerequisites", "step_id")

    def __init__(
        self, step_id: str | None, in_foreach: bool, on_failure: bool, *, in_loop: bool = False
    ) -> None:
        self.step_id = step_id
        self.in_foreach = in_foreach
        self.on_failure = on_failure
        self.in_loop = in_loop
        self.loop: str | None = None
        """The loop whose `until`/`while` is read: the steps inside it are readable too."""
        self.prerequisites: Mapping[str, Any] = {}
        """The reader step's direct prerequisites (read only): always upstream of it."""

    @classmethod
    def run_output(cls) -> _Reader:
        """The definition's ``output``: read after the run, so any step may be named."""
        return cls(None, False, False)

    def describe(self) -> str:
        return f"step {self.step_id!r}" if self.step_id else "the run's output"


class _Checker:
    def __init__(self, graph: WorkflowGraph) -> None:
        self.graph = graph
        self.problems: list[Problem] = []
        self.rules: Mapping[str, Any] = graph.definition.rules
        self.index: dict[str, int] = {}
        for scope in graph.scopes.values():
            for step_id in scope.order:
                self.index[step_id] = len(self.index)
        self._ancestors: dict[str, int] | None = None
        self.setters: dict[str, list[str]] = {}
        for step in graph.all_steps():
            if isinstance(step, SetStep):
                for name in step.values:
                    self.setters.setdefault(name, []).append(step.id)

    # ------------------------------------------------------------------ ancestry

    @property
    def ancestors(self) -> dict[str, int]:
        """Each ordered step's ancestors as bits of `index`, built on first need.

        Quadratic in memory for a long chain (100,000 steps: 600 MB), and most reads
        name a direct prerequisite, which `upstream` answers without it.
        """
        if self._ancestors is None:
            self._ancestors = {}
            for scope in self.graph.scopes.values():
                for step_id in scope.order:
                    bits = 0
                    for before in scope.prerequisites(step_id):
                        bits |= self._ancestors.get(before, 0) | (1 << self.index[before])
                    self._ancestors[step_id] = bits
        return self._ancestors

    def upstream(self, target: str, reader: _Reader) -> bool:
        """Whether `target` has finished whenever the reader runs."""
        scope_of = self.graph.scope_of
        target_home = scope_of.get(target)
        if target_home is None:
            return False
        current = reader.step_id
        if current is None:
            return target_home != ON_FAILURE or reader.on_failure
        bit = self.index.get(target)
        while current is not None:
            home = scope_of[current]
            if home == ON_FAILURE and target_home != ON_FAILURE:
                return True
            scope = self.graph.scopes[home]
            if bit is not None and current in self.index:
                if scope.graph.has_edge(target, current):
                    return True  # a direct prerequisite: no need for the bits
                if (self.ancestors[current] >> bit) & 1:
                    return True
            current = scope.parent
        return False

    def scopes_around(self, step_id: str) -> list[str]:
        """The scope of `step_id` and of every step enclosing it."""
        return [self.graph.scope_of[s] for s in (step_id, *self.graph.around(step_id))]

    def within(self, outer: str | None, kind: type[Step]) -> bool:
        """Whether `outer` (the step around a scope) is of `kind` or inside one."""
        if outer is None:
            return False
        return any(isinstance(self.graph.step(s), kind) for s in (outer, *self.graph.around(outer)))

    def loop_around(self, step_id: str) -> str | None:
        """The outermost loop `step_id` is inside, if any."""
        loops = [s for s in self.graph.around(step_id) if isinstance(self.graph.step(s), LoopStep)]
        return loops[-1] if loops else None

    def root_scope(self, scope: Scope) -> str:
        """The top-level scope (main or on_failure) a scope is nested in."""
        current = scope
        while current.parent is not None:
            current = self.graph.scopes[self.graph.scope_of[current.parent]]
        return current.key

    # ------------------------------------------------------------------ checks

    def check_step(self, step: Step, reader: _Reader) -> None:
        """Templates and conditions of one step, read by it (`reader`)."""
        path = self.graph.paths[step.id]
        if step.when is not None:
            self.check_condition(step.when, (*path, "when"), reader)
        if step.mutex is not None:
            self.check_value(step.mutex, (*path, "mutex"), reader)
        if isinstance(step, TaskStep):
            self.check_value(step.parameters, (*path, "parameters"), reader)
            if step.compensate is not None:
                self.check_value(
                    step.compensate.parameters,
                    (*path, "compensate", "parameters"),
                    reader,
                    itself=step.id,
                )
        elif isinstance(step, DecisionStep):
            for b, branch in enumerate(step.branches):
                self.check_condition(branch.when, (*path, "branches", b, "when"), reader)
        elif isinstance(step, SubworkflowStep):
            self.check_value(step.input, (*path, "input"), reader)
        elif isinstance(step, ForeachStep):
            self.check_value(step.items, (*path, "items"), reader)
            if not isinstance(step.items, list | str):
                self.problems.append(
                    Problem((*path, "items"), "items must be a list or a ${{ template }}")
                )
        elif isinstance(step, WaitStep) and step.until is not None:
            self.check_value(step.until, (*path, "until"), reader)
        elif isinstance(step, SetStep):
            self.check_value(step.values, (*path, "values"), reader)
        elif isinstance(step, FailStep):
            self.check_value(step.message, (*path, "message"), reader)
        elif isinstance(step, SucceedStep):
            self.check_value(step.output, (*path, "output"), reader)
        elif isinstance(step, LoopStep):
            self.check_loop_conditions(step, path, reader)

    def check_loop_conditions(self, step: LoopStep, path: JsonPath, reader: _Reader) -> None:
        """`until`/`while` read what the loop's own steps may, its inner steps and
        `iteration` besides: they are checked around each iteration."""
        inner = _Reader(reader.step_id, reader.in_foreach, reader.on_failure, in_loop=True)
        inner.prerequisites = reader.prerequisites
        inner.loop = step.id
        for key, condition in (("until", step.until), ("while", step.while_)):
            if condition is not None:
                self.check_condition(condition, (*path, key), inner)

    def check_value(
        self, value: Any, path: JsonPath, reader: _Reader, *, itself: str | None = None
    ) -> None:
        """Each string on its own, so one malformed template does not hide the others."""
        for text, location in _templated_strings(value, path):
            try:
                refs = string_templates(text)
            except ExpressionError as exc:
                self.problems.append(Problem(location, str(exc)))
                continue
            for ref_path, ref_text in refs:
                if (
                    len(ref_path) > 2
                    and ref_path[0] == "steps"
                    and ref_path[1] in reader.prerequisites
                    and ref_path[2] in STEP_FIELDS
                ):
                    continue  # what `reference_problem` says of a direct prerequisite: fine
                message = self.reference_problem(ref_path, reader, itself=itself)
                if message:
                    self.problems.append(Problem(location, f"{ref_text}: {message}"))

    def check_condition(self, logic: Any, path: JsonPath, reader: _Reader) -> None:
        """Operators, rules and vars at their exact place, then vars of the expanded logic."""
        for op, args, where in self.check_operations(logic, path):
            for var, var_path in _read_paths(op, args, where):
                message = self.reference_problem(var, reader)
                if message:
                    self.problems.append(Problem(var_path, f"{op} {format_path(var)!r}: {message}"))
        try:
            expanded = expand_rules(logic, self.rules)
        except ExpressionError:
            return  # the unknown rule or the cycle is reported where it is written
        if expanded == logic:
            return
        for var in condition_vars(expanded):
            message = self.reference_problem(var, reader)
            if message:
                self.problems.append(
                    Problem(path, f"a rule used here reads {format_path(var)!r}: {message}")
                )

    def check_operations(
        self, logic: Any, path: JsonPath
    ) -> Iterator[tuple[str, list[Any], JsonPath]]:
        """Report unknown operators and rules; yield the known operations for more checks."""
        for op, args, where in _operations(logic, path):
            if op == "rule":
                if not (isinstance(args, list) and len(args) == 1 and isinstance(args[0], str)):
                    self.problems.append(Problem(where, "a rule reference is {rule: <name>}"))
                elif args[0] not in self.rules:
                    hint = suggest(args[0], list(self.rules))
                    self.problems.append(
                        Problem((*where, "rule"), f"unknown rule {args[0]!r}{hint}")
                    )
            elif op not in KNOWN_OPERATORS:
                hint = suggest(op, sorted(KNOWN_OPERATORS))
                self.problems.append(
                    Problem((*where, op), f"unknown JsonLogic operator {op!r}{hint}", at_key=True)
                )
            else:
                yield op, args, where

    def check_rules(self) -> None:
        reported_cycles: set[frozenset[str]] = set()
        for name, logic in self.rules.items():
            path: JsonPath = ("rules", name)
            for _ in self.check_operations(logic, path):
                pass
            try:
                expand_rules({"rule": name}, self.rules)
            except ExpressionError as exc:
                cycle = str(exc)
                members = frozenset(cycle.removeprefix("rule cycle: ").split(" -> "))
                if cycle.startswith("rule cycle") and members not in reported_cycles:
                    reported_cycles.add(members)
                    self.problems.append(Problem(path, cycle, at_key=True))

    def reference_problem(
        self, path: JsonPath, reader: _Reader, *, itself: str | None = None
    ) -> str | None:
        """Why `path` cannot be read by `reader`, or None when it can."""
        root = path[0] if path else None
        rest = path[1:]
        if root == "input":
            return None
        if root == "steps":
            return self.step_problem(rest, reader, itself)
        if root == "vars":
            return self.vars_problem(rest, reader)
        if root in ("item", "index"):
            return None if reader.in_foreach else f"'{root}' exists only inside a foreach step"
        if root == "iteration":
            return None if reader.in_loop else "'iteration' exists only inside a loop step"
        if root == "run":
            field = rest[0] if rest else None
            if field == "error":
                return None if reader.on_failure else "run.error exists only in on_failure steps"
            if field in RUN_FIELDS:
                return None
            return (
                f"unknown run field {field!r}; expected one of {', '.join((*RUN_FIELDS, 'error'))}"
            )
        return f"unknown root {root!r}; expected {', '.join(ROOTS[:-1])} or {ROOTS[-1]}"

    def step_problem(self, rest: JsonPath, reader: _Reader, itself: str | None) -> str | None:
        if not rest or not isinstance(rest[0], str):
            return "name a step: steps.<id>.output"
        target = rest[0]
        if len(rest) < 2 or rest[1] not in STEP_FIELDS:
            return f"after steps.{target} comes one of {', '.join(STEP_FIELDS)}"
        if target not in self.graph.scope_of:
            return f"unknown step {target!r}{suggest(target, list(self.graph.scope_of))}"
        if reader.loop is not None and reader.loop in self.graph.around(target):
            return None
        loop = self.loop_around(target)
        hidden = loop is not None and not (
            reader.step_id and loop in self.graph.around(reader.step_id)
        )
        if not hidden and (target == itself or self.upstream(target, reader)):
            return None
        home = self.graph.scope_of[target]
        if hidden:
            return (
                f"step {target!r} is inside loop {loop!r}; outside a loop only "
                f"steps.{loop}.output is visible (its last iteration's outputs are in 'last')"
            )
        if reader.step_id is not None and home not in self.scopes_around(reader.step_id):
            return (
                f"step {target!r} is in {scope_name(home)}; a step may read only steps "
                "upstream of it or of the parallel or foreach step around it"
            )
        return (
            f"step {target!r} is not upstream of {reader.describe()}; "
            f"add {target!r} to the dependencies of {reader.step_id!r}"
            if reader.step_id
            else f"step {target!r} runs only in on_failure"
        )

    def vars_problem(self, rest: JsonPath, reader: _Reader) -> str | None:
        if not rest or not isinstance(rest[0], str):
            return "name a variable: vars.<name>"
        name = rest[0]
        setters = self.setters.get(name, [])
        if not setters:
            return f"no set step sets {name!r}{suggest(name, list(self.setters))}"
        if any(self.upstream(o, reader) for s in setters for o in (s, *self.graph.around(s))):
            return None  # a step around a setter finished only after the setter did
        if reader.loop is not None and any(reader.loop in self.graph.around(s) for s in setters):
            return None
        return f"{name!r} is set by {', '.join(map(repr, setters))}, which is not upstream of {reader.describe()}"


def _read_paths(op: str, args: list[Any], where: JsonPath) -> Iterator[tuple[JsonPath, JsonPath]]:
    """(data path read, where it is written) for var, missing and missing_some."""
    if op == "var":
        for var in condition_vars({"var": args}):
            yield var, (*where, "var")
    elif op == "missing":
        listed = bool(args) and isinstance(args[0], list)
        names = args[0] if listed else args
        prefix = (*where, op, 0) if listed else (*where, op)
        for index, name in enumerate(names):
            for var in condition_vars({"missing": [name]}):
                yield var, (*prefix, index)
    elif op == "missing_some" and len(args) > 1 and isinstance(args[1], list):
        for index, name in enumerate(args[1]):
            for var in condition_vars({"missing": [name]}):
                yield var, (*where, op, 1, index)


def _templated_strings(value: Any, path: JsonPath) -> list[tuple[str, JsonPath]]:
    """Every string leaf holding ``${{`` with its path, in document order (dict keys
    are not templated); paths are made only for those, not for every leaf."""
    found: list[tuple[str, JsonPath]] = []
    if isinstance(value, str):
        if "${{" in value:
            found.append((value, path))
    elif isinstance(value, dict | list):
        _collect_templated(value, path, found)
    return found


def _collect_templated(
    value: dict[str, Any] | list[Any], path: JsonPath, found: list[tuple[str, JsonPath]]
) -> None:
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(item, str):
            if "${{" in item:
                found.append((item, (*path, key)))
        elif isinstance(item, dict | list):
            _collect_templated(item, (*path, key), found)


def _operations(logic: Any, path: JsonPath) -> Iterator[tuple[str, list[Any], JsonPath]]:
    """Each JsonLogic operation with its path; item sub-logic is entered for operators only."""
    if isinstance(logic, list):
        for i, item in enumerate(logic):
            yield from _operations(item, (*path, i))
        return
    if not (isinstance(logic, dict) and len(logic) == 1):
        return
    ((op, args),) = logic.items()
    listed = args if isinstance(args, list) else [args]
    yield op, listed, path
    if op in ("rule", "var"):
        return
    for i, arg in enumerate(listed):
        where = (*path, op, i) if isinstance(args, list) else (*path, op)
        if op in ITERATING_OPERATORS and i > 0:
            for inner_op, inner_args, inner_where in _operations(arg, where):
                if inner_op not in ("var",):
                    yield inner_op, inner_args, inner_where
            continue
        yield from _operations(arg, where)
