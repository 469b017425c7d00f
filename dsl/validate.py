"""From a file to a validated definition, or to one positioned line per mistake.

The stages run in order — load (syntax, safety), models (keys, types), graph
(dependencies, cycles, decisions), data flow (templates, conditions), then the
outside world (input schema, policies, subworkflows, activities) — and a stage
that finds problems stops the later ones, whose checks would only echo them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from dsl.catalog import Catalog, ChainedCatalog, DirectoryCatalog
from dsl.cron import cron_problem, interval_problem
from dsl.errors import DefinitionError, Problem
from dsl.graph import WorkflowGraph, build_graph, suggest
from dsl.loader import LoadedDocument, SourceMap, load_file, load_text, paused_gc
from dsl.models import (
    STEP_TYPES,
    Definition,
    Model,
    ScheduleTrigger,
    SubworkflowStep,
    TaskStep,
    spellings,
)
from dsl.policies import POLICIES
from dsl.references import check_references
from dsl.repair import Repair, repair, unrelated
from dsl.values import JsonPath

__all__ = [
    "ValidatedDefinition",
    "validate_data",
    "validate_document",
    "validate_file",
    "validate_text",
]


@dataclass(frozen=True)
class ValidatedDefinition:
    """A definition that passed every check, with its graph and its source."""

    definition: Definition
    graph: WorkflowGraph
    document: LoadedDocument

    @property
    def file(self) -> str:
        return self.document.source.file


def validate_file(
    path: str | Path,
    *,
    definitions: Iterable[str | Path] = (),
    catalog: Catalog | None = None,
    activities: Collection[str] | None = None,
) -> ValidatedDefinition:
    """Validate a definition file; subworkflows resolve beside it and in `definitions`."""
    document = load_file(path)
    local = DirectoryCatalog([Path(path).parent, *definitions])
    lookup = local if catalog is None else ChainedCatalog([local, catalog])
    return validate_document(document, catalog=lookup, activities=activities)


def validate_text(text: str, *, file: str = "<string>", **options: Any) -> ValidatedDefinition:
    return validate_document(load_text(text, file=file), **options)


def validate_data(data: Any, *, file: str = "<data>", **options: Any) -> ValidatedDefinition:
    """Validate already-parsed data (no positions: problems point at 1:1)."""
    return validate_document(LoadedDocument(data=data, source=SourceMap(file), text=""), **options)


def validate_document(
    document: LoadedDocument,
    *,
    catalog: Catalog | None = None,
    activities: Collection[str] | None = None,
) -> ValidatedDefinition:
    """Run every stage; raises `DefinitionError` carrying every independent problem of
    every stage (a model mistake is repaired so the later stages still run: `dsl.repair`)."""
    with paused_gc():
        return _validate(document, catalog, activities)


def _validate(
    document: LoadedDocument, catalog: Catalog | None, activities: Collection[str] | None
) -> ValidatedDefinition:
    data = document.data
    if not isinstance(data, dict):
        kind = "empty" if data is None else _json_kind(data)
        _raise(
            document,
            [
                Problem(
                    (), f"a definition is a mapping with 'name' and 'steps'; this file is {kind}"
                )
            ],
        )
    found: list[Problem] = []
    fixed: Repair | None = None
    try:
        definition: Definition | None = Definition.model_validate(data)
    except ValidationError as exc:
        found = model_problems(exc, data)
        definition, fixed, more = _repaired_model(data, found)
        found += more
        if definition is None:
            _raise(document, found)
    assert definition is not None
    graph, placed = build_graph(definition)
    rest = check_references(graph) + list(_outside_problems(graph, catalog, activities))
    unplaceable = _unplaceable(placed)  # what names them repeats that mistake
    rest = [p for p in rest if not _names(p) & unplaceable]
    if fixed is not None:
        placed = [p for p in placed if unrelated(p, fixed)]
        rest = [p for p in rest if unrelated(p, fixed)]
    _raise(document, found + placed + rest)
    return ValidatedDefinition(definition=definition, graph=graph, document=document)


MAX_REPAIRS = 5
"""Model passes over a repaired definition before giving up on the later stages."""


def _repaired_model(
    data: dict[str, Any], problems: list[Problem]
) -> tuple[Definition | None, Repair | None, list[Problem]]:
    """A model of *data* with the places of *problems* stubbed out (`dsl.repair`), and
    the mistakes a later pass found elsewhere (a model check that could not run while
    its object had a bad field); no model when repairing does not get there."""
    fixed = repair(data, problems)
    more: list[Problem] = []
    for _ in range(MAX_REPAIRS):
        if fixed is None:
            return None, None, more
        try:
            return Definition.model_validate(fixed.data), fixed, more
        except ValidationError as exc:
            again = model_problems(exc, fixed.data)
        tainted = [*fixed.stubs, *fixed.dropped, *(p.path for p in problems + more)]
        more += [
            p for p in again if not any(t and p.path[: len(t)] == t for t in tainted) and p.path
        ]
        fixed = repair(fixed.data, again, into=fixed)
    return None, None, more


def _unplaceable(problems: list[Problem]) -> set[str]:
    """Ids named as unknown or duplicate by the graph's problems."""
    ids: set[str] = set()
    for problem in problems:
        if "unknown step" in problem.message or "duplicate" in problem.message:
            named = re.findall(r"'([^']+)'", problem.message)
            if named:
                ids.add(named[-1])
    return ids


