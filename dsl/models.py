"""The language as pydantic models: strict, frozen, snake_case with camelCase accepted.

Every model forbids unknown keys (a typo is an error, never silently ignored) and
accepts the camelCase spelling of each key so that the seed format loads unchanged.
Step types are a union discriminated on ``type`` (default ``task``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasGenerator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from dsl.durations import format_duration, parse_duration

__all__ = [
    "DEFAULT_VERSION",
    "STEP_TYPES",
    "ApiTrigger",
    "Compensation",
    "DecisionBranch",
    "DecisionStep",
    "Definition",
    "Duration",
    "FailStep",
    "ForeachStep",
    "JoinCount",
    "LoopStep",
    "ParallelBranch",
    "ParallelStep",
    "RetryPolicy",
    "Schedule",
    "ScheduleTrigger",
    "SetStep",
    "SignalStep",
    "Step",
    "StepDefaults",
    "SubworkflowStep",
    "TaskStep",
    "Trigger",
    "WaitStep",
    "every_step",
]

DEFAULT_VERSION = "1.0.0"
"""The version of a definition that names none."""

MIN_HISTORY_LIMIT = 10
"""Below this a run would spend most of its events on continuing as new."""
MAX_HISTORY_LIMIT = 5_000
"""Above this a run could near 10,240 events: the steps running when the limit is reached
still finish (up to 1,000 activities of about three events each) before it continues."""

EXTRA_SPELLINGS: dict[str, tuple[str, ...]] = {
    "timeout": ("timeoutSeconds", "timeout_seconds"),
    "dependencies": ("dependsOn", "depends_on"),
}
"""Spellings beyond snake_case and camelCase that the seed format uses for a key."""


def spellings(field_name: str) -> tuple[str, ...]:
    """Every key spelling accepted for a field, canonical first (a field named after a
    Python keyword, ``while_``, is spelt without its underscore)."""
    field_name = field_name.removesuffix("_")
    camel = to_camel(field_name)
    names = (field_name, camel) if camel != field_name else (field_name,)
    return names + EXTRA_SPELLINGS.get(field_name, ())


def _validation_alias(field_name: str) -> AliasChoices:
    first, *rest = spellings(field_name)
    return AliasChoices(first, *rest)


class Model(BaseModel):
    """Base of every language model: strict, immutable, both key spellings."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=AliasGenerator(validation_alias=_validation_alias),
        validate_by_name=True,
        validate_by_alias=True,
        loc_by_alias=False,
        serialize_by_alias=False,
    )


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?(ms|s|m|h|d))+\s*$|^P"},
                {"type": "number", "minimum": 0},
            ],
            "description": "250ms, 10s, 5m, 2h, 1d, 1h30m or ISO 8601 (PT10S); a bare number is seconds",
        }
    ),
]
"""A duration; a bare number is seconds (milliseconds in retry intervals, see RetryPolicy)."""


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("a duration here must be longer than 0s, such as 30m or 1h")
    return value


PositiveDuration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    AfterValidator(_positive),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?(ms|s|m|h|d))+\s*$|^P"},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": "A duration longer than zero: 30s, 5m, 1h, 1d, 1h30m or ISO 8601 "
            "(PT1H); a bare number is seconds",
        }
    ),
]
"""A duration longer than zero (a definition's run timeout)."""

STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
MAX_STEP_ID = 128
StepId = Annotated[str, Field(pattern=STEP_ID_PATTERN, max_length=MAX_STEP_ID)]
DefinitionName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=200)]
SemVer = Annotated[
    str,
    Field(
        pattern=r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$",
        description="A semantic version such as 1.2.0",
    ),
]
ActionName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$", max_length=200)]
Condition = Annotated[Any, Field(description="JsonLogic, or {rule: name}")]
JsonData = Annotated[
    Any, Field(description="Any JSON value; strings may hold ${{ path }} templates")
]
PositiveInt = Annotated[int, Field(gt=0)]


