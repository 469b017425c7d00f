"""Issue 9's attacks where no other test tried them the way a user meets them.

- `tdsl dev` itself (not `provision_databases` called by a test) gives `sql.query` the
  least-privilege role and the history its own, and passes `--http-allow` to the
  worker's `http.request`: one definition tries the SQL and HTTP attacks on it.
- `tdsl worker --http-allow` and `TDSL_HTTP_ALLOW` reach the worker's `http.request`
  (both merged); everything else on loopback stays refused, redirects included.
- The loader reads a file as a stream with a limit, whatever `stat` says, in a small
  multiple of the cap; and (a defect, expected to fail until fixed) a long quoted
  scalar within the cap takes a small multiple of its size to load.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from temporalio.client import Client

import dsl.loader as loader
from dsl.errors import DefinitionError
from dsl.loader import MAX_BYTES, load_file, read_bounded
from interpreter.client.connection import DEFAULT_TASK_QUEUE
from interpreter.dev.databases import url_for
from interpreter.dev.servers import free_port
from interpreter.history.store import Store
from tests.support.cli import ROOT, tdsl_env
from tests.support.runs import start

MIB = 1024 * 1024

# --------------------------------------------------------------------- local HTTP servers


class _Http:
    """A raw HTTP/1.1 server on a free loopback port that counts its connections.

    `/to/PORT/PATH` answers 302 to `http://127.0.0.1:PORT/PATH`, anything else 200 JSON.
    """

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def __aenter__(self) -> _Http:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            path = head.split(" ", 2)[1]
            if path.startswith("/to/"):
                port, _, rest = path[len("/to/") :].partition("/")
                status, extra, body = 302, [f"Location: http://127.0.0.1:{port}/{rest}"], b"{}"
            else:
                status, extra, body = 200, [], b'{"ok": true}'
            lines = [
                f"HTTP/1.1 {status} X",
                "Content-Type: application/json",
                f"Content-Length: {len(body)}",
                "Connection: close",
                *extra,
            ]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _step(step_id: str, action: str, parameters: dict[str, Any]) -> str:
    """One step that may fail without failing the run, tried once."""
    return (
        f"  - {{id: {step_id}, action: {action}, continue_on_error: true, "
        f"retry_policy: {{maximum_attempts: 1}}, parameters: {json.dumps(parameters)}}}\n"
    )


def _error_text(state: dict[str, Any]) -> str:
    return json.dumps(state.get("error"))


def _refused_http(state: dict[str, Any], target: str) -> None:
    assert state["status"] == "failed", state
    assert f"http.request: refused to connect to {target}: " in _error_text(state), state


async def _until(check: Callable[[], Any], timeout: float = 30) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := await check()):
            await asyncio.sleep(0.2)
    return value


# --------------------------------------------------------------------- tdsl dev end to end


def _clean_env() -> dict[str, str]:
    """This shell's environment without any Temporal or tdsl setting (the sandbox kept)."""
    keep = ("TEMPORAL_", "TDSL_", "DATABASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(keep)}
    env["TDSL_WORKFLOW_SANDBOX"] = os.environ.get("TDSL_WORKFLOW_SANDBOX", "on")
    return env


@contextlib.asynccontextmanager
async def _tdsl_dev(state: Path, log: Path, *extra: str) -> AsyncIterator[tuple[str, str]]:
    """`tdsl dev` with its embedded PostgreSQL: (Temporal address, banner text)."""
    port = free_port()
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "interpreter.cli",
            "dev",
            "--port",
            str(port),
            "--ui-port",
            str(free_port()),
            "--serve-port",
            "0",
            "--state-dir",
            str(state),
            *extra,
            cwd=ROOT,
            env=_clean_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
        try:
            assert process.stdout is not None
            banner = ""
            async with asyncio.timeout(120):  # initdb and a cold server on a loaded machine
                while "Ctrl-C stops" not in banner:
                    line = await process.stdout.readline()
                    assert line, f"tdsl dev exited early: {log.read_text()[-2000:]}"
                    banner += line.decode()
            yield f"127.0.0.1:{port}", banner
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await process.communicate()
            except TimeoutError:
                process.kill()
                await process.wait()


def _banner_value(banner: str, label: str) -> str:
    for line in banner.splitlines():
        if line.startswith(label):
            return line[len(label) :].split()[0]
    raise AssertionError(f"no {label!r} line in the banner of tdsl dev:\n{banner}")


@pytest.mark.integration
async def test_tdsl_dev_gives_a_definition_its_own_sql_role_and_only_the_allowed_hosts(
    tmp_path: Path,
) -> None:
    """The attacks of issue 9 on `tdsl dev` as a developer starts it."""
    pwned = tmp_path / "pwned"
    log = tmp_path / "dev.log"
    async with (
        _Http() as allowed,
        _Http() as internal,
        _tdsl_dev(tmp_path / "state", log, "--http-allow", f"127.0.0.1:{allowed.port}") as (
            address,
            banner,
        ),
    ):
        if "PostgreSQL not started" in log.read_text():
            pytest.fail("tdsl dev started without its PostgreSQL")
        history_url = _banner_value(banner, "PostgreSQL")
        sql_url = _banner_value(banner, "sql.query")
        ui = urlsplit(_banner_value(banner, "Web UI")).netloc
        for url, role in ((history_url, "tdsl"), (sql_url, "tdsl_sql")):
            assert (urlsplit(url).username, urlsplit(url).path) == (role, f"/{role}")
        client = await Client.connect(address)

        # Someone else's run, recorded in the run history.
        victim = await start(
            client,
            DEFAULT_TASK_QUEUE,
            "name: payroll\nsteps: [{id: pay, action: echo, parameters: {s: '${{ input.salary }}'}}]\n",
            {"salary": 123456},
            workflow_id="victim",
        )
        await victim.result()
        async with await Store.connect(history_url) as store:

            async def victim_recorded() -> Any:
                row = await store.run("victim")
                return row if row and row["status"] == "COMPLETED" else None

            await _until(victim_recorded)

        sql_attacks = {
            "read_runs": "select input from runs",
            "rewrite_runs": "update runs set status = 'FAILED'",
            "read_registry": "select source from definitions",
            "copy_program": f"copy (select 1) to program 'touch {pwned}'",
            "read_server_file": "select pg_read_file('/etc/passwd')",
            "become_superuser": "set role postgres",
        }
        whoami = (
            "select current_user as role, current_database() as db, "
            "(select rolsuper from pg_roles where rolname = current_user) as superuser"
        )
        steps = "".join(
            _step(step_id, "sql.query", {"query": query}) for step_id, query in sql_attacks.items()
        )
        steps += _step("whoami", "sql.query", {"query": whoami})
        steps += _step("own_table", "sql.query", {"query": "create table t (x int)"})
        steps += _step("http_allowed", "http.request", {"url": allowed.url("/ok")})
        steps += _step("http_internal", "http.request", {"url": internal.url("/")})
        steps += _step(
            "http_redirect",
            "http.request",
            {"url": allowed.url(f"/to/{internal.port}/secret")},
        )
        steps += _step(
            "http_metadata",
            "http.request",
            {"url": "http://169.254.169.254/latest/meta-data/iam/security-credentials/"},
        )
        steps += _step(
            "temporal_ui",
            "http.request",
            {"url": f"http://{ui}/api/v1/namespaces/default/workflows"},
        )
        handle = await start(
            client, DEFAULT_TASK_QUEUE, f"name: attacker\nsteps:\n{steps}", workflow_id="atk"
        )
        async with asyncio.timeout(60):
            await handle.result()
        answer = (await handle.query("status"))["steps"]

        for step_id in sql_attacks:
            assert answer[step_id]["status"] == "failed", (step_id, answer[step_id])
            assert "sql.query" in _error_text(answer[step_id]), answer[step_id]
        assert 'relation \\"runs\\" does not exist' in _error_text(answer["read_runs"])
        assert "permission denied" in _error_text(answer["copy_program"])
        assert not pwned.exists()
        assert answer["own_table"]["status"] == "completed"  # its scratch database
        assert answer["whoami"]["status"] == "completed", answer["whoami"]
        outputs = await handle.result()
        assert outputs["whoami"]["rows"] == [
            {"role": "tdsl_sql", "db": "tdsl_sql", "superuser": False}
        ]

        assert answer["http_allowed"]["status"] == "completed", answer["http_allowed"]
        assert outputs["http_allowed"]["body"] == {"ok": True}
        _refused_http(answer["http_internal"], f"127.0.0.1:{internal.port}")
        _refused_http(answer["http_redirect"], f"127.0.0.1:{internal.port}")
        _refused_http(answer["http_metadata"], "169.254.169.254:80")
        _refused_http(answer["temporal_ui"], ui)
        assert internal.connections == 0

        # The history role owns its tables and nothing more; the sql role stays out.
        conn = await asyncpg.connect(history_url)
        try:
            assert (
                await conn.fetchval("select rolsuper from pg_roles where rolname = current_user")
                is False
            )
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"copy (select 1) to program 'touch {pwned}'")
        finally:
            await conn.close()
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await asyncpg.connect(url_for(sql_url, role="tdsl_sql", database="tdsl"))
        async with await Store.connect(history_url) as store:
            row = await store.run("victim")
        assert row is not None
        assert (row["status"], row["input"]) == ("COMPLETED", {"salary": 123456})
    assert not pwned.exists()


