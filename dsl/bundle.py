"""A definition pinned with every subworkflow it can reach, resolved at submit time.

A run carries its bundle as input, so a changed file or registry never changes a
running or replayed run; the content hash identifies exactly what ran.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsl.catalog import Catalog
from dsl.errors import DefinitionError, Diagnostic
from dsl.models import Definition, SubworkflowStep, every_step
from dsl.validate import ValidatedDefinition, validate_data, validate_file

__all__ = [
    "Bundle",
    "bundle_key",
    "bundle_of",
    "canonical_json",
    "content_hash",
    "normalise",
    "resolve_bundle",
    "subworkflow_steps",
]


def normalise(definition: Definition) -> dict[str, Any]:
    """The canonical JSON form: snake_case keys, durations as text, no unset options."""
    return definition.model_dump(mode="json", exclude_none=True)


def canonical_json(definition: Definition | dict[str, Any]) -> bytes:
    """The normalised definition as compact, key-sorted JSON: what `content_hash`
    hashes, and what a content-addressed store keeps under that hash."""
    value = normalise(definition) if isinstance(definition, Definition) else definition
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def content_hash(definition: Definition | dict[str, Any]) -> str:
    """sha256 of the canonical JSON: equal for equal meaning, whatever the spelling."""
    return hashlib.sha256(canonical_json(definition)).hexdigest()


def bundle_key(name: str, version: str) -> str:
    return f"{name}@{version}"


@dataclass
class Bundle:
    """The root definition and the reachable subworkflow definitions."""

    definition: Definition
    subworkflows: dict[str, Definition] = field(default_factory=dict)
    latest: dict[str, str] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return content_hash(self.definition)

    def pins(self) -> dict[str, str]:
        """``name@version`` → content hash of every reachable subworkflow."""
        return {key: content_hash(child) for key, child in self.subworkflows.items()}

    def contents(self) -> dict[str, dict[str, Any]]:
        """Content hash → normalised definition, the root's and every subworkflow's."""
        return {self.hash: normalise(self.definition), **self.subworkflow_contents()}

    def subworkflow_contents(self) -> dict[str, dict[str, Any]]:
        """`contents` without the root's (whose caller may have it already)."""
        found = {}
        for child in self.subworkflows.values():
            normal = normalise(child)
            found[content_hash(normal)] = normal
        return found

    def subworkflow(self, step: SubworkflowStep) -> Definition:
        """The definition a subworkflow step runs (pinned version, else the resolved latest)."""
        version = step.version or self.latest[step.workflow]
        return self.subworkflows[bundle_key(step.workflow, version)]


def resolve_bundle(root: ValidatedDefinition, catalog: Catalog) -> Bundle:
    """Follow subworkflow steps transitively; each reached definition is validated too."""
    return bundle_of(root.definition, root.file, catalog)


def bundle_of(definition: Definition, origin: str, catalog: Catalog) -> Bundle:
    """`resolve_bundle` of a definition already checked, found at *origin*."""
    bundle = Bundle(definition=definition)
    pending: list[tuple[Definition, str]] = [(definition, origin)]
    while pending:
        definition, origin = pending.pop()
        for step in subworkflow_steps(definition):
            entry = catalog.find(step.workflow, step.version)
            if entry is None:
                wanted = step.workflow + (f" version {step.version}" if step.version else "")
                raise DefinitionError(
                    [Diagnostic(origin, 1, 1, f"no definition named {wanted!r} found")]
                )
            child = entry.definition
            if step.version is None:
                bundle.latest.setdefault(step.workflow, child.version)
            key = bundle_key(child.name, child.version)
            if key not in bundle.subworkflows:
                if Path(entry.origin).is_file():
                    validate_file(entry.origin, catalog=catalog)
                else:
                    validate_data(normalise(child), file=entry.origin, catalog=catalog)
                bundle.subworkflows[key] = child
                pending.append((child, entry.origin))
    return bundle


def subworkflow_steps(definition: Definition) -> list[SubworkflowStep]:
    """Every subworkflow step of *definition*, nested ones included."""
    return [step for step in every_step(definition) if isinstance(step, SubworkflowStep)]
