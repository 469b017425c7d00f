"""Submit runs: validate, pin and start, as `tdsl run` and schedules do.

A run starts only from a checked `RunInput`: the definition validated, its
subworkflows resolved and pinned, and the input completed with its schema's defaults,
so what the templates see is exactly what was submitted.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import (
    Client,
    WorkflowHandle,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from dsl.bundle import canonical_json, content_hash, normalise, resolve_bundle
from dsl.catalog import DEFINITION_SUFFIXES, Catalog, ChainedCatalog, DirectoryCatalog
from dsl.errors import InputError, ServiceError
from dsl.inputs import prepare_input
from dsl.loader import MAX_BYTES, read_bounded
from dsl.models import DEFAULT_VERSION
from dsl.validate import ValidatedDefinition, validate_data, validate_file
from interpreter.contract import (
    DSL_NAME,
    DSL_TENANT,
    DSL_VERSION,
    MEMO_HASH,
    MEMO_NAME,
    MEMO_TENANT,
    MEMO_VERSION,
    SEARCH_ATTRIBUTES,
    RunEnvelope,
    RunInput,
    definition_type,
    search_attribute_hint,
)
from interpreter.payloads import PayloadError, payload_codec, payload_store_from_env, put_content

__all__ = [
    "MAX_WORKFLOW_ID_BYTES",
    "RunStart",
    "check_workflow_id",
    "hint_missing_search_attributes",
    "is_definition_file",
    "missing_search_attributes",
    "new_workflow_id",
    "parse_json_argument",
    "prepare_registered",
    "prepare_run",
    "registry_catalog",
    "run_start",
    "start_run",
    "store_definitions",
]

log = logging.getLogger(__name__)


_MAX_MESSAGE = 300


def parse_json_argument(text: str, *, what: str = "--input") -> Any:
    """JSON text, or `@path` to read it from a file; `InputError` with the reason.

    NaN and Infinity are refused: they are not JSON and no other client could send them.
    """
    source = what
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = read_bounded(path, MAX_BYTES).decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            raise InputError(f"{what}: cannot read {str(path)!r}: {reason}") from None
        source = f"{what} file {str(path)!r}"

    def _no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as err:
        raise InputError(
            f"{source} is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
        ) from None
    except ValueError as err:
        raise InputError(f"{source} is not valid JSON: {err}") from None


def _shorten(text: str, limit: int = _MAX_MESSAGE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def prepare_run(
    file: str | Path,
    *,
    input_text: str | None = None,
    input_value: Any = None,
    definitions: Sequence[str | Path] = (),
    catalog: Catalog | None = None,
    activities: Iterable[str] | None = None,
) -> tuple[RunInput, ValidatedDefinition]:
    """Everything a run needs, checked before anything is started.

    The definition is validated, its subworkflows resolved and pinned (beside the
    file, in *definitions*, then in *catalog*, by default the PostgreSQL registry
    when `DATABASE_URL` is set), and the input (*input_text* as JSON
    or ``@file``, else *input_value*, else ``{}``) completed with the `input`
    schema's defaults and checked against it, so the pinned input is exactly what
    the templates see. Raises `DefinitionError` or `InputError`.
    """
    names = set(activities) if activities is not None else None
    if catalog is None:
        catalog = registry_catalog()
    checked = validate_file(file, definitions=definitions, catalog=catalog, activities=names)
    local = DirectoryCatalog([Path(file).parent, *definitions])
    lookup: Catalog = local if catalog is None else ChainedCatalog([local, catalog])
    return _pinned(checked, lookup, input_text, input_value)


def _pinned(
    checked: ValidatedDefinition, lookup: Catalog, input_text: str | None, input_value: Any
) -> tuple[RunInput, ValidatedDefinition]:
    """The bundle of *checked* (subworkflows from *lookup*) and the prepared input."""
    bundle = resolve_bundle(checked, lookup)
    if input_text is not None:
        value = parse_json_argument(input_text)
    else:
        value = {} if input_value is None else input_value
    run_input = RunInput(
        definition=normalise(bundle.definition),
        input=prepare_input(checked.definition.input, value),
        subworkflows={key: normalise(child) for key, child in bundle.subworkflows.items()},
        latest=dict(bundle.latest),
        definition_hash=bundle.hash,
    )
    return run_input, checked


def is_definition_file(argument: str) -> bool:
    """Whether `tdsl run ARG` names a file (it exists, or looks like a path) rather
    than a definition's ``NAME[@VERSION]``."""
    path = Path(argument)
    return path.exists() or "/" in argument or path.suffix in DEFINITION_SUFFIXES


