"""docs/language.md stays true: its complete examples validate, and it names every key.

A fenced ```yaml block whose first line (after comments and blank lines) is `name:`
is a complete definition and must pass the real validator. Every key a user can
write, found by walking the pydantic models from `Definition`, must appear in the
reference, and every step type must have its own section.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from dsl.models import Definition, SubworkflowStep, spellings
from dsl.validate import ValidatedDefinition, validate_text

DOC = Path(__file__).resolve().parents[1] / "docs" / "language.md"
TEXT = DOC.read_text(encoding="utf-8")

_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```", re.DOTALL | re.MULTILINE)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")


def _yaml_blocks() -> list[tuple[int, str]]:
    """(line number, text) of every fenced yaml block."""
    return [
        (TEXT.count("\n", 0, match.start()) + 2, match["body"])
        for match in _FENCE.finditer(TEXT)
        if match["lang"] == "yaml"
    ]


def _is_complete(body: str) -> bool:
    for line in body.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        return line.startswith("name:")
    return False


EXAMPLES = [(line, body) for line, body in _yaml_blocks() if _is_complete(body)]


def _validate(line: int, body: str) -> ValidatedDefinition:
    try:
        return validate_text(body, file=f"{DOC.name}:{line}.yaml")
    except Exception as exc:  # the diagnostics say what drifted
        pytest.fail(f"the example at docs/language.md line {line} is invalid:\n{exc}")


def test_the_reference_has_complete_examples() -> None:
    assert len(EXAMPLES) >= 3, "expected complete definitions (```yaml blocks starting `name:`)"


@pytest.mark.parametrize(("line", "body"), EXAMPLES, ids=[f"line-{line}" for line, _ in EXAMPLES])
def test_complete_example_validates(line: int, body: str) -> None:
    _validate(line, body)


def test_subworkflow_examples_call_definitions_shown_in_the_reference() -> None:
    checked = [_validate(line, body) for line, body in EXAMPLES]
    names = {c.definition.name for c in checked}
    for c in checked:
        for step in c.graph.all_steps():
            if isinstance(step, SubworkflowStep):
                assert step.workflow in names, (
                    f"{c.definition.name}: subworkflow {step.workflow!r} is not an example"
                )


# --------------------------------------------------------------------------- keys


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation names, through unions, lists and Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _reachable_models() -> list[type[BaseModel]]:
    """Every model a definition can contain, from `Definition` down, in a stable order."""
    seen: list[type[BaseModel]] = []
    pending: list[type[BaseModel]] = [Definition]
    while pending:
        model = pending.pop(0)
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            pending += _models_in(field.annotation)
    return seen


def _step_models() -> list[type[BaseModel]]:
    """The members of the discriminated step union (what `steps:` items may be)."""
    return _models_in(Definition.model_fields["steps"].annotation)


def _step_type(model: type[BaseModel]) -> str:
    annotation = model.model_fields["type"].annotation
    assert typing.get_origin(annotation) is typing.Literal, model
    (value,) = typing.get_args(annotation)
    return str(value)


def _mentioned(key: str) -> bool:
    """`key` is a whole inline code span, or is written as `key:` inside one."""
    as_key = re.compile(rf"(?<![\w.]){re.escape(key)}:")
    return any(span == key or as_key.search(span) for span in _INLINE_CODE.findall(TEXT))


def test_step_union_is_found() -> None:
    kinds = [_step_type(model) for model in _step_models()]
    assert "task" in kinds
    assert len(kinds) == len(set(kinds)) >= 9


def test_every_step_type_has_a_section() -> None:
    for model in _step_models():
        kind = _step_type(model)
        assert re.search(rf"^### `{re.escape(kind)}`$", TEXT, re.MULTILINE), (
            f"docs/language.md has no '### `{kind}`' section"
        )


def test_every_top_level_key_is_in_the_reference() -> None:
    missing = [key for key in Definition.model_fields if not _mentioned(key)]
    assert not missing, f"top-level keys missing from docs/language.md: {missing}"


def test_every_key_of_every_model_is_in_the_reference() -> None:
    missing = [
        f"{model.__name__}.{key}"
        for model in _reachable_models()
        for key in model.model_fields
        if not _mentioned(spellings(key)[0])
    ]
    assert not missing, f"keys missing from docs/language.md: {missing}"