def _bare_number_is_milliseconds(value: Any) -> Any:
    """The seed format writes retry intervals as milliseconds (``initialInterval: 1000``).

    On the two fields rather than the model: a validator per policy was a sixth of
    validating a 10,000-step definition.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value}ms"
    return value


IntervalDuration = Annotated[Duration, BeforeValidator(_bare_number_is_milliseconds)]
"""A duration where a bare number is milliseconds (runs before `parse_duration`)."""


class RetryPolicy(Model):
    """How Temporal retries a step; unset fields take Temporal's defaults."""

    initial_interval: IntervalDuration | None = None
    backoff_coefficient: Annotated[float, Field(ge=1.0)] | None = None
    maximum_interval: IntervalDuration | None = None
    maximum_attempts: Annotated[int, Field(ge=0)] | None = None
    non_retryable_error_types: list[str] | None = None


class StepDefaults(Model):
    """Settings every step inherits unless it sets its own."""

    timeout: Duration | None = None
    retry_policy: RetryPolicy | None = None
    heartbeat_timeout: Duration | None = None
    task_queue: str | None = None


class Compensation(Model):
    """The activity that undoes a completed task when the run fails (saga)."""

    action: ActionName
    parameters: dict[str, JsonData] = Field(default_factory=dict)


MAX_MUTEX_NAME = 200
"""The longest mutex name, as written or as its template renders."""


class StepBase(Model):
    """Keys every step type has."""

    id: StepId
    name: str | None = None
    description: str | None = None
    dependencies: list[StepId] = Field(default_factory=list)
    when: Condition = None
    timeout: Duration | None = None
    retry_policy: RetryPolicy | None = None
    continue_on_error: bool = False
    mutex: Annotated[str, Field(min_length=1, max_length=MAX_MUTEX_NAME)] | None = Field(
        default=None,
        description="A name (templates allowed): at most one step holding it runs at a "
        "time across all runs of the namespace; the others wait, first come first served",
    )

    @property
    def display_name(self) -> str:
        return self.name or self.id


class TaskStep(StepBase):
    """Runs one registered activity with the resolved parameters."""

    type: Literal["task"] = "task"
    action: ActionName
    parameters: dict[str, JsonData] = Field(default_factory=dict)
    task_queue: str | None = None
    heartbeat_timeout: Duration | None = None
    schedule_to_close_timeout: Duration | None = None
    local: bool = False
    compensate: Compensation | None = None


class DecisionBranch(Model):
    when: Condition
    next: list[StepId] = Field(min_length=1)


class DecisionStep(StepBase):
    """Chooses which downstream steps run; the other branch targets are skipped."""

    type: Literal["decision"]
    branches: list[DecisionBranch] = Field(min_length=1)
    default: list[StepId] = Field(default_factory=list)
    mode: Literal["first", "all"] = "first"


class JoinCount(Model):
    count: PositiveInt


Join = Literal["all", "any"] | JoinCount


