"""The interpreter on a real Temporal dev server: every behaviour docs/language.md describes for steps, data flow and run control."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from tests.support.runs import DEFINITIONS, run_failure, start, statuses, wait_for_step

pytestmark = pytest.mark.integration

FAIL_NOW = "{action: fail, parameters: {message: boom, error_type: Broken, non_retryable: true}}"


async def _result(client: Client, worker: str, text: str, input: Any = None) -> Any:
    handle = await start(client, worker, text, input)
    return await handle.result()


async def _failure(
    client: Client, worker: str, text: str, input: Any = None
) -> tuple[ApplicationError, dict[str, str]]:
    handle = await start(client, worker, text, input)
    cause = await run_failure(handle)
    return cause, await statuses(handle)


async def test_seed_sample_runs_unchanged(client: Client, worker: str) -> None:
    handle = await start(client, worker, DEFINITIONS / "sample-workflow.json")
    output = await handle.result()
    assert output["store"]["stored"] is True
    assert output["validate"]["valid"] is True
    assert await statuses(handle) == {
        "validate": "completed",
        "process": "completed",
        "store": "completed",
    }


async def test_independent_steps_run_concurrently(client: Client, worker: str) -> None:
    handle = await start(
        client,
        worker,
        "name: c\nsteps:\n  - {id: a, action: sleep, parameters: {seconds: 1}}\n"
        "  - {id: b, action: sleep, parameters: {seconds: 1}}\n"
        "  - {id: c, action: echo, dependencies: [a, b]}\n",
    )
    await handle.result()
    steps = (await handle.query("status"))["steps"]
    started_b = datetime.fromisoformat(steps["b"]["started_at"])
    ended_a = datetime.fromisoformat(steps["a"]["ended_at"])
    assert started_b < ended_a  # b started while a was still running
    assert datetime.fromisoformat(steps["c"]["started_at"]) >= max(
        ended_a, datetime.fromisoformat(steps["b"]["ended_at"])
    )


async def test_templates_keep_types_and_output_renders(client: Client, worker: str) -> None:
    output = await _result(
        client,
        worker,
        "name: t\nsteps:\n  - {id: a, action: echo, parameters: {n: '${{ input.n }}', s: 'n=${{ input.n }}'}}\n"
        "  - {id: b, action: echo, dependencies: [a], parameters: {from_a: '${{ steps.a.output.n }}'}}\n"
        "output: {total: '${{ steps.b.output.from_a }}', run: '${{ run.workflow_id }}'}\n",
        {"n": 41},
    )
    assert output["total"] == 41
    assert output["run"].startswith("test-")


async def test_missing_template_value_fails_the_step_clearly(client: Client, worker: str) -> None:
    error, steps = await _failure(
        client,
        worker,
        "name: t\nsteps:\n  - {id: a, action: echo, parameters: {x: '${{ input.nope }}'}}\n",
        {},
    )
    assert "step 'a' failed: ${{ input.nope }}: 'nope' not found in input" in error.message
    assert error.type == "ExpressionError"
    assert steps == {"a": "failed"}


async def test_decision_first_all_default_and_dead_paths(client: Client, worker: str) -> None:
    text = """
name: d
rules:
  big: {">": [{"var": "input.total"}, 100]}
steps:
  - id: route
    type: decision
    mode: ${mode}
    branches:
      - {when: {rule: big}, next: [big]}
      - {when: {">": [{"var": "input.total"}, 10]}, next: [medium]}
    default: [small]
  - {id: big, action: echo}
  - {id: medium, action: echo}
  - {id: small, action: echo}
  - {id: after_big, action: echo, dependencies: [big]}
  - {id: join, action: echo, dependencies: [big, medium, small]}