# --------------------------------------------------------------------- tdsl worker --http-allow


@pytest.mark.integration
async def test_tdsl_worker_takes_the_allow_list_from_its_flag_and_the_environment(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    async with _Http() as by_flag, _Http() as by_env, _Http() as internal:
        env = tdsl_env(client, task_queue) | {
            "TDSL_HTTP_ALLOW": f"127.0.0.1:{by_env.port}",
            "TDSL_WORKFLOW_SANDBOX": os.environ.get("TDSL_WORKFLOW_SANDBOX", "on"),
        }
        log = tmp_path / "worker.log"
        with log.open("wb") as stderr:
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "interpreter.cli",
                    "worker",
                    "--http-allow",
                    f"127.0.0.1:{by_flag.port}",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            try:
                steps = (
                    _step("flag", "http.request", {"url": by_flag.url("/a")})
                    + _step("env", "http.request", {"url": by_env.url("/b")})
                    + _step("internal", "http.request", {"url": internal.url("/c")})
                    + _step(
                        "redirect",
                        "http.request",
                        {"url": by_flag.url(f"/to/{internal.port}/d")},
                    )
                    + _step(
                        "hop_allowed", "http.request", {"url": by_flag.url(f"/to/{by_env.port}/e")}
                    )
                )
                handle = await start(client, task_queue, f"name: allow\nsteps:\n{steps}")
                async with asyncio.timeout(90):  # a cold worker process on a loaded machine
                    outputs = await handle.result()
                answer = (await handle.query("status"))["steps"]
            finally:
                worker.terminate()
                await asyncio.to_thread(worker.wait, 20)
        assert outputs["flag"]["body"] == {"ok": True}, answer["flag"]
        assert outputs["env"]["body"] == {"ok": True}, answer["env"]
        assert outputs["hop_allowed"]["body"] == {"ok": True}, answer["hop_allowed"]
        _refused_http(answer["internal"], f"127.0.0.1:{internal.port}")
        _refused_http(answer["redirect"], f"127.0.0.1:{internal.port}")
        assert internal.connections == 0


# --------------------------------------------------------------------- the loader's limits


def _lying_fstat(monkeypatch: pytest.MonkeyPatch) -> None:
    """`fstat` says 0 bytes, as /proc files and files still being written do."""
    real = os.fstat

    def fstat(fd: int) -> os.stat_result:
        info = real(fd)
        return os.stat_result((*info[:6], 0, *info[7:10]))

    monkeypatch.setattr(loader.os, "fstat", fstat)


def test_the_loader_stops_reading_at_its_cap_whatever_stat_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream with a limit: reading everything and measuring after would hold 256 MiB."""
    cap = MIB
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(256 * cap)  # sparse: nothing is written
    _lying_fstat(monkeypatch)
    tracemalloc.start()
    began = time.monotonic()
    try:
        with pytest.raises(OSError, match=f"over the limit of {cap} bytes"):
            read_bounded(big, cap)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * cap, f"{peak} bytes held to refuse a file over {cap}"
    assert time.monotonic() - began < 2
    monkeypatch.setattr(loader, "MAX_BYTES", cap)
    with pytest.raises(DefinitionError) as caught:
        load_file(big)
    assert str(caught.value) == (
        f"{big}:1:1: error: cannot read file: file is over the limit of {cap} bytes"
    )


def test_reading_a_file_at_the_cap_takes_a_small_multiple_of_it(tmp_path: Path) -> None:
    at_cap = tmp_path / "at-cap.yaml"
    at_cap.write_bytes(b"a" * MAX_BYTES)
    tracemalloc.start()
    try:
        assert len(read_bounded(at_cap)) == MAX_BYTES
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 3 * MAX_BYTES


@pytest.mark.parametrize(
    "line",
    [
        'description: "{}"\n',
        "description: '{}'\n",
        'parameters: {{x: "{}"}}\n',
        "parameters: {{x: 'b{}'}}\n",
    ],
    ids=["double-quoted", "single-quoted", "json-flow", "yaml-flow"],
)
def test_a_long_quoted_scalar_loads_in_a_small_multiple_of_its_size(
    tmp_path: Path, line: str
) -> None:
    size = MIB
    path = tmp_path / "long.yaml"
    path.write_text("name: x\nsteps: [{id: a, action: echo}]\n" + line.format("a" * size))
    tracemalloc.start()
    try:
        load_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * size, f"{peak / size:.0f}x the document's size"


_MANY = {
    "block": lambda n: "  x:\n" + "  - 1\n" * n,
    "flow": lambda n: "  x: [" + ", ".join(["1"] * n) + "]\n",
    "json-flow": lambda n: "  x: [" + ",".join(["1"] * n) + "]\n",
}


@pytest.mark.parametrize("shape", list(_MANY))
def test_a_document_over_the_value_limit_is_refused_in_a_small_multiple_of_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """Refused with the line it crossed the limit on, without building positions or the
    event road's objects for every value (before: about 36x the file's size)."""
    limit = 200_000
    monkeypatch.setattr(loader, "MAX_NODES", limit)
    path = tmp_path / f"{shape}.yaml"
    head = "name: x\nsteps: [{id: a, action: echo}]\nparameters:\n"
    path.write_text(head + _MANY[shape](2 * limit))
    size = path.stat().st_size
    tracemalloc.start()
    try:
        with pytest.raises(DefinitionError) as caught:
            load_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert f"error: document holds more than {limit} values" in message
    line = int(message.split(":")[1])
    # 8 values before the list (keys do not count): the 200,001st is item 199,993, line 199,997
    assert line == (4 if shape != "block" else limit - 3), message
    assert peak < 16 * size, f"{peak / size:.1f}x the document's size"
