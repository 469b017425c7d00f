"""`tdsl worker --health-port`: the probes an orchestrator asks (docs/production.md, "Health probes").

- ``GET /livez``: 200 while the process runs (its event loop answers);
- ``GET /readyz``: 200 once the worker is connected and polling, 503 before that,
  once it stopped polling (a fatal worker error), and while it drains on SIGTERM, so
  that no new work is routed to a worker on its way out.

A deliberately small HTTP/1.1 server on asyncio streams: two fixed routes, no
request body, nothing of the worker's state beyond "ready" or "not". It listens on
127.0.0.1 unless told otherwise (``--health-host``; a Kubernetes probe needs the pod's
address, e.g. ``0.0.0.0``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dsl.errors import ConfigurationError

if TYPE_CHECKING:
    from temporalio.worker import Worker

__all__ = ["DEFAULT_HEALTH_HOST", "Health", "serving_health"]

log = logging.getLogger(__name__)

DEFAULT_HEALTH_HOST = "127.0.0.1"
_MAX_REQUEST = 8192
"""Bytes of request line and headers read at most: a probe sends a few hundred."""
_READ_TIMEOUT = 5.0


@dataclass
class Health:
    """What the probes answer, set by the worker's life cycle."""

    worker: Worker | None = None
    """The started worker, once it polls."""
    draining: bool = False

    def ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if self.worker is None:
            return False, "starting"
        if not self.worker.is_running:
            return False, "stopped"
        return True, "polling"


async def _answer(
    health: Health, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
        writer.close()
        return
    method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
    path = rest.split(" ", 1)[0].split("?", 1)[0]
    if method not in ("GET", "HEAD"):
        status, body = 405, {"error": "only GET"}
    elif path == "/livez":
        status, body = 200, {"status": "alive"}
    elif path == "/readyz":
        ready, why = health.ready()
        status, body = (200 if ready else 503), {"status": why}
    else:
        status, body = 404, {"error": "not found: /livez or /readyz"}
    payload = json.dumps(body).encode() + b"\n"
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
    writer.write(
        f"HTTP/1.1 {status} {reason[status]}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
        + (payload if method != "HEAD" else b"")
    )
    with contextlib.suppress(OSError):
        await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def serving_health(
    health: Health, port: int, host: str = DEFAULT_HEALTH_HOST
) -> AsyncIterator[int]:
    """Serve the probes on *host*:*port* (0: any free port) while inside; the port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _answer(health, reader, writer)

    try:
        server = await asyncio.start_server(handle, host, port, limit=_MAX_REQUEST)
    except OSError as err:
        raise ConfigurationError(
            f"cannot serve health probes on {host}:{port}: {err.strerror or err}; "
            "choose another --health-port"
        ) from None
    bound = server.sockets[0].getsockname()[1]
    log.info("health probes on http://%s:%d/livez and /readyz", host, bound)
    try:
        yield bound
    finally:
        server.close()
        await server.wait_closed()
