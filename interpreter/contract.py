"""What the interpreter workflow and its clients agree on: names, input, status shapes.

Kept apart from the workflow so that the client, the CLI and the worker can import
it without pulling workflow code in, and so that a change here is visibly a change
of the wire contract (old histories must still replay).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from temporalio.common import SearchAttributeKey

from dsl.statuses import (
    ENDED_STEP_STATUSES,
    FINAL_RUN_STATUSES,
    RUN_STATUSES,
    STEP_STATUSES,
    FinalRunStatus,
    RunStatus,
    StepStatus,
)

__all__ = [
    "ALL_SEARCH_ATTRIBUTES",
    "BREAK_ACTIVITY",
    "CANCEL_RUN_ACTIVITY",
    "CANCEL_SIGNAL",
    "CANCEL_STEP_SIGNAL",
    "CONTROL_SIGNALS",
    "DEFINITION_ACTIVITY",
    "DSL_NAME",
    "DSL_TENANT",
    "DSL_VERSION",
    "ENDED_STEP_STATUSES",
    "FINAL_RUN_STATUSES",
    "MEMO_HASH",
    "MEMO_NAME",
    "MEMO_TENANT",
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
    "TENANT_HEADER",
    "TENANT_PATTERN",
    "WORKFLOW_NAME",
    "FinalRunStatus",
    "RunEnvelope",
    "RunInput",
    "RunStatus",
    "StepStatus",
    "definition_type",
    "parse_definition_type",
    "search_attribute_hint",
]

WORKFLOW_NAME = "DslWorkflow"
"""The workflow type of runs whose input carries their definition (`RunInput`): how
every run started before definitions became workflow types. Still registered, so
those runs go on and their histories replay."""

STATUS_QUERY = "status"
OUTPUTS_QUERY = "outputs"
"""Step id → output of every completed step (kept apart: outputs can be large)."""
PAUSE_SIGNAL = "pause"
RESUME_SIGNAL = "resume"
CANCEL_SIGNAL = "cancel"
CANCEL_STEP_SIGNAL = "cancel_step"
"""Payload ``{"step": "<id>"}``: cancel that one running step; the run goes on."""
CONTROL_SIGNALS = (PAUSE_SIGNAL, RESUME_SIGNAL, CANCEL_SIGNAL, CANCEL_STEP_SIGNAL)


DSL_NAME = SearchAttributeKey.for_keyword("DslName")
DSL_VERSION = SearchAttributeKey.for_keyword("DslVersion")
SEARCH_ATTRIBUTES = (DSL_NAME, DSL_VERSION)
"""Set on every run so the Temporal UI can filter by definition and version."""


DSL_TENANT = SearchAttributeKey.for_keyword("DslTenant")
"""Set on runs started for a tenant (`tdsl run --tenant`), where the namespace has it.
Apart from `SEARCH_ATTRIBUTES`: a namespace without it still gets those."""

ALL_SEARCH_ATTRIBUTES = (*SEARCH_ATTRIBUTES, DSL_TENANT)
"""What `tdsl worker` registers, `tdsl dev` starts with and `tdsl doctor` checks."""

TENANT_HEADER = "tdsl-tenant"
"""The header that carries a run's tenant to its activities and child workflows
(`interpreter.tenancy`)."""
MEMO_TENANT = "dsl_tenant"
"""Memo key of a run's tenant: how the run history and the first workflow task learn it."""
TENANT_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
"""A tenant: 1 to 100 letters, digits, `.`, `_`, `-`, starting with a letter or digit."""


def search_attribute_hint(keys: Sequence[SearchAttributeKey[Any]] = SEARCH_ATTRIBUTES) -> str:
    """How to give a namespace the search attributes, once (`temporal` CLI commands)."""
    commands = "; ".join(
        f"temporal operator search-attribute create --name {key.name} --type Keyword"
        for key in keys
    )
    return f"register them once: {commands}"


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
DEFINITION_ACTIVITY = "tdsl.definition"
"""The internal local activity through which a run started by type learns, on its first
workflow task, which definition it runs (`interpreter.library`): recorded in its
history, so that replays and retries use that one whatever changes afterwards."""
BREAK_ACTIVITY = "tdsl.break"
"""The internal no-op local activity a run awaits to end a long workflow task
(`interpreter.runtime.breaks`)."""


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
    subworkflows: dict[str, Any] = field(default_factory=dict)
    """Reachable definitions keyed ``name@version``: the definitions themselves
    (`DslWorkflow`), their content hashes (runs by type)."""
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


def definition_type(name: str, version: str | None = None) -> str:
    """The workflow type of a definition: ``NAME`` (the highest version a worker knows
    at start) or ``NAME@VERSION`` (that one)."""
    return name if version is None else f"{name}@{version}"


def parse_definition_type(workflow_type: str) -> tuple[str, str | None]:
    """(name, pinned version or None) of a workflow type; the name may not hold ``@``."""
    name, at, version = workflow_type.partition("@")
    return name, (version if at else None)


@dataclass
class RunEnvelope:
    """The optional second argument of a run started by type: what its starter pinned.

    A run's first argument is the user's input; Temporal's own clients send nothing
    else. `tdsl`, a parent run and a continuation add this when the run needs more
    than its type and the memo's content hash (`MEMO_HASH`) tell: the subworkflows
    the starter resolved, definitions the workers may not know, whether the namespace
    has the search attributes, and internal state (a foreach batch, a continuation).
    """

    subworkflows: dict[str, str] | None = None
    """``name@version`` → content hash of each subworkflow the run can start."""
    latest: dict[str, str] | None = None
    """For subworkflow steps without a version: name → the version resolved at start."""
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Content hash → normalised definition, for definitions no payload store or
    registry holds (a file only the starter has)."""
    search_attributes: bool | None = None
    """Whether the namespace has `DslName`/`DslVersion`; None: the run asks."""
    batch: dict[str, Any] | None = None
    """Internal, a foreach batch: ``step``, ``items``, ``max_concurrency``, and the
    seed of `RunInput.batch` (``steps``, ``vars``, ``index_offset``, ``tolerant``)."""
    carried: dict[str, Any] | None = None
    """Internal, a continuation: `interpreter.runtime.continuation.Carried` as JSON."""

    def to_json(self) -> dict[str, Any]:
        """Only the fields that are set: what a starter sends is what the UI shows."""
        value = {item.name: getattr(self, item.name) for item in fields(self)}
        return {k: v for k, v in value.items() if v is not None and v != {}}

    @classmethod
    def from_json(cls, value: Any) -> RunEnvelope:
        """The envelope in a run's second argument; unknown keys are ignored (a newer
        starter), a value that is not an object is no envelope."""
        if not isinstance(value, dict):
            return cls()
        known = {item.name for item in fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in known})
