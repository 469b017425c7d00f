"""The built-in policy library: named step defaults a definition opts into.

The seed format names policies (``policies: [default-retry-policy]``); each sets
step defaults that the definition's own ``defaults`` and each step still override.
"""

from __future__ import annotations

from datetime import timedelta

from dsl.models import RetryPolicy, StepDefaults

__all__ = ["POLICIES"]

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
