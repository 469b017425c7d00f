"""The built-in policy library: named step defaults a definition opts into.

The seed format names policies (``policies: [default-retry-policy]``); each sets
step defaults that the definition's own ``defaults`` and each step still override.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dsl.models import Definition, RetryPolicy, StepBase, StepDefaults

__all__ = [
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "POLICIES",
    "StepSettings",
    "base_settings",
    "step_settings",
]

POLICIES: dict[str, StepDefaults] = {
    "default-retry-policy": StepDefaults(
        retry_policy=RetryPolicy(
            maximum_attempts=3,
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(minutes=1),
        )
    ),
    "no-retry": StepDefaults(retry_policy=RetryPolicy(maximum_attempts=1)),
    "aggressive-retry": StepDefaults(
        retry_policy=RetryPolicy(
            maximum_attempts=10,
            initial_interval=timedelta(milliseconds=200),
            backoff_coefficient=1.5,
            maximum_interval=timedelta(seconds=10),
        )
    ),
    "long-running": StepDefaults(
        timeout=timedelta(hours=1), heartbeat_timeout=timedelta(seconds=30)
    ),
}
"""Policy name → the step defaults it sets; later policies in a list win over earlier ones."""


DEFAULT_TIMEOUT = timedelta(minutes=5)
"""Start-to-close timeout of a step that sets none (Temporal needs one)."""

DEFAULT_RETRY = RetryPolicy(
    maximum_attempts=3,
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)
"""Retry of a step that sets none: a few tries, never Temporal's unlimited default,
so a broken step fails the run instead of retrying forever."""


@dataclass(frozen=True)
class StepSettings:
    """What a step runs with after policies, defaults and its own keys are merged."""

    timeout: timedelta
    retry_policy: RetryPolicy
    heartbeat_timeout: timedelta | None
    task_queue: str | None


def base_settings(definition: Definition) -> StepSettings:
    """What a step that sets nothing runs with: engine defaults < policies < definition defaults."""
    layers: list[StepDefaults] = [StepDefaults(timeout=DEFAULT_TIMEOUT, retry_policy=DEFAULT_RETRY)]
    layers += [POLICIES[name] for name in definition.policies if name in POLICIES]
    layers.append(definition.defaults)
    timeout = DEFAULT_TIMEOUT
    retry: dict[str, Any] = {}
    heartbeat: timedelta | None = None
    queue: str | None = None
    for layer in layers:
        timeout = layer.timeout or timeout
        heartbeat = layer.heartbeat_timeout or heartbeat
        queue = layer.task_queue or queue
        if layer.retry_policy is not None:
            retry.update(layer.retry_policy.model_dump(exclude_none=True))
    return StepSettings(
        timeout=timeout,
        retry_policy=RetryPolicy.model_validate(retry),
        heartbeat_timeout=heartbeat,
        task_queue=queue,
    )


def step_settings(
    definition: Definition, step: StepBase, base: StepSettings | None = None
) -> StepSettings:
    """The step's own keys over `base_settings` (pass `base` to compute it once per run)."""
    base = base or base_settings(definition)
    heartbeat = getattr(step, "heartbeat_timeout", None)
    queue = getattr(step, "task_queue", None)
    if step.timeout is None and step.retry_policy is None and heartbeat is None and queue is None:
        return base
    retry = base.retry_policy
    if step.retry_policy is not None:
        retry = retry.model_copy(update=step.retry_policy.model_dump(exclude_none=True))
    return StepSettings(
        timeout=step.timeout or base.timeout,
        retry_policy=retry,
        heartbeat_timeout=heartbeat or base.heartbeat_timeout,
        task_queue=queue or base.task_queue,
    )
