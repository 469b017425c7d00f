"""Validation reports every independent mistake in one run (issue 15): a valid definition
with k mistakes injected, each of a different stage, gets exactly k lines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl.errors import DefinitionError
from dsl.validate import validate_text

STEPS = 8

# What a mistake does to step i (a mapping of YAML flow text), and the stage it trips.
MISTAKES = {
    "unknown key": lambda i: f"{{id: s{i}, action: echo, actoin2: x}}",
    "bad duration": lambda i: f"{{id: s{i}, action: echo, timeout: banana}}",
    "bad type": lambda i: f"{{id: s{i}, type: tsak, action: echo}}",
    "no action": lambda i: f"{{id: s{i}, parameters: {{n: {i}}}}}",
    "bad retry": lambda i: f"{{id: s{i}, action: echo, retry_policy: {{maximum_attempts: -1}}}}",
    "unknown dependency": lambda i: f"{{id: s{i}, action: echo, dependencies: [ghost{i}]}}",
    "unknown template step": lambda i: (
        f'{{id: s{i}, action: echo, parameters: {{x: "${{{{ steps.phantom{i}.output }}}}"}}}}'
    ),
    "bad condition": lambda i: f'{{id: s{i}, action: echo, when: {{"nope_op": [1]}}}}',
}
TOP_LEVEL = {
    "bad cron": "triggers:\n  - schedule: {cron: '61 * * * *'}\n",
    "unknown policy": "policies: [no-such-policy]\n",
    "unknown top key": "descriptoin: typo\n",
}


def _definition(broken: dict[int, str], top: list[str]) -> str:
    lines = ["name: injected"]
    lines += [TOP_LEVEL[name].rstrip("\n") for name in top]
    lines.append("steps:")
    for i in range(STEPS):
        if i in broken:
            lines.append(f"  - {MISTAKES[broken[i]](i)}")
        else:
            after = f", dependencies: [s{i - 1}]" if i else ""
            lines.append(f"  - {{id: s{i}, action: echo, parameters: {{n: {i}}}{after}}}")
    return "\n".join(lines) + "\n"


def _lines(text: str) -> list[str]:
    try:
        validate_text(text, file="injected.yaml")
    except DefinitionError as exc:
        return [str(d) for d in exc.diagnostics]
    return []


def test_the_clean_definition_is_valid() -> None:
    assert _lines(_definition({}, [])) == []


@pytest.mark.parametrize("mistake", MISTAKES)
def test_each_mistake_alone_is_one_line(mistake: str) -> None:
    lines = _lines(_definition({3: mistake}, []))
    assert len(lines) == 1, lines


@pytest.mark.parametrize("mistake", TOP_LEVEL)
def test_each_top_level_mistake_alone_is_one_line(mistake: str) -> None:
    lines = _lines(_definition({}, [mistake]))
    assert len(lines) == 1, lines


@settings(max_examples=60, deadline=None)
@given(
    broken=st.dictionaries(
        st.integers(min_value=0, max_value=STEPS - 1), st.sampled_from(sorted(MISTAKES)), max_size=6
    ),
    top=st.lists(st.sampled_from(sorted(TOP_LEVEL)), unique=True, max_size=3),
)
def test_k_independent_mistakes_are_k_lines(broken: dict[int, str], top: list[str]) -> None:
    lines = _lines(_definition(broken, top))
    assert len(lines) == len(broken) + len(top), lines


def test_one_run_reports_mistakes_of_every_stage_in_source_order() -> None:
    text = _definition(
        {1: "unknown key", 2: "unknown dependency", 4: "unknown template step", 6: "bad type"},
        ["bad cron"],
    )
    lines = _lines(text)
    assert lines == [
        "injected.yaml:3:22: error: Minute '61' is not in range [0-59]",
        "injected.yaml:6:28: error: unknown key 'actoin2' (did you mean 'action'?)",
        "injected.yaml:7:43: error: step 's2' depends on unknown step 'ghost2'",
        "injected.yaml:9:44: error: ${{ steps.phantom4.output }}: unknown step 'phantom4'",
        "injected.yaml:11:20: error: unknown type 'tsak' (did you mean 'task'?); expected one "
        "of task, decision, parallel, subworkflow, foreach, loop, wait, signal, set, fail, succeed",
    ]


def test_a_broken_parallel_hides_its_branches_instead_of_cascading() -> None:
    """Steps inside a step with a mistake are not checked again, nor what names them."""
    text = (
        "name: nested\nsteps:\n"
        "  - id: fan\n    type: parallel\n    join: sometimes\n    branches:\n"
        "      - {name: a, steps: [{id: inner, action: echo}]}\n"
        '  - {id: after, action: echo, dependencies: [fan], parameters: {x: "${{ steps.inner.output }}"}}\n'
    )
    lines = _lines(text)
    assert len(lines) == 1, lines
    assert "join" in lines[0]
