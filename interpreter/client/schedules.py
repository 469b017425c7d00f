"""Schedules from a definition's triggers: the library behind `tdsl deploy` and `tdsl schedules`.

Each `schedule` trigger of a definition becomes one Temporal Schedule with the
stable id ``tdsl-<name>-<index>`` (*index*: the trigger's position in `triggers`).
Its action starts `DslWorkflow` exactly as `tdsl run` would: the definition
validated and pinned into a `RunInput` at deploy time, the trigger's `input` checked
against the definition's input schema with its defaults applied, search attributes
`DslName`/`DslVersion`, the memo with the content hash, and the workflow id prefix
``<name>-scheduled`` (Temporal appends the scheduled time). Deploying again updates
the schedules in place (a paused one stays paused) and deletes those of the same
definition whose trigger is gone. Only schedules we created are touched: they carry
the memo key ``tdsl_schedule`` naming their definition and trigger, and the
`DslName`/`DslVersion` search attributes. Schedule listing is eventually consistent,
so a schedule created a moment ago may be missing from `list_schedules` (and escape
removal) for a second or so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleListDescription,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from dsl.catalog import Catalog
from dsl.durations import format_duration
from dsl.errors import DefinitionError, DslError, InputError, ServiceError
from dsl.inputs import prepare_input
from dsl.models import ScheduleTrigger
from dsl.validate import ValidatedDefinition, validate_file
from interpreter.client.submit import (
    hint_missing_search_attributes,
    missing_search_attributes,
    prepare_run,
    run_start,
    store_definitions,
)
from interpreter.contract import DSL_NAME, DSL_VERSION, RunInput

__all__ = [
    "SCHEDULE_MEMO",
    "DeployChange",
    "DeployPlan",
    "PlannedSchedule",
    "deploy",
    "list_schedules",
    "plan_deploy",
    "schedule_id",
    "spec_text",
]


SCHEDULE_MEMO = "tdsl_schedule"
"""Memo key of the schedules we manage: ``{"definition": name, "trigger": index}``."""

_ID_PREFIX = "tdsl-"


def schedule_id(name: str, index: int) -> str:
    """The stable id of trigger *index* of definition *name*."""
    return f"{_ID_PREFIX}{name}-{index}"


# --------------------------------------------------------------------------- deploy


@dataclass(frozen=True)
class PlannedSchedule:
    """One `schedule` trigger, ready to become a Temporal Schedule."""

    id: str
    index: int
    trigger: ScheduleTrigger
    run_input: RunInput

    @property
    def spec(self) -> ScheduleSpec:
        schedule = self.trigger.schedule
        if schedule.cron is not None:
            return ScheduleSpec(cron_expressions=[schedule.cron])
        assert schedule.interval is not None  # the model requires exactly one
        return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=schedule.interval)])

    @property
    def spec_text(self) -> str:
        schedule = self.trigger.schedule
        if schedule.cron is not None:
            return f"cron {schedule.cron}"
        assert schedule.interval is not None
        return f"every {format_duration(schedule.interval)}"


@dataclass(frozen=True)
class DeployPlan:
    """What `deploy` makes of a definition file: its schedules, checked and pinned."""

    checked: ValidatedDefinition
    schedules: list[PlannedSchedule]

    @property
    def name(self) -> str:
        return self.checked.definition.name

    @property
    def version(self) -> str:
        return self.checked.definition.version


@dataclass(frozen=True)
class DeployChange:
    """One line of `tdsl deploy`'s report."""

    action: Literal["created", "updated", "removed"]
    schedule_id: str
    detail: str

    def __str__(self) -> str:
        return f"{self.action} {self.schedule_id}: {self.detail}"


def plan_deploy(
    file: str | Path,
    *,
    definitions: Sequence[str | Path] = (),
    catalog: Catalog | None = None,
    activities: Iterable[str] | None = None,
) -> DeployPlan:
    """Validate *file* and pin one `RunInput` per `schedule` trigger; nothing is contacted.

    A trigger `input` the definition's input schema refuses is a `DefinitionError`
    pointing at that trigger, like every other mistake in the file.
    """
    names = set(activities) if activities is not None else None
    checked = validate_file(file, definitions=definitions, catalog=catalog, activities=names)
    definition = checked.definition
    triggers = [
        (index, trigger)
        for index, trigger in enumerate(definition.triggers)
        if isinstance(trigger, ScheduleTrigger)
    ]
    inputs: dict[int, Any] = {}
    problems = []
    for index, trigger in triggers:
        try:
            inputs[index] = prepare_input(definition.input, trigger.input)
        except InputError as err:
            message = f"trigger {index}: {err}"
            problems.append(checked.document.source.error(("triggers", index, "input"), message))
    if problems:
        raise DefinitionError(problems)
    if not triggers:
        return DeployPlan(checked=checked, schedules=[])
    # One bundle for every trigger: the definition and its subworkflows, pinned.
    pinned, _ = prepare_run(
        file,
        input_value=inputs[triggers[0][0]],
        definitions=definitions,
        catalog=catalog,
        activities=names,
    )
    schedules = [
        PlannedSchedule(
            id=schedule_id(definition.name, index),
            index=index,
            trigger=trigger,
            run_input=replace(pinned, input=inputs[index]),
        )
        for index, trigger in triggers
    ]
    return DeployPlan(checked=checked, schedules=schedules)


