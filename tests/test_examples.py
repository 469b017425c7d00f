"""Every example in definitions/ has a `*.test.yaml` beside it, and they pass (issue 15):
the examples teach what they claim, and `make test` keeps them doing so."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dsl.catalog import TEST_FILE_SUFFIXES, is_definition_file
from dsl.loader import load_file
from tests.support.cli import ROOT, run_tdsl

DEFINITIONS = ROOT / "definitions"


def _definitions() -> list[Path]:
    return sorted(p for p in DEFINITIONS.iterdir() if is_definition_file(p))


def _test_files() -> list[Path]:
    return sorted(p for p in DEFINITIONS.iterdir() if p.name.endswith(TEST_FILE_SUFFIXES))


def _cases(path: Path) -> list[str]:
    data = load_file(path).data
    assert isinstance(data, dict)
    return [case["name"] for case in data["cases"]]


@pytest.mark.parametrize("definition", _definitions(), ids=lambda p: p.name)
def test_every_definition_has_a_test_file_naming_it(definition: Path) -> None:
    beside = DEFINITIONS / f"{definition.stem}.test.yaml"
    assert beside.is_file(), f"no {beside.name} beside {definition.name}"
    data = load_file(beside).data
    assert isinstance(data, dict)
    assert data["definition"] == definition.name
    assert 2 <= len(data["cases"]) <= 4


@pytest.mark.integration
def test_the_examples_tests_pass() -> None:
    done = run_tdsl("test", "definitions/", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    expected = [
        f"definitions/{path.name}: {name}" for path in _test_files() for name in _cases(path)
    ]
    passed = [re.sub(r"^PASS (.*) \(\d+\.\d s\)$", r"\1", line) for line in lines[:-1]]
    assert passed == expected, done.stdout
    assert re.fullmatch(rf"{len(expected)} passed, 0 failed in \d+\.\d s", lines[-1])


@pytest.mark.integration
def test_a_wrong_expectation_fails_naming_the_difference(tmp_path: Path) -> None:
    for name in ("stock-check.yaml", "stock-check.test.yaml"):
        shutil.copy(DEFINITIONS / name, tmp_path / name)
    test_file = tmp_path / "stock-check.test.yaml"
    text = test_file.read_text()
    wrong = text.replace(
        "output: {sku: W-3, reordered: true}", "output: {sku: W-3, reordered: false}"
    )
    assert wrong != text
    test_file.write_text(wrong)
    done = run_tdsl("test", test_file, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        f"FAIL {test_file}: low stock is reordered: output.reordered is true, expected false"
        in done.stdout.splitlines()
    ), done.stdout
    assert done.stdout.splitlines()[-1].startswith("2 passed, 1 failed in ")
