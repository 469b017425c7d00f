"""Record real histories of the interpreter into tests/histories/ for the replay tests.

Run it when an intended behaviour change lands behind `workflow.patched()`:
``.venv/bin/python -m tests.record_histories``. Existing files are kept, so old
histories go on guarding old behaviour; pass ``--overwrite`` to re-record them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from interpreter.dev.servers import start_local_env
from interpreter.runtime.mutex import mutex_id
from tests.support.runs import DEFINITIONS, interpreter_worker, start

HISTORIES = Path(__file__).resolve().parent / "histories"


MUTEX_HISTORY = "mutex-workflow"
"""The history of the `tdsl.mutex` workflow that `mutex-held` asked (its own id)."""


CHILDREN = {
    "typed-batch-child": ("typed-foreach-batched", "each/batch-1"),
    "typed-subworkflow-child": ("typed-subworkflow", "notify"),
}
"""Child runs recorded beside their parent: name → (parent case, id suffix)."""


def replay_id(name: str) -> str:
    """The workflow id a history was recorded under; replay must use the same one.

    A run that continued as new is recorded as one file per run, ``NAME.json`` for the
    first and ``NAME.2.json``… for the continuations, all under NAME's id."""
    if name == MUTEX_HISTORY:
        return mutex_id("replay")
    if name in CHILDREN:
        parent, suffix = CHILDREN[name]
        return f"replay-{parent}/{suffix}"
    return f"replay-{name.split('.')[0]}"


TASK_QUEUE = "record-histories"

Interact = Callable[[WorkflowHandle[Any, Any]], Awaitable[None]]


async def _approve(handle: WorkflowHandle[Any, Any]) -> None:
    await handle.signal("approval", {"approved": True, "by": "recorder"})


async def _pause_then_resume(handle: WorkflowHandle[Any, Any]) -> None:
    await handle.signal("pause")
    await asyncio.sleep(0.5)
    await handle.signal("resume")


async def _pause_after_the_first_item(handle: WorkflowHandle[Any, Any]) -> None:
    await asyncio.sleep(0.15)  # item 0 (0.3 s) is running
    await handle.signal("pause")
    await asyncio.sleep(1.0)  # item 0 ends; item 1 is held
    await handle.signal("resume")


async def _go(handle: WorkflowHandle[Any, Any]) -> None:
    await handle.signal("go", {"by": "recorder"})


async def _cancel(handle: WorkflowHandle[Any, Any]) -> None:
    await asyncio.sleep(0.5)
    await handle.signal("cancel")


async def _cancel_when_running(handle: WorkflowHandle[Any, Any]) -> None:
    await asyncio.sleep(1.0)
    await handle.signal("cancel")


SAGA = """
name: saga
steps:
  - {id: a, action: echo, compensate: {action: log, parameters: {message: "undo a"}}}
  - {id: b, action: echo, dependencies: [a], compensate: {action: log, parameters: {message: "undo b"}}}
  - {id: c, action: %s, dependencies: [b], parameters: {%s}}
on_failure:
  - {id: alert, action: echo, parameters: {error: "${{ run.error.message }}"}}
"""

