"""Definitions as workflow types: one dynamic workflow runs every ``NAME[@VERSION]``.

Any Temporal client starts a definition by its name, with the user's input as the
only argument (docs/language.md, "Definitions are workflow types"). The run learns its definition on its first workflow task:

- from the memo's content hash (`MEMO_HASH`) when its starter pinned one — `tdsl
  run`, a parent run, a continuation — else from the type: the highest version the
  workers know, or the pinned ``@VERSION``;
- the content comes with the run (`RunEnvelope.definitions`) when its starter had it
  and no store does, else from the local activity `DEFINITION_ACTIVITY`, whose
  answer is recorded in the history (`interpreter.library`). So replays, retries and
  continuations run that definition even after the files or the registry changed.

The run then sets what every way of starting a run sets: the search attributes
`DslName`/`DslVersion` where the namespace has them, and the memo's name, version and
hash. Its children and continuations are started by type too, with the hash pinned
in their memo, and carry the definitions along only when no store or registry
holds them (``durable``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from dsl.batches import batch_definition
    from dsl.checked import check_definition
    from dsl.models import ForeachStep, SubworkflowStep
    from interpreter.contract import (
        DEFINITION_ACTIVITY,
        DSL_NAME,
        DSL_VERSION,
        MEMO_HASH,
        MEMO_NAME,
        MEMO_VERSION,
        RunEnvelope,
        RunInput,
    )

from interpreter.runtime.breaks import take_break
from interpreter.runtime.continuation import Carried
from interpreter.runtime.outcomes import StepFailed
from interpreter.runtime.versions import Behaviours
from interpreter.runtime.workflow import LARGE_LOAD_BREAK, LARGE_LOAD_STEPS, Interpreter

__all__ = ["RESOLVE_TIMEOUT", "DefinitionWorkflow"]

RESOLVE_TIMEOUT = timedelta(seconds=30)
"""One attempt of the definition lookup (files, registry, store); retried while the
registry is unreachable, never when the definition is unknown or invalid."""
_NOT_RETRIED = ["NotFound", "InvalidDefinition"]


@workflow.defn(dynamic=True)
class DefinitionWorkflow(Interpreter):
    """Every workflow type no other workflow claims: a definition's ``NAME[@VERSION]``."""

    by_type = True

    @workflow.init
    def __init__(self, args: Sequence[RawValue]) -> None:
        self._setup()
        self.envelope = RunEnvelope()
        self.carry: dict[str, dict[str, Any]] = {}
        """Definitions children and continuations must carry (none when durable)."""
        self.searchable = False
        self.shared_key: str | None = None
        """The content hash of what the lookup answered (see `_checked_key`)."""

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> Any:
        self.behaviours = Behaviours()  # first: before the lookup's local activity
        convert = workflow.payload_converter()
        user_input = convert.from_payload(args[0].payload) if args else None
        if len(args) > 1:
            self.envelope = RunEnvelope.from_json(convert.from_payload(args[1].payload))
        try:
            run = await self._resolve(user_input)
        except ActivityError as err:  # unknown or invalid: the run fails at once, in one line
            self._finish_run("FAILED")
            cause = err.cause
            if not isinstance(cause, ApplicationError):
                raise
            raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from None
        steps = run.definition.get("steps")
        if (
            isinstance(steps, list)
            and len(steps) >= LARGE_LOAD_STEPS
            and self.behaviours.has(LARGE_LOAD_BREAK)
        ):
            await take_break()  # decoding the answer and reading it: one activation each
        self._load(run)
        self._mark()
        return await self._interpret(run)

    async def _resolve(self, user_input: Any) -> RunInput:
        """The definition this run runs, and what its starter pinned (see the module)."""
        envelope = self.envelope
        info = self.info
        wanted = workflow.memo_value(MEMO_HASH, None)
        definitions = dict(envelope.definitions)
        subworkflows, latest = envelope.subworkflows, envelope.latest
        searchable = envelope.search_attributes
        if info.typed_search_attributes.get(DSL_NAME) is not None:
            searchable = True
        durable = not definitions
        if not (isinstance(wanted, str) and wanted in definitions and searchable is not None):
            answer = await workflow.execute_local_activity(
                DEFINITION_ACTIVITY,
                {
                    "type": info.workflow_type,
                    "hash": wanted if isinstance(wanted, str) else None,
                    "pins": subworkflows is None,
                    "known": sorted(definitions),
                },
                start_to_close_timeout=RESOLVE_TIMEOUT,
                retry_policy=TemporalRetryPolicy(non_retryable_error_types=_NOT_RETRIED),
                summary=f"which definition is {info.workflow_type}",
            )
            wanted = answer["hash"]
            definitions.update(answer["definitions"])
            durable = durable and bool(answer["durable"])
            if subworkflows is None:
                subworkflows, latest = answer.get("subworkflows", {}), answer.get("latest", {})
            if searchable is None:
                searchable = bool(answer["search_attributes"])
        self.searchable = bool(searchable)
        self.carry = {} if durable else definitions
        assert isinstance(wanted, str)
        definition: dict[str, Any] = definitions[wanted]
        # What the lookup answered is the content of that hash; what a starter sent
        # along is not shared with other runs (`dsl.checked`).
        self.shared_key = None if wanted in envelope.definitions else wanted
        batch = envelope.batch
        if batch is not None:  # a foreach batch: the parent's definition, cut to the batch
            parent = check_definition(definition, self.shared_key)
            step = next(
                s
                for s in parent.graph.all_steps()
                if isinstance(s, ForeachStep) and s.id == batch["step"]
            )
            definition = batch_definition(
                parent.definition,
                step,
                list(batch["items"]),
                first_index=int(batch["index_offset"]),
                max_concurrency=int(batch["max_concurrency"]),
            )
            batch = {k: v for k, v in batch.items() if k not in ("step", "items")}
        return RunInput(
            definition=definition,
            input=user_input,
            subworkflows=dict(subworkflows or {}),
            latest=dict(latest or {}),
            definition_hash=wanted,
            batch=batch,
            carried=envelope.carried,
        )

    def _checked_key(self, run: RunInput) -> str | None:
        return self.shared_key if run.batch is None else None

    def _mark(self) -> None:
        """Search attributes and memo as `tdsl run` sets them, for runs started without."""
        name, version = self.definition.name, self.definition.version
        info = self.info
        if self.searchable and info.typed_search_attributes.get(DSL_NAME) is None:
            workflow.upsert_search_attributes(
                [DSL_NAME.value_set(name), DSL_VERSION.value_set(version)]
            )
        if workflow.memo_value(MEMO_HASH, None) != self.definition_hash:
            workflow.upsert_memo(
                {MEMO_NAME: name, MEMO_VERSION: version, MEMO_HASH: self.definition_hash}
            )

    def _searchable(self) -> bool:
        return self.searchable

    def _envelope(self, **internal: Any) -> dict[str, Any]:
        return RunEnvelope(
            subworkflows=self.subworkflows,
            latest=self.latest,
            definitions=self.carry,
            search_attributes=self.searchable,
            **internal,
        ).to_json()

    # ------------------------------------------------------------------ children

    def _subworkflow_call(
        self, step: SubworkflowStep, child_input: Any
    ) -> tuple[str, list[Any], str, str]:
        version = step.version or self.latest.get(step.workflow, "")
        if f"{step.workflow}@{version}" not in self.subworkflows:
            raise StepFailed(
                step,
                {
                    "type": "NotFound",
                    "message": f"{step.workflow} {version} was not found when the run started",
                },
            )
        return step.workflow, [child_input, self._envelope()], step.workflow, version

    def _child_memo(self, step: SubworkflowStep) -> dict[str, str]:
        version = step.version or self.latest.get(step.workflow, "")
        return {MEMO_HASH: self.subworkflows[f"{step.workflow}@{version}"]}

    def _batch_call(
        self, step: ForeachStep, items: list[Any], seed: dict[str, Any], per_child: int
    ) -> tuple[str, list[Any], dict[str, Any] | None]:
        batch = {**seed, "step": step.id, "items": items, "max_concurrency": per_child}
        memo = {
            MEMO_NAME: self.definition.name,
            MEMO_VERSION: self.definition.version,
            MEMO_HASH: self.definition_hash,
        }
        return self.info.workflow_type, [self.context["input"], self._envelope(batch=batch)], memo

    # ------------------------------------------------------------------ continue-as-new

    def _continue_with(self, run: RunInput, carried: Carried) -> NoReturn:
        workflow.continue_as_new(
            args=[self.context["input"], self._envelope(carried=carried.to_json())],
            memo={
                MEMO_NAME: self.definition.name,
                MEMO_VERSION: self.definition.version,
                MEMO_HASH: self.definition_hash,
            },
        )
