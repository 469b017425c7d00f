"""The payload settings every process reads from its environment.

`TDSL_PAYLOAD_STORE` and `TDSL_PAYLOAD_THRESHOLD` must mean the same in the CLI, each
worker and `tdsl dev`, so they are read in one place. Apart from the wiring of clients
(`wiring`), which needs the codec: the codec itself reads its default threshold here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dsl.errors import InputError
from interpreter.payloads.stores import FileStore, PayloadStore, PostgresStore

__all__ = [
    "DEFAULT_THRESHOLD",
    "DEV_STORE_DIRECTORY",
    "STORE_VARIABLE",
    "THRESHOLD_VARIABLE",
    "describe_store",
    "payload_store_from_env",
    "threshold_from_env",
]

DEFAULT_THRESHOLD = 256 * 1024
"""With a store, payloads over this are offloaded (`TDSL_PAYLOAD_THRESHOLD`): well
below the SDK's 512 KiB warning and small enough that a workflow task with several
of them stays far from gRPC's 4 MiB message limit."""

THRESHOLD_VARIABLE = "TDSL_PAYLOAD_THRESHOLD"
STORE_VARIABLE = "TDSL_PAYLOAD_STORE"
DEV_STORE_DIRECTORY = Path(".tdsl") / "payloads"
"""Where `tdsl dev` keeps payloads; processes started beside it find them there."""


def payload_store_from_env(
    environ: Mapping[str, str] | None = None, *, cwd: Path | None = None
) -> PayloadStore | None:
    """The store this process writes to and reads from, from the environment.

    `TDSL_PAYLOAD_STORE` is ``off``, ``postgres`` (at `DATABASE_URL`) or
    ``file:DIR``. Unset: PostgreSQL when `DATABASE_URL` is set, else
    ``.tdsl/payloads`` when that directory exists in the current directory (`tdsl
    dev` creates it), else off. Anything else is an `InputError`.
    """
    env = os.environ if environ is None else environ
    setting = env.get(STORE_VARIABLE, "").strip()
    database_url = env.get("DATABASE_URL", "").strip()
    if not setting:
        if database_url:
            return PostgresStore(database_url)
        directory = (cwd or Path.cwd()) / DEV_STORE_DIRECTORY
        return FileStore(directory) if directory.is_dir() else None
    if setting == "off":
        return None
    if setting == "postgres":
        if not database_url:
            raise InputError(f"{STORE_VARIABLE}=postgres needs DATABASE_URL")
        return PostgresStore(database_url)
    if setting.startswith("file:") and setting[len("file:") :].strip():
        directory = Path(setting[len("file:") :].strip())
        return FileStore(directory if directory.is_absolute() else (cwd or Path.cwd()) / directory)
    raise InputError(f"{STORE_VARIABLE}={setting!r}: expected off, postgres or file:DIR")


def threshold_from_env(environ: Mapping[str, str] | None = None) -> int:
    """`TDSL_PAYLOAD_THRESHOLD` in bytes (default 256 KiB); `InputError` if not a number."""
    env = os.environ if environ is None else environ
    text = env.get(THRESHOLD_VARIABLE, "").strip()
    if not text:
        return DEFAULT_THRESHOLD
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise InputError(f"{THRESHOLD_VARIABLE}={text!r}: expected a number of bytes")
    return value


def describe_store(store: PayloadStore | None) -> str:
    """The `TDSL_PAYLOAD_STORE` value that selects *store* in another process."""
    if store is None:
        return "off"
    if isinstance(store, FileStore):
        return f"file:{store.directory}"
    return store.kind
