"""Which behaviours a run has, decided in its first activation (before any `await`).

A `workflow.patched()` answer on replay depends on which workflow task recorded its
marker: the SDK's core knows a marker only once it has read the task that holds it.
The live and the replayed run need not agree on where a task ends. When core answers
a query while a local activity's result is pending (the definition lookup, a
`tdsl.break`, a `local: true` step), it completes the task without the code that
follows and forces a new one; a replay runs that code in the earlier task and so
does not see its markers yet: `patched()` says no where the live run said yes, and
the replay fails with "patch marker encountered ... but there is no corresponding
change command" (a query on such a closed run failed that way, one run in a few).

The run's first activation is always in its first task, so a patch asked there is
answered the same live and on replay. `BASELINE` is that patch: runs started with it
have every behaviour listed below and ask no other patch later. Runs started before
it ask each of those patches where they always did, so their histories replay as
recorded. A behaviour change from now on adds its own patch, asked in
`Behaviours.__init__` and remembered, never at the place of use.
"""

from __future__ import annotations

from temporalio import workflow

__all__ = ["BASELINE", "Behaviours"]

BASELINE = "baseline-2026-12"
"""Runs started with this marker have every behaviour that existed before it:

`compensation-and-on-failure`, `run-input-is-an-object`, `start-gate`,
`subworkflow-run-timeout`, `continue-as-new`, `breaks-in-long-workflow-tasks`,
`break-around-large-load`, `foreach-batches-for-every-join`,
`foreach-items-own-steps` (each described where it is used)."""


class Behaviours:
    """What this run does where behaviour changed between releases."""

    def __init__(self) -> None:
        self.baseline = workflow.patched(BASELINE)

    def has(self, patch_id: str) -> bool:
        """Whether the run has the behaviour of *patch_id*, one of those of `BASELINE`.

        A run with the baseline has it without asking (no marker, so nothing depends
        on task boundaries); an older run asks `workflow.patched` as it always did.
        """
        return self.baseline or workflow.patched(patch_id)
