"""The interpreter's own metrics (docs/production.md, "Metrics"), from workflow code.

`tdsl_steps_total{definition,type,status}`, `tdsl_step_duration_seconds{definition,type}`
and `tdsl_runs_total{definition,status}`, recorded through `workflow.metric_meter()`:
the SDK drops what a replaying workflow records, so a step that ended once is counted
once however often its history replays (a worker restart, an evicted cache). They go
wherever the worker's Temporal runtime sends metrics: `tdsl worker --metrics-port`
serves them with the SDK's own `temporal_*` metrics. No command is issued, so recorded
histories replay unchanged. Part of the replay-critical runtime.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.common import MetricCounter, MetricHistogramFloat

from interpreter.contract import ENDED_STEP_STATUSES

__all__ = ["RunMetrics"]


class RunMetrics:
    """One run's counters, labelled with its definition's name."""

    def __init__(self, definition: str) -> None:
        meter = workflow.metric_meter().with_additional_attributes({"definition": definition})
        self._steps = meter.create_counter("tdsl_steps", "Steps that ended, by type and status")
        self._durations = meter.create_histogram_float(
            "tdsl_step_duration_seconds", "Seconds from a step's start to its end", "seconds"
        )
        self._runs = meter.create_counter("tdsl_runs", "Runs that ended, by status")
        self._by_label: dict[tuple[str, str], tuple[MetricCounter, MetricHistogramFloat]] = {}
        """Instruments with their labels bound, made once: a wide level ends thousands
        of steps in one activation."""
        self._uncounted: dict[tuple[str, str], int] = {}
        """Steps ended since the last `flush`, by label: counted with one `add` per
        label per activation rather than one per step."""

    def step_ended(
        self, step_type: str, status: str, started: datetime | None, ended: datetime | None
    ) -> None:
        if status not in ENDED_STEP_STATUSES:
            return
        label = (step_type, status)
        bound = self._by_label.get(label)
        if bound is None:
            bound = self._by_label[label] = (
                self._steps.with_additional_attributes({"type": step_type, "status": status}),
                self._durations.with_additional_attributes({"type": step_type}),
            )
        self._uncounted[label] = self._uncounted.get(label, 0) + 1
        if status != "skipped" and started is not None and ended is not None:
            bound[1].record(max(0.0, (ended - started).total_seconds()))

    def flush(self) -> None:
        """Add what `step_ended` counted; the interpreter calls it once per activation
        (and before the run ends), so a replayed activation drops it all, as it would
        each step's."""
        for label, count in self._uncounted.items():
            self._by_label[label][0].add(count)
        self._uncounted.clear()

    def run_ended(self, status: str) -> None:
        self.flush()
        self._runs.add(1, {"status": status.lower()})
