"""The one-step definition a batch of a large foreach runs as."""

from __future__ import annotations

from dsl.batches import batch_definition, steps_read_by
from dsl.models import Definition, ForeachStep
from dsl.validate import validate_text

TEXT = """\
name: nightly
version: 2.1.0
input: {type: object}
defaults: {timeout: 30s}
rules: {big: {">": [{"var": "item"}, 5]}}
steps:
  - {id: fetch, action: echo}
  - id: each
    type: foreach
    dependencies: [fetch]
    items: '${{ input.items }}'
    step:
      id: one
      action: echo
      when: {"!=": [{"var": "steps.fetch.status"}, "failed"]}
      parameters: {n: '${{ item }}', from: '${{ steps.fetch.output }}'}
on_failure: [{id: alert, action: echo}]
triggers: [{schedule: {cron: "0 * * * *"}}]
"""


def _each() -> tuple[Definition, ForeachStep]:
    definition = validate_text(TEXT, file="nightly.yaml").definition
    step = definition.steps[1]
    assert isinstance(step, ForeachStep)
    return definition, step


def test_a_batch_is_the_foreach_over_its_slice_with_the_parents_settings() -> None:
    definition, step = _each()
    batch = batch_definition(definition, step, [7, 8, 9], first_index=400, max_concurrency=50)
    parsed = Definition.model_validate(batch)
    assert [s.id for s in parsed.steps] == ["each"]
    each = parsed.steps[0]
    assert isinstance(each, ForeachStep)
    assert (each.items, each.max_concurrency, each.dependencies) == ([7, 8, 9], 50, [])
    assert parsed.description == "items 400-402 of each"
    assert (parsed.input, parsed.on_failure, parsed.triggers) == (None, [], [])
    assert (parsed.name, parsed.version, parsed.rules) == ("nightly", "2.1.0", definition.rules)
    assert parsed.defaults == definition.defaults
    assert batch["output"] == "${{ steps.each.output }}"


def test_the_seed_names_the_steps_the_body_reads() -> None:
    _, step = _each()
    assert steps_read_by(step) == {"fetch"}
