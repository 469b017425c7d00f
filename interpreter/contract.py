"""What the interpreter workflow and its clients agree on: names, input, status shapes.

Kept apart from the workflow so that the client, the CLI and the worker can import
it without pulling workflow code in, and so that a change here is visibly a change
of the wire contract (old histories must still replay).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from temporalio.common import SearchAttributeKey

__all__ = [
    "BREAK_ACTIVITY",
    "CANCEL_RUN_ACTIVITY",
    "CANCEL_SIGNAL",
    "CANCEL_STEP_SIGNAL",
    "CONTROL_SIGNALS",
    "DSL_NAME",
    "DSL_VERSION",
    "MEMO_HASH",
    "MEMO_NAME",
    "MEMO_VERSION",
    "MUTEX_GRANTED_SIGNAL",
    "MUTEX_ID_PREFIX",
    "MUTEX_RELEASE_SIGNAL",
    "MUTEX_REQUEST_ACTIVITY",
    "MUTEX_REQUEST_SIGNAL",
    "MUTEX_WATCH_ACTIVITY",
    "MUTEX_WORKFLOW_NAME",
    "OUTPUTS_QUERY",
    "PAUSE_SIGNAL",
    "RESUME_SIGNAL",
    "RUN_STATUSES",
    "SEARCH_ATTRIBUTES",
    "STATUS_QUERY",
    "STEP_STATUSES",
    "WORKFLOW_NAME",
    "RunInput",
    "StepStatus",
]

WORKFLOW_NAME = "DslWorkflow"
"""The one workflow type that runs every definition."""

STATUS_QUERY = "status"
OUTPUTS_QUERY = "outputs"
"""Step id → output of every completed step (kept apart: outputs can be large)."""
PAUSE_SIGNAL = "pause"
RESUME_SIGNAL = "resume"
CANCEL_SIGNAL = "cancel"
CANCEL_STEP_SIGNAL = "cancel_step"
"""Payload ``{"step": "<id>"}``: cancel that one running step; the run goes on."""
CONTROL_SIGNALS = (PAUSE_SIGNAL, RESUME_SIGNAL, CANCEL_SIGNAL, CANCEL_STEP_SIGNAL)

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

DSL_NAME = SearchAttributeKey.for_keyword("DslName")
DSL_VERSION = SearchAttributeKey.for_keyword("DslVersion")
SEARCH_ATTRIBUTES = (DSL_NAME, DSL_VERSION)
"""Set on every run so the Temporal UI can filter by definition and version."""

CANCEL_RUN_ACTIVITY = "tdsl.cancel_run"
"""The internal activity through which a `cancel` signal becomes a real cancellation."""
MUTEX_WORKFLOW_NAME = "tdsl.mutex"
"""The workflow that holds one mutex name of the namespace (`interpreter.runtime.mutex`),
with the id `MUTEX_ID_PREFIX` + name."""
MUTEX_ID_PREFIX = "tdsl-mutex/"
MUTEX_REQUEST_SIGNAL = "tdsl_mutex_request"
MUTEX_RELEASE_SIGNAL = "tdsl_mutex_release"
MUTEX_GRANTED_SIGNAL = "tdsl_mutex_granted"
"""Sent by the mutex workflow to the run whose request it granted."""
MUTEX_REQUEST_ACTIVITY = "tdsl.mutex.request"
"""Signal-with-start of the mutex workflow on behalf of a run (workflows cannot start
a workflow that is not their child)."""
MUTEX_WATCH_ACTIVITY = "tdsl.mutex.watch"
"""Returns once the holder's run is no longer running: how a terminated holder, which
runs no code, still gives the mutex back."""
BREAK_ACTIVITY = "tdsl.break"
"""The internal no-op local activity a run awaits to end a long workflow task
(`interpreter.runtime.breaks`)."""

RUN_STATUSES = ("RUNNING", "COMPLETED", "FAILED", "CANCELED", "TERMINATED", "TIMED_OUT")
"""A run's status as `tdsl status`, the run history and `tdsl runs --status` spell it."""

MEMO_NAME = "dsl_name"
MEMO_VERSION = "dsl_version"
MEMO_HASH = "dsl_hash"
"""Memo keys of every run: the definition's name, version and content hash."""


@dataclass
class RunInput:
    """The workflow's only argument: a pinned definition bundle and the run input.

    The definition and every subworkflow it can reach are resolved by the client at
    submit time, so editing a YAML file never changes a running or replayed run.
    """

    definition: dict[str, Any]
    """The normalised definition (`Definition.model_dump(mode="json")`)."""
    input: Any = None
    subworkflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Reachable definitions keyed ``name@version``."""
    latest: dict[str, str] = field(default_factory=dict)
    """For subworkflow steps without a version: name → the version resolved at submit."""
    definition_hash: str = ""
    batch: dict[str, Any] | None = None
    """Internal, for a foreach batch run as a child: the parent's ``steps`` and ``vars``
    its body reads, and ``index_offset``, the global index of the batch's first item."""
    carried: dict[str, Any] | None = None
    """Internal, for a run that continued as new: the state of the logical run so far
    (`interpreter.runtime.continuation.Carried`, as JSON)."""

    def to_json(self) -> dict[str, Any]:
        """The fields as a shallow dict, what workflow code passes to Temporal.

        Given the dataclass itself, the data converter goes through
        `dataclasses.asdict`, which deep-copies every value: for a large definition or
        a long run's carried state that took the sandbox past the SDK's 2 s deadlock
        limit. The JSON is the same.
        """
        return {item.name: getattr(self, item.name) for item in fields(self)}
