"""What a step ends with, as the interpreter passes it around: frames, outcomes,
failures, and the conversions to and from Temporal's types.

Part of the replay-critical runtime: pure data and pure functions.
"""

from __future__ import annotations

from collections.abc import Callable
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

from dsl.durations import format_duration
from dsl.models import FailStep, RetryPolicy, Step, SubworkflowStep
from interpreter.runtime.scheduler import Finish

__all__ = [
    "Frame",
    "Outcome",
    "RunSucceeded",
    "RunTimedOut",
    "StepFailed",
    "Tally",
    "child_run_timeout",
    "describe_failure",
    "step_summary",
    "temporal_retry",
]


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


class RunTimedOut(Exception):
    """The definition's `timeout` expired before the run finished."""

    def __init__(self, timeout: timedelta) -> None:
        super().__init__(f"the run did not finish within its timeout of {format_duration(timeout)}")
        self.error: dict[str, Any] = {"step": None, "type": "RunTimeout", "message": str(self)}

    def to_application_error(self) -> ApplicationError:
        return ApplicationError(self.error["message"], type="RunTimeout", non_retryable=True)


class RunSucceeded(Exception):
    """A `succeed` step ended the run: it completes at once with *output*, when the
    step gave one, else with the outputs of the completed top-level steps."""

    def __init__(self, step: Step, output: Any, *, has_output: bool) -> None:
        super().__init__(f"step {step.id!r} ended the run")
        self.step = step
        self.output = output
        self.has_output = has_output


@dataclass(frozen=True)
class Frame:
    """Where a step runs: the template context; in a foreach, the instance suffix
    (``[3]``: a status row per item); in a loop, the iteration's tag (``@7``: in
    Temporal ids and summaries only, so a loop keeps one status row per step)."""

    context: dict[str, Any]
    suffix: str = ""
    tag: str = ""
    own_steps: bool = False
    """The context's ``steps`` belong to this frame (a loop iteration's copy), so the
    steps run in it record their state there even inside a foreach item."""

    @property
    def records(self) -> bool:
        """Whether a step that ends in this frame writes ``steps.<id>`` of its context."""
        return not self.suffix or self.own_steps

    def instance(self, step_id: str) -> str:
        """The step's id in Temporal: activity ids, child workflow ids, summaries."""
        return f"{step_id}{self.suffix}{self.tag}"


@dataclass(frozen=True)
class Outcome:
    """How one run of a step ended, reported to its scope."""

    finish: Finish
    output: Any = None
    error: dict[str, Any] | None = None
    chosen: tuple[str, ...] = ()
    culprit: Step | None = None
    """The innermost step that failed (a nested step, for a parallel or foreach)."""
    deferred: bool = False
    """The step never started: the run continues as new first (`finish` is meaningless)."""
    succeeded: RunSucceeded | None = None
    """A `succeed` step inside ended the run: the scope stops and passes it on."""


Tally = Callable[[Any], tuple[int, int, StepFailed | None]]
"""For a join over foreach batches: (items succeeded, items failed, the first failure)
that one batch's output stands for."""


def step_summary(step: Step, frame: Frame) -> str:
    return f"{frame.instance(step.id)}: {step.display_name}"


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


def child_run_timeout(step: SubworkflowStep, key: str, exc: BaseException) -> dict[str, Any] | None:
    """The error of a subworkflow step whose child outlived the step's `timeout`, else None.

    The child's run timeout ends the child TIMED_OUT; the parent sees a child failure
    caused by a timeout, which is only ever that limit.
    """
    if step.timeout is None or not isinstance(exc, ChildWorkflowError):
        return None
    if not isinstance(exc.cause, TimeoutError):
        return None
    return {
        "type": "RunTimeout",
        "message": f"subworkflow {step.workflow!r} (step {key!r}) did not finish "
        f"within its timeout of {format_duration(step.timeout)}",
    }
