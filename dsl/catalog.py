"""Where definitions named by a ``subworkflow`` step are found.

By name (docs/language.md, "Subworkflows and versions"): (and version, default the highest) among the definition files in
the submitted file's directory and any ``--definitions DIR``; the PostgreSQL
registry is another `Catalog` that the interpreter chains after this one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from dsl.errors import DefinitionError
from dsl.loader import load_file
from dsl.models import Definition

__all__ = [
    "DEFINITION_SUFFIXES",
    "TEST_FILE_SUFFIXES",
    "Catalog",
    "CatalogEntry",
    "ChainedCatalog",
    "DirectoryCatalog",
    "MemoryCatalog",
    "is_definition_file",
    "version_key",
]

DEFINITION_SUFFIXES = (".yaml", ".yml", ".json")
TEST_FILE_SUFFIXES = (".test.yaml", ".test.yml")
"""`tdsl test` files (`dsl.testfiles`), which sit beside definitions but are none."""


def is_definition_file(path: Path) -> bool:
    """A file a directory of definitions holds as a definition (its tests are not)."""
    return (
        path.suffix in DEFINITION_SUFFIXES
        and not path.name.endswith(TEST_FILE_SUFFIXES)
        and path.is_file()
    )


_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?")


def version_key(version: str) -> tuple[Any, ...]:
    """Semantic-version order: 1.10.0 > 1.9.0, and a release > its pre-releases."""
    match = _SEMVER.match(version)
    if match is None:
        return (-1,)
    major, minor, patch, pre = match.groups()
    pre_key: tuple[Any, ...] = (
        (1,)
        if pre is None
        else (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    )
    return (int(major), int(minor), int(patch), pre_key)


@dataclass(frozen=True)
class CatalogEntry:
    """A definition a catalog holds, and where it came from (a file, or the registry)."""

    definition: Definition
    origin: str
    deprecated: bool = False
    """A registry version that unpinned lookups pass over (`tdsl definitions deprecate`)."""


class Catalog(Protocol):
    """Looks definitions up by name; ``version=None`` means the highest."""

    def find(self, name: str, version: str | None = None) -> CatalogEntry | None: ...

    def names(self) -> list[str]: ...


class MemoryCatalog:
    """Definitions held in memory, highest semantic version first when none is pinned."""

    def __init__(self, entries: Iterable[CatalogEntry] = ()) -> None:
        self._entries: dict[str, list[CatalogEntry]] = {}
        for entry in entries:
            self.add(entry)

    def add(self, entry: CatalogEntry) -> None:
        self._entries.setdefault(entry.definition.name, []).append(entry)

    def find(self, name: str, version: str | None = None) -> CatalogEntry | None:
        entries = self._entries.get(name, [])
        if version is not None:
            entries = [e for e in entries if e.definition.version == version]
        else:
            entries = [e for e in entries if not e.deprecated]
        if not entries:
            return None
        return max(entries, key=lambda e: version_key(e.definition.version))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[CatalogEntry]:
        """Every entry, in the order they were added."""
        return [entry for entries in self._entries.values() for entry in entries]


class DirectoryCatalog:
    """Every loadable definition file in some directories, indexed on first use."""

    def __init__(self, directories: Iterable[str | Path]) -> None:
        self.directories = list(dict.fromkeys(Path(d).resolve() for d in directories))
        self._index: MemoryCatalog | None = None

    def _loaded(self) -> MemoryCatalog:
        if self._index is None:
            self._index = MemoryCatalog()
            for directory in self.directories:
                for path in sorted(directory.glob("*")):
                    if is_definition_file(path):
                        self._add(path, self._index)
        return self._index

    @staticmethod
    def _add(path: Path, index: MemoryCatalog) -> None:
        try:
            definition = Definition.model_validate(load_file(path).data)
        except (DefinitionError, ValidationError):
            return  # a broken neighbour is reported when it is validated itself
        index.add(CatalogEntry(definition, str(path)))

    def find(self, name: str, version: str | None = None) -> CatalogEntry | None:
        return self._loaded().find(name, version)

    def names(self) -> list[str]:
        return self._loaded().names()


class ChainedCatalog:
    """Asks each catalog in turn; the first that knows the name answers."""

    def __init__(self, catalogs: Sequence[Catalog]) -> None:
        self.catalogs = list(catalogs)

    def find(self, name: str, version: str | None = None) -> CatalogEntry | None:
        for catalog in self.catalogs:
            found = catalog.find(name, version)
            if found is not None:
                return found
        return None

    def names(self) -> list[str]:
        return sorted({n for c in self.catalogs for n in c.names()})
