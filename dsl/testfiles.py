"""Test files of definitions (docs/testing.md): `*.test.yaml`, read with positions, and how a
case's expectations compare with what a run did.

Pure, like the rest of `dsl/`: running the cases is `interpreter.testing`'s job. A
mistake in a test file is a `DefinitionError` (`FILE:LINE:COL: error: message`), as in
a definition, and so is a `definition` that does not exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dsl.durations import parse_duration
from dsl.errors import DefinitionError, Problem
from dsl.graph import WorkflowGraph, suggest
from dsl.loader import LoadedDocument, load_file
from dsl.models import TaskStep
from dsl.statuses import FinalRunStatus
from dsl.validate import validate_file

__all__ = [
    "Expectation",
    "MockCall",
    "SignalAt",
    "TestCase",
    "TestFile",
    "first_difference",
    "load_test_file",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MockError(_Strict):
    """What a mocked call raises: an `ApplicationError` of this type and message."""

    type: str = Field(default="MockError", min_length=1)
    message: str = "mocked failure"
    non_retryable: bool = False


class MockCall(_Strict):
    """One call of a mocked action: its output, or its error."""

    output: Any = None
    error: MockError | None = None

    @field_validator("error", mode="before")
    @classmethod
    def _error(cls, value: Any) -> Any:
        return {"message": value} if isinstance(value, str) else value


class SignalAt(_Strict):
    """A signal sent to the run once *after* has passed (on the skipping clock)."""

    name: str = Field(min_length=1)
    payload: Any = None
    after: timedelta = timedelta(0)

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, value: Any) -> timedelta:
        return parse_duration(value)


class Expectation(_Strict):
    """What the run must have done; every key optional, `output` and `error` subsets."""

    status: FinalRunStatus | None = None
    output: Any = None
    steps: dict[str, str] = Field(default_factory=dict)
    error: dict[str, Any] | None = None


class TestCase(_Strict):
    """One run of the definition with its input, mocks and signals."""

    __test__ = False  # not a pytest class

    name: str = Field(min_length=1)
    input: dict[str, Any] = Field(default_factory=dict)
    mocks: dict[str, list[MockCall]] = Field(default_factory=dict)
    signals: list[SignalAt] = Field(default_factory=list)
    expect: Expectation = Field(default_factory=Expectation)
    has_output: bool = Field(default=False, exclude=True)

    @field_validator("mocks", mode="before")
    @classmethod
    def _calls(cls, value: Any) -> Any:
        """One mapping is one call for every call; a list, one entry per call."""
        if isinstance(value, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        return value


class TestFile(_Strict):
    __test__ = False

    definition: str = Field(min_length=1)
    cases: list[TestCase] = Field(min_length=1)
    path: Path = Field(default=Path("."), exclude=True)

    @property
    def definition_path(self) -> Path:
        """The definition, relative to the test file."""
        return (self.path.parent / self.definition).resolve()


def load_test_file(path: str | Path, *, activities: Collection[str] | None = None) -> TestFile:
    """A test file, its definition checked, or a `DefinitionError` with one line per
    mistake; with *activities* (what the worker registers), every unmocked action
    must be one of them."""
    document = load_file(path)
    data = document.data
    if not isinstance(data, dict):
        _raise(document, [Problem((), "a test file is a mapping with 'definition' and 'cases'")])
    try:
        loaded = TestFile.model_validate({**data, "path": Path(path)})
    except ValidationError as exc:
        _raise(document, [_problem(detail) for detail in exc.errors()])
    cases = []
    for index, case in enumerate(loaded.cases):
        given = data["cases"][index]
        expect = given.get("expect") if isinstance(given, dict) else None
        has_output = isinstance(expect, dict) and "output" in expect
        cases.append(case.model_copy(update={"has_output": has_output}))
    names = [case.name for case in cases]
    duplicates = [
        Problem(("cases", index, "name"), f"another case is named {name!r} already")
        for index, name in enumerate(names)
        if name in names[:index]
    ]
    if not loaded.definition_path.is_file():
        duplicates.append(
            Problem(("definition",), f"no definition file {loaded.definition!r} beside this file")
        )
    _raise(document, duplicates)
    checked = validate_file(loaded.definition_path)  # its mistakes, at their own positions
    _raise(document, list(_case_problems(cases, checked.graph, activities)))
    return loaded.model_copy(update={"cases": cases})


def _case_problems(
    cases: list[TestCase], graph: WorkflowGraph, activities: Collection[str] | None
) -> Iterator[Problem]:
    """Mocks of actions no step names, steps the definition lacks, unmocked actions no
    worker has: each would make a case test something else than it says."""
    actions = sorted(
        {
            action
            for step in graph.all_steps()
            if isinstance(step, TaskStep)
            for action in (step.action, step.compensate.action if step.compensate else None)
            if action is not None
        }
    )
    compensated = {
        step.id for step in graph.all_steps() if isinstance(step, TaskStep) and step.compensate
    }
    for index, case in enumerate(cases):
        for action in case.mocks:
            if action not in actions:
                yield Problem(
                    ("cases", index, "mocks", action),
                    f"no step of the definition runs action {action!r}{suggest(action, actions)}",
                    at_key=True,
                )
        for step in case.expect.steps:
            if not _is_step(step, graph, compensated):
                known = [*graph.paths, *(f"{c}.compensate" for c in sorted(compensated))]
                yield Problem(
                    ("cases", index, "expect", "steps", step),
                    f"the definition has no step {step!r}{suggest(step, known)}",
                    at_key=True,
                )
        if activities is not None:
            for action in actions:
                if action not in case.mocks and action not in activities:
                    yield Problem(
                        ("cases", index),
                        f"action {action!r} is neither mocked nor registered by the worker "
                        "(mock it, or pass its module with --activities)",
                        at_key=True,
                    )


def _is_step(key: str, graph: WorkflowGraph, compensated: Collection[str]) -> bool:
    """A step of the run's status: a step id, an instance `id[n]` of a foreach body,
    or `id.compensate`, the compensation of a task step that has one."""
    base, dot, rest = re.sub(r"\[\d+\]", "", key).partition(".")
    if dot:
        return rest == "compensate" and base in compensated
    return base in graph.paths


def _problem(detail: Any) -> Problem:
    loc = tuple(part for part in detail["loc"] if part != "path")
    if detail["type"] == "extra_forbidden":
        return Problem(loc, f"unknown key {loc[-1]!r}", at_key=True)
    if detail["type"] == "missing":
        return Problem(loc[:-1], f"missing key {loc[-1]!r}", at_key=bool(loc[:-1]))
    message = str(detail["msg"]).removeprefix("Value error, ")
    return Problem(loc, message)


def _raise(document: LoadedDocument, problems: list[Problem]) -> None:
    if problems:
        document.source.locate_all(p.path for p in problems)
        raise DefinitionError(
            document.source.error(p.path, p.message, at_key=p.at_key) for p in problems
        )


# --------------------------------------------------------------------------- comparison


def first_difference(case: TestCase, run: dict[str, Any]) -> str | None:
    """The first way the *run* (`status`, `output`, `error`, `steps` as `tdsl run --json`
    prints them) differs from what *case* expects, as one readable clause; None if none."""
    expect = case.expect
    if expect.status is not None and run["status"] != expect.status:
        reason = f": {_error_text(run['error'])}" if run.get("error") else ""
        return f"status is {run['status']}{reason}, expected {expect.status}"
    for step, status in expect.steps.items():
        found = (run["steps"].get(step) or {}).get("status")
        if found is None:
            return f"step {step!r} is not in the run (its steps: {', '.join(sorted(run['steps']))})"
        if found != status:
            return f"step {step!r} is {found}, expected {status}"
    if case.has_output:
        where = _subset_difference(expect.output, run.get("output"), "output")
        if where is not None:
            return where
    if expect.error is not None:
        if not run.get("error"):
            return f"the run has no error, expected {_show(expect.error)}"
        where = _subset_difference(expect.error, run["error"], "error")
        if where is not None:
            return where
    return None


def _subset_difference(expected: Any, actual: Any, path: str) -> str | None:
    """Mappings: every expected key must match; anything else: equal."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path} is {_show(actual)}, expected a mapping with {_show(expected)}"
        for key, value in expected.items():
            if key not in actual:
                return f"{path}.{key} is missing, expected {_show(value)}"
            found = _subset_difference(value, actual[key], f"{path}.{key}")
            if found is not None:
                return found
        return None
    if expected == actual and isinstance(expected, bool) == isinstance(actual, bool):
        return None
    return f"{path} is {_show(actual)}, expected {_show(expected)}"


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return f"{error.get('type', 'Error')}: {error.get('message', '')}"
    return str(error)
