"""The broken-definition corpus: one mistake per file, each reported where a human points.

Every file in ``tests/corpus/`` (not its subdirectories) declares what validating it
must produce, one header line per diagnostic, in order::

    # expect: LINE:COL: MESSAGE-SUBSTRING

JSON has no comments, so ``NAME.json`` keeps its lines in ``NAME.json.expect``. A
``# xfail: reason`` line marks a case where the validator is known to be wrong today
(the expectation states what it *should* say); such cases are strict xfails, so a fix
turns them into failures until the marker is removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from dsl.errors import DefinitionError, Diagnostic
from dsl.validate import validate_file, validate_text

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
SUFFIXES = (".yaml", ".yml", ".json")
_EXPECT = re.compile(r"^# expect: (\d+):(\d+): (.+?)\s*$")
_XFAIL = re.compile(r"^# xfail: (.+?)\s*$")
_RENDERED = re.compile(
    r"^(?P<file>.+):(?P<line>[1-9]\d*):(?P<column>[1-9]\d*): error: (?P<message>.+)$"
)


@dataclass(frozen=True)
class Expected:
    line: int
    column: int
    substring: str

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: ...{self.substring}..."


@dataclass(frozen=True)
class Case:
    path: Path
    expected: tuple[Expected, ...]
    xfail: str | None


def _header_lines(path: Path) -> list[str]:
    """The comment lines declaring expectations: the file's own, or a JSON sidecar's."""
    source = path.with_name(path.name + ".expect") if path.suffix == ".json" else path
    return source.read_text(encoding="utf-8").splitlines()


def load_case(path: Path) -> Case:
    expected: list[Expected] = []
    xfail: str | None = None
    for line in _header_lines(path):
        if found := _EXPECT.match(line):
            expected.append(Expected(int(found[1]), int(found[2]), found[3]))
        elif found := _XFAIL.match(line):
            xfail = found[1]
    return Case(path, tuple(expected), xfail)


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_file() and p.suffix in SUFFIXES)


def _params() -> list[object]:
    params: list[object] = []
    for path in corpus_files():
        case = load_case(path)
        marks = (
            [pytest.mark.xfail(strict=True, raises=AssertionError, reason=case.xfail)]
            if case.xfail
            else []
        )
        params.append(pytest.param(case, id=path.name, marks=marks))
    return params


def _show(diagnostics: tuple[Diagnostic, ...]) -> str:
    return "\n".join(f"  {d.line}:{d.column}: {d.message}" for d in diagnostics) or "  (none)"


@pytest.mark.parametrize("case", _params())
def test_corpus_file(case: Case) -> None:
    assert case.expected, f"{case.path.name} declares no '# expect:' line"
    try:
        validate_file(case.path)
    except DefinitionError as exc:
        diagnostics = exc.diagnostics
    else:
        raise AssertionError(
            f"{case.path.name} validated, but it should fail with:\n"
            + "\n".join(f"  {e}" for e in case.expected)
        )

    report = (
        f"{case.path.name}\nexpected:\n"
        + "\n".join(f"  {e}" for e in case.expected)
        + f"\nactual:\n{_show(diagnostics)}"
    )
    assert len(diagnostics) == len(case.expected), report
    for diagnostic, expected in zip(diagnostics, case.expected, strict=True):
        assert (diagnostic.line, diagnostic.column) == (expected.line, expected.column), report
        assert expected.substring in diagnostic.message, report
        assert diagnostic.file == str(case.path), report
        rendered = str(diagnostic)
        assert rendered == (
            f"{case.path}:{expected.line}:{expected.column}: error: {diagnostic.message}"
        )
        match = _RENDERED.match(rendered)
        assert match is not None, rendered
        assert "\n" not in rendered, f"a diagnostic is one line: {rendered!r}"
    # The exception's own text is the CLI's stderr: one rendered diagnostic per line.
    assert str(DefinitionError(diagnostics)).splitlines() == [str(d) for d in diagnostics]


def test_corpus_is_big_enough_and_well_formed() -> None:
    files = corpus_files()
    assert len(files) >= 45
    for path in files:
        case = load_case(path)
        assert case.expected, f"{path.name} declares no '# expect:' line"
        if path.suffix == ".json":
            assert path.with_name(path.name + ".expect").is_file(), path.name
    for sidecar in CORPUS.glob("*.expect"):
        assert sidecar.with_suffix("").is_file(), f"{sidecar.name} has no JSON file"


def test_subworkflow_target_is_not_beside_the_corpus() -> None:
    """`subworkflow_not_found.yaml` relies on no sibling being named like its target."""
    for path in corpus_files():
        assert "name: no-such-child-workflow" not in path.read_text(encoding="utf-8")


def test_alias_bomb_is_refused_by_budget() -> None:
    """The bomb expands to ~4e8 values; it must be refused by the loader's node budget.

    No timing: just that it raises the budget error rather than building the value.
    """
    with pytest.raises(DefinitionError, match="alias bomb"):
        validate_file(CORPUS / "alias_bomb.yaml")


_QUOTE_HINT = "must be quoted"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "name: demo\nsteps:\n  - id: a\n    action: echo\n"
            '    parameters: {x: "total: ${{ input.a }}", y: [1, 2}\n',
            id="yaml-quoted-embedded-template",
        ),
        pytest.param(
            '{"name": "demo", "steps": [{"id": "a", "action": "echo",\n'
            '  "parameters": {"x": "a ${{ input.a }}"}}],]}\n',
            id="json-template",
        ),
    ],
)
def test_quoted_template_gets_no_quoting_hint(text: str) -> None:
    with pytest.raises(DefinitionError) as info:
        validate_text(text)
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.message.startswith("invalid YAML")
    assert _QUOTE_HINT not in diagnostic.message, diagnostic.message


def test_unquoted_template_in_flow_mapping_gets_the_hint() -> None:
    text = "name: demo\nsteps:\n  - id: a\n    action: echo\n    parameters: {x: ${{ input.a }}}\n"
    with pytest.raises(DefinitionError) as info:
        validate_text(text)
    (diagnostic,) = info.value.diagnostics
    assert _QUOTE_HINT in diagnostic.message
