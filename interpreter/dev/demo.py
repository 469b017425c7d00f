"""`make demo`: every example in `definitions/` run for real, end to end.

Starts a private Temporal dev server (free ports, temporary state) and a worker in
this process, submits one run per definition with the input from
`definitions/inputs/<stem>.json` (if any), sends the signals listed in
`definitions/inputs/<stem>.demo.json` (e.g. the approval the expense example waits
for), and prints one block per run. Exit code 1 when a run does not end as
expected (`"expect"` in the `.demo.json`, default COMPLETED).

    python -m interpreter.dev.demo [--keep] [--definitions DIR]

With `--keep` the server and the worker stay up until Ctrl-C, so the runs can be
browsed in the Web UI; without it nothing is left running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client

from dsl.catalog import is_definition_file
from dsl.errors import ConfigurationError, DefinitionError, DslError
from interpreter.client.control import signal_run
from interpreter.client.status import FINAL_STATUSES, ui_link, wait_for_run
from interpreter.client.submit import prepare_run, start_run
from interpreter.client.tasks import complete_task, wait_for_task
from interpreter.dev.servers import DevServer
from interpreter.worker import running_worker, stop_on_signals

__all__ = ["DemoPlan", "load_plan", "main", "run_demo"]

DEFAULT_DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"
TASK_QUEUE = "temporal-dsl-demo"


@dataclass(frozen=True)
class DemoSignal:
    name: str
    payload: Any = None
    delay: float = 0.0
    """Seconds after the start; signals that arrive early are kept by the run anyway."""


@dataclass(frozen=True)
class DemoTask:
    """A `human.task` step the demo completes, as `tdsl complete` would."""

    step: str
    result: Any = None
    delay: float = 0.0
    """Seconds after the start; the task is completed once its step waits."""


@dataclass
class DemoPlan:
    """What the demo does with one definition file."""

    file: Path
    input_file: Path | None = None
    signals: list[DemoSignal] = field(default_factory=list)
    tasks: list[DemoTask] = field(default_factory=list)
    expect: str = "COMPLETED"


def load_plan(file: Path) -> DemoPlan:
    """The inputs and demo settings that sit in `inputs/` beside the definition."""
    inputs = file.parent / "inputs"
    plan = DemoPlan(file=file)
    if (inputs / f"{file.stem}.json").is_file():
        plan.input_file = inputs / f"{file.stem}.json"
    settings_file = inputs / f"{file.stem}.demo.json"
    if settings_file.is_file():
        try:
            settings = json.loads(settings_file.read_text(encoding="utf-8"))
            plan.signals = [DemoSignal(**entry) for entry in settings.get("signals", [])]
            plan.tasks = [DemoTask(**entry) for entry in settings.get("tasks", [])]
            plan.expect = str(settings.get("expect", "COMPLETED"))
        except (ValueError, TypeError, AttributeError) as err:
            raise ConfigurationError(f"{settings_file}: not a demo settings file: {err}") from None
        if plan.expect not in FINAL_STATUSES:
            raise ConfigurationError(
                f"{settings_file}: expect must be one of {', '.join(FINAL_STATUSES)}"
            )
    return plan


def definition_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.iterdir() if is_definition_file(path))


@dataclass
class _Outcome:
    plan: DemoPlan
    title: str
    ok: bool
    lines: list[tuple[str, str]]


async def _send_later(client: Client, workflow_id: str, signal: DemoSignal) -> None:
    await asyncio.sleep(signal.delay)
    await signal_run(client, workflow_id, signal.name, signal.payload)


async def _complete_later(client: Client, workflow_id: str, task: DemoTask) -> None:
    await asyncio.sleep(task.delay)
    waiting = await wait_for_task(client, workflow_id, task.step)
    await complete_task(client, waiting["token"], task.result)


async def _run_one(client: Client, plan: DemoPlan, ui_base: str) -> _Outcome:
    """Submit, signal and await one run; never raises for the run's own problems."""
    title = str(plan.file)
    try:
        input_text = f"@{plan.input_file}" if plan.input_file else None
        run_input, checked = prepare_run(plan.file, input_text=input_text)
        definition = checked.definition
        title = f"{definition.name} {definition.version}  ({plan.file.name})"
        began = time.monotonic()
        handle = await start_run(client, run_input, task_queue=TASK_QUEUE)
        senders = [
            asyncio.ensure_future(_send_later(client, handle.id, signal)) for signal in plan.signals
        ]
        senders += [
            asyncio.ensure_future(_complete_later(client, handle.id, task)) for task in plan.tasks
        ]
        state = await wait_for_run(handle)
        await asyncio.gather(*senders, return_exceptions=True)
        seconds = time.monotonic() - began
    except DefinitionError as exc:
        lines = [("invalid", str(d)) for d in exc.diagnostics]
        return _Outcome(plan, title, False, lines)
    except DslError as exc:
        return _Outcome(plan, title, False, [("error", str(exc))])
    status = state["status"]
    lines = [
        ("workflow id", state["workflow_id"]),
        ("status", f"{status} in {seconds:.1f}s"),
    ]
    if state["output"] is not None or status == "COMPLETED":
        lines.append(("output", json.dumps(state["output"], separators=(",", ":"))))
    if state["error"]:
        lines.append(("error", state["error"]))
    ok = status == plan.expect
    if not ok:
        lines.append(("expected", plan.expect))
    lines.append(("UI", ui_link(state["workflow_id"], state["run_id"], "default", base=ui_base)))
    return _Outcome(plan, title, ok, lines)


def _print(outcome: _Outcome) -> None:
    mark = "ok" if outcome.ok else "UNEXPECTED"
    print(f"\n== {outcome.title}: {mark}")
    for label, text in outcome.lines:
        print(f"   {label:<12} {text}")
    sys.stdout.flush()


async def run_demo(definitions: Path, *, keep: bool = False, state_dir: Path | None = None) -> int:
    """Run every definition in *definitions*; 0 when all ended as expected."""
    plans = [load_plan(file) for file in definition_files(definitions)]
    with tempfile.TemporaryDirectory(prefix="tdsl-demo-") as temporary:
        server = DevServer(state_dir or Path(temporary))
        async with server, running_worker(server.client, task_queue=TASK_QUEUE):
            print(f"Temporal dev server {server.address}, Web UI {server.ui_url}")
            print(f"running {len(plans)} definitions from {definitions}")
            runs = [
                asyncio.ensure_future(_run_one(server.client, plan, server.ui_url))
                for plan in plans
            ]
            outcomes: list[_Outcome] = []
            for run in runs:  # all run at once; reported in file order
                outcome = await run
                outcomes.append(outcome)
                _print(outcome)
            failed = [o for o in outcomes if not o.ok]
            print(f"\n{len(outcomes) - len(failed)}/{len(outcomes)} runs ended as expected")
            if keep:
                stop = asyncio.Event()
                with stop_on_signals(stop):
                    print(f"Web UI at {server.ui_url}; Ctrl-C stops the worker and the server")
                    sys.stdout.flush()
                    await stop.wait()
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m interpreter.dev.demo", description="Run every example definition for real."
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep server and worker up until Ctrl-C"
    )
    parser.add_argument("--definitions", type=Path, default=DEFAULT_DEFINITIONS, metavar="DIR")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run_demo(args.definitions, keep=args.keep))
    except DslError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as `tdsl` does: Temporal's native threads can abort a normal exit