def _names(problem: Problem) -> set[str]:
    """The quoted names in a problem's message."""
    return set(re.findall(r"'([^']+)'", problem.message))


def _raise(document: LoadedDocument, problems: list[Problem]) -> None:
    """Locate each problem; model-side paths are mapped to the keys the file really uses."""
    if problems:
        located = [(_spelled(document.data, p.path), p) for p in problems]
        document.source.locate_all(path for path, _ in located)
        raise DefinitionError(
            document.source.error(path, p.message, at_key=p.at_key) for path, p in located
        )


def _spelled(data: Any, path: JsonPath) -> JsonPath:
    """`path` with each key as the file spells it (``on_failure`` may be ``onFailure``)."""
    spelled: list[str | int] = []
    current = data
    for index, segment in enumerate(path):
        if isinstance(current, dict) and isinstance(segment, str):
            key = next((k for k in spellings(segment) if k in current), segment)
            spelled.append(key)
            current = current.get(key)
        elif isinstance(current, list) and isinstance(segment, int) and 0 <= segment < len(current):
            spelled.append(segment)
            current = current[segment]
        else:
            return (*spelled, *path[index:])
    return tuple(spelled)


def _outside_problems(
    graph: WorkflowGraph, catalog: Catalog | None, activities: Collection[str] | None
) -> Iterator[Problem]:
    definition = graph.definition
    if definition.input is not None:
        meta = Draft202012Validator(Draft202012Validator.META_SCHEMA)
        for error in sorted(meta.iter_errors(definition.input), key=lambda e: list(e.path)):
            yield Problem(
                ("input", *error.path), f"input is not a valid JSON Schema: {error.message}"
            )
    for index, policy in enumerate(definition.policies):
        if policy not in POLICIES:
            known = ", ".join(POLICIES)
            yield Problem(
                ("policies", index),
                f"unknown policy {policy!r}{suggest(policy, list(POLICIES))} (known: {known})",
            )
    yield from _trigger_problems(definition)
    if catalog is None and activities is None:
        return  # nothing below can find a problem
    for step in graph.all_steps():
        path = graph.paths[step.id]
        if (
            isinstance(step, SubworkflowStep)
            and catalog is not None
            and catalog.find(step.workflow, step.version) is None
        ):
            wanted = step.workflow + (f" version {step.version}" if step.version else "")
            hint = suggest(step.workflow, catalog.names())
            yield Problem(
                (*path, "workflow"),
                f"no definition named {wanted!r} found beside this file or in the registry{hint}",
            )
        if isinstance(step, TaskStep) and activities is not None:
            registered = sorted(activities)
            if step.action not in activities:
                yield Problem(
                    (*path, "action"),
                    f"no worker registers activity {step.action!r}{suggest(step.action, registered)}",
                )
            if step.compensate is not None and step.compensate.action not in activities:
                yield Problem(
                    (*path, "compensate", "action"),
                    f"no worker registers activity {step.compensate.action!r}{suggest(step.compensate.action, registered)}",
                )


