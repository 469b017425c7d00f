"""`tdsl validate|graph|schema` as a user runs them: exit codes, stderr lines, no tracebacks."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dsl.catalog import is_definition_file
from interpreter.cli import main
from tests.support.cli import run_tdsl

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "definitions"


def _tdsl(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a subprocess, as a user would run it."""
    return run_tdsl(*args)


def test_validate_examples_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(p) for p in sorted(EXAMPLES.iterdir()) if is_definition_file(p)]
    assert main(["validate", *files, "--activities", "activities.examples"]) == 0
    out = capsys.readouterr().out
    assert out.count(": ok (") == len(files)


def test_validate_reports_each_problem_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nsteps:\n  - id: a\n    actoin: echo\n  - {id: b, action: echo, dependencies: [zz]}\n"
    )
    good = EXAMPLES / "notify-customer.yaml"
    assert main(["validate", str(bad), str(good)]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [  # both stages' mistakes in one run
        f"{bad}:4:5: error: unknown key 'actoin' (did you mean 'action'?)",
        f"{bad}:5:42: error: step 'b' depends on unknown step 'zz'",
    ]
    assert f"{good}: ok" in captured.out


def test_graph_formats(capsys: pytest.CaptureFixture[str]) -> None:
    example = str(EXAMPLES / "order-fulfilment.yaml")
    assert main(["graph", example]) == 0
    assert capsys.readouterr().out.startswith("flowchart TD")
    assert main(["graph", example, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "order-fulfilment"
    assert main(["graph", example, "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith("digraph")


def test_graph_of_an_invalid_file_prints_the_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps: []\n")
    assert main(["graph", str(bad)]) == 1
    assert capsys.readouterr().err.startswith(f"{bad}:2:8: error: steps:")


def test_schema_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "temporal-dsl workflow definition"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["bogus"],
        ["graph"],
        ["graph", "x.yaml", "--format", "png"],
        ["validate", "definitions/sample-workflow.json", "--activities", "no_such_module"],
        ["cancel", "some-run", "--step", "not an id!"],
        ["cancel", "some-run", "--step", "s", "--native"],
    ],
)
def test_bad_command_line_is_one_line_and_exit_2(args: list[str]) -> None:
    result = _tdsl(*args)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\x01\x02",
        b"\xff\xfe",
        b"name: [",
        b"- 1\n- 2\n",
        b"{}",
        b"name: x\nsteps: 5\n",
        b"a: &a [*a]",
    ],
)
def test_no_input_produces_a_traceback(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "weird.yaml"
    path.write_bytes(content)
    result = _tdsl("validate", str(path))
    assert result.returncode == 1
    assert result.stderr.startswith(f"{path}:")
    assert "Traceback" not in result.stderr


def test_a_directory_is_not_a_definition(tmp_path: Path) -> None:
    result = _tdsl("validate", str(tmp_path))
    assert result.returncode == 1
    assert "cannot read file" in result.stderr


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--id", ""], "the workflow id must not be empty"),
        (["--id", "a\nb"], "the workflow id must be printable text; '\\n' at position 1 is not"),
        (["--id", "tab\there"], "must be printable text"),
        (["--id", " padded"], "must not start or end with white space"),
        (["--id", "x" * 1001], "the workflow id is 1001 bytes; Temporal's limit is 1000"),
        (["--input", "[1,2,3]"], "the run input must be a JSON object, got a list"),
        (["--input", '"str"'], "the run input must be a JSON object, got a string"),
        (["--input", "null", "--id", "ok"], None),
    ],
)
def test_run_refuses_bad_ids_and_inputs_before_connecting(
    args: list[str],
    reason: str | None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nowhere to connect to: a check that passes ends in "cannot reach Temporal" (exit 1).
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    code = main(["run", str(EXAMPLES / "sample-workflow.json"), *args])
    err = capsys.readouterr().err
    if reason is None:
        assert code == 1
        assert "cannot reach Temporal" in err
    else:
        assert code == 2
        assert err.startswith("tdsl: error: ")
        assert reason in err
        assert err.count("\n") == 1


def test_validate_json_is_one_list_of_positioned_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps:\n  - id: a\n    actoin: echo\n")
    good = EXAMPLES / "approval.yaml"
    assert main(["validate", "--format", "json", str(bad), str(good)]) == 1
    captured = capsys.readouterr()
    assert captured.err == ""
    assert json.loads(captured.out) == [
        {
            "file": str(bad),
            "line": 4,
            "column": 5,
            "message": "unknown key 'actoin' (did you mean 'action'?)",
        }
    ]
    assert main(["validate", "--format", "json", str(good)]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.integration
async def test_graph_colours_each_step_by_its_state_in_a_run(
    client: Any, worker: str, tmp_path: Path
) -> None:
    from tests.support.cli import tdsl_env
    from tests.support.runs import start

    definition = tmp_path / "coloured.yaml"
    definition.write_text(
        "name: coloured\nsteps:\n"
        "  - {id: one, action: echo}\n"
        "  - {id: two, type: set, values: {x: 1}, when: false}\n"
        "  - {id: three, action: fail, dependencies: [one], parameters: {message: no},"
        " retry_policy: {maximum_attempts: 1}}\n"
    )
    handle = await start(client, worker, definition)
    with pytest.raises(Exception, match="failed"):
        await handle.result()
    env = tdsl_env(client, worker)
    # on a thread: the worker in this process answers the CLI's status query meanwhile
    done = await asyncio.to_thread(
        run_tdsl, "graph", definition, "--run", handle.id, "--format", "json", env=env
    )
    assert done.returncode == 0, done.stderr
    states = {node["id"]: node["status"] for node in json.loads(done.stdout)["nodes"]}
    assert states == {"one": "completed", "two": "skipped", "three": "failed"}
    mermaid = await asyncio.to_thread(run_tdsl, "graph", definition, "--run", handle.id, env=env)
    assert "class s_three failed" in mermaid.stdout
    other = await asyncio.to_thread(
        run_tdsl, "graph", EXAMPLES / "approval.yaml", "--run", handle.id, env=env
    )
    assert other.returncode == 2
    assert other.stderr == (
        f"tdsl: error: run {handle.id!r} runs definition 'coloured', not 'expense-approval'\n"
    )


def test_validate_checks_test_files_as_test_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tdsl validate definitions/*.yaml` (as `make demo` runs it) takes their tests too."""
    good = EXAMPLES / "order-fulfilment.test.yaml"
    assert main(["validate", str(good), "--activities", "activities.examples"]) == 0
    assert capsys.readouterr().out == f"{good}: ok (tests of order-fulfilment.yaml, 4 cases)\n"
    (tmp_path / "order-fulfilment.yaml").write_text(
        (EXAMPLES / "order-fulfilment.yaml").read_text()
    )
    bad = tmp_path / "x.test.yaml"
    bad.write_text("definition: order-fulfilment.yaml\ncases:\n  - name: a\n    expct: {}\n")
    assert main(["validate", str(bad)]) == 1
    assert capsys.readouterr().err == f"{bad}:4:5: error: unknown key 'expct'\n"
