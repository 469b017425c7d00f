"""The client library behind every `tdsl` command that talks to Temporal.

Submit (`submit`), watch (`status`), steer (`control`), schedule (`schedules`) and
finish tasks from outside (`tasks`), over one connection (`connection`). The CLI is
a thin layer over these functions, and tests and the demo drive runs through them
too. Everything public is re-exported here.
"""

from interpreter.client.connection import connect, connect_config, task_queue
from interpreter.client.control import (
    cancel_run,
    get_handle,
    pause_run,
    resume_run,
    signal_run,
    terminate_run,
)
from interpreter.client.schedules import (
    SCHEDULE_MEMO,
    DeployChange,
    DeployPlan,
    PlannedSchedule,
    deploy,
    list_schedules,
    plan_deploy,
    schedule_id,
    spec_text,
)
from interpreter.client.status import (
    DEFAULT_UI_URL,
    FINAL_STATUSES,
    RUN_KEYS,
    RunHistory,
    failure_message,
    merge_steps,
    query_status,
    run_json,
    run_status,
    status_name,
    ui_link,
    wait_for_run,
)
from interpreter.client.submit import (
    check_workflow_id,
    new_workflow_id,
    parse_json_argument,
    prepare_run,
    registry_catalog,
    run_start,
    start_run,
)
from interpreter.client.tasks import (
    complete_task,
    fail_task,
    parse_token,
    pending_tasks,
    wait_for_task,
)

__all__ = [
    "DEFAULT_UI_URL",
    "FINAL_STATUSES",
    "RUN_KEYS",
    "SCHEDULE_MEMO",
    "DeployChange",
    "DeployPlan",
    "PlannedSchedule",
    "RunHistory",
    "cancel_run",
    "check_workflow_id",
    "complete_task",
    "connect",
    "connect_config",
    "deploy",
    "fail_task",
    "failure_message",
    "get_handle",
    "list_schedules",
    "merge_steps",
    "new_workflow_id",
    "parse_json_argument",
    "parse_token",
    "pause_run",
    "pending_tasks",
    "plan_deploy",
    "prepare_run",
    "query_status",
    "registry_catalog",
    "resume_run",
    "run_json",
    "run_start",
    "run_status",
    "schedule_id",
    "signal_run",
    "spec_text",
    "start_run",
    "status_name",
    "task_queue",
    "terminate_run",
    "ui_link",
    "wait_for_run",
    "wait_for_task",
]
