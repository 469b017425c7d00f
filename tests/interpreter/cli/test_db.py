"""`tdsl db migrate|register|definitions|runs` and the registry lookup of subworkflows.

Commands run through `interpreter.cli.main` (in a thread, since each one runs its own
event loop) with `DATABASE_URL` pointing at a fresh schema of the session's real
PostgreSQL; exit codes, stdout and stderr are checked as a user sees them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dsl.errors import DefinitionError
from interpreter.cli import main
from interpreter.client.submit import prepare_registered, prepare_run
from interpreter.dev.servers import free_port
from interpreter.history import registry as registry_module
from interpreter.history.store import RunRecord, StepRecord, Store
from tests.interpreter.history.test_store import T0, fresh_schema

pytestmark = pytest.mark.integration

NO_URL = "tdsl: error: DATABASE_URL is not set; run tdsl dev or point it at PostgreSQL\n"

CHILD = """\
name: notify-sms
version: {version}
steps:
  - {{id: send, action: echo, parameters: {{via: sms, version: "{version}"}}}}
"""

PARENT = """\
name: alert
steps:
  - id: notify
    type: subworkflow
    workflow: notify-sms
    input: {}
"""


@pytest.fixture
async def database(postgres: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """A fresh, unmigrated schema, and DATABASE_URL pointing at it."""
    async with fresh_schema(postgres) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        yield url


@pytest.fixture
async def migrated(database: str) -> str:
    assert await tdsl("db", "migrate") == 0
    return database


async def tdsl(*args: str | Path) -> int:
    """`tdsl ARGS…` in this process, on a thread: the command runs its own event loop."""
    return await asyncio.to_thread(main, [str(a) for a in args])


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "args",
    [
        ["db", "migrate"],
        ["register", "definitions/approval.yaml"],
        ["definitions"],
        ["definitions", "--json"],
        ["runs"],
        ["runs", "show", "x", "--json"],
    ],
)
async def test_every_command_needs_database_url(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert await tdsl(*args) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", NO_URL)


async def test_an_unreachable_database_is_one_line_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    monkeypatch.setenv("DATABASE_URL", f"postgresql://tdsl:hunter2@127.0.0.1:{port}/tdsl")
    for args in (["db", "migrate"], ["runs", "--json"], ["definitions"]):
        assert await tdsl(*args) == 1
        err = capsys.readouterr().err
        assert err.startswith(
            f"tdsl: error: cannot reach PostgreSQL at postgresql://tdsl:***@127.0.0.1:{port}/tdsl: "
        )
        assert err.count("\n") == 1
        assert "hunter2" not in err


async def test_a_database_url_of_another_kind_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://localhost/db")
    assert await tdsl("runs") == 2
    assert capsys.readouterr().err.startswith(
        "tdsl: error: DATABASE_URL is not a valid PostgreSQL URL"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "--status", "DONE"], "unknown status 'DONE'"),
        (["runs", "--limit", "0"], "must be at least 1"),
        (["runs", "show"], "required: ID"),
        (["db"], "required: COMMAND"),
    ],
)
async def test_bad_arguments_are_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        await tdsl(*args)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


# --------------------------------------------------------------------------- db migrate


async def test_db_migrate_twice(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert await tdsl("runs") == 1
    assert capsys.readouterr().err == (
        f"tdsl: error: the database at {database} has no temporal-dsl tables; "
        "run `tdsl db migrate`\n"
    )
    assert await tdsl("db", "migrate") == 0
    assert (
        capsys.readouterr().out
        == "applied 0001_initial\napplied 0002_payloads\napplied 0003_workers\n"
        "applied 0004_continued\n"
        "applied 0005_deprecated\n"
        "applied 0007_step_events\n"
    )
    assert await tdsl("db", "migrate") == 0
    assert capsys.readouterr().out == "the database is up to date (6 migrations)\n"


# --------------------------------------------------------------------------- register


async def test_register_is_immutable_per_version(
    migrated: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path, "child.yaml", CHILD.format(version="1.2.0"))
    assert await tdsl("register", file) == 0
    out = capsys.readouterr().out
    assert out.startswith("registered notify-sms 1.2.0 (sha256 ")
    assert await tdsl("register", file) == 0
    assert capsys.readouterr().out == (
        "notify-sms 1.2.0 is already registered with this content; nothing to do\n"
    )
    file.write_text(CHILD.format(version="1.2.0").replace("via: sms", "via: text"))
    assert await tdsl("register", file) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(
        "tdsl: error: notify-sms 1.2.0 is already registered with different content (sha256 "
    )
    assert captured.err.endswith("…); bump the version (next: 1.2.1)\n")


async def test_register_reports_an_invalid_file_and_goes_on(
    migrated: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "bad.yaml", "name: bad\nsteps:\n  - id: a\n    actoin: echo\n")
    good = write(tmp_path, "good.yaml", CHILD.format(version="1.0.0"))
    assert await tdsl("register", bad, good) == 1
    captured = capsys.readouterr()
    assert captured.err == f"{bad}:4:5: error: unknown key 'actoin' (did you mean 'action'?)\n"
    assert captured.out.startswith("registered notify-sms 1.0.0")


async def test_definitions_lists_what_is_registered(
    migrated: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await tdsl("definitions", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert await tdsl("definitions") == 0
    assert "no definitions registered yet" in capsys.readouterr().out
    for version in ("1.9.0", "1.10.0"):
        write(tmp_path / version, "child.yaml", CHILD.format(version=version))
        assert await tdsl("register", tmp_path / version / "child.yaml") == 0
    capsys.readouterr()
    assert await tdsl("definitions", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [list(d) for d in listed] == [
        ["name", "version", "sha256", "registered_at", "deprecated_at"]
    ] * 2
    assert [(d["name"], d["version"]) for d in listed] == [
        ("notify-sms", "1.10.0"),
        ("notify-sms", "1.9.0"),
    ]
    assert all(len(d["sha256"]) == 64 and "T" in d["registered_at"] for d in listed)
    assert await tdsl("definitions") == 0
    table = capsys.readouterr().out
    assert "notify-sms" in table
    assert "1.10.0" in table
    assert listed[0]["sha256"][:12] in table


# --------------------------------------------------------------------------- runs


async def _record_runs(url: str) -> None:
    async with await Store.connect(url) as store:
        for index, (status, name) in enumerate(
            [("COMPLETED", "alert"), ("FAILED", "alert"), ("CANCELED", "batch")]
        ):
            started = T0 + timedelta(minutes=index)
            await store.upsert_run(
                RunRecord(
                    workflow_id=f"{name}-{index}",
                    run_id=f"run-{index}",
                    definition=name,
                    version="1.0.0",
                    definition_hash="cd" * 32,
                    status=status,
                    input={"n": index},
                    output={"done": index} if status == "COMPLETED" else None,
                    error="step 'send' (send) failed: boom" if status == "FAILED" else None,
                    started_at=started,
                    ended_at=started + timedelta(seconds=2),
                )
            )
        await store.upsert_steps(
            "alert-1",
            "run-1",
            [
                StepRecord(
                    "send", "failed", 3, T0, T0 + timedelta(seconds=1), error={"message": "boom"}
                ),
                StepRecord("audit", "cancelled", 0),
            ],
        )


async def test_runs_lists_and_filters(migrated: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert await tdsl("runs", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    await _record_runs(migrated)
    assert await tdsl("runs", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [list(r) for r in listed] == [
        ["workflow_id", "run_id", "definition", "version", "status", "started_at", "ended_at"]
    ] * 3
    assert [(r["workflow_id"], r["status"]) for r in listed] == [
        ("batch-2", "CANCELED"),
        ("alert-1", "FAILED"),
        ("alert-0", "COMPLETED"),
    ]
    assert listed[0]["started_at"] == (T0 + timedelta(minutes=2)).isoformat()
    assert await tdsl("runs", "--status", "failed", "--json") == 0
    assert [r["workflow_id"] for r in json.loads(capsys.readouterr().out)] == ["alert-1"]
    assert await tdsl("runs", "--status", "cancelled", "--json") == 0
    assert [r["workflow_id"] for r in json.loads(capsys.readouterr().out)] == ["batch-2"]
    assert await tdsl("runs", "--definition", "alert", "--limit", "1", "--json") == 0
    assert [r["workflow_id"] for r in json.loads(capsys.readouterr().out)] == ["alert-1"]
    assert await tdsl("runs") == 0
    table = capsys.readouterr().out
    for text in ("alert-0", "alert-1", "batch-2", "COMPLETED", "FAILED", "CANCELED", "2.0s"):
        assert text in table


async def test_runs_show(migrated: str, capsys: pytest.CaptureFixture[str]) -> None:
    await _record_runs(migrated)
    assert await tdsl("runs", "show", "alert-1", "--json") == 0
    shown: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert list(shown) == [
        "workflow_id",
        "run_id",
        "definition",
        "version",
        "status",
        "started_at",
        "ended_at",
        "input",
        "output",
        "error",
        "continued",
        "steps",
    ]
    assert (shown["status"], shown["input"], shown["output"]) == ("FAILED", {"n": 1}, None)
    assert shown["error"] == "step 'send' (send) failed: boom"
    assert shown["steps"] == [
        {
            "step_id": "send",
            "status": "failed",
            "attempts": 3,
            "started_at": T0.isoformat(),
            "ended_at": (T0 + timedelta(seconds=1)).isoformat(),
            "output": None,
            "error": {"message": "boom"},
        },
        {
            "step_id": "audit",
            "status": "cancelled",
            "attempts": 0,
            "started_at": None,
            "ended_at": None,
            "output": None,
            "error": None,
        },
    ]
    # --json before `show` counts too; --run-id picks one run of the id.
    assert await tdsl("runs", "--json", "show", "alert-0", "--run-id", "run-0") == 0
    assert json.loads(capsys.readouterr().out)["output"] == {"done": 0}
    assert await tdsl("runs", "show", "alert-1") == 0
    text = capsys.readouterr().out
    for part in ("alert-1", "run-1", "alert 1.0.0", "FAILED", "send", "audit", "boom"):
        assert part in text
    assert await tdsl("runs", "show", "nobody") == 1
    assert capsys.readouterr().err == ("tdsl: error: no workflow id 'nobody' in the run history\n")
    assert await tdsl("runs", "show", "alert-1", "--run-id", "zz") == 1
    assert "no run 'zz' of workflow id 'alert-1'" in capsys.readouterr().err


# --------------------------------------------------------------------------- subworkflows


async def test_subworkflows_resolve_in_the_registry(
    migrated: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for version in ("1.9.0", "1.10.0"):
        child = write(tmp_path / "lib" / version, "notify-sms.yaml", CHILD.format(version=version))
        assert await tdsl("register", child) == 0
    parent = write(tmp_path / "app", "alert.yaml", PARENT)
    # `register` validates the parent against the registry too.
    assert await tdsl("register", parent) == 0
    capsys.readouterr()

    run_input, _ = await asyncio.to_thread(prepare_run, parent)
    assert run_input.latest == {"notify-sms": "1.10.0"}
    assert set(run_input.subworkflows) == {"notify-sms@1.10.0"}
    pinned = run_input.subworkflows["notify-sms@1.10.0"]
    assert pinned["steps"][0]["parameters"]["version"] == "1.10.0"

    # A pinned version comes from the registry too.
    write(
        tmp_path / "app",
        "pinned.yaml",
        PARENT.replace("name: alert", "name: pinned") + "    version: 1.9.0\n",
    )
    run_input, _ = await asyncio.to_thread(prepare_run, tmp_path / "app" / "pinned.yaml")
    assert set(run_input.subworkflows) == {"notify-sms@1.9.0"}

    # A file beside the parent wins over the registry.
    write(tmp_path / "app", "notify-sms.yaml", CHILD.format(version="0.1.0"))
    run_input, _ = await asyncio.to_thread(prepare_run, parent)
    assert run_input.latest == {"notify-sms": "0.1.0"}
    assert capsys.readouterr().err == ""


async def test_run_by_name_takes_the_registered_version(
    migrated: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tdsl run NAME[@VERSION]`: the highest version not deprecated, or the pinned one;
    `tdsl definitions deprecate` and `undeprecate` move what NAME means."""
    for version in ("1.9.0", "1.10.0"):
        child = write(tmp_path / version, "notify-sms.yaml", CHILD.format(version=version))
        assert await tdsl("register", child) == 0
    latest, _ = await asyncio.to_thread(prepare_registered, "notify-sms")
    assert latest.definition["version"] == "1.10.0"
    assert await tdsl("definitions", "deprecate", "notify-sms@1.10.0") == 0
    assert "`notify-sms` now starts 1.9.0" in capsys.readouterr().out
    fallback, _ = await asyncio.to_thread(prepare_registered, "notify-sms")
    assert fallback.definition["version"] == "1.9.0"
    pinned, _ = await asyncio.to_thread(prepare_registered, "notify-sms", "1.10.0")
    assert pinned.definition["version"] == "1.10.0"
    assert await tdsl("definitions", "undeprecate", "notify-sms@1.10.0") == 0
    again, _ = await asyncio.to_thread(prepare_registered, "notify-sms")
    assert again.definition["version"] == "1.10.0"
    assert await tdsl("definitions", "deprecate", "notify-sms@9.9.9") == 1
    with pytest.raises(SystemExit) as caught:
        await tdsl("definitions", "deprecate", "notify-sms")
    assert caught.value.code == 2
    assert "expected NAME@VERSION" in capsys.readouterr().err
    assert await tdsl("run", "nobody") == 2
    assert "'nobody' is neither a file nor a registered definition" in capsys.readouterr().err


