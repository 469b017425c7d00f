"""`tdsl doctor [--json]`: what a run needs, checked one line at a time (README.md, "The CLI")."""

from __future__ import annotations

import argparse
import os
from typing import Any

from interpreter.cli.support import (
    EXIT_FAILED,
    EXIT_OK,
    add_connection_options,
    add_task_queue_option,
    client_for,
    print_json,
    task_queue_of,
)


def register(commands: Any) -> None:
    """`doctor`."""
    doctor = commands.add_parser(
        "doctor",
        help="check the server, namespace, search attributes, a polling worker and the database",
    )
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    add_task_queue_option(doctor)
    add_connection_options(doctor)
    doctor.set_defaults(handler=_doctor, uses_temporal=True)


async def _doctor(args: argparse.Namespace) -> int:
    from interpreter.client.connection import connect_config
    from interpreter.client.doctor import diagnose

    config = connect_config(address=args.address, namespace=args.namespace)

    async def connect() -> Any:
        return await client_for(args)

    checks = await diagnose(
        connect,
        address=config["target_host"],
        namespace=config["namespace"],
        task_queue=task_queue_of(args),
        database_url=os.environ.get("DATABASE_URL") or None,
    )
    failed = any(check.level == "FAIL" for check in checks)
    if args.json:
        print_json({"ok": not failed, "checks": [check.to_json() for check in checks]})
    else:
        for check in checks:
            print(check.line())
    return EXIT_FAILED if failed else EXIT_OK