def _schedule(
    planned: PlannedSchedule, task_queue: str, *, stored: bool, searchable: bool
) -> Schedule:
    """The schedule of one trigger: it starts the definition by its workflow type."""
    name = str(planned.run_input.definition["name"])
    start = run_start(planned.run_input, stored=stored, searchable=searchable)
    action = ScheduleActionStartWorkflow(
        start.workflow_type,
        args=start.args,
        id=f"{name}-scheduled",
        task_queue=task_queue,
        memo=start.memo,
        typed_search_attributes=start.search_attributes or TypedSearchAttributes.empty,
        static_summary=start.static_summary,
        static_details=start.static_details,
    )
    return Schedule(action=action, spec=planned.spec)


def _search_attributes(plan: DeployPlan, searchable: bool) -> TypedSearchAttributes | None:
    if not searchable:
        return None
    return TypedSearchAttributes(
        [SearchAttributePair(DSL_NAME, plan.name), SearchAttributePair(DSL_VERSION, plan.version)]
    )


async def _ours(entry: ScheduleListDescription) -> dict[str, Any] | None:
    """The memo that marks a schedule as managed by `tdsl deploy`, else None."""
    if not entry.id.startswith(_ID_PREFIX):
        return None
    try:
        tag = await entry.memo_value(SCHEDULE_MEMO, None)
    except Exception:  # a memo we cannot decode is not ours
        return None
    if not isinstance(tag, dict) or not isinstance(tag.get("definition"), str):
        return None
    if not isinstance(tag.get("trigger"), int):
        return None
    return tag


def _schedule_error(
    plan: DeployPlan, planned: PlannedSchedule, client: Client, err: RPCError
) -> DslError:
    if err.status == RPCStatusCode.INVALID_ARGUMENT:
        key = "cron" if planned.trigger.schedule.cron is not None else "interval"
        path = ("triggers", planned.index, "schedule", key)
        message = f"trigger {planned.index}: Temporal refused the schedule: {err.message}"
        return DefinitionError([plan.checked.document.source.error(path, message)])
    return ServiceError(f"cannot deploy schedule {planned.id!r}: {err.message}")


async def _create_or_update(
    client: Client, plan: DeployPlan, planned: PlannedSchedule, task_queue: str, stored: bool
) -> DeployChange:
    """Create or update one schedule; where the namespace lacks the search attributes,
    without them (stderr says once how to add them)."""
    try:
        return await _deploy_one(client, plan, planned, task_queue, stored, searchable=True)
    except RPCError as err:
        if not missing_search_attributes(err):
            raise _schedule_error(plan, planned, client, err) from None
        hint_missing_search_attributes(client.namespace)
    try:
        return await _deploy_one(client, plan, planned, task_queue, stored, searchable=False)
    except RPCError as err:
        raise _schedule_error(plan, planned, client, err) from None


async def _deploy_one(
    client: Client,
    plan: DeployPlan,
    planned: PlannedSchedule,
    task_queue: str,
    stored: bool,
    *,
    searchable: bool,
) -> DeployChange:
    schedule = _schedule(planned, task_queue, stored=stored, searchable=searchable)
    attributes = _search_attributes(plan, searchable)
    detail = f"{planned.spec_text} -> {plan.name} {plan.version} on task queue {task_queue!r}"
    try:
        await client.create_schedule(
            planned.id,
            schedule,
            memo={SCHEDULE_MEMO: {"definition": plan.name, "trigger": planned.index}},
            search_attributes=attributes,
        )
        return DeployChange("created", planned.id, detail)
    except ScheduleAlreadyRunningError:
        pass

    foreign: list[str] = []

    async def updater(current: ScheduleUpdateInput) -> ScheduleUpdate | None:
        tag = await current.description.memo_value(SCHEDULE_MEMO, None)
        if not isinstance(tag, dict) or tag.get("definition") != plan.name:
            foreign.append(planned.id)
            return None
        # Keep what an operator set on the schedule: paused or not, and the note.
        kept = replace(schedule, state=current.description.schedule.state)
        return ScheduleUpdate(schedule=kept, search_attributes=attributes)

    await client.get_schedule_handle(planned.id).update(updater)
    if foreign:
        raise ServiceError(
            f"schedule {planned.id!r} exists but was not created by `tdsl deploy` "
            f"for {plan.name!r}; delete or rename it first"
        )
    return DeployChange("updated", planned.id, detail)


