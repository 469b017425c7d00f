"""`tdsl` as a user runs it: the real console entry point in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_tdsl(
    *args: str | Path, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`tdsl ARGS…` from the repository root; output captured, never raising on exit codes."""
    return subprocess.run(
        [sys.executable, "-m", "interpreter.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=None if env is None else dict(env),
        timeout=timeout,
        check=False,
    )


def tdsl_env(
    client: Any, task_queue: str | None = None, database_url: str | None = None
) -> dict[str, str]:
    """The environment of a `tdsl` subprocess talking to the test's servers (*client*'s
    Temporal, *database_url*), with none of this shell's Temporal or tdsl settings."""
    keep = ("TEMPORAL_", "TDSL_", "DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(keep)}
    env["TEMPORAL_ADDRESS"] = client.service_client.config.target_host
    env["TEMPORAL_NAMESPACE"] = client.namespace
    if task_queue is not None:
        env["TEMPORAL_TASK_QUEUE"] = task_queue
    if database_url:
        env["DATABASE_URL"] = database_url
    return env
