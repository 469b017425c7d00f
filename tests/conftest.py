"""Shared fixtures: real servers started once per session, a fresh task queue per test.

Modelled on sdk-python's `tests/conftest.py`: the servers are expensive enough to share
(each ~0.2-0.8 s) and cheap enough to never mock. Fixtures are lazy, so a run of
pure unit tests starts nothing.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from uuid import uuid4

import pytest
from hypothesis import settings
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from interpreter.dev.servers import (
    EmbeddedPostgres,
    start_local_env,
    start_time_skipping_env,
)
from tests.support.runs import interpreter_worker

# Production workers run the interpreter unsandboxed (`interpreter.worker.workflow_runner`);
# every worker of the test suite, subprocesses included, runs it in the sandbox, so that
# a nondeterministic change to the runtime fails here. `test_worker` covers the default.
os.environ.setdefault("TDSL_WORKFLOW_SANDBOX", "on")

settings.register_profile("ci", deadline=None, max_examples=100, derandomize=False)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (in-memory SQLite, no UI) with DslName/DslVersion."""
    env = await start_local_env()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def client(dev_env: WorkflowEnvironment) -> Client:
    """The dev server's client."""
    return dev_env.client


@pytest.fixture(scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Java test server: timers and timeouts skip ahead while a result is awaited."""
    env = await start_time_skipping_env()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real PostgreSQL 16 (Unix socket), deleted at session end."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres") / "data", delete_on_stop=True)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def task_queue() -> str:
    """A task queue no other test polls, so workers of different tests never mix."""
    return f"tq-{uuid4()}"


@pytest.fixture
async def worker(client: Client, task_queue: str) -> AsyncIterator[str]:
    """A real worker for the interpreter and the shipped activities on a fresh task queue."""
    async with interpreter_worker(client, task_queue):
        yield task_queue


@pytest.fixture
async def time_worker(time_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[str]:
    """A worker on the time-skipping test server, where durable timers pass at once."""
    async with interpreter_worker(time_env.client, task_queue):
        yield task_queue
