"""Find activities: the built-in and example ones, plus user modules given to the worker.

A user module is any importable module with module-level `@activity.defn` functions
(`tdsl worker --activities mypkg.acts`). Loading fails with one readable line rather
than an import traceback, and two different functions registered under one name are
refused here instead of by the worker at start-up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from activities import async_tasks, examples
from activities.builtin import BuiltinActivities
from dsl.errors import ConfigurationError, NotFoundError

__all__ = [
    "activity_name",
    "activity_names",
    "default_activities",
    "is_activity",
    "load_activities",
    "merge_activities",
    "with_unknown_action_guard",
]


def is_activity(value: object) -> bool:
    """True for an `@activity.defn` function or bound method (dynamic ones included)."""
    return callable(value) and activity._Definition.from_callable(value) is not None


def activity_name(fn: Callable[..., Any]) -> str | None:
    """The registered name of an activity; None for a dynamic one or a non-activity."""
    defn = activity._Definition.from_callable(fn)
    return defn.name if defn is not None else None


def activity_names(fns: Iterable[Callable[..., Any]]) -> list[str]:
    """Sorted registered names, e.g. to check a definition's `action`s."""
    return sorted({name for fn in fns if (name := activity_name(fn)) is not None})


def merge_activities(*groups: Iterable[Callable[..., Any]]) -> list[Callable[..., Any]]:
    """Concatenate, dropping repeats of the same callable; raise `DslError` when two
    different callables claim one name (the worker would refuse to start)."""
    by_name: dict[str, Callable[..., Any]] = {}
    for group in groups:
        for fn in group:
            if not is_activity(fn):
                raise ConfigurationError(f"{_describe(fn)} is not an @activity.defn function")
            name = activity_name(fn) or "<dynamic>"
            seen = by_name.get(name)
            if seen is None:
                by_name[name] = fn
            elif seen != fn:
                raise ConfigurationError(
                    f"activity name {name!r} is registered twice: "
                    f"{_describe(seen)} and {_describe(fn)}"
                )
    return list(by_name.values())


def load_activities(modules: Sequence[str]) -> list[Callable[..., Any]]:
    """Import each module and collect its `@activity.defn` callables.

    Raises `NotFoundError` when a module cannot be imported or defines none.
    """
    groups: list[list[Callable[..., Any]]] = []
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except Exception as err:  # any error while importing user code
            reason = f"{type(err).__name__}: {err}"
            raise NotFoundError(f"cannot import activity module {module_name!r}: {reason}") from err
        found = [
            value
            for attr, value in sorted(vars(module).items())
            if not attr.startswith("__") and not isinstance(value, type) and is_activity(value)
        ]
        if not found:
            raise NotFoundError(
                f"activity module {module_name!r} defines no @activity.defn functions"
            )
        groups.append(found)
    return merge_activities(*groups)


def default_activities(builtin: BuiltinActivities) -> list[Callable[..., Any]]:
    """What every worker registers: the built-ins and the seed format's examples."""
    return merge_activities(
        builtin.activities(),
        [examples.validate_input, examples.process_data, examples.store_result],
        [async_tasks.human_task],
    )


def _describe(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", "?")
    qualname = getattr(fn, "__qualname__", repr(fn))
    return f"{module}.{qualname}"


def with_unknown_action_guard(fns: Sequence[Callable[..., Any]]) -> list[Callable[..., Any]]:
    """*fns* plus a catch-all that fails an unregistered `action` on its first attempt.

    Without it the SDK answers an unknown activity with a retryable error, so a typo
    in `action` costs the step's whole retry policy before it fails. A task queue's
    workers are expected to register the same activities (Temporal's model); a
    worker with different ones belongs on its own `task_queue`. A user module that
    brings its own dynamic activity keeps it.
    """
    if any(activity_name(fn) is None for fn in fns):
        return list(fns)
    known = activity_names(fns)

    @activity.defn(dynamic=True)
    async def unknown_action(args: Sequence[RawValue]) -> Any:
        info = activity.info()
        shown = ", ".join(name for name in known if not name.startswith("tdsl."))
        raise ApplicationError(
            f"action {info.activity_type!r} is not registered by the workers of task queue "
            f"{info.task_queue!r} (they have: {shown}); add its module with "
            "`tdsl worker --activities MODULE` or fix the name",
            type="NotFound",
            non_retryable=True,
        )

    return [*fns, unknown_action]
