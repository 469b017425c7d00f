"""A run's DAG with each step's state: what the run page draws (`GET /api/runs/{id}/graph`).

The run names its definition by name, version and content hash (its memo). The
definition itself is the one of that hash: from the run's own start arguments when it
travelled with the run, else from the definition directories and the registry, where
a version's content never changes (a file that changed since is refused rather than
drawn wrongly).
"""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from dsl.bundle import content_hash, normalise
from dsl.catalog import Catalog
from dsl.diagram import to_json
from dsl.errors import NotFoundError
from dsl.validate import validate_data
from interpreter.contract import MEMO_HASH, MEMO_NAME, MEMO_VERSION, RunEnvelope

__all__ = ["run_graph"]


async def run_graph(client: Client, workflow_id: str, catalog: Catalog | None) -> dict[str, Any]:
    """`{"graph": nodes and edges with a status each, "run": the status object}`."""
    from interpreter.client.status import run_status

    handle = client.get_workflow_handle(workflow_id)
    status = await run_status(handle)  # NotFoundError for an unknown id
    memo = await (await handle.describe()).memo()
    name, version, digest = memo.get(MEMO_NAME), memo.get(MEMO_VERSION), memo.get(MEMO_HASH)
    definition = await _carried(client, handle, digest)
    if definition is None and catalog is not None and isinstance(name, str):
        entry = catalog.find(name, version if isinstance(version, str) else None)
        if entry is not None and (not digest or content_hash(entry.definition) == digest):
            definition = normalise(entry.definition)
    if definition is None:
        raise NotFoundError(
            f"the definition of run {workflow_id!r} ({name} {version}) is neither in its "
            "history nor, with that content, in the definition directories or the registry"
        )
    graph = validate_data(definition, file=f"{name}.yaml").graph
    states = {key: str(state["status"]) for key, state in status["steps"].items()}
    drawn = to_json(graph, states)
    for node in drawn["nodes"]:
        node["attempts"] = status["steps"].get(node["id"], {}).get("attempts", 0)
    return {"graph": drawn, "run": status}


async def _carried(client: Client, handle: Any, digest: Any) -> dict[str, Any] | None:
    """The definition in the run's start arguments (a `DslWorkflow` input, or an
    envelope that carries the definitions), if there."""
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            break
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        started = await client.data_converter.decode(list(payloads))
        if started and isinstance(started[0], dict) and "definition" in started[0]:
            found = started[0]["definition"]
            return found if isinstance(found, dict) else None
        envelope = RunEnvelope.from_json(started[1] if len(started) > 1 else None)
        if isinstance(digest, str) and digest in envelope.definitions:
            return envelope.definitions[digest]
        break
    return None