async def test_run_by_name_without_a_database_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert await tdsl("run", "order-fulfilment") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "DATABASE_URL is not set" in err
    assert "temporal workflow start --type order-fulfilment" in err


async def test_without_a_registry_the_child_must_be_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    parent = write(tmp_path, "alert.yaml", PARENT)
    with pytest.raises(DefinitionError, match="no definition named 'notify-sms' found"):
        prepare_run(parent)


async def test_an_unreachable_registry_warns_once_and_uses_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(registry_module, "_warned", set())
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:pw@127.0.0.1:{free_port()}/db")
    beside = write(tmp_path / "ok", "alert.yaml", PARENT)
    write(tmp_path / "ok", "notify-sms.yaml", CHILD.format(version="1.0.0"))
    run_input, _ = prepare_run(beside)  # found beside it: the database is never asked
    assert set(run_input.subworkflows) == {"notify-sms@1.0.0"}
    assert capsys.readouterr().err == ""

    lonely = write(tmp_path / "lonely", "alert.yaml", PARENT)
    for _ in range(2):
        with pytest.raises(DefinitionError, match="no definition named 'notify-sms' found"):
            prepare_run(lonely)
    err = capsys.readouterr().err
    assert err.startswith(
        "tdsl: warning: the definition registry (DATABASE_URL) is not available: "
        "cannot reach PostgreSQL at postgresql://u:***@127.0.0.1:"
    )
    assert err.endswith("; subworkflows are looked up in files only\n")
    assert err.count("\n") == 1


async def test_an_unmigrated_registry_says_how_to_fix_it(
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(registry_module, "_warned", set())
    with pytest.raises(DefinitionError):
        await asyncio.to_thread(prepare_run, write(tmp_path, "alert.yaml", PARENT))
    assert "it has no tables yet (run `tdsl db migrate`)" in capsys.readouterr().err