class ParallelBranch(Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")]
    steps: list[Step] = Field(min_length=1)


class ParallelStep(StepBase):
    """Runs nested DAGs concurrently and joins them."""

    type: Literal["parallel"]
    branches: list[ParallelBranch] = Field(min_length=1)
    join: Join = "all"
    max_concurrency: PositiveInt | None = None
    cancel_remaining: bool = Field(
        default=True,
        description="false: once the join is met the step completes, and the branches "
        "still running are left to finish (the run ends after them)",
    )


class SubworkflowStep(StepBase):
    """Runs another definition as a child workflow."""

    type: Literal["subworkflow"]
    workflow: DefinitionName
    version: SemVer | None = None
    input: JsonData = Field(default_factory=dict)
    task_queue: str | None = None
    wait: bool = True


class ForeachStep(StepBase):
    """Runs one instance of `step` per item of a list."""

    type: Literal["foreach"]
    items: JsonData
    step: Step
    max_concurrency: PositiveInt | None = None
    join: Join = "all"
    cancel_remaining: bool = Field(
        default=True,
        description="false: once the join is met the step completes, and the items "
        "still running are left to finish (the run ends after them)",
    )


class WaitStep(StepBase):
    """A durable timer: for a duration, or until a timestamp."""

    type: Literal["wait"]
    duration: Duration | None = None
    until: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> WaitStep:
        if (self.duration is None) == (self.until is None):
            raise ValueError("a wait step needs exactly one of 'duration' or 'until'")
        return self


SignalName = Annotated[str, Field(min_length=1)]


class SignalStep(StepBase):
    """Waits for a named signal, or for the first of several (deferred choice)."""

    type: Literal["signal"]
    signal: SignalName | Annotated[list[SignalName], Field(min_length=1)] = Field(
        description="A name: its payload is the output. A list: the first of them to "
        'arrive wins, and the output is {"signal": name, "payload": payload}'
    )

    @model_validator(mode="after")
    def _names_once(self) -> SignalStep:
        if isinstance(self.signal, list) and len(set(self.signal)) != len(self.signal):
            raise ValueError("each signal name may be listed once")
        return self

    @property
    def names(self) -> list[str]:
        return [self.signal] if isinstance(self.signal, str) else list(self.signal)


MAX_LOOP_ITERATIONS = 1_000_000
"""The highest `max_iterations` of a top-level loop: it continues as new between
iterations, so its history stays bounded; the cap keeps a runaway loop finite."""
MAX_NESTED_LOOP_ITERATIONS = 200
"""The highest `max_iterations` of a loop inside a parallel, foreach, loop or
on_failure: such a loop runs within one run's history (only top-level steps continue
as new), like a foreach's items up to its batch threshold."""


class LoopStep(StepBase):
    """Runs a nested DAG once per iteration, `while` a condition holds or `until` one does."""

    model_config = ConfigDict(serialize_by_alias=True)

    type: Literal["loop"]
    steps: list[Step] = Field(min_length=1)
    until: Condition = Field(
        default=None, description="Checked after each iteration: true ends the loop"
    )
    while_: Condition = Field(
        default=None,
        serialization_alias="while",
        description="Checked before each iteration: false ends the loop",
    )
    max_iterations: Annotated[int, Field(ge=1, le=MAX_LOOP_ITERATIONS)] = Field(
        default=100,
        description="More iterations than this fail the step (LoopLimit); at most "
        f"{MAX_NESTED_LOOP_ITERATIONS} for a loop that is not a top-level step",
    )
    delay: Duration | None = Field(default=None, description="A durable timer between iterations")

    @model_validator(mode="after")
    def _exactly_one(self) -> LoopStep:
        if (self.until is None) == (self.while_ is None):
            raise ValueError("a loop needs exactly one of 'until' or 'while'")
        return self


class SetStep(StepBase):
    """Stores values in ``vars`` without running an activity."""

    type: Literal["set"]
    values: dict[str, JsonData] = Field(min_length=1)


class FailStep(StepBase):
    """Ends the run with an error."""

    type: Literal["fail"]
    message: str
    error_type: str = "WorkflowFailed"


class SucceedStep(StepBase):
    """Ends the run COMPLETED at once: running steps are cancelled, no compensation."""

    type: Literal["succeed"]
    output: JsonData = Field(
        default=None,
        description="The run's output; without it, the outputs of the completed top-level steps",
    )

    @property
    def has_output(self) -> bool:
        """Whether the definition gave `output` (``output: null`` included)."""
        return "output" in self.model_fields_set


STEP_TYPES: dict[str, type[StepBase]] = {
    "task": TaskStep,
    "decision": DecisionStep,
    "parallel": ParallelStep,
    "subworkflow": SubworkflowStep,
    "foreach": ForeachStep,
    "loop": LoopStep,
    "wait": WaitStep,
    "signal": SignalStep,
    "set": SetStep,
    "fail": FailStep,
    "succeed": SucceedStep,
}


def _step_type(value: Any) -> str | None:
    if isinstance(value, dict):
        kind = value.get("type", "task")
        return kind if isinstance(kind, str) else None
    return getattr(value, "type", None)


Step = Annotated[
    Annotated[TaskStep, Tag("task")]
    | Annotated[DecisionStep, Tag("decision")]
    | Annotated[ParallelStep, Tag("parallel")]
    | Annotated[SubworkflowStep, Tag("subworkflow")]
    | Annotated[ForeachStep, Tag("foreach")]
    | Annotated[LoopStep, Tag("loop")]
    | Annotated[WaitStep, Tag("wait")]
    | Annotated[SignalStep, Tag("signal")]
    | Annotated[SetStep, Tag("set")]
    | Annotated[FailStep, Tag("fail")]
    | Annotated[SucceedStep, Tag("succeed")],
    Discriminator(_step_type),
]


class Schedule(Model):
    cron: str | None = None
    interval: Duration | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Schedule:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("a schedule needs exactly one of 'cron' or 'interval'")
        return self


class ScheduleTrigger(Model):
    """Becomes a Temporal Schedule on `tdsl deploy`."""

    type: Literal["schedule"] = "schedule"
    schedule: Schedule
    input: JsonData = Field(default_factory=dict)


class ApiTrigger(Model):
    """The seed format's ``{type: api}``: the run is started by a client."""

    type: Literal["api"]
    condition: dict[str, JsonData] = Field(default_factory=dict)


def _trigger_type(value: Any) -> str | None:
    if isinstance(value, dict):
        kind = value.get("type", "schedule")
        return kind if isinstance(kind, str) else None
    return getattr(value, "type", None)


Trigger = Annotated[
    Annotated[ScheduleTrigger, Tag("schedule")] | Annotated[ApiTrigger, Tag("api")],
    Discriminator(_trigger_type),
]


class Definition(Model):
    """One workflow definition: the document a YAML or JSON file holds."""

    model_config = ConfigDict(title="temporal-dsl workflow definition")

    id: str | None = None
    name: DefinitionName
    version: SemVer = DEFAULT_VERSION
    description: str | None = None
    input: dict[str, Any] | None = Field(default=None, description="JSON Schema of the run input")
    defaults: StepDefaults = Field(default_factory=StepDefaults)
    policies: list[str] = Field(default_factory=list)
    rules: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")], Condition] = Field(
        default_factory=dict
    )
    steps: list[Step] = Field(min_length=1)
    output: JsonData = None
    on_failure: list[Step] = Field(default_factory=list)
    timeout: PositiveDuration | None = Field(
        default=None,
        description="The whole run's limit from its first start; "
        "when it expires the run fails with RunTimeout",
    )
    history_limit: int | None = Field(
        default=None,
        ge=MIN_HISTORY_LIMIT,
        le=MAX_HISTORY_LIMIT,
        description="Continue as new once a run's history has this many events "
        "(the run goes on as one logical run); without it, when Temporal suggests it",
    )
    triggers: list[Trigger] = Field(default_factory=list)


ParallelBranch.model_rebuild()
ForeachStep.model_rebuild()
ParallelStep.model_rebuild()
LoopStep.model_rebuild()
Definition.model_rebuild()


def every_step(definition: Definition) -> Iterator[Step]:
    """Every step of *definition*, nested ones (branches, foreach and loop bodies) and
    on_failure included: a walk of the model, for callers that need no graph."""
    pending: list[Step] = [*reversed(definition.on_failure), *reversed(definition.steps)]
    while pending:
        step = pending.pop()
        yield step
        if isinstance(step, ParallelStep):
            for branch in reversed(step.branches):
                pending.extend(reversed(branch.steps))
        elif isinstance(step, ForeachStep):
            pending.append(step.step)
        elif isinstance(step, LoopStep):
            pending.extend(reversed(step.steps))
