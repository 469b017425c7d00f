"""A definition's `sql.query` cannot touch the registry and run history (issue 9).

The attack that worked before: one definition read other runs' inputs, rewrote a run's
history to FAILED, created and dropped tables and ran `COPY ... TO PROGRAM`, because
`sql.query` connected to `DATABASE_URL` as a superuser. Now it connects to
`TDSL_SQL_URL` as the least-privilege role `tdsl dev` provisions (the same privileges
`deploy/postgres/init-roles.sql` gives in docker-compose).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from activities.builtin import BuiltinActivities
from interpreter.dev.databases import DevDatabases, provision_databases, url_for
from interpreter.dev.servers import EmbeddedPostgres
from interpreter.history.store import RunRecord, Store
from interpreter.worker import build_worker
from tests.support.runs import start

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def databases(postgres: str) -> DevDatabases:
    """The two roles of `tdsl dev`, provisioned twice to show it is idempotent."""
    await provision_databases(postgres)
    provisioned = await provision_databases(postgres)
    async with await Store.connect(provisioned.history_url) as store:
        await store.migrate()  # as the history role: it owns the tables it creates
        await store.upsert_run(
            RunRecord(
                workflow_id="someone-else",
                run_id="r1",
                definition="payroll",
                version="1.0.0",
                definition_hash="0" * 64,
                status="COMPLETED",
                input={"salary": 123456},
            )
        )
    return provisioned


@pytest.fixture
async def sql_worker(
    client: Client, task_queue: str, databases: DevDatabases
) -> AsyncIterator[str]:
    builtin = BuiltinActivities(sql_url=databases.sql_url)
    try:
        async with build_worker(
            client, task_queue=task_queue, builtin=builtin, graceful_shutdown_timeout=timedelta(0)
        ):
            yield task_queue
    finally:
        await builtin.close()


def _sql_step(step_id: str, query: str) -> str:
    spec = {"query": query}
    return (
        f"  - {{id: {step_id}, action: sql.query, continue_on_error: true, "
        f"retry_policy: {{maximum_attempts: 1}}, parameters: {json.dumps(spec)}}}\n"
    )


async def test_a_definition_cannot_reach_the_history_or_the_host(
    client: Client, sql_worker: str, databases: DevDatabases, tmp_path: Path
) -> None:
    pwned = tmp_path / "pwned"
    attacks = {
        "read_runs": "select input from runs",
        "rewrite_runs": "update runs set status = 'FAILED'",
        "read_registry": "select source from definitions",
        "other_database": "select * from dblink('dbname=tdsl', 'select 1') as t(x int)",
        "load_dblink": "create extension dblink",
        "copy_program": f"copy (select 1) to program 'touch {pwned}'",
        "read_server_file": "select pg_read_file('/etc/passwd')",
        "become_superuser": "set role postgres",
    }
    steps = "".join(_sql_step(step_id, query) for step_id, query in attacks.items())
    own = _sql_step("own_table", "create table if not exists scratch (x int)")
    handle = await start(client, sql_worker, f"name: attacker\nsteps:\n{steps}{own}")
    await handle.result()
    answer = await handle.query("status")
    for step_id in attacks:
        state = answer["steps"][step_id]
        assert state["status"] == "failed", (step_id, state)
        assert "SqlError" in json.dumps(state["error"]) or "sql.query" in json.dumps(state["error"])
    # Its own scratch database is its to use.
    assert answer["steps"]["own_table"]["status"] == "completed"
    assert not pwned.exists()
    # The history is untouched.
    async with await Store.connect(databases.history_url) as store:
        stored = await store.run("someone-else")
    assert stored is not None
    assert stored["status"] == "COMPLETED"


async def test_the_sql_role_cannot_even_connect_to_the_history_database(
    postgres: str, databases: DevDatabases
) -> None:
    wrong = url_for(postgres, role="tdsl_sql", database="tdsl")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await asyncpg.connect(wrong)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await asyncpg.connect(url_for(postgres, role="tdsl_sql", database="postgres"))


async def test_the_history_role_is_no_superuser(databases: DevDatabases, tmp_path: Path) -> None:
    conn = await asyncpg.connect(databases.history_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"copy (select 1) to program 'touch {tmp_path / 'x'}'")
        roles = await conn.fetch(
            "select rolname, rolsuper, rolcreaterole, rolcreatedb from pg_roles "
            "where rolname in ('tdsl', 'tdsl_sql') order by rolname"
        )
    finally:
        await conn.close()
    assert [tuple(r) for r in roles] == [
        ("tdsl", False, False, False),
        ("tdsl_sql", False, False, False),
    ]
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await asyncpg.connect(databases.sql_url.replace("tdsl_sql@", "tdsl@"))


async def test_the_compose_role_script_gives_the_same_isolation(tmp_path: Path) -> None:
    """`deploy/postgres/init-roles.sql`, run as the postgres image would, on a fresh server."""
    script = (Path(__file__).resolve().parents[3] / "deploy/postgres/init-roles.sql").read_text()
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
    async with EmbeddedPostgres(tmp_path / "pg", delete_on_stop=True) as server:
        admin = await asyncpg.connect(server.url)
        try:
            for statement in filter(None, (part.strip() for part in code.split(";"))):
                await admin.execute(statement)  # one at a time, like psql
        finally:
            await admin.close()
        history = url_for(server.url, role="tdsl", database="tdsl")
        sql = url_for(server.url, role="tdsl_sql", database="tdsl_sql")
        for role, database in (
            ("tdsl_sql", "tdsl"),
            ("tdsl", "tdsl_sql"),
            ("tdsl_sql", "postgres"),
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await asyncpg.connect(url_for(server.url, role=role, database=database))
        for url in (history, sql):
            conn = await asyncpg.connect(url)
            try:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(f"copy (select 1) to program 'touch {tmp_path / 'x'}'")
                await conn.execute("create table mine (x int)")  # its own database is its own
            finally:
                await conn.close()
    assert not (tmp_path / "x").exists()