async def deploy(client: Client, plan: DeployPlan, *, task_queue: str) -> list[DeployChange]:
    """Create or update the plan's schedules, then delete the stale ones of its definition.

    Returns one change per schedule touched: created and updated in trigger order,
    then removed.
    """
    stored = bool(plan.schedules) and await store_definitions(client, plan.schedules[0].run_input)
    changes = [
        await _create_or_update(client, plan, planned, task_queue, stored)
        for planned in plan.schedules
    ]
    wanted = {planned.id for planned in plan.schedules}
    prefix = schedule_id(plan.name, 0)[:-1]
    try:
        async for entry in await client.list_schedules():
            if entry.id in wanted or not entry.id.startswith(prefix):
                continue
            tag = await _ours(entry)
            if tag is None or tag["definition"] != plan.name:
                continue  # another definition's (`a` vs `a-b`), or not ours at all
            try:
                await client.get_schedule_handle(entry.id).delete()
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    continue  # already gone: that is what we wanted
                raise ServiceError(f"cannot remove schedule {entry.id!r}: {err.message}") from None
            detail = f"trigger {tag['trigger']} is no longer in the file"
            changes.append(DeployChange("removed", entry.id, detail))
    except RPCError as err:
        raise ServiceError(f"cannot list schedules: {err.message}") from None
    return changes


# --------------------------------------------------------------------------- list


def _field(ranges: Sequence[ScheduleRange], low: int, high: int) -> str:
    if not ranges:
        return "*"
    parts = []
    for item in ranges:
        step = f"/{item.step}" if item.step > 1 else ""
        if item.start == low and item.end >= high:
            parts.append(f"*{step}")
        elif item.start == item.end:
            parts.append(str(item.start))
        else:
            parts.append(f"{item.start}-{item.end}{step}")
    return ",".join(parts)


def _calendar_cron(calendar: ScheduleCalendarSpec) -> str:
    """A calendar as the cron string it came from (Temporal stores crons as calendars)."""
    fields = [
        _field(calendar.minute, 0, 59),
        _field(calendar.hour, 0, 23),
        _field(calendar.day_of_month, 1, 31),
        _field(calendar.month, 1, 12),
        _field(calendar.day_of_week, 0, 6),
    ]
    second = _field(calendar.second, 0, 59)
    year = _field(calendar.year, 0, 0) if calendar.year else None
    if second != "0":  # 7 fields: second first, year last
        return " ".join([second, *fields, year or "*"])
    return " ".join([*fields, year] if year else fields)


def spec_text(spec: ScheduleSpec) -> dict[str, str]:
    """A schedule's times the way a definition writes them: ``{"cron": …}`` or ``{"interval": …}``."""
    if spec.calendars:
        cron = "; ".join(_calendar_cron(calendar) for calendar in spec.calendars)
        if spec.time_zone_name:
            cron = f"CRON_TZ={spec.time_zone_name} {cron}"
        return {"cron": cron}
    if spec.cron_expressions:
        return {"cron": "; ".join(spec.cron_expressions)}
    if spec.intervals:
        return {"interval": ", ".join(format_duration(i.every) for i in spec.intervals)}
    return {}


async def list_schedules(client: Client, *, definition: str | None = None) -> list[dict[str, Any]]:
    """The schedules `tdsl deploy` manages, sorted by id; only *definition*'s if given.

    Each is ``{"id", "definition", "version", "trigger", "spec", "next_run", "paused"}``
    with `spec` ``{"cron": …}`` or ``{"interval": …}`` and `next_run` an ISO 8601
    timestamp (None when paused or finished).
    """
    found: list[dict[str, Any]] = []
    try:
        async for entry in await client.list_schedules():
            tag = await _ours(entry)
            if tag is None or (definition is not None and tag["definition"] != definition):
                continue
            schedule, info = entry.schedule, entry.info
            paused = bool(schedule.state.paused) if schedule is not None else False
            next_times = list(info.next_action_times) if info is not None else []
            found.append(
                {
                    "id": entry.id,
                    "definition": entry.typed_search_attributes.get(DSL_NAME) or tag["definition"],
                    "version": entry.typed_search_attributes.get(DSL_VERSION),
                    "trigger": tag["trigger"],
                    "spec": spec_text(schedule.spec) if schedule is not None else {},
                    "next_run": next_times[0].isoformat(timespec="seconds")
                    if next_times and not paused
                    else None,
                    "paused": paused,
                }
            )
    except RPCError as err:
        raise ServiceError(f"cannot list schedules: {err.message}") from None
    return sorted(found, key=lambda item: (item["definition"], item["trigger"], item["id"]))