CASES: dict[str, tuple[str | Path, Any, Interact | None]] = {
    "sample-workflow": (DEFINITIONS / "sample-workflow.json", None, None),
    "order-fulfilment": (
        DEFINITIONS / "order-fulfilment.yaml",
        {"order_id": "A1", "total": 150, "items": ["x"]},
        None,
    ),
    "nightly-batch": (DEFINITIONS / "nightly-batch.yaml", {"records": [{"a": 1}, {"a": 2}]}, None),
    "expense-approval": (
        DEFINITIONS / "approval.yaml",
        {"amount": 5, "requester": "ann"},
        _approve,
    ),
    "failed-run": (
        "name: failing\nsteps:\n  - {id: ok, action: echo}\n"
        "  - {id: broken, action: fail, dependencies: [ok], parameters: {message: boom, non_retryable: true}}\n",
        None,
        None,
    ),
    "paused-run": (
        "name: paused\nsteps:\n  - {id: a, action: sleep, parameters: {seconds: 0.3}}\n"
        "  - {id: b, action: echo, dependencies: [a]}\n",
        None,
        _pause_then_resume,
    ),
    "cancelled-run": (
        "name: cancelled\nsteps: [{id: long, action: sleep, parameters: {seconds: 30}}]\n",
        None,
        _cancel,
    ),
    "parallel-any": (
        "name: race\nsteps:\n  - id: race\n    type: parallel\n    join: any\n    branches:\n"
        "      - {name: fast, steps: [{id: f, action: echo}]}\n"
        "      - {name: slow, steps: [{id: s, action: sleep, parameters: {seconds: 5}}]}\n",
        None,
        None,
    ),
    "saga-failed": (SAGA % ("fail", "message: boom, non_retryable: true"), None, None),
    "saga-cancelled": (SAGA % ("sleep", "seconds: 30"), None, _cancel_when_running),
    "foreach-batched": (
        "name: batched\nsteps:\n  - id: each\n    type: foreach\n    items: '${{ input.items }}'\n"
        "    step: {id: one, type: set, values: {at: '${{ index }}'}}\n",
        {"items": list(range(450))},
        None,
    ),
    # Since "run-input-is-an-object": the patch marker, and a list input refused.
    "input-object": (
        "name: greeting\nsteps: [{id: hi, action: echo, parameters: {to: '${{ input.who }}'}}]\n",
        {"who": "ann"},
        None,
    ),
    # Since "start-gate": pause holds the foreach's next item until resumed.
    "foreach-paused": (
        "name: held\nsteps:\n  - id: each\n    type: foreach\n    items: [0, 1, 2]\n"
        "    max_concurrency: 1\n    step: {id: one, action: sleep, parameters: {seconds: 0.3}}\n",
        None,
        _pause_after_the_first_item,
    ),
    "input-not-an-object": (
        "name: greeting\nsteps: [{id: hi, action: echo}]\n",
        [1, 2, 3],
        None,
    ),
    # A definition `timeout`: the wait is cancelled, compensation and on_failure run.
    "run-timed-out": (
        "name: timed-out\ntimeout: 2s\nsteps:\n"
        "  - {id: a, action: echo, compensate: {action: log, parameters: {message: undo a}}}\n"
        "  - {id: hold, type: wait, duration: 1h, dependencies: [a]}\n"
        "on_failure:\n  - {id: alert, action: echo, parameters: {type: '${{ run.error.type }}'}}\n",
        None,
        None,
    ),
    # Since "subworkflow-run-timeout": the child outlives the step's timeout (RunTimeout).
    # Since "continue-as-new": every 10 events the run continues, carrying a compensation
    # owed, vars, a signal that arrived before its step, and the status rows.
    "continued": (
        "name: continued\nhistory_limit: 10\nsteps:\n"
        "  - {id: a, action: echo, compensate: {action: log, parameters: {message: undo a}}}\n"
        "  - {id: remember, type: set, values: {colour: blue}, dependencies: [a]}\n"
        "  - {id: b, action: echo, dependencies: [remember]}\n"
        "  - {id: c, action: echo, dependencies: [b]}\n"
        "  - {id: go, type: signal, signal: go, dependencies: [c]}\n"
        "  - {id: d, action: echo, dependencies: [go], "
        "parameters: {colour: '${{ vars.colour }}', by: '${{ steps.go.output.by }}'}}\n",
        None,
        _go,
    ),
    # Since "foreach-batches-for-every-join": a count join over 450 items, in batches.
    "foreach-counted": (
        "name: counted\nsteps:\n  - id: each\n    type: foreach\n    items: '${{ input.items }}'\n"
        "    join: {count: 300}\n    step: {id: one, type: set, values: {at: '${{ index }}'}}\n",
        {"items": list(range(450))},
        None,
    ),
    "subworkflow-timed-out": (
        "name: impatient\nsteps:\n"
        "  - {id: ask, type: subworkflow, workflow: expense-approval, input: {amount: 5}, "
        "timeout: 2s, continue_on_error: true}\n"
        "  - {id: after, action: echo, dependencies: [ask], "
        "parameters: {why: '${{ steps.ask.error.type }}'}}\n",
        None,
        None,
    ),
    # The `loop` step: until, a compensation per iteration, vars across iterations, and
    # a continue-as-new between iterations (history_limit 20), the next run resuming it.
    "loop-continued": (
        "name: looping\nhistory_limit: 20\nsteps:\n"
        "  - id: poll\n    type: loop\n"
        "    until: {'>=': [{var: steps.check.output.i}, 5]}\n"
        "    steps:\n"
        "      - {id: check, action: echo, parameters: {i: '${{ iteration }}'}, "
        "compensate: {action: log, parameters: {message: 'undo ${{ iteration }}'}}}\n"
        "      - {id: seen, type: set, dependencies: [check], "
        "values: {last: '${{ steps.check.output.i }}'}}\n"
        "  - {id: after, action: echo, dependencies: [poll], "
        "parameters: {n: '${{ steps.poll.output.iterations }}', last: '${{ vars.last }}'}}\n",
        None,
        None,
    ),
    # A step holding a mutex (`waiting`, then granted and released); the mutex
    # workflow's own history is recorded beside it (MUTEX_HISTORY).
    "mutex-held": (
        "name: critical\nsteps:\n  - {id: first, action: echo}\n"
        "  - {id: locked, action: echo, mutex: replay, dependencies: [first], "
        "parameters: {inside: true}}\n  - {id: after, action: echo, dependencies: [locked]}\n",
        None,
        None,
    ),
    # Since "foreach-items-own-steps": the steps of an item's parallel body read each other.
    "foreach-item-branches": (
        "name: item-branches\nsteps:\n  - id: each\n    type: foreach\n    items: [1, 2]\n"
        "    step:\n      id: body\n      type: parallel\n      branches:\n"
        "        - name: b\n          steps:\n"
        "            - {id: a, action: echo, parameters: {v: '${{ item }}'}}\n"
        "            - {id: c, action: echo, dependencies: [a], "
        "parameters: {saw: '${{ steps.a.output.v }}'}}\n",
        None,
        None,
    ),
    # Runs by definition type (`DefinitionWorkflow`): the definition in the envelope
    # (as `tdsl run FILE` without a store), a continuation and foreach batches by type.
    "typed-continued": (
        "name: typed-continued\nhistory_limit: 10\nsteps:\n"
        "  - {id: a, action: echo, compensate: {action: log, parameters: {message: undo a}}}\n"
        "  - {id: b, action: echo, dependencies: [a]}\n"
        "  - {id: c, action: echo, dependencies: [b]}\n"
        "  - {id: go, type: signal, signal: go, dependencies: [c]}\n"
        "  - {id: d, action: echo, dependencies: [go], parameters: {by: '${{ steps.go.output.by }}'}}\n",
        None,
        _go,
    ),
    "typed-foreach-batched": (
        "name: typed-batched\nsteps:\n  - id: each\n    type: foreach\n"
        "    items: '${{ input.items }}'\n"
        "    step: {id: one, type: set, values: {at: '${{ index }}'}}\n",
        {"items": list(range(250))},
        None,
    ),
    "typed-subworkflow": (DEFINITIONS / "nightly-batch.yaml", {"records": [{"a": 1}]}, None),
    # Since "break-around-large-load": 2,000 steps are read in an activation of their
    # own, and the reading spends part of the first task's budget.
    "typed-large": (
        "name: typed-large\nsteps:\n"
        + "".join(f"  - {{id: s{i}, type: set, values: {{n: {i}}}}}\n" for i in range(2000))
        + "output: {last: '${{ steps.s1999.output.n }}'}\n",
        None,
        None,
    ),
}

