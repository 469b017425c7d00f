"""`interpreter.history.store`: migrations, the registry and the run history on a real PostgreSQL.

Each test gets a fresh schema of the session's server (through `search_path` in the
URL), so tests never see each other's rows and every migration starts from nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import uuid4

import asyncpg
import pytest

from dsl.errors import DslError, InputError
from dsl.models import Definition
from dsl.validate import validate_text
from interpreter.dev.servers import free_port
from interpreter.history.registry import registry_catalog
from interpreter.history.store import (
    MIGRATIONS_DIR,
    DatabaseUnavailable,
    RunRecord,
    StepRecord,
    Store,
    VersionConflict,
    next_version,
    redact_url,
)

pytestmark = pytest.mark.integration

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def with_search_path(url: str, schema: str) -> str:
    """*url* with every connection's `search_path` set to *schema* (asyncpg passes
    unknown query parameters on as server settings)."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query), ("search_path", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextlib.asynccontextmanager
async def fresh_schema(server_url: str) -> AsyncIterator[str]:
    """A URL whose tables live in a new, empty schema; dropped afterwards."""
    schema = f"t_{uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f"create schema {schema}")  # a generated identifier, not data
        yield with_search_path(server_url, schema)
    finally:
        await conn.execute(f"drop schema {schema} cascade")
        await conn.close()


@pytest.fixture
async def database(postgres: str) -> AsyncIterator[str]:
    async with fresh_schema(postgres) as url:
        yield url


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    async with await Store.connect(database) as opened:
        await opened.migrate()
        yield opened


def definition(name: str = "billing", version: str = "1.0.0", action: str = "echo") -> Definition:
    text = f"name: {name}\nversion: {version}\nsteps:\n  - {{id: a, action: {action}}}\n"
    return validate_text(text).definition


# --------------------------------------------------------------------------- migrations


async def test_migrate_applies_once_and_records_it(database: str) -> None:
    async with await Store.connect(database) as store:
        assert await store.migrations() == []
        first = await store.migrate()
        assert first == [p.stem for p in sorted(MIGRATIONS_DIR.glob("*.sql"))]
        assert first[0] == "0001_initial"
        assert await store.migrate() == []  # the second run changes nothing
        recorded = await store.migrations()
        assert [(m["version"], m["name"]) for m in recorded] == [
            (int(name.split("_")[0]), name) for name in first
        ]
        tables = await store.pool.fetch(
            "select table_name from information_schema.tables where table_schema = current_schema()"
        )
        assert {"tdsl_migrations", "definitions", "runs", "run_steps"} <= {
            t["table_name"] for t in tables
        }


async def test_concurrent_migrators_apply_each_file_once(database: str) -> None:
    stores = [await Store.connect(database) for _ in range(3)]
    try:
        results = await asyncio.gather(*(s.migrate() for s in stores))
        applied = [name for result in results for name in result]
        assert sorted(applied) == [p.stem for p in sorted(MIGRATIONS_DIR.glob("*.sql"))]
        assert len(await stores[0].migrations()) == len(applied)
    finally:
        for s in stores:
            await s.close()


async def test_migrations_run_in_numeric_order_each_in_a_transaction(
    database: str, tmp_path: Path
) -> None:
    (tmp_path / "9_first.sql").write_text("create table log (n int);")
    (tmp_path / "10_second.sql").write_text("insert into log values (10);")
    (tmp_path / "11_broken.sql").write_text("insert into log values (11); select no_such_fn();")
    (tmp_path / "12_after.sql").write_text("insert into log values (12);")
    async with await Store.connect(database) as store:
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await store.migrate(tmp_path)
        # 9 and 10 stay applied; 11 rolled back as a whole and is not recorded; 12 never ran.
        assert [m["name"] for m in await store.migrations()] == ["9_first", "10_second"]
        assert [r["n"] for r in await store.pool.fetch("select n from log")] == [10]
        (tmp_path / "11_broken.sql").write_text("insert into log values (11);")
        assert await store.migrate(tmp_path) == ["11_broken", "12_after"]
        assert [r["n"] for r in await store.pool.fetch("select n from log order by n")] == [
            10,
            11,
            12,
        ]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["initial.sql"], "is not named NNNN_name.sql"),
        (["1_a.sql", "01_b.sql"], "share number 1"),
    ],
)
async def test_bad_migration_sets_are_refused(
    database: str, tmp_path: Path, files: list[str], message: str
) -> None:
    for name in files:
        (tmp_path / name).write_text("select 1;")
    async with await Store.connect(database) as store:
        with pytest.raises(DslError, match=message):
            await store.migrate(tmp_path)
        with pytest.raises(DslError, match="no migrations directory"):
            await store.migrate(tmp_path / "missing")


