"""`human.task`: a step that a person, or another system, finishes from outside.

The activity publishes its task token and raises `CompleteAsyncError`: Temporal then
keeps the step running, without a worker slot, until someone calls
`tdsl complete TOKEN --result JSON` or `tdsl fail TOKEN --message M` (or the step's
`timeout` expires — give such steps a long one, e.g. ``timeout: 24h``, and no
``heartbeat_timeout``: nothing heartbeats while a person thinks, so a heartbeat
timeout would expire the task).

The token (base64url, no padding) is published as the activity's heartbeat details,
recorded through the worker's client before the activity returns. A pending
activity's last heartbeat details are part of the run's `describe()`, which is where
`tdsl tasks ID` finds them: whoever may describe the run may complete the task. The
worker's log names the task and the run, never the token.

Parameters: ``message`` (required), ``assignee`` (optional), and any other keys,
which are published with the task (a form, a link, the amount to approve…).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, NoReturn

from temporalio import activity
from temporalio.exceptions import ApplicationError

__all__ = [
    "HUMAN_TASK",
    "TOKEN_KEY",
    "decode_token",
    "encode_token",
    "human_task",
]

HUMAN_TASK = "human.task"
"""The activity name a definition's `action` uses."""

TOKEN_KEY = "task_token"
"""The key of the token in the published task (the heartbeat details)."""


def encode_token(token: bytes) -> str:
    """A task token as text that survives a shell and a URL: base64url without padding."""
    return base64.urlsafe_b64encode(token).decode("ascii").rstrip("=")


def decode_token(text: str) -> bytes:
    """The task token *text* encodes; standard base64 and padding are accepted too.

    Raises `ValueError` with the reason when *text* is not base64 at all.
    """
    cleaned = "".join(text.split()).translate(str.maketrans("+/", "-_")).rstrip("=")
    if not cleaned:
        raise ValueError("the task token is empty")
    try:
        token = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
        if encode_token(token) != cleaned:  # stray characters the decoder skipped
            raise ValueError("not base64url")
    except (binascii.Error, ValueError):
        raise ValueError("a task token is base64url text, as `tdsl tasks` prints it") from None
    return token


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(
        f"{HUMAN_TASK}: {message}", type="InvalidParameters", non_retryable=True
    )


def _check(params: Any) -> tuple[str, str | None]:
    if not isinstance(params, dict):
        raise _invalid(f"parameters must be an object, got {type(params).__name__}")
    message = params.get("message")
    if not isinstance(message, str) or not message.strip():
        raise _invalid("'message' is required: what the person should do")
    assignee = params.get("assignee")
    if assignee is not None and not isinstance(assignee, str):
        raise _invalid(f"'assignee' must be a string, got {type(assignee).__name__}")
    return message, assignee


@activity.defn(name=HUMAN_TASK)
async def human_task(params: dict[str, Any]) -> NoReturn:
    """Publish the task and its token, then leave the step to be completed from outside."""
    message, assignee = _check(params)
    info = activity.info()
    if info.is_local:
        raise _invalid("a local activity cannot be completed from outside; remove 'local: true'")
    token = encode_token(info.task_token)
    task = {
        TOKEN_KEY: token,
        "step": info.activity_id,
        "workflow_id": info.workflow_id,
        "run_id": info.workflow_run_id,
        "attempt": info.attempt,
        "message": message,
        "assignee": assignee,
        "details": {k: v for k, v in params.items() if k not in ("message", "assignee")},
    }
    if info.heartbeat_timeout is not None:
        activity.logger.warning(
            "%s step %r has a heartbeat_timeout of %s: the task expires unless it is completed "
            "within it; remove heartbeat_timeout and set a long timeout instead",
            HUMAN_TASK,
            info.activity_id,
            info.heartbeat_timeout,
        )
    # Through the client, not activity.heartbeat(): that one is sent in the background
    # and may be dropped when the activity hands over; this one is on the server now.
    await activity.client().get_async_activity_handle(task_token=info.task_token).heartbeat(task)
    # Not the token: whoever reads the log could complete the task with it.
    activity.logger.info(
        "task %r waits for completion%s: %s; `tdsl tasks %s` shows its token",
        info.activity_id,
        f" by {assignee}" if assignee else "",
        message,
        info.workflow_id,
    )
    activity.raise_complete_async()
