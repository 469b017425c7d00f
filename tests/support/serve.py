"""Helpers of the `tdsl serve` tests: register a YAML definition, wait for a run's end."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


async def register(http: httpx.AsyncClient, text: str) -> None:
    """`POST /api/definitions` with YAML; the test fails unless it is registered."""
    answer = await http.post(
        "/api/definitions", content=text, headers={"Content-Type": "application/yaml"}
    )
    assert answer.status_code == 201, answer.text


async def until_ended(http: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    """The run's state once it is no longer RUNNING (bounded, so a test cannot hang)."""
    async with asyncio.timeout(60):
        while True:
            state: dict[str, Any] = (await http.get(f"/api/runs/{workflow_id}")).json()
            if state["status"] != "RUNNING":
                return state
            await asyncio.sleep(0.2)
