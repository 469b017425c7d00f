"""Test files (docs/testing.md) read with positions, and the first difference of a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.errors import DefinitionError
from dsl.testfiles import MockCall, TestCase, first_difference, load_test_file

DEFINITION = """\
name: tiny
steps:
  - {id: a, action: charge}
  - {id: b, action: echo, dependencies: [a]}
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "tiny.yaml").write_text(DEFINITION)
    path = tmp_path / "tiny.test.yaml"
    path.write_text(text)
    return path


def _errors(path: Path, **options: object) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        load_test_file(path, **options)  # type: ignore[arg-type]
    return [
        str(d).split(": error: ", 1)[0].rsplit("/", 1)[-1] + ": " + d.message
        for d in caught.value.diagnostics
    ]


def test_a_test_file_loads_with_one_mapping_as_every_call(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "definition: tiny.yaml\ncases:\n"
        "  - name: ok\n    mocks: {charge: {output: {paid: true}}}\n"
        "    signals: [{name: go, after: 2h}]\n"
        "    expect: {status: COMPLETED, output: {paid: true}}\n",
    )
    loaded = load_test_file(path)
    case = loaded.cases[0]
    assert case.mocks == {"charge": [MockCall(output={"paid": True})]}
    assert case.signals[0].after.total_seconds() == 7200
    assert case.has_output
    assert loaded.definition_path == (tmp_path / "tiny.yaml").resolve()


def test_every_mistake_is_a_line_at_its_place(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "definition: tiny.yaml\ncases:\n"
        "  - name: one\n    mokcs: {}\n"
        "  - name: one\n    mocks: {chrage: {output: 1}}\n"
        "    expect: {steps: {c: completed}}\n",
    )
    assert _errors(path) == ["tiny.test.yaml:4:5: unknown key 'mokcs'"]
    path.write_text(
        "definition: tiny.yaml\ncases:\n"
        "  - name: one\n"
        "  - name: one\n    mocks: {chrage: {output: 1}}\n"
        "    expect: {steps: {c: completed}}\n"
    )
    assert _errors(path) == ["tiny.test.yaml:4:11: another case is named 'one' already"]
    path.write_text(
        "definition: tiny.yaml\ncases:\n"
        "  - name: one\n    mocks: {chrage: {output: 1}}\n"
        "    expect: {steps: {c: completed}}\n"
    )
    assert _errors(path) == [
        "tiny.test.yaml:4:13: no step of the definition runs action 'chrage' (did you mean 'charge'?)",
        "tiny.test.yaml:5:22: the definition has no step 'c'",
    ]


def test_an_unmocked_action_no_worker_has_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "definition: tiny.yaml\ncases:\n  - name: real\n")
    assert _errors(path, activities={"echo"}) == [
        "tiny.test.yaml:3:5: action 'charge' is neither mocked nor registered by the worker "
        "(mock it, or pass its module with --activities)"
    ]


def test_a_missing_definition_and_a_broken_one(tmp_path: Path) -> None:
    path = tmp_path / "x.test.yaml"
    path.write_text("definition: nowhere.yaml\ncases: [{name: a}]\n")
    assert _errors(path) == ["x.test.yaml:1:13: no definition file 'nowhere.yaml' beside this file"]
    (tmp_path / "broken.yaml").write_text("name: broken\nsteps: []\n")
    path.write_text("definition: broken.yaml\ncases: [{name: a}]\n")
    with pytest.raises(DefinitionError) as caught:
        load_test_file(path)
    assert all(d.file.endswith("broken.yaml") for d in caught.value.diagnostics)


RUN = {
    "status": "FAILED",
    "output": None,
    "error": {"type": "CardDeclined", "message": "declined", "step": "a"},
    "steps": {
        "a": {"status": "failed", "attempts": 3},
        "b": {"status": "cancelled", "attempts": 0},
    },
}


@pytest.mark.parametrize(
    ("expect", "difference"),
    [
        ({"status": "FAILED", "error": {"type": "CardDeclined"}}, None),
        ({"status": "COMPLETED"}, "status is FAILED: CardDeclined: declined, expected COMPLETED"),
        ({"steps": {"a": "completed"}}, "step 'a' is failed, expected completed"),
        ({"steps": {"z": "completed"}}, "step 'z' is not in the run (its steps: a, b)"),
        ({"error": {"type": "Timeout"}}, 'error.type is "CardDeclined", expected "Timeout"'),
        ({"output": {"x": 1}}, 'output is null, expected a mapping with {"x": 1}'),
    ],
)
def test_the_first_difference_reads_as_a_sentence(
    expect: dict[str, object], difference: str | None
) -> None:
    case = TestCase.model_validate(
        {"name": "c", "expect": expect, "has_output": "output" in expect}
    )
    assert first_difference(case, RUN) == difference


def test_output_is_a_subset_and_numbers_compare_by_value() -> None:
    case = TestCase.model_validate(
        {"name": "c", "expect": {"output": {"a": {"b": 1}, "n": 2}}, "has_output": True}
    )
    run = {**RUN, "status": "COMPLETED", "output": {"a": {"b": 1.0, "c": 3}, "n": 2, "extra": 1}}
    assert first_difference(case, run) is None
    run["output"] = {"a": {"b": True}, "n": 2}
    assert first_difference(case, run) == "output.a.b is true, expected 1"


def test_expected_steps_may_name_compensations_and_foreach_instances(tmp_path: Path) -> None:
    """The run's status has `charge.compensate` and `item[2]`: a case may expect them,
    but not the compensation of a step that has none."""
    (tmp_path / "saga.yaml").write_text(
        "name: saga\nsteps:\n"
        "  - {id: charge, action: echo, compensate: {action: log, parameters: {message: x}}}\n"
        "  - {id: each, type: foreach, items: [1, 2], dependencies: [charge],\n"
        "     step: {id: item, action: echo, compensate: {action: log, parameters: {message: y}}}}\n"
        "  - {id: plain, action: echo, dependencies: [each]}\n"
    )
    path = tmp_path / "saga.test.yaml"
    path.write_text(
        "definition: saga.yaml\ncases:\n  - name: undone\n    expect:\n      steps:\n"
        "        charge.compensate: completed\n"
        "        item[1].compensate: completed\n"
        "        item[0]: completed\n"
    )
    assert load_test_file(path).cases[0].expect.steps["charge.compensate"] == "completed"
    path.write_text(
        "definition: saga.yaml\ncases:\n  - name: undone\n    expect:\n      steps:\n"
        "        plain.compensate: completed\n"
        "        charge.compensat: completed\n"
    )
    assert _errors(path) == [
        "saga.test.yaml:6:9: the definition has no step 'plain.compensate'"
        " (did you mean 'item.compensate'?)",
        "saga.test.yaml:7:9: the definition has no step 'charge.compensat'"
        " (did you mean 'charge.compensate'?)",
    ]