def prepare_registered(
    name: str,
    version: str | None = None,
    *,
    input_text: str | None = None,
    input_value: Any = None,
    catalog: Catalog | None = None,
) -> tuple[RunInput, ValidatedDefinition]:
    """`prepare_run` of the registered definition *name* (the highest version that is
    not deprecated, else *version*), its subworkflows from the registry too."""
    registry = catalog if catalog is not None else registry_catalog()
    wanted = definition_type(name, version)
    if registry is None:
        raise InputError(
            f"{wanted!r} is not a file, and DATABASE_URL is not set to find it in the "
            f"registry; give its file, or start what the workers know by type: "
            f"temporal workflow start --type {wanted} --task-queue QUEUE --input JSON"
        )
    entry = registry.find(name, version)
    if entry is None:
        raise InputError(f"{wanted!r} is neither a file nor a registered definition")
    checked = validate_data(normalise(entry.definition), file=entry.origin, catalog=registry)
    return _pinned(checked, registry, input_text, input_value)


# --------------------------------------------------------------------------- registry


def registry_catalog() -> Catalog | None:
    """The PostgreSQL registry when `DATABASE_URL` is set (docs/language.md: after the files).

    Read only when a subworkflow is not found in files; unreachable, it is one
    warning on stderr and the lookup goes on with files only.
    """
    from interpreter.history.registry import registry_from_env

    return registry_from_env()


MAX_WORKFLOW_ID_BYTES = 1000
"""Temporal's default `limit.maxIDLength`; a longer id is refused by the server."""


def check_workflow_id(text: str) -> str:
    """*text* if it can name a run: non-empty printable text within Temporal's limit.

    An empty id used to be replaced silently by a generated one, and a newline or
    another control character breaks every listing and log that shows the id.
    """
    if not text:
        raise InputError("the workflow id must not be empty")
    if not text.isprintable():
        bad = next(ch for ch in text if not ch.isprintable())
        raise InputError(
            f"the workflow id must be printable text; {bad!a} at position {text.index(bad)} is not"
        )
    if text != text.strip():
        raise InputError("the workflow id must not start or end with white space")
    size = len(text.encode("utf-8"))
    if size > MAX_WORKFLOW_ID_BYTES:
        raise InputError(
            f"the workflow id is {size} bytes; Temporal's limit is {MAX_WORKFLOW_ID_BYTES}"
        )
    return text


def new_workflow_id(name: str) -> str:
    """`<definition name>-<8 hex>`: readable in lists, unique enough for humans."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


@dataclass
class RunStart:
    """How a prepared run is started by its definition's workflow type (docs/language.md, "Definitions are workflow types")."""

    workflow_type: str
    args: list[Any]
    memo: dict[str, Any]
    search_attributes: TypedSearchAttributes | None
    static_summary: str
    static_details: str | None


def run_start(
    run_input: RunInput,
    *,
    stored: bool,
    searchable: bool = True,
    tenant: str | None = None,
    tenant_searchable: bool = True,
) -> RunStart:
    """The type ``NAME``, the user's input, the content hash in the memo and, when
    needed, the envelope: the subworkflows this client pinned, and the definitions
    themselves unless they are *stored* where the workers look (`interpreter.library`).
    *searchable*: whether the namespace has the search attributes; a *tenant* goes in
    the memo, and in `DslTenant` unless not *tenant_searchable*."""
    definition = run_input.definition
    name, version = str(definition["name"]), str(definition.get("version", DEFAULT_VERSION))
    description = definition.get("description")
    envelope = RunEnvelope(search_attributes=None if searchable else False)
    if run_input.subworkflows:
        envelope.subworkflows = {
            key: content_hash(child) for key, child in run_input.subworkflows.items()
        }
        envelope.latest = dict(run_input.latest)
    if not stored:
        envelope.definitions = _contents(run_input)
    extra = envelope.to_json()
    return RunStart(
        workflow_type=definition_type(name),
        args=[run_input.input, extra] if extra else [run_input.input],
        memo={
            MEMO_NAME: name,
            MEMO_VERSION: version,
            MEMO_HASH: run_input.definition_hash,
            **({MEMO_TENANT: tenant} if tenant is not None else {}),
        },
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(DSL_NAME, name),
                SearchAttributePair(DSL_VERSION, version),
                *(
                    [SearchAttributePair(DSL_TENANT, tenant)]
                    if tenant is not None and tenant_searchable
                    else []
                ),
            ]
        )
        if searchable
        else None,
        static_summary=f"{name} {version}",
        static_details=description if isinstance(description, str) else None,
    )


