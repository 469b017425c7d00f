"""Validation as a whole: the seed format, key spellings, policies, lookups, activities."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from dsl.catalog import is_definition_file
from dsl.errors import DefinitionError
from dsl.models import RetryPolicy, TaskStep
from dsl.validate import validate_data, validate_file, validate_text

ROOT = Path(__file__).resolve().parents[2]

SEED = {
    "id": "sample-workflow-v1",
    "name": "sampleWorkflow",
    "version": "1.0.0",
    "steps": [
        {
            "id": "validate",
            "name": "Validate Input",
            "type": "task",
            "action": "validateInput",
            "parameters": {},
            "dependencies": [],
        },
        {
            "id": "process",
            "name": "Process Data",
            "type": "task",
            "action": "processData",
            "parameters": {},
            "dependencies": ["validate"],
        },
        {
            "id": "store",
            "name": "Store Result",
            "type": "task",
            "action": "storeResult",
            "parameters": {},
            "dependencies": ["process"],
            "retryPolicy": {"maximumAttempts": 3, "initialInterval": 1000, "backoffCoefficient": 2},
            "timeoutSeconds": 60,
        },
    ],
    "triggers": [
        {"type": "api", "condition": {"endpoint": "/api/sample-workflow", "method": "POST"}}
    ],
    "policies": ["default-retry-policy"],
}


def _messages(text: str, **options: object) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        validate_text(text, file="d.yaml", **options)  # type: ignore[arg-type]
    return [str(d) for d in caught.value.diagnostics]


def test_seed_format_loads_unchanged_as_json_and_yaml() -> None:
    checked = validate_text(json.dumps(SEED))
    store = checked.definition.steps[2]
    assert isinstance(store, TaskStep)
    assert store.timeout == timedelta(seconds=60)
    assert store.retry_policy is not None
    assert store.retry_policy.initial_interval == timedelta(seconds=1)  # bare number = ms here
    assert store.retry_policy.maximum_attempts == 3
    assert checked.graph.main.order == ["validate", "process", "store"]
    assert validate_data(SEED).definition == checked.definition


def test_snake_and_camel_spellings_mean_the_same() -> None:
    snake = validate_text(
        "name: a\nsteps:\n  - {id: x, action: echo, retry_policy: {maximum_attempts: 2}, continue_on_error: true}\n"
        "  - {id: y, action: echo, dependencies: [x]}\n"
    ).definition
    camel = validate_text(
        "name: a\nsteps:\n  - {id: x, action: echo, retryPolicy: {maximumAttempts: 2}, continueOnError: true}\n"
        "  - {id: y, action: echo, dependsOn: [x]}\n"
    ).definition
    assert snake == camel


def test_unknown_key_points_at_the_key_with_a_suggestion() -> None:
    assert _messages("name: a\nsteps:\n  - id: x\n    actoin: echo\n") == [
        "d.yaml:4:5: error: unknown key 'actoin' (did you mean 'action'?)"
    ]


def test_several_mistakes_are_all_reported_in_order() -> None:
    messages = _messages(
        "name: a\nsteps:\n  - {id: x, action: echo, dependencies: [nope]}\n"
        "  - {id: y, action: echo, dependencies: [y]}\n"
    )
    assert messages == [
        "d.yaml:3:42: error: step 'x' depends on unknown step 'nope'",
        "d.yaml:4:42: error: step 'y' depends on itself",
    ]


def test_data_flow_is_checked_against_dependencies() -> None:
    text = (
        "name: a\nsteps:\n"
        "  - {id: x, action: echo}\n"
        "  - {id: y, action: echo, parameters: {v: '${{ steps.x.output }}'}}\n"
    )
    assert _messages(text) == [
        "d.yaml:4:43: error: ${{ steps.x.output }}: step 'x' is not upstream of step 'y'; "
        "add 'x' to the dependencies of 'y'"
    ]


def test_nested_steps_see_what_is_upstream_of_their_parallel_step() -> None:
    validate_text(
        "name: a\nsteps:\n  - {id: x, action: echo}\n"
        "  - id: p\n    type: parallel\n    dependencies: [x]\n    branches:\n"
        "      - name: one\n        steps: [{id: n1, action: echo, parameters: {v: '${{ steps.x.output }}'}}]\n"
        "      - name: two\n        steps: [{id: n2, action: echo}]\n"
    )


def test_policies_are_checked_and_unknown_ones_named() -> None:
    assert (
        "unknown policy 'no-retri' (did you mean 'no-retry'?)"
        in _messages("name: a\npolicies: [no-retri]\nsteps: [{id: x, action: echo}]\n")[0]
    )


def test_activities_are_checked_when_known() -> None:
    text = "name: a\nsteps: [{id: x, action: ehco, compensate: {action: log}}]\n"
    validate_text(text)  # without a list of activities nothing is assumed
    assert _messages(text, activities={"echo", "log"}) == [
        "d.yaml:2:25: error: no worker registers activity 'ehco' (did you mean 'echo'?)"
    ]


def test_subworkflow_is_found_beside_the_file_or_reported(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(
        "name: child\nversion: 2.0.0\nsteps: [{id: c, action: echo}]\n"
    )
    parent = tmp_path / "parent.yaml"
    parent.write_text("name: parent\nsteps: [{id: s, type: subworkflow, workflow: child}]\n")
    validate_file(parent)
    parent.write_text("name: parent\nsteps: [{id: s, type: subworkflow, workflow: chlid}]\n")
    with pytest.raises(
        DefinitionError, match=r"parent.yaml:2:46: error: no definition named 'chlid'.*'child'"
    ):
        validate_file(parent)
    parent.write_text(
        "name: parent\nsteps: [{id: s, type: subworkflow, workflow: child, version: 1.0.0}]\n"
    )
    with pytest.raises(DefinitionError, match=r"child version 1\.0\.0"):
        validate_file(parent)


def test_subworkflow_is_found_in_extra_directories(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "lib.yaml").write_text("name: lib\nsteps: [{id: c, action: echo}]\n")
    mine = tmp_path / "mine"
    mine.mkdir()
    parent = mine / "parent.yaml"
    parent.write_text("name: parent\nsteps: [{id: s, type: subworkflow, workflow: lib}]\n")
    with pytest.raises(DefinitionError):
        validate_file(parent)
    validate_file(parent, definitions=[shared])


def test_input_schema_must_be_a_json_schema() -> None:
    assert _messages("name: a\ninput: {type: objekt}\nsteps: [{id: x, action: echo}]\n")[
        0
    ].startswith("d.yaml:2:15: error: input is not a valid JSON Schema")


def test_not_a_mapping() -> None:
    assert _messages("- a\n- b\n") == [
        "d.yaml:1:1: error: a definition is a mapping with 'name' and 'steps'; this file is a list"
    ]
    assert _messages("") == [
        "d.yaml:1:1: error: a definition is a mapping with 'name' and 'steps'; this file is empty"
    ]


def test_every_example_is_valid_with_the_shipped_activities() -> None:
    from activities.builtin import BuiltinActivities
    from activities.registry import activity_names, default_activities

    names = set(activity_names(default_activities(BuiltinActivities())))
    files = sorted(p for p in (ROOT / "definitions").iterdir() if is_definition_file(p))
    assert len(files) >= 5
    types = set()
    for file in files:
        checked = validate_file(file, activities=names)
        types |= {step.type for step in checked.graph.all_steps()}
    assert types == {
        "task",
        "decision",
        "parallel",
        "subworkflow",
        "foreach",
        "wait",
        "signal",
        "set",
        "fail",
        "succeed",
        "loop",
    }


def test_run_timeout_is_a_positive_duration() -> None:
    checked = validate_text("name: a\ntimeout: 1h\nsteps: [{id: x, action: echo}]\n")
    assert checked.definition.timeout == timedelta(hours=1)
    assert validate_text(
        "name: a\ntimeout: PT90M\nsteps: [{id: x, action: echo}]\n"
    ).definition.timeout == timedelta(minutes=90)
    assert _messages("name: a\ntimeout: 0s\nsteps: [{id: x, action: echo}]\n") == [
        "d.yaml:2:10: error: timeout: a duration here must be longer than 0s, such as 30m or 1h"
    ]
    assert _messages("name: a\ntimeout: 0\nsteps: [{id: x, action: echo}]\n") == [
        "d.yaml:2:10: error: timeout: a duration here must be longer than 0s, such as 30m or 1h"
    ]
    assert _messages("name: a\ntimeout: -5\nsteps: [{id: x, action: echo}]\n") == [
        "d.yaml:2:10: error: timeout: a duration cannot be negative"
    ]
    assert _messages("name: a\ntimeout: soon\nsteps: [{id: x, action: echo}]\n")[0].startswith(
        "d.yaml:2:10: error: timeout: invalid duration 'soon'"
    )


def test_an_unknown_key_is_never_suggested_as_itself() -> None:
    """A key that another model has (`timeout` on a trigger) gets no "did you mean" it."""
    assert _messages(
        "name: a\nsteps: [{id: x, action: echo}]\ntriggers: [{type: api, timeout: 1h}]\n"
    ) == ["d.yaml:3:24: error: unknown key 'timeout'"]
    assert _messages("name: a\ntimeot: 1h\nsteps: [{id: x, action: echo}]\n") == [
        "d.yaml:2:1: error: unknown key 'timeot' (did you mean 'timeout'?)"
    ]


def _milliseconds_first(data: Any) -> Any:
    """What the model-level validator used to do before the fields saw the data."""
    if not isinstance(data, dict):
        return data
    converted = dict(data)
    for key in ("initial_interval", "initialInterval", "maximum_interval", "maximumInterval"):
        value = converted.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            converted[key] = f"{value}ms"
    return converted


def _outcome(data: Any) -> Any:
    try:
        return RetryPolicy.model_validate(data)
    except ValidationError as exc:
        # what messages are made of: an extra (second) spelling's "input" is no longer
        # converted, and no message shows it
        return [(e["type"], e["loc"], e["msg"]) for e in exc.errors()]


_INTERVAL_KEYS = ["initial_interval", "initialInterval", "maximum_interval", "maximumInterval"]
_POLICY_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=False),
    st.sampled_from(["1s", "250ms", "PT1S", "x", "", "1000"]),
    st.lists(st.integers(), max_size=1),
)


@given(
    st.one_of(
        st.dictionaries(
            st.sampled_from([*_INTERVAL_KEYS, "maximum_attempts", "backoffCoefficient", "other"]),
            _POLICY_VALUES,
            max_size=4,
        ),
        _POLICY_VALUES,
    )
)
def test_retry_intervals_read_bare_numbers_as_milliseconds_as_before(data: Any) -> None:
    assert _outcome(data) == _outcome(_milliseconds_first(data))


@pytest.mark.parametrize("timeout", [86400000000000.0, "inf", "100000000000000d"])
def test_a_duration_too_long_for_python_is_a_message_not_a_crash(timeout: Any) -> None:
    definition = {"name": "d", "steps": [{"id": "a", "action": "echo", "timeout": timeout}]}
    with pytest.raises(DefinitionError, match="longer than 999999999 days"):
        validate_data(definition)


def test_succeed_is_refused_where_it_cannot_end_the_run_as_one() -> None:
    assert _messages(
        "name: a\nsteps:\n"
        "  - {id: each, type: foreach, items: [1], step: {id: done, type: succeed}}\n"
        "on_failure:\n  - {id: fine, type: succeed}\n"
    ) == [
        "d.yaml:3:66: error: a succeed step cannot be inside a foreach body: it would end the "
        "whole run from one item; let the foreach finish, then decide",
        "d.yaml:5:22: error: a succeed step cannot be in on_failure: on_failure cannot change "
        "the run's error",
    ]
    assert _messages(
        "name: a\nsteps:\n  - {id: x, action: echo}\n"
        "  - {id: done, type: succeed, output: '${{ steps.x.output }}'}\n"
    ) == [
        "d.yaml:4:39: error: ${{ steps.x.output }}: step 'x' is not upstream of step 'done'; "
        "add 'x' to the dependencies of 'done'"
    ]
    checked = validate_text(
        "name: a\nsteps:\n  - {id: x, action: echo}\n"
        "  - {id: done, type: succeed, dependencies: [x], output: null}\n"
        "  - {id: also, type: succeed}\n"
    )
    done, also = checked.definition.steps[1:]
    assert (done.type, done.has_output, also.has_output) == ("succeed", True, False)  # type: ignore[union-attr]


def test_a_signal_step_names_one_signal_or_several_distinct_ones() -> None:
    checked = validate_text("name: a\nsteps: [{id: s, type: signal, signal: [yes, no]}]\n")
    assert checked.definition.steps[0].names == ["yes", "no"]  # type: ignore[union-attr]
    assert _messages("name: a\nsteps: [{id: s, type: signal, signal: [yes, yes]}]\n") == [
        "d.yaml:2:39: error: signal: each signal name may be listed once"
    ]
    assert len(_messages("name: a\nsteps: [{id: s, type: signal, signal: []}]\n")) == 1


def test_cancel_remaining_false_needs_a_join_that_leaves_something_running() -> None:
    text = (
        "name: a\nsteps:\n"
        "  - id: p\n    type: parallel\n    cancel_remaining: false\n{join}"
        "    branches: [{{name: x, steps: [{{id: x1, action: echo}}]}},"
        " {{name: y, steps: [{{id: y1, action: echo}}]}}]\n"
        "  - {{id: f, type: foreach, items: [1, 2], cancel_remaining: false, {fjoin}"
        "step: {{id: f1, action: echo}}}}\n"
    )
    assert _messages(text.format(join="", fjoin="")) == [
        "d.yaml:5:5: error: cancel_remaining: false has no effect on 'p': its join waits for "
        "all its branches, so none is left running; set join to any or {count: N}",
        "d.yaml:7:43: error: cancel_remaining: false has no effect on 'f': its join waits for "
        "all its items, so none is left running; set join to any or {count: N}",
    ]
    assert len(_messages(text.format(join="    join: {count: 2}\n", fjoin="join: any, "))) == 1
    validate_text(text.format(join="    join: any\n", fjoin="join: {count: 1}, "))


LOOP = """name: a
steps:
  - {{id: before, type: set, values: {{limit: 3}}}}
  - id: l
    type: loop
    dependencies: [before]
{condition}    steps:
      - {{id: check, action: echo, parameters: {{n: "${{{{ iteration }}}}"}}}}
      - {{id: note, type: set, dependencies: [check], values: {{seen: "${{{{ steps.check.output.n }}}}"}}}}
  - {{id: after, type: set, dependencies: [l], values: {after}}}
