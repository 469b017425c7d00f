"""One pass over a definition: after the model's mistakes, the later stages still run.

The model (pydantic) rejects a definition as a whole, yet the graph, the data-flow
references and the triggers of everything else can still be checked. So the data is
repaired just enough to build a model — each step with a mistake becomes a stub that
keeps its id and dependencies, a bad top-level key is dropped — and the later stages
check the repaired definition. What they would say about a stub, or about the steps
a stub hid (the branches of a broken `parallel`), is a follow-up of a mistake already
reported, and is left out: one line per mistake, no cascade from one cause.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dsl.errors import Problem
from dsl.values import JsonPath

__all__ = ["Repair", "repair", "unrelated"]

_STEP_LISTS = ("steps", "on_failure", "onFailure")
_FATAL = {"steps"}


@dataclass
class Repair:
    """The repaired data, and what the later stages must not speak about."""

    data: dict[str, Any]
    stubs: list[JsonPath] = field(default_factory=list)
    """Paths of steps replaced by stubs: no later problem inside them (but their
    dependencies) is reported."""
    hidden: set[str] = field(default_factory=set)
    """Ids a mistake made unusable (a stub's nested steps, an invalid id): a later
    problem naming one of them is a follow-up."""
    dropped: list[JsonPath] = field(default_factory=list)


def repair(
    data: dict[str, Any], problems: Iterable[Problem], into: Repair | None = None
) -> Repair | None:
    """*data* with the places of *problems* made harmless; None when nothing sensible
    is left to check (no usable `steps`)."""
    fixed = into or Repair(copy.deepcopy(data))
    for problem in problems:
        step = _enclosing_step(fixed.data, problem.path)
        if step is not None:
            if step not in fixed.stubs and not any(_within(step, s) for s in fixed.stubs):
                _stub(fixed, step)
            continue
        if not problem.path or problem.path[0] in _FATAL:
            return None
        top = str(problem.path[0])
        if top == "name":
            fixed.data["name"] = "invalid-name"
        elif top in fixed.data:
            del fixed.data[top]
        fixed.dropped.append((top,))
    return fixed


def unrelated(problem: Problem, fixed: Repair) -> bool:
    """Whether a later stage's *problem* is independent of the mistakes repaired."""
    for stub in fixed.stubs:
        if _within(problem.path, stub) and not _is_dependency(problem.path, stub):
            return False
    named = set(re.findall(r"'([^']+)'", problem.message))
    return not named & fixed.hidden


def _within(path: JsonPath, prefix: JsonPath) -> bool:
    return tuple(path[: len(prefix)]) == tuple(prefix)


def _is_dependency(path: JsonPath, stub: JsonPath) -> bool:
    rest = path[len(stub) :]
    return bool(rest) and rest[0] in ("dependencies", "dependsOn", "depends_on")


def _enclosing_step(data: Any, path: JsonPath) -> JsonPath | None:
    """The innermost step at or above *path*: a mapping in a list of steps, or a
    foreach body (`step`)."""
    found: JsonPath | None = None
    current = data
    for depth, segment in enumerate(path):
        try:
            current = current[segment]
        except (KeyError, IndexError, TypeError):
            break
        here = tuple(path[: depth + 1])
        in_list = len(here) >= 2 and isinstance(here[-1], int) and str(here[-2]) in _STEP_LISTS
        if isinstance(current, dict) and (in_list or here[-1] == "step"):
            found = here
    return found


def _stub(fixed: Repair, path: JsonPath) -> None:
    """Replace the step at *path* by a `set` step with its id and dependencies."""
    parent: Any = fixed.data
    for segment in path[:-1]:
        parent = parent[segment]
    original = parent[path[-1]]
    stub: dict[str, Any] = {"type": "set", "values": {"repaired": True}}
    step_id = original.get("id")
    valid_id = isinstance(step_id, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", step_id)
    stub["id"] = step_id if valid_id else f"invalid_step_{len(fixed.stubs)}"
    if isinstance(step_id, str) and not valid_id:
        fixed.hidden.add(step_id)
    for key in ("dependencies", "dependsOn", "depends_on"):
        value = original.get(key)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            stub[key] = value
            break
    fixed.hidden.update(_nested_ids(original, skip_top=True))
    parent[path[-1]] = stub
    fixed.stubs.append(path)


def _nested_ids(value: Any, *, skip_top: bool = False) -> Iterator[str]:
    """Ids of the steps nested in a step (its branches, body, compensation)."""
    if isinstance(value, dict):
        if not skip_top and isinstance(value.get("id"), str):
            yield value["id"]
        for inner in value.values():
            yield from _nested_ids(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _nested_ids(inner)
