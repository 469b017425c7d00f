"""The definitions a worker knows, and the local activity that tells a run which it runs.

Every definition is a workflow type (docs/language.md, "Definitions are workflow types"): ``NAME`` or ``NAME@VERSION``, started
by any Temporal client with the user's input as the only argument. The interpreter
cannot read files or the database itself (workflow code does no I/O), so on its
first workflow task a run started by type asks this worker through the local
activity `DEFINITION_ACTIVITY`; the answer is recorded in its history, and replays,
retries and continuations use that answer whatever changes afterwards.

Where a definition is found, by name (highest version unless pinned) or by content
hash (what `tdsl run`, a parent run and a continuation pin through the memo):

1. the worker's ``--definitions`` directories, re-read when a file in them changes;
2. the PostgreSQL registry (`DATABASE_URL`), read at each lookup, so a definition
   registered while workers run is startable at once; by name it skips deprecated
   versions, pinned or by hash it does not;
3. by hash only: the payload store (`TDSL_PAYLOAD_STORE`), where `tdsl run FILE`
   leaves a file's definitions, and this process's memory of what it resolved.

A definition found in files is put into the payload store when there is one, so
that its continuations and children find it by hash on any worker even after the
file changed; without a store (or the registry) the run carries it along instead
(`RunEnvelope.definitions`), as an answer of ``"durable": false`` tells it to.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from temporalio import activity
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from dsl.bundle import (
    Bundle,
    bundle_of,
    canonical_json,
    content_hash,
    normalise,
    subworkflow_steps,
)
from dsl.catalog import (
    Catalog,
    CatalogEntry,
    ChainedCatalog,
    MemoryCatalog,
    is_definition_file,
    version_key,
)
from dsl.checked import check_definition, remember_checked
from dsl.errors import DefinitionError, DslError
from dsl.models import Definition
from dsl.validate import validate_data, validate_file
from interpreter.contract import (
    DEFINITION_ACTIVITY,
    SEARCH_ATTRIBUTES,
    definition_type,
    parse_definition_type,
)
from interpreter.payloads import PayloadStore, put_content

__all__ = ["DefinitionLibrary", "Resolved"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_SEARCH_ATTRIBUTES_TTL = 60.0
"""Seconds a worker trusts what it learnt about the namespace's search attributes."""
_MEMORY = 256
"""Definitions by hash this process remembers (the oldest are forgotten first)."""


@dataclass
class Resolved:
    """A definition found for a run, with where it came from."""

    definition: Definition
    origin: str
    durable: bool
    """Whether a worker elsewhere finds it by hash (registry or payload store)."""
    canonical: dict[str, Any] | None = field(default=None, repr=False)
    """The canonical form when it was read as such (from the payload store)."""

    @cached_property
    def content(self) -> dict[str, Any]:
        """The canonical form a run receives (computed once: it is seconds for 20,000
        steps)."""
        return self.canonical if self.canonical is not None else normalise(self.definition)

    @cached_property
    def hash(self) -> str:
        return content_hash(self.content)


