"""The API's HTTP server (uvicorn), for `tdsl serve` and beside `tdsl dev`'s worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from dsl.errors import ConfigurationError

__all__ = ["serving"]


@contextlib.asynccontextmanager
async def serving(app: Any, host: str, port: int) -> AsyncIterator[None]:
    """Serve *app* on *host*:*port* while the block runs; a port that cannot be bound is
    a one-line `ConfigurationError`. The server does not take over the process's
    signals: whoever runs it decides when to stop."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(), name=f"http {host}:{port}")
    while not server.started:
        if task.done():
            try:
                task.result()
            except (SystemExit, OSError) as err:
                raise ConfigurationError(
                    f"cannot listen on {host}:{port} (in use?); choose another port"
                ) from err
            raise ConfigurationError(f"cannot listen on {host}:{port}")
        await asyncio.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, SystemExit):
            await task
