"""`tdsl` as a user runs it: the real console entry point in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

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
