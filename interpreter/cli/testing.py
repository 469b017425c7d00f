"""`tdsl test [PATH...] [--junit FILE]`: the cases of `*.test.yaml` files (docs/testing.md).

Every test file and its definition is checked before any case runs, so a typo is
exit 2 with `FILE:LINE:COL` lines and nothing started; then the cases run one after
the other on one time-skipping test server (`interpreter.testing`), one line each.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsl.errors import DefinitionError, InputError
from interpreter.cli.support import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    activity_names_of,
    print_diagnostics,
)

if TYPE_CHECKING:
    from dsl.testfiles import TestFile
    from interpreter.testing import CaseOutcome

_SKIPPED_DIRECTORIES = {".venv", ".tdsl", ".git", "node_modules", "__pycache__"}


def register(commands: Any) -> None:
    """`test`."""
    test = commands.add_parser(
        "test", help="run the cases of *.test.yaml files on a time-skipping test server"
    )
    test.add_argument(
        "paths", nargs="*", default=["."], metavar="PATH", help="files or directories (default .)"
    )
    test.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report")
    test.add_argument(
        "--verbose",
        action="store_true",
        help="show the worker's log (activity failures, `log` steps) on stderr",
    )
    test.add_argument(
        "--activities",
        action="append",
        default=[],
        metavar="MODULE",
        help="activity modules the test worker registers besides the built-ins",
    )
    test.set_defaults(handler=_test, uses_temporal=True)


def test_files(paths: list[str]) -> list[Path]:
    """The `*.test.yaml` files named or found under *paths*, in a stable order."""
    from dsl.catalog import TEST_FILE_SUFFIXES

    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(
                p
                for suffix in TEST_FILE_SUFFIXES
                for p in path.rglob(f"*{suffix}")
                if not _SKIPPED_DIRECTORIES & set(p.relative_to(path).parts)
            )
        else:
            raise InputError(f"{given}: no such file or directory")
    return list(dict.fromkeys(found))


async def _test(args: argparse.Namespace) -> int:
    from dsl.testfiles import load_test_file
    from interpreter.testing import DefinitionTester

    files = test_files(args.paths)
    if not files:
        print(f"tdsl: no *.test.yaml files in {' '.join(args.paths)}", file=sys.stderr)
        return EXIT_USAGE
    activities = activity_names_of(args.activities)
    loaded: list[TestFile] = []
    invalid = False
    for file in files:
        try:
            loaded.append(load_test_file(file, activities=activities))
        except DefinitionError as exc:
            print_diagnostics(exc)
            invalid = True
    if invalid:
        return EXIT_USAGE
    _quiet(args.verbose)
    started = time.monotonic()
    outcomes: list[tuple[Path, CaseOutcome]] = []
    async with DefinitionTester(activity_modules=args.activities) as tester:
        for file, test_file in zip(files, loaded, strict=True):
            for case in test_file.cases:
                outcome = await tester.run_case(test_file, case)
                outcomes.append((file, outcome))
                _print(file, outcome)
    failed = sum(not outcome.passed for _, outcome in outcomes)
    took = time.monotonic() - started
    print(f"{len(outcomes) - failed} passed, {failed} failed in {took:.1f} s")
    if args.junit:
        write_junit(Path(args.junit), outcomes)
    return EXIT_FAILED if failed else EXIT_OK


def _quiet(verbose: bool) -> None:
    """The cases' own failures and `log` steps are expected: the worker's log goes to
    stderr only with --verbose (the SDK core's warnings too)."""
    import logging

    from interpreter.logs import configure_logging
    from interpreter.telemetry import install_runtime

    install_runtime()
    configure_logging("text", level=logging.INFO if verbose else logging.CRITICAL)


def _print(file: Path, outcome: CaseOutcome) -> None:
    if outcome.passed:
        print(f"PASS {file}: {outcome.name} ({outcome.seconds:.1f} s)", flush=True)
    else:
        print(f"FAIL {file}: {outcome.name}: {outcome.difference}", flush=True)


def write_junit(path: Path, outcomes: list[tuple[Path, CaseOutcome]]) -> None:
    """A JUnit XML report: one testsuite per file, one testcase per case."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="tdsl test")
    suites: dict[Path, ET.Element] = {}
    for file, outcome in outcomes:
        suite = suites.get(file)
        if suite is None:
            suite = suites[file] = ET.SubElement(root, "testsuite", name=str(file))
        case = ET.SubElement(
            suite, "testcase", name=outcome.name, classname=str(file), time=f"{outcome.seconds:.3f}"
        )
        if not outcome.passed:
            failure = ET.SubElement(case, "failure", message=outcome.difference or "")
            if outcome.result is not None:
                import json

                failure.text = json.dumps(outcome.result.to_json(), indent=2, default=str)
    for suite in suites.values():
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    total = [c for s in suites.values() for c in s.findall("testcase")]
    root.set("tests", str(len(total)))
    root.set("failures", str(sum(c.find("failure") is not None for c in total)))
    ET.ElementTree(root).write(path, encoding="unicode", xml_declaration=True)
