"""A definition's model and graph, built once per process for each content hash.

A run's first workflow task turns its definition into the pydantic model and the
networkx graph the runtime walks. For a 20,000-step definition that is seconds of
CPU, past the SDK's 2 s deadlock limit for one activation. The worker's definition
lookup (`interpreter.library`) builds them outside workflow code, in a thread, and
leaves them here under the definition's content hash; the run that asked for the
lookup then takes them from here at once.

It is a pure memo, so sharing it between runs keeps each run deterministic: a
content hash names one canonical JSON document, the model and graph are a function
of it, and nothing mutates them after they are built. A value is only remembered
under a hash it was checked against, so a run whose starter claimed a wrong hash
cannot put its definition in another's place. A replay on a worker that never saw
the hash builds them itself, as every run did before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from dsl.bundle import content_hash
from dsl.graph import WorkflowGraph, build_graph
from dsl.loader import paused_gc
from dsl.models import Definition

__all__ = [
    "CheckedDefinition",
    "check_definition",
    "forget_checked",
    "is_remembered",
    "remember_checked",
]

MAX_STEPS = 250_000
"""How many steps (of every definition together) the memo keeps; the least recently
used go first. About 50 MB per 10,000 steps at the most."""


@dataclass(frozen=True)
class CheckedDefinition:
    """A definition's model, its graph, and the graph's problems (empty when valid)."""

    definition: Definition
    graph: WorkflowGraph
    problems: tuple[str, ...]

    @property
    def size(self) -> int:
        return max(1, len(self.graph.paths))


_memo: OrderedDict[str, CheckedDefinition] = OrderedDict()
_lock = threading.Lock()
"""Runs of an unsandboxed worker activate on several threads."""


def check_definition(content: dict[str, Any], key: str | None = None) -> CheckedDefinition:
    """The model and graph of *content*, remembered under *key* once it is checked to
    be the content's hash; raises the model's `ValueError` when content is invalid."""
    if key is not None:
        with _lock:
            found = _memo.get(key)
            if found is not None:
                _memo.move_to_end(key)
                return found
    with paused_gc():
        definition = Definition.model_validate(content)
        graph, problems = build_graph(definition)
    checked = CheckedDefinition(definition, graph, tuple(p.message for p in problems))
    if key is not None and not problems and content_hash(content) == key:
        _keep(key, checked)
    return checked


def remember_checked(key: str, definition: Definition, graph: WorkflowGraph) -> None:
    """Leave a model and graph built from the canonical JSON whose sha256 is *key*
    (the caller checked it), for the runs that will ask for them."""
    _keep(key, CheckedDefinition(definition, graph, ()))


def is_remembered(key: str) -> bool:
    with _lock:
        return key in _memo


def forget_checked() -> None:
    """Empty the memo (tests, and a worker that wants the memory back)."""
    with _lock:
        _memo.clear()


def _keep(key: str, checked: CheckedDefinition) -> None:
    with _lock:
        _memo[key] = checked
        _memo.move_to_end(key)
        total = sum(c.size for c in _memo.values())
        while total > MAX_STEPS and len(_memo) > 1:
            _, dropped = _memo.popitem(last=False)
            total -= dropped.size
