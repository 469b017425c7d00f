"""How `tdsl worker` and `tdsl dev` write their log (docs/production.md, "Logs").

One line per record, as text or as JSON objects (``--log-format json``: time, level,
logger, message, and the run's workflow id, run id, step id, action and attempt
where the record comes from an activity or a workflow), so that a log pipeline reads
each record whole:

- a failed or cancelled activity attempt is one line naming the step, the attempt
  and the error, not the SDK's traceback (the error is in the run's history anyway);
- no line carries a task token: whoever holds one completes someone's `human.task`
  step. The SDK's debug lines name raw tokens (bytes) and its core's warnings name
  them in base64 ("Activity not found on completion … TaskToken(…)"); those, and any
  run of 80 or more base64 characters, are replaced. The core's lines reach Python's
  logging (and these filters) through the runtime of `interpreter.telemetry`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from activities.tenant import current_tenant

__all__ = ["LOG_FORMATS", "configure_logging", "log_handler"]

LOG_FORMATS = ("text", "json")
_TOKENISH = re.compile(r"[A-Za-z0-9+/_=-]{80,}")
"""A task token as `tdsl tasks` prints it (base64url) or as the SDK's core does (base64)."""
_REDACTED = "<redacted>"
_CHATTY = ("httpx", "pgserver")
"""Loggers that write a line per request or per initdb step: warnings only."""


class NoTokens(logging.Filter):
    """Replace task tokens (raw bytes, or base64url text) in a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.msg, record.args = record.getMessage(), ()
            if any(isinstance(a, bytes | bytearray) for a in args):
                record.msg = str(record.msg)
                for arg in args:
                    if isinstance(arg, bytes | bytearray):
                        record.msg = record.msg.replace(str(arg), _REDACTED)
        if isinstance(record.msg, str) and _TOKENISH.search(record.msg):
            record.msg = _TOKENISH.sub(_REDACTED, record.msg)
        return True


class OneLineFailures(logging.Filter):
    """An activity's failure as one line: the error's type and message, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.name.startswith(("temporalio.activity", "temporalio.worker")):
            error = record.exc_info[1]
            if error is not None and _is_step_error(error):
                record.msg = f"{record.getMessage()}: {_summary(error)}"
                record.args = ()
                record.exc_info = None
                record.exc_text = None
        return True


def _is_step_error(error: BaseException) -> bool:
    """What a step's activity raises by design; bugs elsewhere keep their traceback."""
    return not isinstance(error, (AssertionError, NameError, AttributeError, TypeError, KeyError))


def _summary(error: BaseException) -> str:
    kind = getattr(error, "type", None) or type(error).__name__
    message = getattr(error, "message", None)
    text = (message if isinstance(message, str) else str(error)).strip().splitlines()
    return f"{kind}: {text[0]}" if text else str(kind)


_CONTEXT_FIELDS = {
    "temporal_activity": {
        "workflow_id": "workflow_id",
        "run_id": "workflow_run_id",
        "step": "activity_id",
        "action": "activity_type",
        "attempt": "attempt",
    },
    "temporal_workflow": {
        "workflow_id": "workflow_id",
        "run_id": "run_id",
        "definition": "workflow_type",
    },
}
"""Our field → the key in the extra the SDK's activity and workflow loggers attach."""


def _context(record: logging.LogRecord) -> dict[str, Any]:
    """The run, step and attempt a record is about, from the SDK's logger extras."""
    for extra, fields in _CONTEXT_FIELDS.items():
        details = getattr(record, extra, None)
        if isinstance(details, dict):
            found = {ours: details.get(theirs) for ours, theirs in fields.items()}
            if extra == "temporal_activity":
                found["tenant"] = current_tenant()
            return {k: v for k, v in found.items() if v is not None}
    return {}


class JsonLines(logging.Formatter):
    """One JSON object per record; a traceback, where kept, is one escaped string."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextLines(logging.Formatter):
    """``time LEVEL logger: message [workflow=… step=… attempt=…]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = _context(record)
        if not context:
            return line
        first, newline, rest = line.partition("\n")
        where = " ".join(f"{k}={v}" for k, v in context.items())
        return f"{first} [{where}]{newline}{rest}"


def log_handler(log_format: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """A handler writing *log_format* lines to *stream* (stderr), tokens and
    tracebacks of step failures left out."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLines() if log_format == "json" else TextLines())
    handler.addFilter(NoTokens())
    handler.addFilter(OneLineFailures())
    return handler


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """The process's log: one handler on the root logger, INFO and up (the SDK core's
    lines too, with the runtime of `interpreter.telemetry`)."""
    root = logging.getLogger()
    root.handlers[:] = [log_handler(log_format)]
    root.setLevel(level)
    from temporalio import activity, workflow  # here: `tdsl --help` need not load the SDK

    # The run's ids go into the line's own fields, not appended to each message.
    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False
    for chatty in _CHATTY:
        logging.getLogger(chatty).setLevel(logging.WARNING)
