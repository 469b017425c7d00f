"""`step_clock` is `workflow.now()`, sandboxed or not, in every activation."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

with workflow.unsafe.imports_passed_through():
    from interpreter.runtime.clock import step_clock

pytestmark = pytest.mark.integration


@workflow.defn(name="tdsl-test-clock")
class ClockWorkflow:
    @workflow.run
    async def run(self) -> list[list[str]]:
        readings = []
        for _ in range(3):  # each sleep ends the activation: the next has a new time
            readings.append([step_clock().isoformat(), workflow.now().isoformat()])
            await workflow.sleep(timedelta(milliseconds=50))
        return readings


@pytest.mark.parametrize("runner", [SandboxedWorkflowRunner(), UnsandboxedWorkflowRunner()])
async def test_step_clock_reads_the_workflow_time(client: Client, runner: WorkflowRunner) -> None:
    task_queue = f"clock-{uuid4()}"
    async with Worker(
        client, task_queue=task_queue, workflows=[ClockWorkflow], workflow_runner=runner
    ):
        readings = await client.execute_workflow(
            ClockWorkflow.run, id=f"clock-{uuid4()}", task_queue=task_queue
        )
    assert all(ours == sdk for ours, sdk in readings), readings
    assert len({ours for ours, _ in readings}) == 3  # the time moved between activations
