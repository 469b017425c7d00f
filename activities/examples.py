"""The example activities the seed format names: validateInput, processData, storeResult.

They make the seed document (`definitions/sample-workflow.json`, docs/language.md) run unchanged, and show the shape of a user
activity: a module-level `@activity.defn` function taking one dict and returning one.
"""

from __future__ import annotations

import uuid
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

__all__ = ["process_data", "store_result", "validate_input"]

_RESULT_NAMESPACE = uuid.UUID("6f1c1c1e-3a51-4d0e-9a43-2b8f5d7e0c11")


@activity.defn(name="validateInput")
async def validate_input(params: dict[str, Any]) -> dict[str, Any]:
    """Accept any object; anything else is a non-retryable `ValidationError`."""
    if not isinstance(params, dict):
        raise ApplicationError(
            f"validateInput: expected an object, got {type(params).__name__}",
            type="ValidationError",
            non_retryable=True,
        )
    return {"valid": True, "checked_at": activity.info().scheduled_time.isoformat()}


@activity.defn(name="processData")
async def process_data(params: dict[str, Any]) -> dict[str, Any]:
    """Process one piece of work and count its items: `params["items"]`, a list (none
    given: 0). Other parameters are ignored; `items` that is not a list is a
    non-retryable `ValidationError`."""
    items = params.get("items", []) if isinstance(params, dict) else params
    if not isinstance(items, list):
        raise ApplicationError(
            f"processData: 'items' must be a list, got {type(items).__name__}",
            type="ValidationError",
            non_retryable=True,
        )
    return {"processed": True, "items": len(items)}


@activity.defn(name="storeResult")
async def store_result(params: dict[str, Any]) -> dict[str, Any]:
    """Pretend to store; the id is derived from the workflow id, so a retry or a
    second run of the same workflow id stores under the same key (idempotent)."""
    workflow_id = activity.info().workflow_id or ""
    return {"stored": True, "id": str(uuid.uuid5(_RESULT_NAMESPACE, workflow_id))}
