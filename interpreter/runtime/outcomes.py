"""What a step ends with, as the interpreter passes it around: frames, outcomes,
failures, and the conversions to and from Temporal's types.

Part of the replay-critical runtime: pure data and pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    FailureError,
    TimeoutError,
)

from dsl.models import FailStep, RetryPolicy, Step
from interpreter.runtime.scheduler import Finish

__all__ = ["Frame", "Outcome", "StepFailed", "describe_failure", "step_summary", "temporal_retry"]


class StepFailed(Exception):
    """A step failed and nothing absorbed it; carries the innermost failing step."""

    def __init__(self, step: Step, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.step = step
        self.error = error

    def to_application_error(self) -> ApplicationError:
        """The run's failure: names the step and carries the step's error."""
        if isinstance(self.step, FailStep):
            message = self.error["message"]
        else:
            name = f" ({self.step.name})" if self.step.name else ""
            message = f"step {self.step.id!r}{name} failed: {self.error['message']}"
        return ApplicationError(
            message,
            {"step": self.step.id, "error": self.error},
            type=self.error.get("type") or "StepFailed",
            non_retryable=True,
        )


@dataclass(frozen=True)
class Frame:
    """Where a step runs: the template context and, in a foreach, the instance suffix."""

    context: dict[str, Any]
    suffix: str = ""


@dataclass(frozen=True)
class Outcome:
    """How one run of a step ended, reported to its scope."""

    finish: Finish
    output: Any = None
    error: dict[str, Any] | None = None
    chosen: tuple[str, ...] = ()
    culprit: Step | None = None
    """The innermost step that failed (a nested step, for a parallel or foreach)."""


def step_summary(step: Step, frame: Frame) -> str:
    return f"{step.id}{frame.suffix}: {step.display_name}"


def temporal_retry(policy: RetryPolicy) -> TemporalRetryPolicy:
    return TemporalRetryPolicy(
        initial_interval=policy.initial_interval or timedelta(seconds=1),
        backoff_coefficient=policy.backoff_coefficient or 2.0,
        maximum_interval=policy.maximum_interval,
        maximum_attempts=policy.maximum_attempts or 0,
        non_retryable_error_types=policy.non_retryable_error_types,
    )


def describe_failure(exc: BaseException) -> dict[str, Any]:
    """The innermost cause of an activity or child failure, as the step's error."""
    cause: BaseException = exc
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return {"type": cause.type or "ApplicationError", "message": cause.message}
    if isinstance(cause, TimeoutError):
        return {
            "type": "Timeout",
            "message": f"timed out ({cause.type.name if cause.type else 'unknown'})",
        }
    if isinstance(cause, FailureError):
        return {"type": type(cause).__name__, "message": cause.message}
    return {"type": type(cause).__name__, "message": str(cause)}
