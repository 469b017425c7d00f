"""Recorded histories of real runs still replay: interpreter changes stay deterministic.

Recorded by `python -m tests.record_histories`; an intended change of behaviour goes
behind `workflow.patched()` so that these keep replaying.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from interpreter.worker import WORKFLOWS, workflow_runner
from tests.record_histories import replay_id

HISTORIES = sorted((Path(__file__).resolve().parents[2] / "histories").glob("*.json"))


def test_histories_are_recorded() -> None:
    assert len(HISTORIES) >= 8


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=list(WORKFLOWS), workflow_runner=workflow_runner())
    history = WorkflowHistory.from_json(replay_id(path.stem), path.read_text())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


REPLAY_ALL = """
import asyncio, pathlib, sys
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from interpreter.worker import WORKFLOWS, workflow_runner
from tests.record_histories import replay_id

async def main() -> None:
    replayer = Replayer(workflows=list(WORKFLOWS), workflow_runner=workflow_runner())
    for path in sorted(pathlib.Path("tests/histories").glob("*.json")):
        history = WorkflowHistory.from_json(replay_id(path.stem), path.read_text())
        await replayer.replay_workflow(history, raise_on_replay_failure=True)
    print("replayed", len(list(pathlib.Path("tests/histories").glob("*.json"))))

asyncio.run(main())
"""


@pytest.mark.parametrize("seed", ["1", "4242"])
def test_replay_does_not_depend_on_hash_order(seed: str) -> None:
    """Set and dict-of-set order change with PYTHONHASHSEED; replay must not."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", REPLAY_ALL],
        cwd=root,
        env={**os.environ, "PYTHONHASHSEED": seed},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"replayed {len(HISTORIES)}"
