"""The definition a batch of a large foreach runs as, and what it must be seeded with.

A foreach over more items than one history should hold runs them in child workflows
of the same interpreter, one batch of items each. The child runs a one-step
definition: the foreach itself over its slice of the items, with the parent's
settings (policies, defaults, rules) and nothing else (no input schema, no triggers,
no on_failure: the parent owns those). Built here, in the pure language package, so
that the runtime only starts it and tests can look at it.
"""

from __future__ import annotations

from typing import Any

from dsl.conditions import condition_vars
from dsl.models import Definition, ForeachStep
from dsl.templates import find_templates

__all__ = ["batch_definition", "steps_read_by"]


def batch_definition(
    definition: Definition,
    step: ForeachStep,
    items: list[Any],
    *,
    first_index: int,
    max_concurrency: int,
) -> dict[str, Any]:
    """The normalised definition of one batch: *items* of *step*, the first of which
    has the global index *first_index*."""
    batch = definition.model_dump(mode="json", exclude_none=True)
    batch.pop("input", None)
    batch.update(
        description=f"items {first_index}-{first_index + len(items) - 1} of {step.id}",
        steps=[
            {
                "id": step.id,
                "type": "foreach",
                "items": items,
                "max_concurrency": max_concurrency,
                "step": step.step.model_dump(mode="json", exclude_none=True),
            }
        ],
        output="${{ steps." + step.id + ".output }}",
        on_failure=[],
        triggers=[],
    )
    return batch


def steps_read_by(step: ForeachStep) -> set[str]:
    """Ids of the steps whose state the foreach body reads (templates and `when`):
    what a batch child needs from its parent's `steps`."""
    body = step.step.model_dump(mode="json", exclude_none=True)
    named = {
        ref.path[1]
        for ref in find_templates(body)
        if ref.path[:1] == ("steps",) and len(ref.path) > 1
    }
    named |= {
        path[1]
        for path in condition_vars(body.get("when"))
        if path[:1] == ("steps",) and len(path) > 1
    }
    return {str(name) for name in named}