BASELINE = "baseline-"
BASELINE_CASES = (
    "saga-failed",
    "run-timed-out",
    "foreach-paused",
    "input-not-an-object",
    "continued",
    "foreach-counted",
    "subworkflow-timed-out",
    "loop-continued",
    "foreach-item-branches",
    "typed-continued",
)
"""Cases recorded again as ``baseline-NAME`` by runs with the baseline patch
(`interpreter.runtime.versions`): the behaviours it stands for, with no patch asked."""

BY_NAME: dict[str, tuple[str, Any]] = {
    "typed-by-name": ("order-fulfilment", {"order_id": "A1", "total": 150, "items": ["x"]}),
    "baseline-typed-by-name": (
        "order-fulfilment",
        {"order_id": "A1", "total": 150, "items": ["x"]},
    ),
}
"""Runs a plain client starts by the definition's name (as `temporal workflow start
--type`): the worker finds it in `definitions/` through the `tdsl.definition` local
activity, and sets the search attributes and the memo itself."""


async def record_by_name(client: Client, name: str, overwrite: bool) -> None:
    target = HISTORIES / f"{name}.json"
    if target.exists() and not overwrite:
        return
    workflow_type, run_input = BY_NAME[name]
    handle = await client.start_workflow(
        workflow_type, run_input, id=replay_id(name), task_queue=TASK_QUEUE
    )
    await handle.result()
    target.write_text((await handle.fetch_history()).to_json() + "\n")
    print(f"recorded {target.relative_to(HISTORIES.parent.parent)}")