"""
    first = await start(client, worker, text.replace("${mode}", "first"), {"total": 500})
    assert (await first.result())["route"] == {"chosen": ["big"]}
    assert await statuses(first) == {
        "route": "completed",
        "big": "completed",
        "medium": "skipped",
        "small": "skipped",
        "after_big": "completed",
        "join": "completed",
    }
    every = await start(client, worker, text.replace("${mode}", "all"), {"total": 500})
    assert (await every.result())["route"] == {"chosen": ["big", "medium"]}
    fallback = await start(client, worker, text.replace("${mode}", "first"), {"total": 1})
    await fallback.result()
    steps = await statuses(fallback)
    assert steps["small"] == "completed"
    assert steps["big"] == steps["after_big"] == "skipped"  # dead path elimination
    assert steps["join"] == "completed"  # one live input is enough


async def test_when_false_skips_and_skips_propagate(client: Client, worker: str) -> None:
    handle = await start(
        client,
        worker,
        "name: w\nsteps:\n  - {id: a, action: echo, when: {'==': [{var: input.go}, true]}}\n"
        "  - {id: b, action: echo, dependencies: [a]}\n  - {id: c, action: echo}\n",
        {"go": False},
    )
    assert await handle.result() == {"c": {}}
    assert await statuses(handle) == {"a": "skipped", "b": "skipped", "c": "completed"}


async def test_continue_on_error_lets_dependents_read_the_error(
    client: Client, worker: str
) -> None:
    output = await _result(
        client,
        worker,
        f"name: e\nsteps:\n  - {{id: a, continue_on_error: true, {FAIL_NOW[1:-1]}}}\n"
        "  - {id: b, action: echo, dependencies: [a], parameters: {status: '${{ steps.a.status }}', "
        "error: '${{ steps.a.error.message }}'}}\n",
    )
    assert output == {"b": {"status": "failed", "error": "boom"}}


async def test_failure_fails_fast_and_names_the_step(client: Client, worker: str) -> None:
    error, steps = await _failure(
        client,
        worker,
        "name: f\nsteps:\n  - {id: slow, action: sleep, parameters: {seconds: 30}}\n"
        f"  - {{id: broken, name: Broken step, {FAIL_NOW[1:-1]}}}\n"
        "  - {id: later, action: echo, dependencies: [broken]}\n",
    )
    assert error.message == "step 'broken' (Broken step) failed: boom"
    assert error.type == "Broken"
    assert error.details[0]["step"] == "broken"
    # `later` never started: once the run has ended it is cancelled, not pending for ever
    assert steps == {"slow": "cancelled", "broken": "failed", "later": "cancelled"}


NEVER_STARTED_ON_FAILURE = f"""
name: f
steps:
  - id: par
    type: parallel
    branches:
      - {{name: bad, steps: [{{id: inner, {FAIL_NOW[1:-1]}}}]}}
      - name: slow
        steps:
          - {{id: s, action: sleep, parameters: {{seconds: 30}}}}
          - {{id: s2, action: echo, dependencies: [s]}}
  - id: then
    type: parallel
    dependencies: [par]
    branches:
      - {{name: x, steps: [{{id: x1, action: echo}}]}}
  - {{id: last, action: echo, dependencies: [then]}}
on_failure:
  - {{id: alert, {FAIL_NOW[1:-1]}}}
  - {{id: after_alert, action: log, dependencies: [alert], parameters: {{message: x}}}}
