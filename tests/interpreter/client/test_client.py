"""The run library without a server: input checks, bundles, status shapes, links."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import temporalio.converter
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import (
    ActivityTaskCompletedEventAttributes,
    ActivityTaskScheduledEventAttributes,
    ActivityTaskStartedEventAttributes,
    HistoryEvent,
    WorkflowExecutionStartedEventAttributes,
)
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from dsl.bundle import content_hash
from dsl.catalog import is_definition_file
from dsl.errors import DefinitionError, InputError
from interpreter import client
from interpreter.client.status import (
    RUN_KEYS,
    failure_message,
    run_json,
    status_name,
    step_times,
    ui_link,
)
from interpreter.client.submit import new_workflow_id, parse_json_argument, prepare_run
from interpreter.contract import RunInput
from interpreter.dev.demo import load_plan

ROOT = Path(__file__).resolve().parents[3]

# --------------------------------------------------------------------------- input


def test_input_is_json_text_or_a_file(tmp_path: Path) -> None:
    assert parse_json_argument('{"a": [1, 2]}') == {"a": [1, 2]}
    file = tmp_path / "in.json"
    file.write_text('{"from": "file"}')
    assert parse_json_argument(f"@{file}") == {"from": "file"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": ', "--input is not valid JSON: Expecting value (line 1, column 7)"),
        ("NaN", "--input is not valid JSON: NaN is not valid JSON"),
        ("@/no/such/input.json", "--input: cannot read '/no/such/input.json': No such file"),
    ],
)
def test_bad_input_is_one_line(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_json_argument(text)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_bad_input_file_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "bad.json"
    file.write_text("[1,,2]")
    with pytest.raises(InputError, match=r"^--payload file '.*bad.json' is not valid JSON"):
        parse_json_argument(f"@{file}", what="--payload")


# --------------------------------------------------------------------------- prepare_run

PARENT = """\
name: parent
version: 2.0.0
description: calls the child
input:
  type: object
  properties: {n: {type: integer}}
steps:
  - id: call
    type: subworkflow
    workflow: child
    input: {n: "${{ input.n }}"}
"""
CHILD = "name: child\nversion: {version}\nsteps:\n  - {{id: hello, action: echo}}\n"


def test_prepare_run_pins_the_subworkflow_beside_the_file(tmp_path: Path) -> None:
    (tmp_path / "parent.yaml").write_text(PARENT)
    (tmp_path / "child-1.yaml").write_text(CHILD.format(version="1.0.0"))
    (tmp_path / "child-2.yaml").write_text(CHILD.format(version="1.10.0"))
    run_input, checked = prepare_run(tmp_path / "parent.yaml", input_text='{"n": 3}')
    assert isinstance(run_input, RunInput)
    assert run_input.input == {"n": 3}
    assert run_input.definition["name"] == "parent"
    assert set(run_input.subworkflows) == {"child@1.10.0"}
    assert run_input.latest == {"child": "1.10.0"}
    assert run_input.definition_hash == content_hash(checked.definition)
    json.dumps(run_input.definition)  # plain JSON: it travels as the workflow's input


def test_prepare_run_finds_subworkflows_in_definitions_dirs(tmp_path: Path) -> None:
    (tmp_path / "main").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "main" / "parent.yaml").write_text(PARENT)
    (tmp_path / "lib" / "child.yaml").write_text(CHILD.format(version="1.0.0"))
    with pytest.raises(DefinitionError, match="no definition named 'child'"):
        prepare_run(tmp_path / "main" / "parent.yaml")
    run_input, _ = prepare_run(tmp_path / "main" / "parent.yaml", definitions=[tmp_path / "lib"])
    assert set(run_input.subworkflows) == {"child@1.0.0"}


def test_prepare_run_checks_input_after_the_definition(tmp_path: Path) -> None:
    (tmp_path / "parent.yaml").write_text(PARENT)
    (tmp_path / "child.yaml").write_text(CHILD.format(version="1.0.0"))
    with pytest.raises(InputError) as caught:
        prepare_run(tmp_path / "parent.yaml", input_text='{"n": "x"}')
    assert str(caught.value) == "invalid input: input.n: 'x' is not of type 'integer'"
    run_input, _ = prepare_run(tmp_path / "parent.yaml")
    assert run_input.input == {}


def test_prepare_run_pins_the_input_with_its_defaults() -> None:
    """The approval example's `requester` has a default its message template needs."""
    run_input, _ = prepare_run(ROOT / "definitions" / "approval.yaml", input_text='{"amount": 5}')
    assert run_input.input == {"amount": 5, "requester": "someone"}
    with pytest.raises(InputError, match=r"input: 'amount' is a required property"):
        prepare_run(ROOT / "definitions" / "approval.yaml")