def _trigger_problems(definition: Definition) -> Iterator[Problem]:
    """Schedules the server would refuse at `tdsl deploy`, found at `validate` instead."""
    for index, trigger in enumerate(definition.triggers):
        if not isinstance(trigger, ScheduleTrigger):
            continue
        schedule = trigger.schedule
        if schedule.cron is not None:
            problem = cron_problem(schedule.cron)
            key = "cron"
        else:
            assert schedule.interval is not None
            problem = interval_problem(schedule.interval)
            key = "interval"
        if problem is not None:
            yield Problem(("triggers", index, "schedule", key), problem)


# --------------------------------------------------------------------------- pydantic


def model_problems(error: ValidationError, data: Any) -> list[Problem]:
    """Pydantic's errors as problems located in the source, one per place."""
    problems: dict[JsonPath, Problem] = {}
    for detail in error.errors(include_url=False):
        problem = _model_problem(detail, data)
        problems.setdefault(problem.path + (("<key>",) if problem.at_key else ()), problem)
    explained = {
        fix for detail in error.errors(include_url=False) if (fix := _typo_fix(detail, data))
    }
    return [p for p in problems.values() if (p.path, p.message) not in explained]


def _typo_fix(detail: Any, data: Any) -> tuple[JsonPath, str] | None:
    """The missing-key problem that an unknown, misspelt key already explains."""
    if detail["type"] != "extra_forbidden":
        return None
    path, _, _ = _source_path(data, detail["loc"])
    close = difflib.get_close_matches(
        str(path[-1]), _model_keys_like(_value_at(data, path[:-1])), n=1, cutoff=0.6
    )
    if not close:
        return None
    return path[:-1], f"missing required key {close[0]!r}"


def _model_problem(detail: Any, data: Any) -> Problem:
    kind: str = detail["type"]
    path, parent, missing = _source_path(data, detail["loc"])
    message = str(detail["msg"]).removeprefix("Value error, ")
    if "[key]" in detail["loc"]:
        key = str(path[-1]) if path else "?"
        if path[:1] == ("rules",):
            return Problem(
                path,
                f"rule name {key!r} must start with a letter or '_' and hold only "
                "letters, digits, '_', '.' and '-'",
                at_key=True,
            )
        return Problem(path, f"name {key!r}: {message[:1].lower()}{message[1:]}", at_key=True)
    if kind == "extra_forbidden":
        key = str(path[-1])
        mapping = _value_at(data, path[:-1])
        twin = _other_spelling(key, mapping)
        if twin is not None:
            return Problem(
                path, f"{key!r} and {twin!r} are two spellings of one key; keep one", at_key=True
            )
        return Problem(
            path,
            f"unknown key {key!r}{suggest(key, _model_keys_like(mapping, unknown=key))}",
            at_key=True,
        )
    if kind == "missing":
        return Problem(path, f"missing required key {missing!r}")
    if (
        kind in ("union_tag_invalid", "union_tag_not_found")
        and isinstance(parent, dict)
        and "type" in parent
    ):
        tag = parent["type"]
        options = "schedule, api" if path[:1] == ("triggers",) else ", ".join(STEP_TYPES)
        hint = suggest(tag, options.split(", ")) if isinstance(tag, str) else ""
        return Problem((*path, "type"), f"unknown type {tag!r}{hint}; expected one of {options}")
    if kind in ("union_tag_not_found", "model_attributes_type", "model_type", "dict_type"):
        return Problem(path, f"{_label(path)}: expected a mapping, got {_json_kind(parent)}")
    if kind == "string_type" and isinstance(parent, int | float) and not isinstance(parent, bool):
        if _label(path) == "version":
            return Problem(
                path,
                f'version {parent!r} is not a semantic version such as 1.0.0 (quote it: "{parent}.0")',
            )
        return Problem(
            path, f"{_label(path)}: expected a string, got the number {parent!r} (quote it)"
        )
    if kind == "string_pattern_mismatch":
        return Problem(path, _pattern_message(path, parent))
    if kind == "literal_error":
        expected = detail.get("ctx", {}).get("expected", "")
        return Problem(path, f"{_label(path)}: expected {expected}, got {parent!r}")
    label = f"step {parent['id']!r}" if _is_step(path, parent) else _label(path)
    return Problem(path, f"{label}: {message[:1].lower()}{message[1:]}")