# --------------------------------------------------------------------------- connect


async def test_unreachable_database_is_one_line_and_a_connection_error() -> None:
    url = f"postgresql://tdsl:s3cret@127.0.0.1:{free_port()}/tdsl"
    with pytest.raises(DatabaseUnavailable) as caught:
        await Store.connect(url, timeout=5)
    assert isinstance(caught.value, ConnectionError)
    message = str(caught.value)
    assert message.startswith("cannot reach PostgreSQL at postgresql://tdsl:***@127.0.0.1:")
    assert "s3cret" not in message
    assert "\n" not in message


async def test_a_url_that_is_not_postgresql_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not a valid PostgreSQL URL"):
        await Store.connect("mysql://x@localhost/db")


def test_redact_url() -> None:
    assert redact_url("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"
    assert redact_url("postgresql://postgres:@/postgres?host=/tmp/x") == (
        "postgresql://postgres:@/postgres?host=/tmp/x"
    )


# --------------------------------------------------------------------------- registry


async def test_registering_the_same_content_is_a_no_op(store: Store) -> None:
    billing = definition()
    assert await store.register(billing, "source 1") == "registered"
    assert await store.register(billing, "source 1") == "unchanged"
    # Same meaning in another spelling: the normalised content is what counts.
    camel = validate_text(
        "name: billing\nversion: 1.0.0\nsteps:\n  - {id: a, action: echo, dependsOn: []}\n"
    ).definition
    assert await store.register(camel, "other source") == "unchanged"
    rows = await store.definitions()
    assert len(rows) == 1
    found = await store.find_definition("billing", "1.0.0")
    assert found is not None
    assert found["source"] == "source 1"  # the first registration is kept as it was
    assert found["parsed"]["steps"][0]["action"] == "echo"


async def test_different_content_for_a_version_is_refused_with_the_next_version(
    store: Store,
) -> None:
    for version in ("1.2.0", "1.10.0", "1.9.0"):
        await store.register(definition("order-fulfilment", version), "v")
    registered = await store.find_definition("order-fulfilment", "1.2.0")
    assert registered is not None
    changed = definition("order-fulfilment", "1.2.0", action="log")
    with pytest.raises(VersionConflict) as caught:
        await store.register(changed, "changed")
    assert str(caught.value) == (
        f"order-fulfilment 1.2.0 is already registered with different content "
        f"(sha256 {registered['sha256'][:12]}…); bump the version (next: 1.10.1)"
    )
    assert caught.value.next_version == "1.10.1"
    unchanged = await store.find_definition("order-fulfilment", "1.2.0")
    assert unchanged is not None
    assert unchanged["sha256"] == registered["sha256"]


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        ([], "1.0.0"),
        (["1.2.0"], "1.2.1"),
        (["1.9.0", "1.10.0", "1.2.0"], "1.10.1"),
        (["1.0.0", "2.0.0-rc.1"], "2.0.0"),
        (["1.0.0+build.7"], "1.0.1"),
    ],
)
def test_next_version(versions: list[str], expected: str) -> None:
    assert next_version(versions) == expected


async def test_definitions_and_latest_by_semantic_version(store: Store) -> None:
    for version in ("1.9.0", "1.10.0", "1.2.0", "1.10.0-rc.1"):
        await store.register(definition("notify", version), f"notify {version}")
    await store.register(definition("approval", "0.1.0"), "approval")
    listed = await store.definitions()
    assert [(d["name"], d["version"]) for d in listed] == [
        ("approval", "0.1.0"),
        ("notify", "1.10.0"),
        ("notify", "1.10.0-rc.1"),
        ("notify", "1.9.0"),
        ("notify", "1.2.0"),
    ]
    assert all(len(d["sha256"]) == 64 and d["registered_at"].tzinfo for d in listed)
    latest = await store.find_definition("notify")
    assert latest is not None
    assert (latest["version"], latest["source"]) == ("1.10.0", "notify 1.10.0")
    pinned = await store.find_definition("notify", "1.9.0")
    assert pinned is not None
    assert pinned["version"] == "1.9.0"
    assert await store.find_definition("notify", "3.0.0") is None
    assert await store.find_definition("nobody") is None