"""


async def test_steps_that_never_started_end_cancelled_when_the_run_fails(
    client: Client, worker: str
) -> None:
    """Branch steps, steps after the failure, never-started branches and on_failure steps."""
    handle = await start(client, worker, NEVER_STARTED_ON_FAILURE)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    answer = await handle.query("status")
    assert answer["status"] == "FAILED"
    assert {k: s["status"] for k, s in answer["steps"].items()} == {
        "par": "failed",
        "inner": "failed",
        "s": "cancelled",  # was running
        "s2": "cancelled",  # the others never started
        "then": "cancelled",
        "x1": "cancelled",
        "last": "cancelled",
        "alert": "failed",  # on_failure fails fast too
        "after_alert": "cancelled",
    }
    steps = answer["steps"]
    run_ended = datetime.fromisoformat(steps["alert"]["ended_at"])
    for never in ("s2", "then", "x1", "last", "after_alert"):
        assert steps[never]["started_at"] is None, never
        assert steps[never]["attempts"] == 0, never
        assert datetime.fromisoformat(steps[never]["ended_at"]) >= run_ended, never
    details = str((await handle.query("__temporal_workflow_metadata")).current_details)
    assert details.startswith("**f 1.0.0** — failed (3 failed, 6 cancelled)"), details
    assert "| 🚫 cancelled | `x1` | ↳ x1 |" in details
    assert "pending" not in details


async def test_a_met_join_leaves_no_pending_branch_step_and_no_on_failure_row(
    client: Client, worker: str
) -> None:
    """A completed run: the cancelled branch's later step is cancelled; on_failure is absent."""
    handle = await start(
        client,
        worker,
        "name: j\nsteps:\n  - id: par\n    type: parallel\n    join: any\n    branches:\n"
        "      - {name: one, steps: [{id: a1, action: echo}]}\n"
        "      - {name: two, steps: [{id: b0, action: sleep, parameters: {seconds: 30}},\n"
        "                            {id: b1, action: echo, dependencies: [b0]}]}\n"
        "on_failure: [{id: alert, action: log, parameters: {message: failed}}]\n",
    )
    await handle.result()
    assert await statuses(handle) == {
        "par": "completed",
        "a1": "completed",
        "b0": "cancelled",
        "b1": "cancelled",
    }


async def test_retries_follow_the_retry_policy(client: Client, worker: str) -> None:
    output = await _result(
        client,
        worker,
        "name: r\nsteps:\n  - id: flaky\n    action: fail\n    parameters: {message: not yet, until_attempt: 3}\n"
        "    retry_policy: {maximum_attempts: 5, initial_interval: 10ms, backoff_coefficient: 1}\n",
    )
    assert output == {"flaky": {"attempt": 3}}


async def test_local_activity(client: Client, worker: str) -> None:
    assert await _result(
        client, worker, "name: l\nsteps: [{id: a, action: echo, local: true, parameters: {x: 1}}]\n"
    ) == {"a": {"x": 1}}


@pytest.mark.parametrize(
    ("join", "expected"),
    [
        (
            "all",
            {
                "one": {"a1": {"n": 1}},
                "two": {"b0": {"slept": 0.1}, "b1": {"n": 2}},
                "three": {"c1": {"slept": 0.3}},
            },
        ),
        ("any", {"one": {"a1": {"n": 1}}}),
        ("{count: 2}", {"one": {"a1": {"n": 1}}, "two": {"b0": {"slept": 0.1}, "b1": {"n": 2}}}),
    ],
)
async def test_parallel_joins(
    client: Client, worker: str, join: str, expected: dict[str, Any]
) -> None:
    handle = await start(
        client,
        worker,
        f"""
name: p
steps:
  - id: par
    type: parallel
    join: {join}
    branches:
      - {{name: one, steps: [{{id: a1, action: echo, parameters: {{n: 1}}}}]}}
      - {{name: two, steps: [{{id: b0, action: sleep, parameters: {{seconds: 0.1}}}},
                              {{id: b1, action: echo, dependencies: [b0], parameters: {{n: 2}}}}]}}
      - {{name: three, steps: [{{id: c1, action: sleep, parameters: {{seconds: 0.3}}}}]}}
""",
    )
    output = await handle.result()
    assert output["par"] == expected
    if join != "all":
        assert "cancelled" in (await statuses(handle)).values()


async def test_parallel_branch_failure_fails_the_run_naming_the_inner_step(
    client: Client, worker: str
) -> None:
    error, steps = await _failure(
        client,
        worker,
        "name: p\nsteps:\n  - id: par\n    type: parallel\n    branches:\n"
        f"      - {{name: bad, steps: [{{id: inner, {FAIL_NOW[1:-1]}}}]}}\n"
        "      - {name: slow, steps: [{id: s, action: sleep, parameters: {seconds: 30}}]}\n",
    )
    assert error.message == "step 'inner' failed: boom"
    assert steps == {"par": "failed", "inner": "failed", "s": "cancelled"}