def test_prepare_run_runs_the_seed_sample() -> None:
    run_input, _ = prepare_run(ROOT / "definitions" / "sample-workflow.json")
    assert run_input.definition["name"] == "sampleWorkflow"
    assert run_input.subworkflows == {}


def test_prepare_run_can_check_actions(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("name: x\nsteps:\n  - {id: a, action: nope}\n")
    with pytest.raises(DefinitionError, match="no worker registers activity 'nope'"):
        prepare_run(tmp_path / "x.yaml", activities=["echo"])


def test_workflow_ids_are_readable_and_distinct() -> None:
    first, second = new_workflow_id("order-fulfilment"), new_workflow_id("order-fulfilment")
    assert first.startswith("order-fulfilment-")
    assert len(first) == len("order-fulfilment-") + 8
    assert first != second


# --------------------------------------------------------------------------- state


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (WorkflowExecutionStatus.RUNNING, "RUNNING"),
        (WorkflowExecutionStatus.COMPLETED, "COMPLETED"),
        (WorkflowExecutionStatus.FAILED, "FAILED"),
        (WorkflowExecutionStatus.CANCELED, "CANCELED"),
        (WorkflowExecutionStatus.TERMINATED, "TERMINATED"),
        (WorkflowExecutionStatus.TIMED_OUT, "TIMED_OUT"),
        (WorkflowExecutionStatus.CONTINUED_AS_NEW, "RUNNING"),
        (None, "RUNNING"),
    ],
)
def test_status_names_follow_the_spec(status: WorkflowExecutionStatus | None, name: str) -> None:
    assert status_name(status) == name


def _chain(*messages: str) -> BaseException:
    errors = [ApplicationError(m) for m in messages]
    for outer, inner in itertools.pairwise(errors):
        outer.__cause__ = inner
    return errors[0]


def test_failure_message_keeps_a_message_that_says_it_all() -> None:
    error = _chain("step 'store' (Store Result) failed: boom", "boom")
    assert failure_message(error) == "step 'store' (Store Result) failed: boom"


def test_failure_message_adds_the_innermost_cause() -> None:
    error = _chain("step 'pay' failed", "Activity task failed", "card declined")
    assert failure_message(error) == "step 'pay' failed: card declined"
    wrapped = WorkflowFailureError(cause=_chain("run failed"))
    assert failure_message(wrapped) == "run failed"


