"""The workflow patterns of docs/patterns.md, each run on a real Temporal dev server.

Every pattern the page calls native has a definition in tests/patterns/; the tests
below run it on one shared worker and check what the pattern claims (which steps
ran, were skipped or cancelled, in which order, with which outputs), not just that
the run ended.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle

from dsl.validate import validate_file
from interpreter.client.control import cancel_run
from tests.support.runs import interpreter_worker, start, wait_for_step

ROOT = Path(__file__).resolve().parents[1]
PATTERNS = ROOT / "tests" / "patterns"
PAGE = ROOT / "docs" / "patterns.md"

RESULT_TIMEOUT = 30.0
"""No pattern's run takes more than a few seconds: a hang fails instead of waiting."""

Handle = WorkflowHandle[Any, Any]


def fixture(name: str) -> Callable[[Any], Any]:
    """Marks a test that runs the fixture *name* (an integration test)."""
    assert (PATTERNS / name).is_file(), name

    def mark(test: Any) -> Any:
        return pytest.mark.integration(test)

    return mark


def fixture_files() -> list[Path]:
    return sorted(p for p in PATTERNS.iterdir() if p.suffix in (".yaml", ".yml", ".json"))


# ---------------------------------------------------------------------------------------
# Static checks: the fixtures validate, and the page agrees with them.


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: p.name)
def test_every_fixture_validates(path: Path) -> None:
    from activities.builtin import BuiltinActivities
    from activities.registry import activity_names, default_activities

    names = set(activity_names(default_activities(BuiltinActivities())))
    checked = validate_file(path, activities=names)
    assert checked.definition.name == path.stem


_ROW = re.compile(r"^\|\s*WCP-(\d+)\s*\|(.*)\|\s*$")
_LINK = re.compile(r"\]\(\.\./tests/patterns/([^)#\s]+)\)")
_COUNT = re.compile(
    r"^\*\*(\d+) native, (\d+) by a workaround, (\d+) not expressible\*\*", re.MULTILINE
)
CLASSES = ("native", "by a workaround", "not expressible")


def _page_rows() -> dict[int, tuple[str, list[str]]]:
    """Pattern number → (classification, fixture files linked in its row)."""
    rows: dict[int, tuple[str, list[str]]] = {}
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match is None:
            continue
        number = int(match.group(1))
        cells = [cell.strip() for cell in match.group(2).split("|")]
        kind = cells[1].strip("*").strip()
        assert number not in rows, f"WCP-{number} has two rows"
        rows[number] = (kind, _LINK.findall(line))
    return rows


def test_the_page_classifies_each_of_the_43_patterns_once() -> None:
    rows = _page_rows()
    assert sorted(rows) == list(range(1, 44))
    unknown = {n: kind for n, (kind, _) in rows.items() if kind not in CLASSES}
    assert unknown == {}


def test_the_count_line_matches_the_table() -> None:
    match = _COUNT.search(PAGE.read_text(encoding="utf-8"))
    assert match is not None, "no '**N native, M by a workaround, K not expressible**' line"
    counted = tuple(int(n) for n in match.groups())
    kinds = [kind for kind, _ in _page_rows().values()]
    assert counted == tuple(kinds.count(kind) for kind in CLASSES)


def test_every_native_row_links_a_fixture_and_every_fixture_is_linked() -> None:
    rows = _page_rows()
    existing = {p.name for p in fixture_files()}
    unlinked_native = [n for n, (kind, links) in rows.items() if kind == "native" and not links]
    assert unlinked_native == []
    linked = {name for _, links in rows.values() for name in links}
    assert linked - existing == set(), "links to fixtures that do not exist"
    assert existing - linked == set(), "fixtures the page does not link"
    # A native row's first link is the pattern's own definition, named after it.
    for number, (kind, links) in rows.items():
        if kind == "native":
            assert links[0].startswith(f"wcp{number:02d}-"), (number, links)


# ---------------------------------------------------------------------------------------
# Running the patterns: one worker for the whole module.


@pytest.fixture(scope="module")
async def queue(client: Client) -> AsyncIterator[str]:
    """A worker for the interpreter and the shipped activities, shared by every test."""
    task_queue = f"tq-patterns-{uuid4()}"
    async with interpreter_worker(client, task_queue):
        yield task_queue


