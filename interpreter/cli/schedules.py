"""`tdsl deploy`, `schedules`, `tasks`, `complete`, `fail`: schedules from triggers and asynchronously completed tasks.

Thin: the work is done by `interpreter.schedules`. Errors go through `tdsl`'s one
handler: an invalid definition prints its diagnostics (exit 1), a malformed token or
argument one line (exit 2), a task that no longer waits one line (exit 1).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from interpreter.cli.support import (
    EXIT_OK,
    activity_names_of,
    add_connection_options,
    add_definition_options,
    add_task_queue_option,
    client_for,
    print_json,
    task_queue_of,
)

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add this area's commands to `tdsl`."""

    deploy = commands.add_parser(
        "deploy", help="create, update and remove the Temporal Schedules of a file's triggers"
    )
    deploy.add_argument("file", metavar="FILE")
    add_task_queue_option(deploy, "where scheduled runs go")
    add_definition_options(deploy)
    add_connection_options(deploy)
    deploy.set_defaults(handler=_deploy, uses_temporal=True)

    schedules = commands.add_parser("schedules", help="list the schedules `tdsl deploy` created")
    schedules.add_argument("--definition", metavar="NAME", help="only this definition's")
    schedules.add_argument("--json", action="store_true", help="print one JSON list")
    add_connection_options(schedules)
    schedules.set_defaults(handler=_schedules, uses_temporal=True)

    tasks = commands.add_parser(
        "tasks", help="list a run's tasks waiting to be completed from outside, with their tokens"
    )
    tasks.add_argument("workflow_id", metavar="ID")
    tasks.add_argument("--json", action="store_true", help="print one JSON list")
    add_connection_options(tasks)
    tasks.set_defaults(handler=_tasks, uses_temporal=True)

    complete = commands.add_parser(
        "complete", help="complete a waiting task (a human.task step) by its token"
    )
    complete.add_argument("token", metavar="TOKEN", help="as `tdsl tasks ID` prints it")
    complete.add_argument("--result", metavar="JSON|@FILE", help="the step's output (default null)")
    add_connection_options(complete)
    complete.set_defaults(handler=_complete, uses_temporal=True)

    fail = commands.add_parser("fail", help="fail a waiting task (a human.task step) by its token")
    fail.add_argument("token", metavar="TOKEN", help="as `tdsl tasks ID` prints it")
    fail.add_argument("--message", required=True, metavar="M", help="the step's error message")
    fail.add_argument(
        "--type", dest="error_type", metavar="T", help="error type (default TaskFailed)"
    )
    add_connection_options(fail)
    fail.set_defaults(handler=_fail, uses_temporal=True)


async def _deploy(args: argparse.Namespace) -> int:
    from interpreter.client.schedules import deploy, plan_deploy

    plan = plan_deploy(
        args.file, definitions=args.definitions, activities=activity_names_of(args.activities)
    )
    changes = await deploy(await client_for(args), plan, task_queue=task_queue_of(args))
    for change in changes:
        print(change)
    if not changes:
        print(f"{plan.name}: no schedule triggers, no schedules")
    return EXIT_OK


async def _schedules(args: argparse.Namespace) -> int:
    from interpreter.client.schedules import list_schedules

    found = await list_schedules(await client_for(args), definition=args.definition)
    if args.json:
        print_json(found)
        return EXIT_OK
    if not found:
        print("no schedules deployed (`tdsl deploy FILE` creates them from its triggers)")
        return EXIT_OK
    rows = [("SCHEDULE", "DEFINITION", "VERSION", "SPEC", "NEXT RUN", "PAUSED")]
    for item in found:
        spec = item["spec"]
        text = f"cron {spec['cron']}" if "cron" in spec else f"every {spec.get('interval', '?')}"
        rows.append(
            (
                item["id"],
                item["definition"] or "-",
                item["version"] or "-",
                text if spec else "-",
                item["next_run"] or "-",
                "yes" if item["paused"] else "no",
            )
        )
    # Plain columns rather than a table: never truncated, and greppable.
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  ".join(
                [
                    *(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)),
                    row[-1],
                ]
            )
        )
    return EXIT_OK


async def _tasks(args: argparse.Namespace) -> int:
    from interpreter.client.tasks import pending_tasks

    found = await pending_tasks(await client_for(args), args.workflow_id)
    if args.json:
        print_json(found)
        return EXIT_OK
    if not found:
        print(f"{args.workflow_id}: no task waits to be completed")
        return EXIT_OK
    for task in found:
        who = f" for {task['assignee']}" if task["assignee"] else ""
        print(f"{task['step']}{who}: {task['message'] or ''} (attempt {task['attempt']})")
        if task["token"]:
            print(f"  token: {task['token']}")
            print(f"  tdsl complete {task['token']} --result JSON")
        else:
            print(f"  not waiting yet ({task['state']}); try again in a moment")
    sys.stdout.flush()
    return EXIT_OK


async def _complete(args: argparse.Namespace) -> int:
    from interpreter.client.submit import parse_json_argument
    from interpreter.client.tasks import complete_task, parse_token

    token = parse_token(args.token)  # a malformed token needs no server to be refused
    result = parse_json_argument(args.result, what="--result") if args.result is not None else None
    await complete_task(await client_for(args), token, result)
    print("task completed")
    return EXIT_OK


async def _fail(args: argparse.Namespace) -> int:
    from interpreter.client.tasks import fail_task, parse_token

    token = parse_token(args.token)
    await fail_task(await client_for(args), token, args.message, error_type=args.error_type)
    print("task failed")
    return EXIT_OK