def test_ui_link(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEMPORAL_UI_URL", raising=False)
    assert (
        ui_link("order-1", "r-1", "default")
        == "http://localhost:8233/namespaces/default/workflows/order-1/r-1/history"
    )
    monkeypatch.setenv("TEMPORAL_UI_URL", "https://ui.example.com/")
    assert ui_link("a b/c", "r", "prod").startswith(
        "https://ui.example.com/namespaces/prod/workflows/a%20b%2Fc/r/history"
    )
    assert ui_link("w", None, "ns", base="http://h:1") == "http://h:1/namespaces/ns/workflows/w"


def test_run_json_is_the_status_object_without_paused() -> None:
    status = {key: None for key in RUN_KEYS} | {"paused": False}
    assert list(run_json(status)) == list(RUN_KEYS)


def _event(event_id: int, kind: EventType.ValueType, **attributes: object) -> HistoryEvent:
    return HistoryEvent(event_id=event_id, event_type=kind, **attributes)  # type: ignore[arg-type]


def _history() -> client.RunHistory:
    """A run of `a`, foreach body `item` (two items), `b`: attempts only the server knows."""
    converter = temporalio.converter.default().payload_converter
    definition = {
        "name": "x",
        "steps": [
            {"id": "zeta"},
            {"id": "each", "type": "foreach", "step": {"id": "item"}},
            {"id": "alpha"},
        ],
    }
    started = WorkflowExecutionStartedEventAttributes(
        input=Payloads(payloads=converter.to_payloads([RunInput(definition=definition)]))
    )
    events = [
        _event(
            1,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
            workflow_execution_started_event_attributes=started,
        )
    ]
    for scheduled, activity_id, attempt in ((5, "zeta", 3), (9, "item[1]", 2), (10, "item[0]", 1)):
        events.append(
            _event(
                scheduled,
                EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
                activity_task_scheduled_event_attributes=ActivityTaskScheduledEventAttributes(
                    activity_id=activity_id
                ),
            )
        )
        events.append(
            _event(
                scheduled + 100,
                EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
                activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(
                    scheduled_event_id=scheduled, attempt=attempt
                ),
            )
        )
    events.append(
        _event(
            200,
            EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            activity_task_completed_event_attributes=ActivityTaskCompletedEventAttributes(
                scheduled_event_id=5
            ),
        )
    )
    history = client.RunHistory()
    for event in events:
        history.feed(event)
    return history


def test_attempts_come_from_the_history_and_pending_activities() -> None:
    query = {
        "status": "RUNNING",
        "paused": False,
        "steps": {
            "alpha": {"status": "running", "attempts": 1},
            "each": {"status": "running", "attempts": 0},
            "item[0]": {"status": "completed", "attempts": 1},
            "item[1]": {"status": "completed", "attempts": 1},
            "zeta": {"status": "completed", "attempts": 1},
        },
    }
    steps = client.merge_steps(query, _history(), {"alpha": 4})
    assert steps == {
        "zeta": {"status": "completed", "attempts": 3},
        "each": {"status": "running", "attempts": 0},
        "item[0]": {"status": "completed", "attempts": 1},
        "item[1]": {"status": "completed", "attempts": 2},
        "alpha": {"status": "running", "attempts": 4},
    }
    assert list(steps) == ["zeta", "each", "item[0]", "item[1]", "alpha"]


def test_step_times_come_from_the_query_for_the_progress_view() -> None:
    """What `wait_for_run` adds (as `times`) to the objects its progress callback gets."""
    query = {
        "status": "FAILED",
        "steps": {
            "a": {"status": "completed", "started_at": "T1", "ended_at": "T2"},
            "never": {"status": "cancelled", "started_at": None, "ended_at": "T3"},
            "odd": {"status": "running", "started_at": 5},
            "junk": "not a state",
        },
    }
    assert step_times(query) == {
        "a": {"started_at": "T1", "ended_at": "T2"},
        "never": {"started_at": None, "ended_at": "T3"},
        "odd": {"started_at": None, "ended_at": None},
    }
    assert step_times(None) == {}
    assert step_times({"steps": None}) == {}


def test_without_a_query_the_history_still_tells_the_activities() -> None:
    steps = client.merge_steps(None, _history(), {})
    assert steps == {
        "zeta": {"status": "completed", "attempts": 3},
        "item[0]": {"status": "running", "attempts": 1},
        "item[1]": {"status": "running", "attempts": 2},
    }


@pytest.mark.parametrize(
    "file", sorted(p.name for p in (ROOT / "definitions").iterdir() if is_definition_file(p))
)
def test_every_example_has_a_valid_demo_input(file: str) -> None:
    """What `make demo` submits passes the same checks as `tdsl run`."""
    plan = load_plan(ROOT / "definitions" / file)
    input_text = f"@{plan.input_file}" if plan.input_file else None
    run_input, _ = prepare_run(plan.file, input_text=input_text)
    assert plan.expect in ("COMPLETED", "FAILED")  # refund-saga shows a failing run on purpose
    json.dumps(run_input.input)
