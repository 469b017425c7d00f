"""The layout's rules, read from the imports (`ast`), so the sandbox line cannot blur.

- `dsl/` is the language, pure: nothing of `interpreter/` or `activities/`, no
  Temporal, no database, no HTTP.
- `interpreter/runtime/` runs inside Temporal's sandbox and replays forever: the
  standard library, `temporalio`, `dsl` and `interpreter.contract` only.
- `interpreter/contract.py` is shared by the runtime and its clients: as light.
- `activities/` never imports `interpreter/` (a worker composes the two).
- No import circle between our modules, lazy imports included.
- Errors are raised as leaves of the tree in `dsl/errors.py`, never as `DslError`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import networkx as nx
import pytest

from tests.support.imports import PACKAGES, ROOT, Import, all_imports, source_files

IMPORTS = all_imports()
STDLIB = sys.stdlib_module_names


def _root(name: str) -> str:
    return name.split(".")[0]


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violations(package: str, allowed: tuple[str, ...]) -> list[str]:
    """Imports of modules in *package* that are neither stdlib nor under *allowed*."""
    return [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in IMPORTS
        if _inside(imp.module, package)
        and _root(imp.target) not in STDLIB
        and not any(_inside(imp.target, prefix) for prefix in allowed)
    ]


def test_the_reader_sees_every_module() -> None:
    modules = {imp.module for imp in IMPORTS}
    assert {"dsl.models", "interpreter.runtime.workflow", "activities.builtin"} <= modules


def test_dsl_is_pure() -> None:
    third_party = ("pydantic", "ruamel", "networkx", "json_logic", "jsonschema")
    assert _violations("dsl", ("dsl", *third_party)) == []


def test_the_runtime_imports_only_stdlib_temporalio_dsl_and_the_contract() -> None:
    # and OpenTelemetry's API, for step spans (`interpreter.runtime.spans`): no I/O,
    # and replay-safe through the SDK's tracer provider
    allowed = ("temporalio", "dsl", "interpreter.contract", "interpreter.runtime", "opentelemetry")
    assert _violations("interpreter.runtime", allowed) == []


def test_the_contract_is_as_light_as_the_runtime() -> None:
    assert _violations("interpreter.contract", ("temporalio", "dsl")) == []


def test_activities_never_import_the_interpreter() -> None:
    assert [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in IMPORTS
        if _inside(imp.module, "activities") and _inside(imp.target, "interpreter")
    ] == []


def test_no_import_circle() -> None:
    graph = nx.DiGraph()
    ours: list[Import] = [i for i in IMPORTS if _root(i.target) in PACKAGES]
    graph.add_edges_from((i.module, i.target) for i in ours if i.module != i.target)
    assert list(nx.simple_cycles(graph)) == []


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_errors_are_raised_as_leaves(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bare = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "DslError"
    ]
    assert bare == [], f"{path}: DslError(...) at lines {bare}; raise a leaf of dsl/errors.py"


def _layout_rows() -> dict[str, str]:
    """README's layout table: the path cell → the whole row."""
    rows: dict[str, str] = {}
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    for line in table.splitlines():
        if line.startswith("| `"):
            rows[line.split("|")[1].strip()] = line
    return rows


@pytest.mark.parametrize(
    "package",
    [
        "dsl",
        "interpreter/runtime",
        "interpreter/history",
        "interpreter/client",
        "interpreter/cli",
        "interpreter/payloads",
        "interpreter/dev",
        "activities",
    ],
)
def test_the_readme_layout_names_every_module_of_a_package(package: str) -> None:
    """The table a maintainer reads first matches the code: each module in its row."""
    rows = _layout_rows()
    row = next((r for cell, r in rows.items() if cell.startswith(f"`{package}/`")), None)
    assert row is not None, f"README's layout table has no row for {package}/"
    modules = sorted(
        path.stem
        for path in (ROOT / package).glob("*.py")
        if path.stem not in ("__init__", "__main__", "builtin", "examples")
    )
    assert [name for name in modules if f"`{name}`" not in row] == []


def test_the_readme_layout_names_every_top_level_interpreter_module() -> None:
    rows = "\n".join(_layout_rows())
    names = sorted(path.name for path in (ROOT / "interpreter").glob("*.py"))
    missing = [n for n in names if n != "__init__.py" and f"{n}`" not in rows]
    missing += [
        f"{p.name}/"
        for p in (ROOT / "interpreter").iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and f"{p.name}/`" not in rows
    ]
    assert missing == []