Run = Callable[..., Awaitable[Handle]]


@pytest.fixture
def run(client: Client, queue: str) -> Run:
    """Start a fixture by file name; subworkflows resolve among the fixtures."""

    async def starting(name: str, input: Any = None) -> Handle:
        return await start(client, queue, PATTERNS / name, input, directory=PATTERNS)

    return starting


async def result(handle: Handle) -> Any:
    async with asyncio.timeout(RESULT_TIMEOUT):
        return await handle.result()


async def steps(handle: Handle) -> dict[str, dict[str, Any]]:
    """Step id → its state (status, attempts, started_at, ended_at, error)."""
    answer = await handle.query("status")
    return dict(answer["steps"])


async def statuses(handle: Handle) -> dict[str, str]:
    return {step_id: state["status"] for step_id, state in (await steps(handle)).items()}


async def wait_until(
    handle: Handle, check: Callable[[dict[str, str]], bool], timeout: float = RESULT_TIMEOUT
) -> dict[str, str]:
    """Poll the status query until *check* holds for the step statuses; returns them."""
    async with asyncio.timeout(timeout):
        while True:
            now = await statuses(handle)
            if check(now):
                return now
            await asyncio.sleep(0.05)


async def all_running(handle: Handle, *step_ids: str) -> dict[str, str]:
    """Wait until every one of *step_ids* is running at the same moment."""
    return await wait_until(handle, lambda s: all(s.get(i) == "running" for i in step_ids))


async def run_status(handle: Handle) -> WorkflowExecutionStatus | None:
    return (await handle.describe()).status


