"""The one spelling of a run's and a step's status.

Here rather than in `interpreter.contract` because test files (`dsl.testfiles`) name
the status a run must end in, and `dsl` imports nothing of `interpreter`; the contract
re-exports these, so the workflow, the CLI, the run history and `tdsl serve` agree.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "ENDED_STEP_STATUSES",
    "FINAL_RUN_STATUSES",
    "RUN_STATUSES",
    "STEP_STATUSES",
    "FinalRunStatus",
    "RunStatus",
    "StepStatus",
]

FinalRunStatus = Literal["COMPLETED", "FAILED", "CANCELED", "TERMINATED", "TIMED_OUT"]
RunStatus = Literal["RUNNING", "COMPLETED", "FAILED", "CANCELED", "TERMINATED", "TIMED_OUT"]

FINAL_RUN_STATUSES: tuple[FinalRunStatus, ...] = (
    "COMPLETED",
    "FAILED",
    "CANCELED",
    "TERMINATED",
    "TIMED_OUT",
)
"""How a run can end, as Temporal names it (`tdsl status`, `tdsl runs --status`)."""
RUN_STATUSES: tuple[RunStatus, ...] = ("RUNNING", *FINAL_RUN_STATUSES)
"""A run's status as `tdsl status`, the run history and `tdsl runs --status` spell it."""

StepStatus = Literal["pending", "waiting", "running", "completed", "skipped", "failed", "cancelled"]
STEP_STATUSES: tuple[StepStatus, ...] = (
    "pending",
    "waiting",
    "running",
    "completed",
    "skipped",
    "failed",
    "cancelled",
)
"""A step's status in the status query, the run history and `--wait` progress."""
ENDED_STEP_STATUSES: frozenset[StepStatus] = frozenset(
    {"completed", "skipped", "failed", "cancelled"}
)
"""The statuses after which a step changes no more."""