async def test_registry_catalog_finds_the_latest_version(store: Store) -> None:
    for version in ("1.9.0", "1.10.0"):
        await store.register(definition("notify", version), "x")
    catalog = await registry_catalog(store)
    latest = catalog.find("notify")
    assert latest is not None
    assert latest.definition.version == "1.10.0"
    assert latest.origin == "registry:notify@1.10.0"
    pinned = catalog.find("notify", "1.9.0")
    assert pinned is not None
    assert pinned.origin == "registry:notify@1.9.0"
    assert catalog.find("notify", "2.0.0") is None
    assert catalog.names() == ["notify"]


# --------------------------------------------------------------------------- run history


def run_record(**changes: object) -> RunRecord:
    values: dict[str, object] = {
        "workflow_id": "order-1",
        "run_id": "run-1",
        "definition": "order-fulfilment",
        "version": "1.2.0",
        "definition_hash": "ab" * 32,
        "status": "RUNNING",
        "input": {"order_id": "A-1"},
        "started_at": T0,
    }
    values.update(changes)
    return RunRecord(**values)  # type: ignore[arg-type]


async def _count(store: Store, table: str) -> int:
    count: int = await store.pool.fetchval(f"select count(*) from {table}")  # fixed names only
    return count


async def test_upserting_a_run_twice_keeps_one_row_and_later_status_wins(store: Store) -> None:
    await store.upsert_run(run_record())
    await store.upsert_run(run_record())
    assert await _count(store, "runs") == 1
    done = run_record(
        status="COMPLETED",
        input=None,
        output={"tracking": "T1"},
        ended_at=T0 + timedelta(seconds=3),
    )
    await store.upsert_run(done)
    await store.upsert_run(done)
    run = await store.run("order-1")
    assert run is not None
    assert run["status"] == "COMPLETED"
    assert run["output"] == {"tracking": "T1"}
    assert run["input"] == {"order_id": "A-1"}  # None keeps what is stored
    assert run["started_at"] == T0
    assert run["ended_at"] == T0 + timedelta(seconds=3)
    assert run["steps"] == []
    assert await _count(store, "runs") == 1


async def test_late_projections_do_not_undo_newer_state(store: Store) -> None:
    await store.upsert_run(run_record(status="FAILED", error="step 'a' failed: boom"))
    await store.upsert_run(run_record(status="RUNNING"))  # a retried early projection
    run = await store.run("order-1")
    assert run is not None
    assert (run["status"], run["error"]) == ("FAILED", "step 'a' failed: boom")
    # With explicit update times, an older record changes nothing even for other fields.
    await store.upsert_run(run_record(workflow_id="w2", status="RUNNING", updated_at=T0))
    await store.upsert_run(
        run_record(workflow_id="w2", status="COMPLETED", updated_at=T0 + timedelta(seconds=2))
    )
    await store.upsert_run(
        run_record(workflow_id="w2", status="FAILED", updated_at=T0 + timedelta(seconds=1))
    )
    second = await store.run("w2")
    assert second is not None
    assert second["status"] == "COMPLETED"


async def test_upserting_steps_is_idempotent_and_ordered(store: Store) -> None:
    await store.upsert_run(run_record())
    running = [
        StepRecord("validate", "completed", 1, T0, T0 + timedelta(seconds=1), output={"ok": True}),
        StepRecord("ship", "running", 2, T0 + timedelta(seconds=2)),
        StepRecord("notify", "pending"),
        StepRecord("charge", "running", 1, T0 + timedelta(seconds=2)),
    ]
    await store.upsert_steps("order-1", "run-1", running)
    await store.upsert_steps("order-1", "run-1", running)
    assert await _count(store, "run_steps") == 4
    await store.upsert_steps(
        "order-1",
        "run-1",
        [
            StepRecord(
                "ship",
                "failed",
                3,
                None,
                T0 + timedelta(seconds=9),
                error={"message": "no carrier", "type": "Failure"},
            )
        ],
    )
    await store.upsert_steps("order-1", "run-1", [StepRecord("ship", "running", 2)])  # late
    run = await store.run("order-1", "run-1")
    assert run is not None
    steps = {s["step_id"]: s for s in run["steps"]}
    assert [s["step_id"] for s in run["steps"]] == ["validate", "charge", "ship", "notify"]
    assert steps["ship"]["status"] == "failed"
    assert steps["ship"]["attempts"] == 3
    assert steps["ship"]["started_at"] == T0 + timedelta(seconds=2)  # kept
    assert steps["ship"]["error"] == {"message": "no carrier", "type": "Failure"}
    assert steps["validate"]["output"] == {"ok": True}
    assert steps["notify"]["started_at"] is None