def _is_step(path: JsonPath, value: Any) -> bool:
    """Whether the problem is about a whole step (a model check such as wait's exactly-one)."""
    return bool(path) and isinstance(path[-1], int) and isinstance(value, dict) and "id" in value


def _source_path(data: Any, loc: tuple[Any, ...]) -> tuple[JsonPath, Any, str | None]:
    """Follow pydantic's loc through the real data: aliases found, union tags skipped.

    Returns the deepest path that exists, the value there, and the key pydantic
    wanted but did not find (for missing-key errors).
    """
    path: list[str | int] = []
    current = data
    for index, segment in enumerate(loc):
        if isinstance(current, dict) and isinstance(segment, str):
            key = next(
                (k for k in spellings(segment) if k in current),
                segment if segment in current else None,
            )
            if key is not None:
                path.append(key)
                current = current[key]
                continue
            if index == len(loc) - 1:
                return tuple(path), current, segment
        elif isinstance(current, list) and isinstance(segment, int) and 0 <= segment < len(current):
            path.append(segment)
            current = current[segment]
    return tuple(path), current, None


def _other_spelling(key: str, mapping: Any) -> str | None:
    """Another spelling of the same field present in `mapping`, if `key` is one of two."""
    if not isinstance(mapping, dict):
        return None
    for model in _all_models():
        for field in model.model_fields:
            names = spellings(field)
            if key in names:
                twin = next((n for n in names if n != key and n in mapping), None)
                if twin is not None:
                    return twin
    return None


def _value_at(data: Any, path: JsonPath) -> Any:
    for segment in path:
        data = data[segment]
    return data


def _label(path: JsonPath) -> str:
    names = [p for p in path if isinstance(p, str)]
    return names[-1] if names else "definition"


def _json_kind(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), "a number")


_PATTERN_MESSAGES = {
    "id": "step id {value!r} must start with a letter or '_' and hold only letters, digits, '_' and '-'",
    "version": "version {value!r} is not a semantic version such as 1.0.0",
    "name": "name {value!r} must start with a letter or digit and hold only letters, digits, '.', '_' and '-'",
    "workflow": "workflow {value!r} must start with a letter or digit and hold only letters, digits, '.', '_' and '-'",
}


def _pattern_message(path: JsonPath, value: Any) -> str:
    label = _label(path)
    template = _PATTERN_MESSAGES.get(
        label, "{label} {value!r} has characters that are not allowed here"
    )
    return template.format(label=label, value=value)


def _all_models() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    pending: list[type[BaseModel]] = [Model]
    while pending:
        model = pending.pop()
        for sub in model.__subclasses__():
            if sub not in found:
                found.append(sub)
                pending.append(sub)
    return found


def _model_keys_like(mapping: Any, *, unknown: str | None = None) -> list[str]:
    """The keys of the model this mapping most resembles, to suggest a typo's fix.

    A model that has the `unknown` key is not the one the mapping was checked against
    (it would suggest the key itself), so it is left out.
    """
    keys = set(mapping) if isinstance(mapping, dict) else set()
    best: list[str] = []
    best_score = -1
    for model in _all_models():
        names = [s for field in model.model_fields for s in spellings(field)]
        if unknown is not None and unknown in names:
            continue
        near = sum(1 for k in keys if k not in names and suggest(k, names))
        score = 2 * len(keys.intersection(names)) + near
        if score > best_score:
            best, best_score = names, score
    return best