class DefinitionLibrary:
    """The definitions of some directories, the registry and the payload store."""

    def __init__(
        self,
        directories: Sequence[str | Path] = (),
        *,
        database_url: str | None = None,
        store: PayloadStore | None = None,
        client: Client | None = None,
        task_queue: str = "",
    ) -> None:
        self.directories = [Path(d).resolve() for d in directories]
        self.database_url = database_url
        self.store = store
        self.client = client
        self.task_queue = task_queue
        self._files: MemoryCatalog = MemoryCatalog()
        self._signature: tuple[Any, ...] | None = None
        self._file_hashes: dict[str, CatalogEntry] = {}
        self._checked_files: dict[str, Resolved] = {}
        self._by_hash: dict[str, Resolved] = {}
        self._search_attributes: tuple[float, bool] | None = None
        self._store_lock = asyncio.Lock()
        self._kept: set[str] = set()
        """Hashes this process put into the store already."""

    # ------------------------------------------------------------------ the activity

    @activity.defn(name=DEFINITION_ACTIVITY)
    async def resolve(self, request: dict[str, Any]) -> dict[str, Any]:
        """What a run started by *request["type"]* runs: its definition (by the memo's
        ``hash`` when given), the subworkflows it may start (unless ``pins`` is false),
        their contents unless ``known``, and whether the namespace has the search
        attributes. `NotFound` and `InvalidDefinition` fail the run at once."""
        workflow_type = str(request.get("type", ""))
        wanted_hash = request.get("hash") or None
        known = set(request.get("known") or ())
        root = await self._root(workflow_type, wanted_hash)
        bundle = await self._bundle(root) if request.get("pins", True) else None
        contents = bundle.subworkflow_contents() if bundle is not None else {}
        contents[root.hash] = root.content
        durable = await self._keep(root, bundle, contents)
        # The model and graph the run builds first, built here in a thread instead:
        # off this event loop and outside the run's workflow task (`dsl.checked`).
        await asyncio.to_thread(check_definition, root.content, root.hash)
        answer: dict[str, Any] = {
            "name": root.definition.name,
            "version": root.definition.version,
            "hash": root.hash,
            "origin": root.origin,
            "durable": durable,
            "definitions": {h: c for h, c in contents.items() if h not in known},
            "search_attributes": await self.has_search_attributes(),
        }
        if bundle is not None:
            answer.update(subworkflows=bundle.pins(), latest=dict(bundle.latest))
        return answer

    # ------------------------------------------------------------------ lookups

    async def _root(self, workflow_type: str, wanted_hash: str | None) -> Resolved:
        name, version = parse_definition_type(workflow_type)
        if wanted_hash is not None:
            found = await self.by_hash(str(wanted_hash))
            if found is None:
                raise self._not_found(
                    f"no definition with content hash {str(wanted_hash)[:12]}… "
                    f"(workflow type {workflow_type!r}) is known"
                )
            if found.definition.name != name or version not in (None, found.definition.version):
                raise self._not_found(
                    f"content hash {str(wanted_hash)[:12]}… is "
                    f"{definition_type(found.definition.name, found.definition.version)!r}, "
                    f"not the workflow type {workflow_type!r}"
                )
            return found
        found = await self.by_name(name, version)
        if found is None:
            known = ", ".join(await self.names()) or "none"
            wanted = definition_type(name, version)
            raise self._not_found(f"no definition {wanted!r} is known (known: {known})")
        return found

    def _not_found(self, message: str) -> ApplicationError:
        where = f" to the workers of task queue {self.task_queue!r}" if self.task_queue else ""
        return ApplicationError(f"{message}{where}", type="NotFound", non_retryable=True)

    async def by_name(self, name: str, version: str | None = None) -> Resolved | None:
        """The definition *name* (pinned *version*, else the highest not deprecated)
        in the directories and the registry; files win a tie."""
        candidates: list[Resolved] = []
        entry = self._catalog().find(name, version)
        if entry is not None:
            candidates.append(self._checked(entry))
        registered = await self._registry_find(name, version)
        if registered is not None:
            candidates.append(registered)
        if not candidates:
            return None
        best = max(candidates, key=lambda c: version_key(c.definition.version))
        return self._remember(best)

    async def by_hash(self, wanted: str) -> Resolved | None:
        """The definition whose `content_hash` is *wanted*, wherever it is kept."""
        if wanted in self._by_hash:
            return self._by_hash[wanted]
        self._catalog()
        if wanted in self._file_hashes:
            return self._remember(self._checked(self._file_hashes[wanted]))
        found = await self._registry_by_hash(wanted)
        if found is None:
            found = await self._stored(wanted)
        return self._remember(found) if found is not None else None

    async def names(self) -> list[str]:
        """Every definition type name this worker can start (for the NotFound message)."""
        names = set(self._catalog().names())
        if self.database_url:
            rows = await self._registry_rows("select distinct name from definitions", ())
            names |= {str(row["name"]) for row in rows}
        return sorted(names)

    def _remember(self, found: Resolved) -> Resolved:
        key = found.hash
        self._by_hash.pop(key, None)
        self._by_hash[key] = found
        while len(self._by_hash) > _MEMORY:
            self._by_hash.pop(next(iter(self._by_hash)))
        return found

    # ------------------------------------------------------------------ files

    def _catalog(self) -> MemoryCatalog:
        """The directories' definitions, indexed again when a file changed."""
        files = sorted(
            path
            for directory in self.directories
            if directory.is_dir()
            for path in directory.iterdir()
            if is_definition_file(path)
        )
        stats = [(p, p.stat()) for p in files]
        signature = tuple((str(p), st.st_mtime_ns, st.st_size) for p, st in stats)
        if signature != self._signature:
            catalog = MemoryCatalog()
            for path in files:
                try:
                    catalog.add(CatalogEntry(Definition.model_validate(_load(path)), str(path)))
                except (DefinitionError, ValidationError, OSError):
                    continue  # a broken file cannot be started by name; validate says why
            self._files, self._signature = catalog, signature
            self._file_hashes = {content_hash(e.definition): e for e in catalog.entries()}
            self._checked_files.clear()
        return self._files

    def _checked(self, entry: CatalogEntry) -> Resolved:
        """A file's definition as `tdsl validate` would check it (once per version of
        the file): a broken one is `InvalidDefinition` with its positions."""
        found = self._checked_files.get(entry.origin)
        if found is not None:
            return found
        try:
            checked = validate_file(entry.origin, definitions=self.directories)
        except DefinitionError as err:
            raise ApplicationError(
                f"{entry.origin} is invalid: {err}", type="InvalidDefinition", non_retryable=True
            ) from None
        found = self._checked_files[entry.origin] = Resolved(
            checked.definition, entry.origin, durable=False
        )
        return found

    # ------------------------------------------------------------------ registry

    async def _registry_rows(self, query: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Rows of the registry; unreachable is a retryable failure (the run waits)."""
        if not self.database_url:
            return []

        async def fetch(store: Any) -> list[dict[str, Any]]:
            return [dict(row) for row in await store.pool.fetch(query, *args)]

        return await self._with_registry(fetch, [])

    async def _with_registry(self, use: Callable[[Any], Awaitable[T]], empty: T) -> T:
        """*use* the registry's store; *empty* before `tdsl db migrate`, a retryable
        `RegistryUnavailable` while PostgreSQL cannot be reached (the run waits)."""
        import asyncpg

        from interpreter.history.store import Store, failure_reason

        assert self.database_url is not None
        try:
            async with await Store.connect(self.database_url, min_size=1, max_size=1) as store:
                return await use(store)
        except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError):
            return empty  # not migrated (yet): nothing is registered that this can read
        except (DslError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            reason = str(err) if isinstance(err, DslError) else failure_reason(err)
            raise ApplicationError(
                f"the definition registry is not reachable: {reason}", type="RegistryUnavailable"
            ) from None

    async def _registry_find(self, name: str, version: str | None) -> Resolved | None:
        rows = await self._registry_rows(
            "select name, version, parsed, deprecated_at from definitions where name = $1"
            " and ($2::text is null or version = $2)",
            (name, version),
        )
        if version is None:
            rows = [row for row in rows if row.get("deprecated_at") is None]
        entries = [r for r in (self._from_row(row) for row in rows) if r is not None]
        if not entries:
            return None
        return max(entries, key=lambda r: version_key(r.definition.version))

    async def _registry_by_hash(self, wanted: str) -> Resolved | None:
        rows = await self._registry_rows(
            "select name, version, parsed from definitions where sha256 = $1", (wanted,)
        )
        for row in rows:
            found = self._from_row(row)
            if found is not None and found.hash == wanted:
                return found
        return None

    @staticmethod
    def _from_row(row: dict[str, Any]) -> Resolved | None:
        parsed = row["parsed"]
        if isinstance(parsed, str):
            parsed = json.loads(parsed)
        try:
            definition = Definition.model_validate(parsed)
        except ValidationError:
            return None  # registered under older models: left out, as registry_catalog does
        origin = f"registry:{row['name']}@{row['version']}"
        return Resolved(definition, origin, durable=True)

    # ------------------------------------------------------------------ subworkflows

    async def _bundle(self, root: Resolved) -> Bundle:
        """The subworkflows *root* can start, pinned now: files, then the registry
        (read only when it has subworkflow steps)."""
        if not subworkflow_steps(root.definition):
            return Bundle(definition=root.definition)
        registry = await self._registry_catalog()
        lookup: Catalog = ChainedCatalog([self._catalog(), registry])
        try:
            return await asyncio.to_thread(bundle_of, root.definition, root.origin, lookup)
        except DefinitionError as err:
            raise ApplicationError(
                f"{root.origin}: {err}", type="InvalidDefinition", non_retryable=True
            ) from None

    async def _registry_catalog(self) -> MemoryCatalog:
        """The registry as a catalog for subworkflow lookup (deprecated versions only
        when pinned), empty without a database."""
        if not self.database_url:
            return MemoryCatalog()
        from interpreter.history.registry import registry_catalog

        async def load(store: Any) -> MemoryCatalog:
            return await registry_catalog(store)

        return await self._with_registry(load, MemoryCatalog())

    # ------------------------------------------------------------------ payload store

    async def _keep(
        self, root: Resolved, bundle: Bundle | None, contents: dict[str, dict[str, Any]]
    ) -> bool:
        """Make the run's definitions (*contents*, by hash) findable by hash elsewhere;
        whether they are."""
        if self.store is None:
            return root.durable and (bundle is None or not bundle.subworkflows)
        async with self._store_lock:  # each once per process: a store keeps what it got
            for key, content in contents.items():
                if key not in self._kept:
                    await put_content(self.store, canonical_json(content))
                    self._kept.add(key)
        return True

    async def _stored(self, wanted: str) -> Resolved | None:
        if self.store is None:
            return None
        try:
            data = await self.store.get(wanted)
        except Exception:  # any store's "unknown key" (the protocol lets it raise anything)
            return None
        if hashlib.sha256(data).hexdigest() != wanted:
            return None
        try:
            canonical = json.loads(data)
            checked = await asyncio.to_thread(validate_data, canonical, file=f"store:{wanted[:12]}")
        except (DefinitionError, ValueError):
            return None
        # The store keeps canonical JSON: what the run will receive, already checked.
        remember_checked(wanted, checked.definition, checked.graph)
        self._kept.add(wanted)  # nothing to put back
        origin = f"payload store {wanted[:12]}…"
        return Resolved(checked.definition, origin, durable=True, canonical=canonical)

    # ------------------------------------------------------------------ search attributes

    async def has_search_attributes(self) -> bool:
        """Whether the namespace has `DslName` and `DslVersion` (asked once a minute);
        false when it cannot be told, so a run never upserts what the server refuses."""
        now = time.monotonic()
        if self._search_attributes is not None and now - self._search_attributes[0] < (
            _SEARCH_ATTRIBUTES_TTL
        ):
            return self._search_attributes[1]
        answer = False
        client = self.client
        if client is not None:
            try:
                response = await client.operator_service.list_search_attributes(
                    ListSearchAttributesRequest(namespace=client.namespace)
                )
                answer = all(key.name in response.custom_attributes for key in SEARCH_ATTRIBUTES)
            except RPCError as err:
                log.info("cannot list the namespace's search attributes: %s", err.message)
        self._search_attributes = (now, answer)
        return answer


def _load(path: Path) -> Any:
    from dsl.loader import load_file

    return load_file(path).data
