"""Submit runs: validate, pin and start, as `tdsl run` and schedules do.

A run starts only from a checked `RunInput`: the definition validated, its
subworkflows resolved and pinned, and the input completed with its schema's defaults,
so what the templates see is exactly what was submitted.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from temporalio.client import (
    Client,
    WorkflowHandle,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from dsl.bundle import normalise, resolve_bundle
from dsl.catalog import Catalog, ChainedCatalog, DirectoryCatalog
from dsl.errors import ConfigurationError, InputError, ServiceError
from dsl.inputs import prepare_input
from dsl.loader import MAX_BYTES, read_bounded
from dsl.models import DEFAULT_VERSION
from dsl.validate import ValidatedDefinition, validate_file
from interpreter.contract import (
    DSL_NAME,
    DSL_VERSION,
    MEMO_HASH,
    MEMO_NAME,
    MEMO_VERSION,
    SEARCH_ATTRIBUTES,
    WORKFLOW_NAME,
    RunInput,
)

__all__ = [
    "MAX_WORKFLOW_ID_BYTES",
    "check_workflow_id",
    "new_workflow_id",
    "parse_json_argument",
    "prepare_run",
    "registry_catalog",
    "start_options",
    "start_run",
]


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


def start_options(run_input: RunInput) -> dict[str, Any]:
    """How every run is started, by `tdsl run` or by a schedule: search attributes
    (``typed_search_attributes``), memo with the content hash, and the UI's summary."""
    definition = run_input.definition
    name, version = str(definition["name"]), str(definition.get("version", DEFAULT_VERSION))
    description = definition.get("description")
    return {
        "typed_search_attributes": TypedSearchAttributes(
            [SearchAttributePair(DSL_NAME, name), SearchAttributePair(DSL_VERSION, version)]
        ),
        "memo": {MEMO_NAME: name, MEMO_VERSION: version, MEMO_HASH: run_input.definition_hash},
        "static_summary": f"{name} {version}",
        "static_details": description if isinstance(description, str) else None,
    }


async def start_run(
    client: Client,
    run_input: RunInput,
    *,
    workflow_id: str | None = None,
    task_queue: str,
) -> WorkflowHandle[Any, Any]:
    """Start the interpreter on a prepared run; returns at once with the handle.

    The run is findable by definition name and version (search attributes), carries
    name, version and content hash in its memo, and shows "name version" and the
    description in the Web UI.
    """
    options = start_options(run_input)
    if workflow_id is None:
        workflow_id = new_workflow_id(str(run_input.definition["name"]))
    else:
        check_workflow_id(workflow_id)
    try:
        return await client.start_workflow(
            WORKFLOW_NAME,
            run_input,
            id=workflow_id,
            task_queue=task_queue,
            search_attributes=options.pop("typed_search_attributes"),
            **options,
        )
    except WorkflowAlreadyStartedError:
        raise InputError(
            f"a run with workflow id {workflow_id!r} is already running; choose another --id"
        ) from None
    except RPCError as err:
        if err.status == RPCStatusCode.INVALID_ARGUMENT and "search attribute" in err.message:
            commands = "; ".join(
                f"temporal operator search-attribute create --name {key.name} --type Keyword"
                for key in SEARCH_ATTRIBUTES
            )
            raise ConfigurationError(
                f"namespace {client.namespace!r} lacks the search attributes "
                f"{', '.join(k.name for k in SEARCH_ATTRIBUTES)} ({err.message}); "
                f"register them once: {commands}"
            ) from None
        raise ServiceError(f"cannot start the run: {err.message}") from None
