"""Schedule triggers are checked as the Temporal server checks them (`dsl.cron`): every
verdict of the corpus below is asserted here and compared with a real server's."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from temporalio.client import Client, Schedule, ScheduleActionStartWorkflow, ScheduleSpec
from temporalio.service import RPCError

from dsl.cron import cron_problem, interval_problem
from dsl.errors import DefinitionError
from dsl.validate import validate_text

ACCEPTED = [
    "0 * * * *",
    "  0 * * * *  ",
    "*/15 * * * *",
    "5/15 * * * *",
    "*/100 * * * *",
    "*/5,10-20/2,33 * * * *",
    "01 * * * *",
    "+1 * * * *",
    "0 0 * * * *",
    "0 0 * * * 2100",
    "0 0 0 * * * *",
    "0 9 * * MON-FRI",
    "0 0 * * MON-fri",
    "0 9 * jan,feb sun",
    "0 0 * january *",
    "0 0 * JAN-DEC *",
    "0 0 * * sunday",
    "0 0 * * th",
    "0 0 * * thurs",
    "0 0 * * 7",
    "0 0 * * 0-7",
    "0 0 * * 7-7",
    "0 0 1-31/2 * *",
    "0 0 * * 1#2",
    "0 * * * * # nightly",
    "0 * * * * #",
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
    "@every 5m",
    "@every 1s",
    "@every 1.5h",
    "@every 1h30m",
    "@every 1h/5m",
    "CRON_TZ=Europe/Paris 0 9 * * *",
    "TZ=UTC 0 * * * *",
    "TZ=UTC @daily",
]
REFUSED = {
    "61 * * * *": "Minute '61' is not in range [0-59]",
    "0 24 * * *": "Hour '24' is not in range [0-23]",
    "0 0 32 * *": "DayOfMonth '32' is not in range [1-31]",
    "0 0 0 * *": "DayOfMonth '0' is not in range [1-31]",
    "0 0 * 13 *": "Month '13' is not in range [1-12]",
    "0 0 * * 8": "DayOfWeek '8' is not in range [0-7]",
    "60 0 0 * * * *": "Second '60' is not in range [0-59]",
    "0 0 * * * 1999": "Year '1999' is not in range [2000-2100]",
    "0 0 * * * 3000": "Year '3000' is not in range [2000-2100]",
    "0 0 * janxyz *": "Month 'janxyz' is not in range [1-12]",
    "0 0 * ja *": "Month 'ja' is not in range [1-12]",
    "0 0 L * *": "DayOfMonth 'L' is not in range [1-31]",
    "0 0 ? * *": "DayOfMonth '?' is not in range [1-31]",
    "0 0 ** * *": "DayOfMonth '**' is not in range [1-31]",
    "0 0 /2 * *": "DayOfMonth '/2' is not in range [1-31]",
    "a * * * *": "Minute 'a' is not in range [0-59]",
    "1,2,,3 * * * *": "Minute '1,2,,3' is not in range [0-59]",
    "5-3 * * * *": "Minute '5-3' ends before it starts or outside [0-59]",
    "1- * * * *": "Minute '1-' ends before it starts or outside [0-59]",
    "0 0 * * 5-1": "DayOfWeek '5-1' ends before it starts or outside [0-7]",
    "-1 * * * *": "Minute '-1' starts outside [0-59]",
    "1-2-3 * * * *": "Minute '1-2-3' has more than one '-'",
    "1/2/3 * * * *": "Minute '1/2/3' has more than one '/'",
    "*/0 * * * *": "Minute '*/0' has an invalid step '0'",
    "0 0 */ * *": "DayOfMonth '*/' has a '/' without a step",
    "0 0 1/ * *": "DayOfMonth '1/' has a '/' without a step",
    "* * * *": "a cron string has 5 to 7 fields (minute hour day-of-month month day-of-week [year], or second first), not 4",
    "0 0 0 * * * * *": "a cron string has 5 to 7 fields (minute hour day-of-month month day-of-week [year], or second first), not 8",
    "": "a cron string has 5 to 7 fields (minute hour day-of-month month day-of-week [year], or second first), not 0",
    "# 0 * * * *": "a cron string has 5 to 7 fields (minute hour day-of-month month day-of-week [year], or second first), not 0",
    "@bogus": "a cron string has 5 to 7 fields (minute hour day-of-month month day-of-week [year], or second first), not 1",
    "@reboot": "a cron string has 5 to 7 fields (minute hour day-of-month month day-of-week [year], or second first), not 1",
    "@every bogus": "'bogus' is not a duration like 90s, 15m or 1h30m",
    "@every 5": "the duration '5' has no unit (ns, us, ms, s, m or h)",
    "@every 0s": "@every needs an interval of at least 1 s",
    "@every 500ms": "@every needs an interval of at least 1 s",
    "@every 999ms": "@every needs an interval of at least 1 s",
    "@every -5m": "@every needs an interval of at least 1 s",
    "@every 1h/2h": "the @every offset is longer than its interval",
    "TZ=Bad/Zone 0 9 * * *": "unknown time zone 'Bad/Zone'",
    "CRON_TZ=UTC": "the cron string has a time zone but no fields",
}


@pytest.mark.parametrize("cron", ACCEPTED)
def test_accepted(cron: str) -> None:
    assert cron_problem(cron) is None


@pytest.mark.parametrize(("cron", "problem"), REFUSED.items())
def test_refused_with_a_reason(cron: str, problem: str) -> None:
    assert cron_problem(cron) == problem


def test_intervals_of_less_than_a_second_are_refused() -> None:
    assert interval_problem(timedelta(seconds=1)) is None
    assert interval_problem(timedelta(milliseconds=999)) == "a schedule interval is at least 1 s"


def test_validate_points_at_the_bad_schedule() -> None:
    text = (
        "name: nightly\nsteps:\n  - {id: a, action: echo}\ntriggers:\n"
        "  - schedule: {cron: '61 * * * *'}\n"
        "  - schedule: {cron: '0 * * *'}\n"
        "  - schedule: {interval: 100ms}\n"
        "  - schedule: {cron: '@daily'}\n"
    )
    with pytest.raises(DefinitionError) as caught:
        validate_text(text, file="nightly.yaml")
    assert [str(d) for d in caught.value.diagnostics] == [
        "nightly.yaml:5:22: error: Minute '61' is not in range [0-59]",
        "nightly.yaml:6:22: error: a cron string has 5 to 7 fields (minute hour "
        "day-of-month month day-of-week [year], or second first), not 4",
        "nightly.yaml:7:26: error: a schedule interval is at least 1 s",
    ]


@pytest.mark.integration
async def test_every_verdict_matches_the_temporal_server(client: Client) -> None:
    """The same corpus through a real server's schedule spec parser."""
    disagreements = []
    for cron in [*ACCEPTED, *REFUSED]:
        schedule_id = f"cron-probe-{uuid4()}"
        try:
            handle = await client.create_schedule(
                schedule_id,
                Schedule(
                    action=ScheduleActionStartWorkflow("never", id=schedule_id, task_queue="none"),
                    spec=ScheduleSpec(cron_expressions=[cron]),
                ),
            )
        except RPCError as err:
            server = err.message
        else:
            server = None
            await handle.delete()
        ours = cron_problem(cron)
        if (server is None) != (ours is None):
            disagreements.append((cron, server, ours))
    assert disagreements == []