async def test_foreach_outputs_in_item_order_with_a_concurrency_cap(
    client: Client, worker: str
) -> None:
    handle = await start(
        client,
        worker,
        "name: f\nsteps:\n  - id: each\n    type: foreach\n    items: '${{ input.items }}'\n    max_concurrency: 2\n"
        "    step: {id: one, action: echo, parameters: {value: '${{ item }}', at: '${{ index }}'}}\n",
        {"items": ["a", "b", "c"]},
    )
    assert (await handle.result())["each"] == [
        {"value": "a", "at": 0},
        {"value": "b", "at": 1},
        {"value": "c", "at": 2},
    ]
    assert await statuses(handle) == {
        "each": "completed",
        "one[0]": "completed",
        "one[1]": "completed",
        "one[2]": "completed",
    }


async def test_subworkflow_runs_as_a_child_and_returns_its_output(
    client: Client, worker: str
) -> None:
    handle = await start(
        client, worker, DEFINITIONS / "nightly-batch.yaml", {"records": [{"a": 1}]}
    )
    output = await handle.result()
    assert output["notified"] == {"sent": True}
    child = client.get_workflow_handle(f"{handle.id}/notify")
    assert (await child.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_subworkflow_without_waiting(client: Client, worker: str, tmp_path: Any) -> None:
    (tmp_path / "child.yaml").write_text(
        "name: child\nsteps: [{id: c, action: sleep, parameters: {seconds: 0.2}}]\n"
    )
    output = await _result_in(
        client,
        worker,
        tmp_path,
        "name: p\nsteps: [{id: s, type: subworkflow, workflow: child, wait: false}]\n",
    )
    assert output["s"]["workflow_id"].endswith("/s")
    child = client.get_workflow_handle(output["s"]["workflow_id"])
    assert await child.result() == {"c": {"slept": 0.2}}


@pytest.mark.parametrize("who", ["outside", "parent"])
async def test_a_child_cancelled_from_outside_fails_its_step(
    client: Client, worker: str, tmp_path: Any, who: str
) -> None:
    """Only a cancellation the run itself asked for makes a step `cancelled`."""
    (tmp_path / "child.yaml").write_text(
        "name: child\nsteps: [{id: w, type: signal, signal: never}]\n"
    )
    handle = await start(
        client,
        worker,
        "name: p\nsteps: [{id: s, type: subworkflow, workflow: child}]\n",
        directory=tmp_path,
    )
    await wait_for_step(handle, "s")
    child = client.get_workflow_handle(f"{handle.id}/s")
    await _until_running(child)
    await (child if who == "outside" else handle).cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    described = await handle.describe()
    if who == "outside":
        assert described.status == WorkflowExecutionStatus.FAILED
        assert await statuses(handle) == {"s": "failed"}
    else:
        assert described.status == WorkflowExecutionStatus.CANCELED
        assert await statuses(handle) == {"s": "cancelled"}
    assert (await child.describe()).status == WorkflowExecutionStatus.CANCELED


async def _until_running(child: WorkflowHandle[Any, Any]) -> None:
    """The step is `running` once the start command is issued; the child exists a moment later."""
    async with asyncio.timeout(30):
        while True:
            try:
                if (await child.describe()).status == WorkflowExecutionStatus.RUNNING:
                    return
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
            await asyncio.sleep(0.05)


async def _result_in(client: Client, worker: str, directory: Any, text: str) -> Any:
    handle = await start(client, worker, text, directory=directory)
    return await handle.result()


async def test_set_values_are_readable_as_vars(client: Client, worker: str) -> None:
    output = await _result(
        client,
        worker,
        "name: v\nsteps:\n  - {id: s, type: set, values: {greeting: 'hi ${{ input.who }}'}}\n"
        "  - {id: e, action: echo, dependencies: [s], parameters: {said: '${{ vars.greeting }}'}}\n",
        {"who": "ann"},
    )
    assert output["e"] == {"said": "hi ann"}


async def test_fail_step_ends_the_run_with_its_message_and_type(
    client: Client, worker: str
) -> None:
    error, _ = await _failure(
        client,
        worker,
        "name: x\nsteps: [{id: no, type: fail, message: 'nope: ${{ input.why }}', error_type: Denied}]\n",
        {"why": "late"},
    )
    assert error.message == "nope: late"
    assert error.type == "Denied"


async def test_signal_step_takes_a_signal_sent_before_it_started(
    client: Client, worker: str
) -> None:
    handle = await start(
        client,
        worker,
        "name: s\nsteps:\n  - {id: first, action: sleep, parameters: {seconds: 0.5}}\n"
        "  - {id: answer, type: signal, signal: approval, dependencies: [first]}\n",
    )
    await handle.signal("approval", {"ok": True})
    assert (await handle.result())["answer"] == {"ok": True}


async def test_pause_holds_new_steps_and_resume_releases_them(client: Client, worker: str) -> None:
    handle = await start(
        client,
        worker,
        "name: p\nsteps:\n  - {id: a, action: sleep, parameters: {seconds: 0.5}}\n"
        "  - {id: b, action: echo, dependencies: [a]}\n",
    )
    await wait_for_step(handle, "a")
    await handle.signal("pause")
    await asyncio.sleep(1.5)
    answer = await handle.query("status")
    assert answer["paused"] is True
    assert answer["steps"]["a"]["status"] == "completed"
    assert answer["steps"]["b"]["status"] == "pending"
    await handle.signal("resume")
    assert (await handle.result())["b"] == {}


@pytest.mark.parametrize("how", ["signal", "native"])
async def test_cancel_ends_the_run_canceled(client: Client, worker: str, how: str) -> None:
    handle = await start(
        client,
        worker,
        "name: c\nsteps:\n  - {id: a, action: sleep, parameters: {seconds: 60}}\n"
        "  - id: par\n    type: parallel\n    dependencies: [a]\n"
        "    branches: [{name: one, steps: [{id: p1, action: echo}]}]\n"
        "  - {id: b, action: echo, dependencies: [par]}\n"
        "on_failure: [{id: alert, action: log, parameters: {message: failed}}]\n",
    )
    await wait_for_step(handle, "a")
    if how == "signal":
        await handle.signal("cancel")
    else:
        await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    # What never started is cancelled too; on_failure does not run for a cancelled run.
    answer = await handle.query("status")
    assert answer["status"] == "CANCELED"
    assert {k: s["status"] for k, s in answer["steps"].items()} == {
        "a": "cancelled",
        "par": "cancelled",
        "p1": "cancelled",
        "b": "cancelled",
    }
    assert answer["steps"]["b"]["started_at"] is None
    assert answer["steps"]["b"]["ended_at"] is not None


async def test_the_ui_shows_step_names_and_a_details_table(client: Client, worker: str) -> None:
    handle = await start(client, worker, DEFINITIONS / "sample-workflow.json")
    await handle.result()
    summaries = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            summaries.append(await _summary_text(client, event.user_metadata.summary))
    assert summaries == ["validate: Validate Input", "process: Process Data", "store: Store Result"]
    metadata = await handle.query("__temporal_workflow_metadata")
    details = metadata.current_details
    assert "| ✅ completed | `store` | Store Result |" in details
    assert details.startswith("**sampleWorkflow 1.0.0** — completed")


async def _summary_text(client: Client, payload: Any) -> str:
    return str(client.data_converter.payload_converter.from_payload(payload))


async def test_an_unregistered_action_fails_on_its_first_attempt(
    client: Client, worker: str
) -> None:
    """Not after the whole retry policy (3 attempts, with backoff) as it used to."""
    handle = await start(
        client,
        worker,
        "name: typo\nsteps:\n  - {id: a, action: valdiateInput, retry_policy: {maximum_attempts: 5}}\n",
    )
    cause = await run_failure(handle)
    steps = await statuses(handle)
    assert (await handle.query("status"))["steps"]["a"]["attempts"] == 1
    assert steps == {"a": "failed"}
    assert "valdiateInput" in cause.message
    assert "is not registered by the workers of task queue" in cause.message
    assert "validateInput" in cause.message  # what it could have meant is listed
    assert cause.type == "NotFound"
