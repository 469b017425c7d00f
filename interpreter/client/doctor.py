"""`tdsl doctor`: is everything a run needs there? One check per line, each with its fix.

The checks run in order and a failed connection skips what needs it: the server,
the namespace, its search attributes, a worker that polled the task queue within
60 s, and, with `DATABASE_URL`, PostgreSQL reachable and migrated. Nothing is
changed; `FAIL` means runs cannot start or move, `warn` that something is missing
that runs work without.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from dsl.errors import DslError
from interpreter.client.pollers import POLLED_WITHIN, polling_identities
from interpreter.contract import ALL_SEARCH_ATTRIBUTES, search_attribute_hint

__all__ = ["Check", "diagnose"]

Level = Literal["ok", "warn", "FAIL"]


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str
    fix: str = ""

    def line(self) -> str:
        fix = f" — {self.fix}" if self.fix else ""
        return f"{self.level:<4} {self.name}: {self.detail}{fix}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def diagnose(
    connect: Any, *, address: str, namespace: str, task_queue: str, database_url: str | None
) -> list[Check]:
    """Every check; *connect* is an awaitable factory of the client (its failure is a check)."""
    checks: list[Check] = []
    try:
        client: Client = await connect()
    except DslError as err:
        checks.append(
            Check("server", "FAIL", str(err))  # the message says how to fix it
        )
        return checks + await _database(database_url)
    checks.append(Check("server", "ok", f"{address} answers"))
    checks.append(await _namespace(client, namespace))
    if checks[-1].level == "ok":
        checks.append(await _search_attributes(client))
        checks.append(await _worker(client, task_queue))
    return checks + await _database(database_url)


async def _namespace(client: Client, namespace: str) -> Check:
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
    except RPCError as err:
        return Check(
            "namespace",
            "FAIL",
            f"{namespace!r}: {err.message}",
            f"create it: temporal operator namespace create --namespace {namespace}",
        )
    return Check("namespace", "ok", f"{namespace!r} exists")


async def _search_attributes(client: Client) -> Check:
    try:
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError as err:
        return Check("search attributes", "warn", f"cannot list them: {err.message}")
    missing = [k for k in ALL_SEARCH_ATTRIBUTES if k.name not in response.custom_attributes]
    if missing:
        return Check(
            "search attributes",
            "warn",
            f"{', '.join(k.name for k in missing)} missing: runs start without them and "
            "cannot be found by them",
            f"`tdsl worker` adds them on a dev server; elsewhere {search_attribute_hint(missing)}",
        )
    return Check("search attributes", "ok", ", ".join(k.name for k in ALL_SEARCH_ATTRIBUTES))


async def _worker(client: Client, task_queue: str) -> Check:
    seconds = int(POLLED_WITHIN.total_seconds())
    try:
        pollers = await polling_identities(client, task_queue)
    except RPCError as err:
        return Check("worker", "warn", f"cannot describe task queue {task_queue!r}: {err.message}")
    if not pollers:
        return Check(
            "worker",
            "FAIL",
            f"no worker polled task queue {task_queue!r} in the last {seconds} s: runs wait",
            f"start one: tdsl worker --task-queue {task_queue}",
        )
    return Check(
        "worker", "ok", f"{len(pollers)} polling task queue {task_queue!r} ({', '.join(pollers)})"
    )


async def _database(database_url: str | None) -> list[Check]:
    if not database_url:
        return []
    from interpreter.history.store import MIGRATIONS_DIR, Store, failure_reason, migration_files

    try:
        async with await Store.connect(database_url, min_size=1, max_size=1) as store:
            applied = {int(row["version"]) for row in await store.migrations()}
    except DslError as err:
        return [Check("database", "FAIL", str(err), "check DATABASE_URL")]
    except Exception as err:  # asyncpg's and the OS's many errors
        return [Check("database", "FAIL", failure_reason(err), "check DATABASE_URL")]
    wanted = {version for version, _, _ in migration_files(MIGRATIONS_DIR)}
    pending = sorted(wanted - applied)
    if pending:
        return [
            Check(
                "database",
                "FAIL",
                f"reachable; {len(pending)} migration(s) not applied ({', '.join(map(str, pending))})",
                "run: tdsl db migrate",
            )
        ]
    return [Check("database", "ok", f"reachable, {len(applied)} migrations applied")]