"""


def test_a_loop_has_exactly_one_of_until_and_while() -> None:
    both = '    until: true\n    while: {"var": "vars.seen"}\n'
    message = "d.yaml:4:5: error: step 'l': a loop needs exactly one of 'until' or 'while'"
    assert _messages(LOOP.format(condition=both, after="{x: 1}")) == [message]
    assert _messages(LOOP.format(condition="", after="{x: 1}")) == [message]


def test_a_loops_condition_reads_its_inner_steps_and_iteration() -> None:
    until = '    until: {">=": [{"var": "steps.check.output.n"}, {"var": "vars.limit"}]}\n'
    after = '{a: "${{ steps.l.output.last.note }}", b: "${{ vars.seen }}"}'
    validate_text(LOOP.format(condition=until, after=after))
    until = '    until: {"and": [{"var": "iteration"}, {"var": "vars.seen"}, {"var": "steps.x.output"}]}\n'
    assert _messages(LOOP.format(condition=until, after="{x: 1}")) == [
        "d.yaml:7:73: error: var 'steps.x.output': unknown step 'x'"
    ]


def test_outside_a_loop_only_its_output_and_no_iteration_is_visible() -> None:
    after = '{a: "${{ steps.check.output }}", b: "${{ iteration }}"}'
    text = LOOP.format(condition="    until: true\n", after=after)
    text += 'output: "${{ steps.note.output }}"\n'
    hidden = (
        "step '{0}' is inside loop 'l'; outside a loop only steps.l.output is visible "
        "(its last iteration's outputs are in 'last')"
    )
    assert _messages(text) == [
        f"d.yaml:11:59: error: ${{{{ steps.check.output }}}}: {hidden.format('check')}",
        "d.yaml:11:91: error: ${{ iteration }}: 'iteration' exists only inside a loop step",
        f"d.yaml:12:9: error: ${{{{ steps.note.output }}}}: {hidden.format('note')}",
    ]


def test_max_iterations_is_capped_lower_for_a_loop_that_is_not_top_level() -> None:
    nested = (
        "name: a\nsteps:\n  - id: p\n    type: parallel\n    branches:\n      - name: b\n"
        "        steps:\n          - id: l\n            type: loop\n            until: true\n"
        "            max_iterations: {n}\n            steps: [{{id: x, action: echo}}]\n"
    )
    validate_text(nested.format(n=200))
    assert _messages(nested.format(n=201)) == [
        "d.yaml:11:29: error: max_iterations 201 is above 200, the most for a loop inside "
        "branch 'b' of 'p': only a top-level loop continues as new between iterations; make "
        "it a top-level step or a subworkflow"
    ]
    top = "name: a\nsteps:\n  - {id: l, type: loop, until: true, max_iterations: 1000001, steps: [{id: x, action: echo}]}\n"
    assert _messages(top) == [
        "d.yaml:3:54: error: max_iterations: input should be less than or equal to 1000000"
    ]


def test_vars_set_inside_a_parallel_are_visible_after_it() -> None:
    validate_text(
        "name: a\nsteps:\n  - id: p\n    type: parallel\n    branches:\n"
        "      - {name: b, steps: [{id: s, type: set, values: {z: 1}}]}\n"
        '  - {id: after, type: set, dependencies: [p], values: {a: "${{ vars.z }}"}}\n'
    )


def test_a_mutex_template_reads_only_what_its_step_may_read() -> None:
    text = (
        "name: a\nsteps:\n  - {{id: one, action: echo}}\n"
        '  - {{id: two, action: echo, mutex: "{mutex}"}}\n'
    )
    validate_text(text.format(mutex="account-${{ input.account }}"))
    assert _messages(text.format(mutex="m-${{ steps.one.output.id }}")) == [
        "d.yaml:4:36: error: ${{ steps.one.output.id }}: step 'one' is not upstream of step "
        "'two'; add 'one' to the dependencies of 'two'"
    ]
    assert len(_messages(text.format(mutex="").replace('mutex: ""', "mutex: ''"))) == 1