def _contents(run_input: RunInput) -> dict[str, dict[str, Any]]:
    found = {run_input.definition_hash: run_input.definition}
    found.update({content_hash(child): child for child in run_input.subworkflows.values()})
    return found


async def store_definitions(client: Client, run_input: RunInput) -> bool:
    """Put the run's definitions into the payload store the workers read, by content
    hash; False when this client has none (they then travel with the run)."""
    codec = payload_codec(client)
    store = codec.store if codec is not None else payload_store_from_env()
    if store is None:
        return False
    try:
        for content in _contents(run_input).values():
            await put_content(store, canonical_json(content))
    except PayloadError as err:
        log.info("definitions travel with the run: the payload store refused them: %s", err)
        return False
    return True


_hinted: set[tuple[str, str]] = set()


def hint_missing_search_attributes(namespace: str, keys: Sequence[Any] = SEARCH_ATTRIBUTES) -> None:
    """Say once per process, on stderr, that runs start without search attributes."""
    names = ", ".join(k.name for k in keys)
    if (namespace, names) not in _hinted:
        _hinted.add((namespace, names))
        print(
            f"tdsl: note: namespace {namespace!r} has no search attributes "
            f"{names}: runs start without them "
            f"(not searchable by them in the UI); {search_attribute_hint(keys)}",
            file=sys.stderr,
            flush=True,
        )


def missing_search_attributes(err: RPCError) -> bool:
    """Whether the server refused a start because the namespace lacks our attributes."""
    return (
        err.status == RPCStatusCode.INVALID_ARGUMENT and "search attribute" in err.message.lower()
    )


async def start_run(
    client: Client,
    run_input: RunInput,
    *,
    workflow_id: str | None = None,
    task_queue: str,
    tenant: str | None = None,
) -> WorkflowHandle[Any, Any]:
    """Start a prepared run by its definition's workflow type; returns at once.

    The run is findable by definition name and version (search attributes, where
    the namespace has them: else it starts without, and stderr says once how to add
    them), carries name, version and content hash in its memo, and shows "name
    version" and the description in the Web UI. A *tenant* marks the run, and through
    the workers' `interpreter.tenancy` its children and activities.
    """
    if workflow_id is None:
        workflow_id = new_workflow_id(str(run_input.definition["name"]))
    else:
        check_workflow_id(workflow_id)
    stored = await store_definitions(client, run_input)
    # What the namespace may lack, dropped in turn: DslTenant, then ours altogether.
    attempts = [
        {"searchable": True, "tenant_searchable": True},
        {"searchable": True, "tenant_searchable": False},
        {"searchable": False, "tenant_searchable": False},
    ]
    if tenant is None:
        del attempts[1]
    try:
        for attempt, searchable in enumerate(attempts):
            start = run_start(run_input, stored=stored, tenant=tenant, **searchable)
            try:
                return await _start(client, start, workflow_id, task_queue)
            except RPCError as err:
                if not missing_search_attributes(err) or attempt == len(attempts) - 1:
                    raise
                if not searchable["tenant_searchable"] or tenant is None:
                    hint_missing_search_attributes(client.namespace)
                else:
                    hint_missing_search_attributes(client.namespace, [DSL_TENANT])
        raise AssertionError("unreachable: the last attempt returns or raises")
    except WorkflowAlreadyStartedError:
        raise InputError(
            f"a run with workflow id {workflow_id!r} is already running; choose another --id"
        ) from None
    except RPCError as err:
        raise ServiceError(f"cannot start the run: {err.message}") from None


async def _start(
    client: Client, start: RunStart, workflow_id: str, task_queue: str
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        start.workflow_type,
        args=start.args,
        id=workflow_id,
        task_queue=task_queue,
        memo=start.memo,
        search_attributes=start.search_attributes,
        static_summary=start.static_summary,
        static_details=start.static_details,
    )