def interval(state: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(state["started_at"]), datetime.fromisoformat(state["ended_at"])


def assert_one_at_a_time(states: dict[str, dict[str, Any]], step_ids: list[str]) -> list[str]:
    """No two of *step_ids* ran at the same time; returns them in the order they ran."""
    spans = sorted((interval(states[i]), i) for i in step_ids)
    for ((_, end), first), ((begin, _), second) in itertools.pairwise(spans):
        assert end <= begin, f"{first} and {second} overlapped"
    return [step_id for _, step_id in spans]


# ---------------------------------------------------------------------------------------
# Basic control flow


@fixture("wcp01-sequence.yaml")
async def test_wcp01_sequence(run: Run) -> None:
    handle = await run("wcp01-sequence.yaml")
    assert await result(handle) == {"ship": {"after": {"after": {"packed": True}}}}
    states = await steps(handle)
    assert interval(states["pack"])[1] <= interval(states["label"])[0]
    assert interval(states["label"])[1] <= interval(states["ship"])[0]


@fixture("wcp02-parallel-split.yaml")
async def test_wcp02_parallel_split(run: Run) -> None:
    """All three branches are running at once (each waits for its own signal), and
    they complete in whatever order their signals come."""
    handle = await run("wcp02-parallel-split.yaml")
    seen = await all_running(handle, "pick", "invoice", "notify")
    assert seen["split"] == "completed"
    for name in ("notified", "invoiced", "picked"):
        await handle.signal(name, name)
    done = await result(handle)
    assert (done["pick"], done["invoice"], done["notify"]) == ("picked", "invoiced", "notified")
    states = await steps(handle)
    assert interval(states["notify"])[1] <= interval(states["pick"])[1]


@fixture("wcp03-synchronization.yaml")
async def test_wcp03_synchronization(run: Run) -> None:
    handle = await run("wcp03-synchronization.yaml")
    await all_running(handle, "pick", "payment")
    await handle.signal("picked", {"boxes": 2})
    await wait_for_step(handle, "pick", "completed")
    assert (await statuses(handle))["ship"] == "pending"
    await handle.signal("paid", {"amount": 12})
    done = await result(handle)
    assert done["ship"] == {"pick": {"boxes": 2}, "payment": {"amount": 12}}
    states = await steps(handle)
    assert interval(states["payment"])[1] <= interval(states["ship"])[0]


@fixture("wcp04-exclusive-choice.yaml")
@pytest.mark.parametrize(("total", "chosen"), [(500, "freight"), (50, "courier"), (5, "parcel")])
async def test_wcp04_exclusive_choice(run: Run, total: int, chosen: str) -> None:
    """Exactly one branch runs; for 500 both conditions hold and only the first runs."""
    handle = await run("wcp04-exclusive-choice.yaml", {"total": total})
    done = await result(handle)
    assert done == {"route": {"chosen": [chosen]}, chosen: {"carrier": chosen}}
    expected = {c: "skipped" for c in ("freight", "courier", "parcel")}
    expected |= {"route": "completed", chosen: "completed"}
    assert await statuses(handle) == expected


@fixture("wcp05-simple-merge.yaml")
@pytest.mark.parametrize(("method", "other"), [("card", "invoice"), ("invoice", "card")])
async def test_wcp05_simple_merge(run: Run, method: str, other: str) -> None:
    handle = await run("wcp05-simple-merge.yaml", {"method": method})
    done = await result(handle)
    assert done["receipt"] == {"chosen": [method], method: "completed", other: "skipped"}
    now = await steps(handle)
    assert now["receipt"]["attempts"] == 1
    assert (now[method]["status"], now[other]["status"]) == ("completed", "skipped")


# ---------------------------------------------------------------------------------------
# Advanced branching and synchronization


@fixture("wcp06-multi-choice.yaml")
async def test_wcp06_multi_choice(run: Run) -> None:
    handle = await run("wcp06-multi-choice.yaml", {"email": True, "post": True})
    done = await result(handle)
    assert done == {
        "channels": {"chosen": ["email", "post"]},
        "email": {"sent": "email"},
        "post": {"sent": "post"},
    }
    assert (await statuses(handle))["sms"] == "skipped"


@fixture("wcp07-structured-synchronizing-merge.yaml")
async def test_wcp07_structured_synchronizing_merge(run: Run) -> None:
    """The merge waits for both chosen branches and not for the unchosen one."""
    handle = await run("wcp07-structured-synchronizing-merge.yaml", {"credit": True, "fraud": True})
    seen = await all_running(handle, "credit", "fraud")
    assert seen["stock"] == "skipped"
    await handle.signal("credit_ok")
    await wait_for_step(handle, "credit", "completed")
    assert (await statuses(handle))["close"] == "pending"
    await handle.signal("fraud_ok")
    done = await result(handle)
    assert done["close"] == {"credit": "completed", "fraud": "completed", "stock": "skipped"}


@fixture("wcp09-structured-discriminator.yaml")
async def test_wcp09_structured_discriminator(run: Run) -> None:
    """The continuation runs after the first branch, while the other still runs; the
    run waits for that one, which does not start the continuation again."""
    handle = await run("wcp09-structured-discriminator.yaml")
    await wait_for_step(handle, "act", "completed")
    now = await statuses(handle)
    assert (now["checks"], now["registry_answer"]) == ("completed", "running")
    assert await run_status(handle) == WorkflowExecutionStatus.RUNNING
    await handle.signal("registry")
    done = await result(handle)
    first = {"fast": {"cache": {"source": "cache"}}}
    assert done["act"] == {"first": first}
    states = await steps(handle)
    assert states["registry"]["status"] == "completed"
    assert states["act"]["attempts"] == 1
    assert interval(states["act"])[1] <= interval(states["registry"])[1]


@fixture("wcp11-implicit-termination.yaml")
async def test_wcp11_implicit_termination(run: Run) -> None:
    """No end step: the run is still running while one branch waits, and ends once
    nothing is left, with every step completed or skipped (nothing cut short)."""
    handle = await run("wcp11-implicit-termination.yaml")
    await wait_until(
        handle, lambda s: s.get("after_never") == "skipped" and s.get("long_wait") == "running"
    )
    assert await run_status(handle) == WorkflowExecutionStatus.RUNNING
    await handle.signal("finish")
    done = await result(handle)
    assert done["long"] == {"branch": "long"}
    assert await statuses(handle) == {
        "short": "completed",
        "route": "completed",
        "never": "skipped",
        "after_never": "skipped",
        "long_wait": "completed",
        "long": "completed",
    }


@fixture("wcp08-multi-merge.yaml")
async def test_wcp08_multi_merge_by_a_workaround(client: Client, run: Run) -> None:
    """The continuation runs once per arriving branch, the first while the other
    branch is still waiting."""
    handle = await run("wcp08-multi-merge.yaml")
    await all_running(handle, "card", "voucher")
    await handle.signal("card_paid", "card-12")
    now = await wait_until(handle, lambda s: s.get("audit_card") == "completed")
    assert (now["voucher"], now["audit_voucher"]) == ("running", "pending")
    await handle.signal("voucher_paid", "voucher-5")
    done = await result(handle)
    assert done["payments"] == {
        "card": {"card": "card-12", "audit_card": {"audited": "card-12"}},
        "voucher": {"voucher": "voucher-5", "audit_voucher": {"audited": "voucher-5"}},
    }
    for step_id in ("audit_card", "audit_voucher"):
        child = client.get_workflow_handle(f"{handle.id}/{step_id}")
        assert await run_status(child) == WorkflowExecutionStatus.COMPLETED


# ---------------------------------------------------------------------------------------
# Multiple instance patterns


@fixture("wcp12-mi-without-synchronization.yaml")
async def test_wcp12_mi_without_synchronization(client: Client, run: Run) -> None:
    """The parent completes while its instances still run; they finish on their own."""
    handle = await run("wcp12-mi-without-synchronization.yaml", {"customers": ["ann", "bob"]})
    done = await result(handle)
    started = done["after"]["started"]
    assert [s["workflow_id"] for s in started] == [
        f"{handle.id}/reminder[0]",
        f"{handle.id}/reminder[1]",
    ]
    children = [client.get_workflow_handle(s["workflow_id"]) for s in started]
    for child in children:
        assert await run_status(child) == WorkflowExecutionStatus.RUNNING
    for child in children:
        await child.signal("finish")
    outputs = [await result(child) for child in children]
    assert [o["remind"] for o in outputs] == [{"reminded": "ann"}, {"reminded": "bob"}]


@fixture("wcp13-mi-design-time.yaml")
async def test_wcp13_mi_design_time(run: Run) -> None:
    """Three instances run at once; the next step waits for all three."""
    handle = await run("wcp13-mi-design-time.yaml")
    await all_running(handle, "review[0]", "review[1]", "review[2]")
    await handle.signal("reviewed", "yes")
    await handle.signal("reviewed", "no")
    await wait_until(
        handle, lambda s: [s[f"review[{i}]"] for i in range(3)].count("completed") == 2
    )
    assert (await statuses(handle))["decide"] == "pending"
    await handle.signal("reviewed", "maybe")
    done = await result(handle)
    assert sorted(done["decide"]["reviews"]) == ["maybe", "no", "yes"]


@fixture("wcp14-mi-run-time.yaml")
@pytest.mark.parametrize("lines", [["x", "y"], [1, 2, 3, 4, 5]])
async def test_wcp14_mi_run_time(run: Run, lines: list[Any]) -> None:
    handle = await run("wcp14-mi-run-time.yaml", {"lines": lines})
    done = await result(handle)
    assert done["total"]["checked"] == [{"line": v, "position": i} for i, v in enumerate(lines)]
    instances = {k for k in await statuses(handle) if k.startswith("check_line[")}
    assert instances == {f"check_line[{i}]" for i in range(len(lines))}


# ---------------------------------------------------------------------------------------
# State-based patterns


@fixture("wcp16-deferred-choice.yaml")
@pytest.mark.parametrize(("first", "second"), [("accept", "decline"), ("decline", "accept")])
async def test_wcp16_deferred_choice(run: Run, first: str, second: str) -> None:
    handle = await run("wcp16-deferred-choice.yaml")
    await wait_for_step(handle, "answer")
    await handle.signal(first, {"by": first})
    await handle.signal(second, {"by": second})
    done = await result(handle)
    assert done["answer"] == {"signal": first, "payload": {"by": first}}
    taken, dropped = ("book", "close") if first == "accept" else ("close", "book")
    key = "booked" if taken == "book" else "closed"
    assert done[taken] == {key: {"by": first}}
    now = await statuses(handle)
    assert (now[taken], now[dropped]) == ("completed", "skipped")


@fixture("wcp17-interleaved-parallel-routing.yaml")
async def test_wcp17_interleaved_parallel_routing(run: Run) -> None:
    """Each task once, the partial order kept, never two at the same time."""
    handle = await run("wcp17-interleaved-parallel-routing.yaml")
    await result(handle)
    states = await steps(handle)
    tasks = ["check_engine", "fix_engine", "polish"]
    assert all(states[t]["status"] == "completed" and states[t]["attempts"] == 1 for t in tasks)
    order = assert_one_at_a_time(states, tasks)
    assert order.index("check_engine") < order.index("fix_engine")
    assert interval(states["hand_over"])[0] >= max(interval(states[t])[1] for t in tasks)


@fixture("wcp40-interleaved-routing.yaml")
async def test_wcp40_interleaved_routing(run: Run) -> None:
    """Each check once, one at a time (each sleeps 0.2 s: run together, they would
    overlap); the sign-off after all of them."""
    handle = await run("wcp40-interleaved-routing.yaml")
    await result(handle)
    states = await steps(handle)
    checks = ["brakes", "lights", "tyres"]
    assert all(states[c]["status"] == "completed" and states[c]["attempts"] == 1 for c in checks)
    assert_one_at_a_time(states, checks)
    assert interval(states["sign_off"])[0] >= max(interval(states[c])[1] for c in checks)


@fixture("wcp18-milestone.yaml")
async def test_wcp18_milestone_by_a_workaround_change_before_packing(run: Run) -> None:
    handle = await run("wcp18-milestone.yaml")
    await all_running(handle, "change_request", "pack")
    await handle.signal("change_address", "12 High St")
    await wait_for_step(handle, "change_address", "completed")
    await handle.signal("packed")
    await result(handle)
    now = await statuses(handle)
    assert (now["change_address"], now["hold"], now["ship"]) == (
        "completed",
        "cancelled",
        "completed",
    )


@fixture("wcp18-milestone.yaml")
async def test_wcp18_milestone_by_a_workaround_too_late_after_packing(run: Run) -> None:
    """Once the milestone is passed the change is no longer possible: the waiting
    window is withdrawn and the run goes on (and ends) without it."""
    handle = await run("wcp18-milestone.yaml")
    await all_running(handle, "change_request", "pack")
    await handle.signal("packed")
    await result(handle)
    now = await statuses(handle)
    assert (now["change_request"], now["change_address"], now["ship"]) == (
        "cancelled",
        "cancelled",
        "completed",
    )


# ---------------------------------------------------------------------------------------
# Cancellation and force completion


@fixture("wcp19-cancel-task.yaml")
async def test_wcp19_cancel_task(client: Client, run: Run) -> None:
    handle = await run("wcp19-cancel-task.yaml")
    await wait_for_step(handle, "credit_check")
    await cancel_run(client, handle.id, step="credit_check")
    done = await result(handle)
    assert done["ship"] == {"credit": "cancelled"}
    assert await statuses(handle) == {
        "reserve": "completed",
        "credit_check": "cancelled",
        "credit_report": "skipped",
        "ship": "completed",
    }


@fixture("wcp20-cancel-case.yaml")
async def test_wcp20_cancel_case(client: Client, run: Run) -> None:
    handle = await run("wcp20-cancel-case.yaml")
    await all_running(handle, "pack", "approval")
    await cancel_run(client, handle.id)
    with pytest.raises(WorkflowFailureError):
        await result(handle)
    assert await run_status(handle) == WorkflowExecutionStatus.CANCELED
    states = await steps(handle)
    assert {k: s["status"] for k, s in states.items()} == {
        "charge": "completed",
        "charge.compensate": "completed",
        "pack": "cancelled",
        "approval": "cancelled",
        "ship": "cancelled",
    }
    assert states["ship"]["started_at"] is None


@fixture("wcp25-cancel-region.yaml")
async def test_wcp25_cancel_region(client: Client, run: Run) -> None:
    """Everything in the region ends cancelled, started or not; the step outside it
    goes on and the run completes."""
    handle = await run("wcp25-cancel-region.yaml")
    await all_running(handle, "choose_paper", "write_card", "pack")
    await cancel_run(client, handle.id, step="wrapping")
    await wait_for_step(handle, "wrapping", "cancelled")
    assert (await statuses(handle))["pack"] == "running"
    await handle.signal("packed")
    done = await result(handle)
    assert done["ship"] == {"wrapping": "cancelled"}
    assert await statuses(handle) == {
        "wrapping": "cancelled",
        "choose_paper": "cancelled",
        "wrap": "cancelled",
        "write_card": "cancelled",
        "after_wrapping": "skipped",
        "pack": "completed",
        "ship": "completed",
    }


@fixture("wcp26-cancel-mi-task.yaml")
async def test_wcp26_cancel_mi_task(client: Client, run: Run) -> None:
    handle = await run("wcp26-cancel-mi-task.yaml")
    instances = [f"quote[{i}]" for i in range(3)]
    await all_running(handle, *instances)
    await cancel_run(client, handle.id, step="quotes")
    done = await result(handle)
    assert done["order"] == {"quotes": "cancelled", "supplier": "house"}
    now = await statuses(handle)
    assert {i: now[i] for i in instances} == dict.fromkeys(instances, "cancelled")
    assert (now["quotes"], now["compare"], now["order"]) == ("cancelled", "skipped", "completed")


@fixture("wcp27-complete-mi-task.yaml")
async def test_wcp27_complete_mi_task_by_a_workaround(run: Run) -> None:
    """One quote came, then `enough`: the other instances are withdrawn and the run
    goes on with the collecting step completed (not skipped)."""
    handle = await run("wcp27-complete-mi-task.yaml")
    instances = [f"quote[{i}]" for i in range(3)]
    await all_running(handle, *instances, "enough")
    await handle.signal("quoted", 10)
    await wait_until(handle, lambda s: [s[i] for i in instances].count("completed") == 1)
    await handle.signal("enough")
    done = await result(handle)
    assert done["order"] == {"collected": {"enough": {"enough": None}}}
    now = await statuses(handle)
    assert sorted(now[i] for i in instances) == ["cancelled", "cancelled", "completed"]
    assert (now["quotes"], now["collect"], now["order"]) == ("cancelled", "completed", "completed")


# ---------------------------------------------------------------------------------------
# Iteration


@fixture("wcp21-structured-loop.yaml")
async def test_wcp21_structured_loop(run: Run) -> None:
    handle = await run("wcp21-structured-loop.yaml")
    done = await result(handle)
    expected = {"iterations": 3, "last": {"attempt": {"iteration": 2}}}
    assert done["poll"] == expected
    assert done["report"] == {"loop": expected}


@fixture("wcp22-recursion.yaml")
async def test_wcp22_recursion(run: Run) -> None:
    """Each part runs as a child run of its parent part's run, down to the leaves."""
    bike = {
        "name": "bike",
        "parts": [{"name": "frame"}, {"name": "wheel", "parts": [{"name": "spoke"}]}],
    }
    handle = await run("wcp22-recursion.yaml", {"part": bike})
    root = handle.id
    assert await result(handle) == {
        "name": "bike",
        "run": root,
        "parts": [
            {"name": "frame", "run": f"{root}/assemble[0]", "parts": []},
            {
                "name": "wheel",
                "run": f"{root}/assemble[1]",
                "parts": [{"name": "spoke", "run": f"{root}/assemble[1]/assemble[0]", "parts": []}],
            },
        ],
    }


# ---------------------------------------------------------------------------------------
# Triggers


@fixture("wcp24-persistent-trigger.yaml")
async def test_wcp24_persistent_trigger(run: Run) -> None:
    """The trigger arrives while its step is not yet enabled, and is not lost."""
    handle = await run("wcp24-persistent-trigger.yaml")
    await wait_for_step(handle, "prepare")
    await handle.signal("payment", {"amount": 12})
    assert (await statuses(handle))["payment"] == "pending"
    await handle.signal("prepared")
    done = await result(handle)
    assert done["book"] == {"paid": {"amount": 12}}


# ---------------------------------------------------------------------------------------
# Discriminators and partial joins


@fixture("wcp29-cancelling-discriminator.yaml")
async def test_wcp29_cancelling_discriminator(run: Run) -> None:
    handle = await run("wcp29-cancelling-discriminator.yaml")
    done = await result(handle)  # well before the 60 s sleep would end
    assert done["order"] == {"quotes": {"acme": {"acme": {"price": 10}}}}
    assert await statuses(handle) == {
        "quotes": "completed",
        "acme": "completed",
        "globex": "cancelled",
        "initech": "cancelled",
        "order": "completed",
    }


@fixture("wcp30-structured-partial-join.yaml")
async def test_wcp30_structured_partial_join(run: Run) -> None:
    """One approval is not enough; two are; the third still completes, without
    starting the continuation again."""
    handle = await run("wcp30-structured-partial-join.yaml")
    await all_running(handle, "legal", "finance", "ops")
    await handle.signal("legal_ok", "L")
    await wait_for_step(handle, "legal", "completed")
    assert (await statuses(handle))["proceed"] == "pending"
    await handle.signal("finance_ok", "F")
    await wait_for_step(handle, "proceed", "completed")
    assert (await statuses(handle))["ops"] == "running"
    assert await run_status(handle) == WorkflowExecutionStatus.RUNNING
    await handle.signal("ops_ok", "O")
    done = await result(handle)
    assert done["proceed"] == {
        "approved_by": {"legal": {"legal": "L"}, "finance": {"finance": "F"}}
    }
    states = await steps(handle)
    assert states["ops"]["status"] == "completed"
    assert states["proceed"]["attempts"] == 1


@fixture("wcp32-cancelling-partial-join.yaml")
async def test_wcp32_cancelling_partial_join(run: Run) -> None:
    handle = await run("wcp32-cancelling-partial-join.yaml")
    await all_running(handle, "legal", "finance", "ops")
    await handle.signal("finance_ok", "F")
    await wait_for_step(handle, "finance", "completed")
    assert (await statuses(handle))["proceed"] == "pending"
    await handle.signal("legal_ok", "L")
    done = await result(handle)
    assert done["proceed"] == {
        "approved_by": {"legal": {"legal": "L"}, "finance": {"finance": "F"}}
    }
    now = await statuses(handle)
    assert (now["approvals"], now["ops"], now["proceed"]) == ("completed", "cancelled", "completed")


@fixture("wcp34-static-partial-join-mi.yaml")
async def test_wcp34_static_partial_join_mi(run: Run) -> None:
    handle = await run("wcp34-static-partial-join-mi.yaml")
    instances = [f"review[{i}]" for i in range(3)]
    await all_running(handle, *instances)
    await handle.signal("reviewed", "yes")
    await handle.signal("reviewed", "no")
    now = await wait_until(handle, lambda s: s.get("decide") == "completed")
    assert sorted(now[i] for i in instances) == ["completed", "completed", "running"]
    assert await run_status(handle) == WorkflowExecutionStatus.RUNNING
    await handle.signal("reviewed", "late")
    done = await result(handle)
    reviews = done["decide"]["reviews"]
    assert sorted(r for r in reviews if r is not None) == ["no", "yes"]
    assert reviews.count(None) == 1
    states = await steps(handle)
    assert [states[i]["status"] for i in instances] == ["completed"] * 3
    assert states["decide"]["attempts"] == 1


@fixture("wcp35-cancelling-partial-join-mi.yaml")
async def test_wcp35_cancelling_partial_join_mi(run: Run) -> None:
    handle = await run("wcp35-cancelling-partial-join-mi.yaml")
    instances = [f"review[{i}]" for i in range(3)]
    await all_running(handle, *instances)
    await handle.signal("reviewed", "yes")
    await handle.signal("reviewed", "no")
    done = await result(handle)
    reviews = done["decide"]["reviews"]
    assert sorted(r for r in reviews if r is not None) == ["no", "yes"]
    now = await statuses(handle)
    assert sorted(now[i] for i in instances) == ["cancelled", "completed", "completed"]
    assert reviews[[now[i] for i in instances].index("cancelled")] is None


# ---------------------------------------------------------------------------------------
# Merges in graphs that are not block-structured


@fixture("wcp37-local-synchronizing-merge.yaml")
async def test_wcp37_local_synchronizing_merge_waits_for_the_chosen_paths(run: Run) -> None:
    """a and c chosen: d goes on after a alone (b was not chosen), e and f wait for c."""
    handle = await run("wcp37-local-synchronizing-merge.yaml", {"a": True, "c": True})
    seen = await wait_until(handle, lambda s: s.get("d") == "completed" and s.get("c") == "running")
    assert (seen["b"], seen["e"], seen["f"]) == ("skipped", "pending", "pending")
    await handle.signal("c_done")
    done = await result(handle)
    assert done["d"] == {"a": "completed", "b": "skipped"}
    assert done["e"] == {"b": "skipped", "c": "completed"}
    assert done["f"] == {"d": "completed", "e": "completed"}


@fixture("wcp37-local-synchronizing-merge.yaml")
@pytest.mark.parametrize(
    ("chosen", "expected"),
    [
        ({"b": True}, dict.fromkeys("ac", "skipped") | dict.fromkeys("bdef", "completed")),
        ({}, dict.fromkeys("abcdef", "skipped")),
    ],
)
async def test_wcp37_local_synchronizing_merge_without_waiting(
    run: Run, chosen: dict[str, bool], expected: dict[str, str]
) -> None:
    """Only b: both joins go on from it; nothing chosen: every join is skipped. No
    join waits for a path that was not taken (c, a signal step, is never signalled)."""
    handle = await run("wcp37-local-synchronizing-merge.yaml", chosen)
    await result(handle)
    now = await statuses(handle)
    assert {k: v for k, v in now.items() if k != "choose"} == expected


# ---------------------------------------------------------------------------------------
# Critical section and threads


@fixture("wcp39-critical-section.yaml")
async def test_wcp39_critical_section(run: Run) -> None:
    """The two writes never overlap; the preparations (no mutex) do run together."""
    handle = await run("wcp39-critical-section.yaml")
    await result(handle)
    states = await steps(handle)
    assert_one_at_a_time(states, ["write_deposit", "write_fee"])
    deposit, fee = interval(states["prepare_deposit"]), interval(states["prepare_fee"])
    assert deposit[0] < fee[1]
    assert fee[0] < deposit[1]


@fixture("wcp41-thread-merge.yaml")
async def test_wcp41_thread_merge(run: Run) -> None:
    """Three threads, one merged continuation once all three have arrived."""
    handle = await run("wcp41-thread-merge.yaml")
    threads = [f"picked[{i}]" for i in range(3)]
    await all_running(handle, *threads)
    for box in ("box-1", "box-2"):
        await handle.signal("picked", box)
    await wait_until(handle, lambda s: [s[t] for t in threads].count("completed") == 2)
    assert (await statuses(handle))["pack"] == "pending"
    await handle.signal("picked", "box-3")
    done = await result(handle)
    assert sorted(done["pack"]["picked"]) == ["box-1", "box-2", "box-3"]
    states = await steps(handle)
    assert states["pack"]["attempts"] == 1
    assert interval(states["pack"])[0] >= max(interval(states[t])[1] for t in threads)


@fixture("wcp42-thread-split.yaml")
async def test_wcp42_thread_split(run: Run) -> None:
    """Three threads start in one branch; each runs the whole path, in order."""
    handle = await run("wcp42-thread-split.yaml")
    done = await result(handle)
    assert done["copies"] == [
        {"path": {"label": {"copy": n}, "post": {"copy": n, "posted": True}}} for n in (1, 2, 3)
    ]
    now = await statuses(handle)
    assert [now[f"copy[{i}]"] for i in range(3)] == ["completed"] * 3


# ---------------------------------------------------------------------------------------
# Termination


@fixture("wcp43-explicit-termination.yaml")
async def test_wcp43_explicit_termination(run: Run) -> None:
    handle = await run("wcp43-explicit-termination.yaml")
    assert await result(handle) == {"confirmed": True}
    assert await run_status(handle) == WorkflowExecutionStatus.COMPLETED
    assert await statuses(handle) == {
        "confirm": "completed",
        "survey": "cancelled",
        "reminder": "cancelled",
        "done": "completed",
        "never": "cancelled",
    }