async def record(client: Client, name: str, overwrite: bool) -> None:
    target = HISTORIES / f"{name}.json"
    if target.exists() and not overwrite:
        return
    source, run_input, interact = CASES[name.removeprefix(BASELINE)]
    handle = await start(client, TASK_QUEUE, source, run_input, workflow_id=replay_id(name))
    if interact is not None:
        await interact(handle)
    with contextlib.suppress(WorkflowFailureError):  # failed and cancelled runs are recorded too
        await handle.result()
    runs = [run async for run in client.list_workflows(f"WorkflowId = '{handle.id}'")]
    runs.sort(key=lambda run: run.start_time)
    for number, run in enumerate(runs, start=1):
        path = target if number == 1 else HISTORIES / f"{name}.{number}.json"
        history = await client.get_workflow_handle(handle.id, run_id=run.run_id).fetch_history()
        path.write_text(history.to_json() + "\n")
        print(f"recorded {path.relative_to(HISTORIES.parent.parent)}")
    for child, (parent, _) in CHILDREN.items():
        if parent == name:
            path = HISTORIES / f"{child}.json"
            history = await client.get_workflow_handle(replay_id(child)).fetch_history()
            path.write_text(history.to_json() + "\n")
            print(f"recorded {path.relative_to(HISTORIES.parent.parent)}")
    if name == "mutex-held":
        path = HISTORIES / f"{MUTEX_HISTORY}.json"
        history = await client.get_workflow_handle(mutex_id("replay")).fetch_history()
        path.write_text(history.to_json() + "\n")
        print(f"recorded {path.relative_to(HISTORIES.parent.parent)}")


async def main(overwrite: bool) -> None:
    HISTORIES.mkdir(exist_ok=True)
    env = await start_local_env()
    try:
        async with interpreter_worker(env.client, TASK_QUEUE, definitions=[DEFINITIONS]):
            for name in [*CASES, *(BASELINE + case for case in BASELINE_CASES)]:
                await record(env.client, name, overwrite)
            for name in BY_NAME:
                await record_by_name(env.client, name, overwrite)
    finally:
        await env.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--overwrite", action="store_true")
    asyncio.run(main(parser.parse_args().overwrite))