async def test_steps_belong_to_their_run(store: Store) -> None:
    await store.upsert_run(run_record())
    with pytest.raises(ValueError, match="belongs to"):
        await store.upsert_steps(
            "order-1", "run-1", [StepRecord("a", "running", workflow_id="other")]
        )
    same = StepRecord("a", "running", workflow_id="order-1", run_id="run-1")
    await store.upsert_steps("order-1", "run-1", [same])
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await store.upsert_steps("no-such-run", "r", [StepRecord("a", "running")])
    await store.pool.execute("delete from runs where workflow_id = $1", "order-1")
    assert await _count(store, "run_steps") == 0  # on delete cascade


async def test_runs_filters_and_order(store: Store) -> None:
    records = [
        run_record(workflow_id="a-1", status="COMPLETED", started_at=T0),
        run_record(workflow_id="a-2", status="FAILED", started_at=T0 + timedelta(minutes=1)),
        run_record(
            workflow_id="b-1",
            definition="nightly-batch",
            status="COMPLETED",
            started_at=T0 + timedelta(minutes=2),
        ),
        run_record(workflow_id="a-3", status="RUNNING", started_at=T0 + timedelta(minutes=3)),
    ]
    for record in records:
        await store.upsert_run(record)
    assert [r["workflow_id"] for r in await store.runs()] == ["a-3", "b-1", "a-2", "a-1"]
    assert [r["workflow_id"] for r in await store.runs(status="COMPLETED")] == ["b-1", "a-1"]
    assert [r["workflow_id"] for r in await store.runs(definition="order-fulfilment")] == [
        "a-3",
        "a-2",
        "a-1",
    ]
    assert [
        r["workflow_id"] for r in await store.runs(status="COMPLETED", definition="nightly-batch")
    ] == ["b-1"]
    assert [r["workflow_id"] for r in await store.runs(limit=2)] == ["a-3", "b-1"]
    assert set((await store.runs())[0]) == {
        "workflow_id",
        "run_id",
        "definition",
        "version",
        "status",
        "started_at",
        "ended_at",
        "tenant",
    }
    with pytest.raises(ValueError, match="at least 1"):
        await store.runs(limit=0)


async def test_run_is_the_latest_run_of_a_workflow_id(store: Store) -> None:
    await store.upsert_run(run_record(run_id="first", status="FAILED", started_at=T0))
    await store.upsert_run(run_record(run_id="second", started_at=T0 + timedelta(hours=1)))
    latest = await store.run("order-1")
    assert latest is not None
    assert latest["run_id"] == "second"
    first = await store.run("order-1", "first")
    assert first is not None
    assert first["status"] == "FAILED"
    assert await store.run("order-1", "third") is None
    assert await store.run("nobody") is None


async def test_json_values_round_trip(store: Store) -> None:
    values: list[object] = ["text", 3, 2.5, True, [1, {"a": None}], {"nested": {"list": []}}]
    for index, value in enumerate(values):
        await store.upsert_run(run_record(workflow_id=f"j{index}", input=value, output=value))
        run = await store.run(f"j{index}")
        assert run is not None
        assert (run["input"], run["output"]) == (value, value)


async def test_a_run_and_its_steps_are_saved_together_or_not_at_all(store: Store) -> None:
    running = run_record(status="RUNNING")
    await store.save_run(running, [StepRecord("ship", "running", 1)])
    done = run_record(status="COMPLETED", ended_at=T0 + timedelta(minutes=1))
    unencodable = StepRecord("ship", "completed", 1, output={"bad": object()})
    with pytest.raises(asyncpg.DataError):
        await store.save_run(done, [unencodable])  # fails after the run's row was written
    row = await store.run("order-1", "run-1")
    assert row is not None
    assert row["status"] == "RUNNING"  # rolled back with its steps
    assert row["steps"][0]["status"] == "running"
    await store.save_run(done, [StepRecord("ship", "completed", 1, output={"ok": True})])
    row = await store.run("order-1", "run-1")
    assert row is not None
    assert (row["status"], row["steps"][0]["status"]) == ("COMPLETED", "completed")
