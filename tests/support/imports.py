"""The import graph of our packages, read from the source with `ast`: what the layout
test holds to its rules."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dsl", "interpreter", "activities")


@dataclass(frozen=True)
class Import:
    """One import statement: who imports what, where, and whether at module load."""

    module: str
    target: str
    line: int
    at_load: bool
    """False inside a function or an `if TYPE_CHECKING:` block."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _resolve(target: str) -> str:
    """The module a dotted name refers to: itself if it is a module or package of ours,
    else its parent (``from pkg import name`` names something inside ``pkg``)."""
    path = ROOT.joinpath(*target.split("."))
    if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
        return target
    return target.rpartition(".")[0] or target


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> list[Import]:
    module = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []

    def visit(node: ast.AST, at_load: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(module, a.name, child.lineno, at_load) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative imports are not used here; resolve them anyway
                    base = module.rsplit(".", child.level)[0]
                    name = f"{base}.{child.module}" if child.module else base
                else:
                    name = child.module or ""
                if name == "__future__":
                    continue
                for alias in child.names:
                    full = (
                        _resolve(f"{name}.{alias.name}") if name.split(".")[0] in PACKAGES else name
                    )
                    found.append(Import(module, full, child.lineno, at_load))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) or (
                isinstance(child, ast.If) and _is_type_checking(child)
            ):
                visit(child, False)
            else:
                visit(child, at_load)

    visit(tree, True)
    return found


def all_imports() -> list[Import]:
    return [imp for path in source_files() for imp in imports_of(path)]
