"""The PostgreSQL side of temporal-dsl: the definition registry and the run history.

`Store` holds one asyncpg pool (activities are methods on a class that holds its
resources); every statement is parameterised, and every write the worker makes is an
idempotent UPSERT keyed by workflow id, run id and step id, because activities and
projections can run more than once.

    migrate()                  SQL files of schema/migrations, in order, once each
    register(definition, src)  an immutable (name, version) → content entry
    definitions(), find_definition(name, version)
    upsert_run(RunRecord), upsert_steps(workflow_id, run_id, [StepRecord])
    save_run(RunRecord, [StepRecord])   both, in one transaction (what the projector uses)
    runs(status=, definition=, tenant=, limit=), run(workflow_id, run_id=None)

The tables are described in ``schema/migrations/``. The registry as a catalog for
subworkflow lookup is `interpreter.history.registry`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from activities.postgres import init_json_codec as _init_connection
from dsl.bundle import content_hash, normalise
from dsl.catalog import version_key
from dsl.errors import ConfigurationError, ConflictError, InputError, ServiceError
from dsl.models import DEFAULT_VERSION, Definition

__all__ = [
    "MIGRATIONS_DIR",
    "DatabaseUnavailable",
    "RunRecord",
    "StepRecord",
    "Store",
    "VersionConflict",
    "failure_reason",
    "migration_files",
    "next_version",
    "redact_url",
]

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "schema" / "migrations"
"""`NNNN_name.sql` files, applied in the order of NNNN."""


_MIGRATION_FILE = re.compile(r"^(\d+)_([A-Za-z0-9_-]+)\.sql$")
_MIGRATION_LOCK = 0x7464_736C_6D69_67  # "tdslmig": serialises concurrent migrators


class DatabaseUnavailable(ServiceError, ConnectionError):
    """PostgreSQL cannot be reached (refused, unknown host, timeout, bad credentials).

    Also a `ConnectionError`, so code that retries on network errors catches it too.
    """


class VersionConflict(ConflictError):
    """A (name, version) is already registered with different content."""

    def __init__(
        self, name: str, version: str, *, registered: str, attempted: str, next_version: str
    ) -> None:
        self.name = name
        self.version = version
        self.registered_sha256 = registered
        self.sha256 = attempted
        self.next_version = next_version
        super().__init__(
            f"{name} {version} is already registered with different content "
            f"(sha256 {registered[:12]}…); bump the version (next: {next_version})"
        )


@dataclass(frozen=True)
class RunRecord:
    """One row of `runs`; JSON columns hold Python values, times are aware datetimes.

    `updated_at` None means "now" (the database's clock). A record older than the
    stored row (by `updated_at`) changes nothing, and a final status is never
    replaced by RUNNING, so a late retry of an earlier projection is harmless.
    `input` and `started_at` left None keep what is stored.
    """

    workflow_id: str
    run_id: str
    definition: str
    version: str
    definition_hash: str
    status: str
    input: Any = None
    output: Any = None
    error: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime | None = None
    continued: int = 0
    """Times the logical run continued as new; `run_id` is then its first run's."""
    tenant: str | None = None


@dataclass(frozen=True)
class StepRecord:
    """One row of `run_steps`; the run it belongs to is given to `Store.upsert_steps`.

    `workflow_id` and `run_id` are keyword-only and optional: when set they must
    match the run the step is written for. As for runs, an older record (by
    `updated_at`) changes nothing, a final step status (completed, skipped, failed,
    cancelled) is never replaced by pending or running, and `started_at` left None
    keeps what is stored.
    """

    step_id: str
    status: str
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    output: Any = None
    error: Any = None
    updated_at: datetime | None = None
    workflow_id: str = field(default="", kw_only=True)
    run_id: str = field(default="", kw_only=True)


# --------------------------------------------------------------------------- SQL

_UPSERT_RUN = """
insert into runs as r (workflow_id, run_id, definition, version, definition_hash, status,
                       input, output, error, started_at, ended_at, updated_at, continued,
                       tenant)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, coalesce($12::timestamptz, now()), $13,
        $14)
on conflict (workflow_id, run_id) do update set
    definition = excluded.definition,
    version = excluded.version,
    definition_hash = excluded.definition_hash,
    status = excluded.status,
    input = coalesce(excluded.input, r.input),
    output = excluded.output,
    error = excluded.error,
    started_at = coalesce(excluded.started_at, r.started_at),
    ended_at = excluded.ended_at,
    updated_at = excluded.updated_at,
    continued = greatest(excluded.continued, r.continued),
    tenant = coalesce(excluded.tenant, r.tenant)
where r.updated_at <= excluded.updated_at
  and not (excluded.status = 'RUNNING' and r.status <> 'RUNNING')
"""

_UPSERT_STEP = """
insert into run_steps as s (workflow_id, run_id, step_id, status, attempts,
                            started_at, ended_at, output, error, updated_at)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, coalesce($10::timestamptz, now()))
on conflict (workflow_id, run_id, step_id) do update set
    status = excluded.status,
    attempts = excluded.attempts,
    started_at = coalesce(excluded.started_at, s.started_at),
    ended_at = excluded.ended_at,
    output = excluded.output,
    error = excluded.error,
    updated_at = excluded.updated_at
where s.updated_at <= excluded.updated_at
  and not (excluded.status in ('pending', 'waiting', 'running')
           and s.status in ('completed', 'skipped', 'failed', 'cancelled'))
"""

_RUN_COLUMNS = "workflow_id, run_id, definition, version, status, started_at, ended_at, tenant"


def redact_url(url: str) -> str:
    """*url* without its password, for messages."""
    try:
        parts = urlsplit(url)
        if not parts.password:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return "DATABASE_URL"


def failure_reason(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    text = " ".join(str(err).split())
    return text or type(err).__name__


class Store:
    """The registry and run history behind one asyncpg pool.

    Use `await Store.connect(url)` and `close()`, or `async with await Store.connect(url)`.
    Methods other than `connect` let asyncpg's errors through (`OSError`,
    `asyncpg.PostgresError`, `asyncpg.InterfaceError`): callers decide whether to retry.
    """

    def __init__(self, pool: asyncpg.Pool, *, url: str = "") -> None:
        self.pool = pool
        self.url = url

    @classmethod
    async def connect(
        cls, url: str, *, min_size: int = 1, max_size: int = 5, timeout: float = 10.0
    ) -> Store:
        """Open the pool; `DatabaseUnavailable` (one line) when PostgreSQL does not answer,
        `InputError` when *url* is not a PostgreSQL URL."""
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                timeout=timeout,
            )
        except asyncpg.ClientConfigurationError as err:
            raise InputError(f"DATABASE_URL is not a valid PostgreSQL URL: {err}") from None
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            raise DatabaseUnavailable(
                f"cannot reach PostgreSQL at {redact_url(url)}: {failure_reason(err)}"
            ) from err
        except ValueError as err:  # a DSN asyncpg cannot even split
            raise InputError(f"DATABASE_URL is not a valid PostgreSQL URL: {err}") from None
        return cls(pool, url=url)

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ----------------------------------------------------------------- migrations

    async def migrate(self, directory: Path | None = None) -> list[str]:
        """Apply every migration not yet recorded, in order, each in its own transaction.

        Returns the names (file stems, e.g. ``0001_initial``) applied now: empty when
        the database was up to date. An advisory lock makes concurrent migrators wait
        for each other instead of racing.
        """
        files = migration_files(directory or MIGRATIONS_DIR)
        applied_now: list[str] = []
        async with self.pool.acquire() as conn:
            await conn.execute("select pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                await conn.execute(
                    "create table if not exists tdsl_migrations ("
                    " version int primary key, name text not null,"
                    " applied_at timestamptz not null default now())"
                )
                done = {
                    row["version"]
                    for row in await conn.fetch("select version from tdsl_migrations")
                }
                for version, name, path in files:
                    if version in done:
                        continue
                    sql = path.read_text(encoding="utf-8")
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute(
                            "insert into tdsl_migrations (version, name) values ($1, $2)",
                            version,
                            name,
                        )
                    applied_now.append(name)
            finally:
                await conn.execute("select pg_advisory_unlock($1)", _MIGRATION_LOCK)
        return applied_now

    async def migrations(self) -> list[dict[str, Any]]:
        """The recorded migrations, oldest first (empty before the first `migrate`)."""
        exists = await self.pool.fetchval("select to_regclass('tdsl_migrations') is not null")
        if not exists:
            return []
        rows = await self.pool.fetch(
            "select version, name, applied_at from tdsl_migrations order by version"
        )
        return [dict(row) for row in rows]

    # ----------------------------------------------------------------- registry

    async def register(
        self, definition: Definition, source: str, *, tenant: str | None = None
    ) -> Literal["registered", "unchanged"]:
        """Store *definition* (and its *source* text) as an immutable version, of
        *tenant* if given.

        The same name and version with the same content hash is a no-op
        ("unchanged"); with different content it raises `VersionConflict`, naming
        the next free version. A name belongs to the tenant that registered it first:
        another tenant's version of it is a `ConflictError`.
        """
        sha256 = content_hash(definition)
        name, version = definition.name, definition.version
        async with self.pool.acquire() as conn, conn.transaction():
            owners = await conn.fetch(
                "select distinct tenant from definitions where name = $1", name
            )
            owner = owners[0]["tenant"] if owners else tenant
            if owner != tenant:
                raise ConflictError(
                    f"definition {name!r} is registered for "
                    f"{f'tenant {owner!r}' if owner else 'no tenant'}, not "
                    f"{f'tenant {tenant!r}' if tenant else 'without one'}; choose another name"
                )
            inserted = await conn.fetchval(
                "insert into definitions (name, version, sha256, source, parsed, tenant)"
                " values ($1, $2, $3, $4, $5, $6)"
                " on conflict (name, version) do nothing returning sha256",
                name,
                version,
                sha256,
                source,
                normalise(definition),
                tenant,
            )
            if inserted is not None:
                return "registered"
            registered = await conn.fetchval(
                "select sha256 from definitions where name = $1 and version = $2",
                name,
                version,
            )
            if registered == sha256:
                return "unchanged"
            versions = await conn.fetch("select version from definitions where name = $1", name)
        raise VersionConflict(
            name,
            version,
            registered=str(registered),
            attempted=sha256,
            next_version=next_version(row["version"] for row in versions),
        )

    async def definitions(self, *, tenant: str | None = None) -> list[dict[str, Any]]:
        """Every registered version (of *tenant*, if given): `name`, `version`,
        `sha256`, `registered_at`, `description`, `tenant`; by name, the highest
        version of each first."""
        rows = await self.pool.fetch(
            "select name, version, sha256, registered_at, deprecated_at, tenant,"
            " parsed->>'description' as description from definitions"
            " where ($1::text is null or tenant = $1)",
            tenant,
        )
        found = [dict(row) for row in rows]
        found.sort(key=lambda d: version_key(d["version"]), reverse=True)
        found.sort(key=lambda d: d["name"])
        return found

    async def find_definition(self, name: str, version: str | None = None) -> dict[str, Any] | None:
        """One registered version with its `source` and `parsed` JSON; the highest
        semantic version that is not deprecated when *version* is None."""
        rows = await self.pool.fetch(
            "select name, version, sha256, source, parsed, registered_at from definitions"
            " where name = $1 and ($2::text is null or version = $2)"
            " and ($2::text is not null or deprecated_at is null)",
            name,
            version,
        )
        if not rows:
            return None
        return dict(max(rows, key=lambda row: version_key(row["version"])))

    async def deprecate(self, name: str, version: str, *, deprecated: bool = True) -> bool:
        """Mark a registered version deprecated (or not any more); False if unknown."""
        status = await self.pool.execute(
            "update definitions set deprecated_at = case when $3 then"
            " coalesce(deprecated_at, now()) else null end where name = $1 and version = $2",
            name,
            version,
            deprecated,
        )
        return str(status) != "UPDATE 0"

    # ----------------------------------------------------------------- run history

    async def upsert_run(self, run: RunRecord) -> None:
        """Insert or update one run (see `RunRecord` for what an update may change)."""
        await self.pool.execute(_UPSERT_RUN, *_run_row(run))

    async def save_run(self, run: RunRecord, steps: Sequence[StepRecord]) -> None:
        """`upsert_run` and `upsert_steps` in one transaction.

        The projector relies on it: a run stored with its final status must have its
        final steps too, or a write cut off between the two would leave a COMPLETED run
        with the steps of an earlier, running snapshot, and nothing would correct it.
        """
        rows = _step_rows(run.workflow_id, run.run_id, steps)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_UPSERT_RUN, *_run_row(run))
            if rows:
                await conn.executemany(_UPSERT_STEP, rows)

    async def announce_worker(
        self, *, namespace: str, task_queue: str, identity: str, activities: Sequence[str]
    ) -> None:
        """Record that *identity* polls *task_queue* with these activities, as of now."""
        await self.pool.execute(
            "insert into tdsl_workers (namespace, task_queue, identity, activities)"
            " values ($1, $2, $3, $4)"
            " on conflict (namespace, task_queue, identity)"
            " do update set activities = excluded.activities, seen_at = now()",
            namespace,
            task_queue,
            identity,
            sorted(activities),
        )

    async def worker_activities(
        self, *, namespace: str, task_queue: str, identities: Sequence[str], fresh_seconds: float
    ) -> dict[str, list[str]]:
        """Identity → announced activities, for those of *identities* seen recently."""
        rows = await self.pool.fetch(
            "select identity, activities from tdsl_workers"
            " where namespace = $1 and task_queue = $2 and identity = any($3::text[])"
            " and seen_at > now() - make_interval(secs => $4)",
            namespace,
            task_queue,
            list(identities),
            fresh_seconds,
        )
        return {row["identity"]: list(row["activities"]) for row in rows}

    async def upsert_steps(
        self, workflow_id: str, run_id: str, steps: Sequence[StepRecord]
    ) -> None:
        """Insert or update the steps of one run, in one transaction.

        The run's row must exist (`upsert_run` first): steps reference it.
        """
        rows = _step_rows(workflow_id, run_id, steps)
        if not rows:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(_UPSERT_STEP, rows)

    async def runs(
        self,
        *,
        status: str | None = None,
        definition: str | None = None,
        tenant: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """The latest runs first: `workflow_id`, `run_id`, `definition`, `version`,
        `status`, `started_at`, `ended_at`, `tenant`; optionally only one status,
        definition or tenant."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        rows = await self.pool.fetch(
            f"select {_RUN_COLUMNS} from runs"
            " where ($1::text is null or status = $1) and ($2::text is null or definition = $2)"
            " and ($4::text is null or tenant = $4)"
            " order by started_at desc nulls last, updated_at desc, workflow_id"
            " limit $3",
            status,
            definition,
            limit,
            tenant,
        )
        return [dict(row) for row in rows]

    async def run(self, workflow_id: str, run_id: str | None = None) -> dict[str, Any] | None:
        """One run with `definition_hash`, `input`, `output`, `error`, `continued` and its `steps`
        (ordered by start, unstarted last, then id); the latest run of the workflow id
        when *run_id* is None."""
        row = await self.pool.fetchrow(
            f"select {_RUN_COLUMNS}, definition_hash, input, output, error, continued, updated_at"
            " from runs where workflow_id = $1 and ($2::text is null or run_id = $2)"
            " order by started_at desc nulls last, updated_at desc limit 1",
            workflow_id,
            run_id,
        )
        if row is None:
            return None
        run = dict(row)
        steps = await self.pool.fetch(
            "select step_id, status, attempts, started_at, ended_at, output, error, updated_at"
            " from run_steps where workflow_id = $1 and run_id = $2"
            " order by started_at nulls last, step_id",
            run["workflow_id"],
            run["run_id"],
        )
        run["steps"] = [dict(step) for step in steps]
        return run


def migration_files(directory: Path) -> list[tuple[int, str, Path]]:
    """(version, name, path) of each migration, ordered; one `DslError` for a bad set."""
    if not directory.is_dir():
        raise ConfigurationError(
            f"no migrations directory at {directory} (install temporal-dsl from its source "
            "tree, e.g. `pip install -e .`, so that schema/migrations is there)"
        )
    found: dict[int, tuple[int, str, Path]] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if match is None:
            raise ConfigurationError(f"migration file {path.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ConfigurationError(
                f"migrations {found[version][2].name!r} and {path.name!r} share number {version}"
            )
        found[version] = (version, path.stem, path)
    return [found[v] for v in sorted(found)]


def next_version(versions: Iterable[str]) -> str:
    """The version to register next: the highest one's patch + 1 (or its release, for a
    pre-release such as 2.0.0-rc.1)."""
    known = [v for v in versions if version_key(v) != (-1,)]
    if not known:
        return DEFAULT_VERSION
    highest = max(known, key=version_key)
    match = re.match(r"(\d+)\.(\d+)\.(\d+)(-[^+]+)?", highest)
    assert match is not None  # version_key accepted it
    major, minor, patch, pre = match.groups()
    if pre:
        return f"{major}.{minor}.{patch}"
    return f"{major}.{minor}.{int(patch) + 1}"


def _run_row(run: RunRecord) -> tuple[Any, ...]:
    """The parameters of `_UPSERT_RUN`, in order."""
    return (
        run.workflow_id,
        run.run_id,
        run.definition,
        run.version,
        run.definition_hash,
        run.status,
        run.input,
        run.output,
        run.error,
        run.started_at,
        run.ended_at,
        run.updated_at,
        run.continued,
        run.tenant,
    )


def _step_rows(workflow_id: str, run_id: str, steps: Sequence[StepRecord]) -> list[tuple[Any, ...]]:
    """The parameters of `_UPSERT_STEP` for each step; a step of another run is refused."""
    rows = []
    for step in steps:
        if (step.workflow_id and step.workflow_id != workflow_id) or (
            step.run_id and step.run_id != run_id
        ):
            raise ValueError(
                f"step {step.step_id!r} belongs to {step.workflow_id}/{step.run_id}, "
                f"not {workflow_id}/{run_id}"
            )
        rows.append(
            (
                workflow_id,
                run_id,
                step.step_id,
                step.status,
                step.attempts,
                step.started_at,
                step.ended_at,
                step.output,
                step.error,
                step.updated_at,
            )
        )
    return rows
