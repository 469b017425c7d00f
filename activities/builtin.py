"""The built-in activities (docs/language.md, "Built-in actions"): echo, sleep, fail, log, http.request, sql.query.

Each takes one `dict` of parameters (templates already resolved by the workflow) and
returns JSON-able data. They are methods of `BuiltinActivities` because the HTTP
client and the asyncpg pool must be created once per worker, not once per call.

Failures the user caused (bad parameters, a 4xx, an SQL syntax error) raise a
non-retryable `ApplicationError` with a `type` a retry policy can name; transient
ones (5xx, timeouts, lost connections) are retryable.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import math
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg
import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.http_guard import (
    MAX_REDIRECTS,
    ForbiddenAddressError,
    HttpAllowList,
    UnsafeUrlError,
    check_url,
    guarded_client,
)
from activities.postgres import init_json_codec

__all__ = ["MAX_RESULT_BYTES", "SQL_URL_VARIABLE", "BuiltinActivities", "to_json_value"]

SQL_URL_VARIABLE = "TDSL_SQL_URL"
"""The only database `sql.query` connects to; unset, `sql.query` is off."""

MAX_RESULT_BYTES = 64 * 1024 * 1024
"""The most a built-in activity holds in memory for one result (an HTTP body is read
no further). Temporal's own 2 MiB payload limit is not checked here: the worker's
payload codec stores larger values outside the history, or fails the step with
`PayloadTooLarge` when no store is configured (interpreter/payloads/)."""

_SLEEP_SLICE = 0.5  # seconds between heartbeats, so cancellation arrives promptly
_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
# SQLSTATE classes worth retrying: connection, transaction rollback (serialisation,
# deadlock), insufficient resources, operator intervention, system error.
_RETRYABLE_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def _invalid(activity_name: str, message: str) -> ApplicationError:
    return ApplicationError(
        f"{activity_name}: {message}", type="InvalidParameters", non_retryable=True
    )


def _check_keys(
    name: str, params: Any, *, required: frozenset[str], allowed: frozenset[str]
) -> dict[str, Any]:
    """Reject a non-dict, a missing key, or a misspelt one (which would be ignored)."""
    if not isinstance(params, dict):
        raise _invalid(name, f"parameters must be an object, got {type(params).__name__}")
    missing = sorted(required - params.keys())
    if missing:
        raise _invalid(name, f"missing parameter(s): {', '.join(missing)}")
    unknown = sorted(params.keys() - allowed - required)
    if unknown:
        expected = ", ".join(sorted(allowed | required))
        raise _invalid(name, f"unknown parameter(s): {', '.join(unknown)} (expected {expected})")
    return params


def _number(name: str, key: str, value: Any, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(name, f"{key} must be a number, got {value!r}")
    if value < minimum:
        raise _invalid(name, f"{key} must be >= {minimum:g}, got {value!r}")
    return float(value)


def _check_size(name: str, result: Any) -> None:
    size = len(json.dumps(result, separators=(",", ":")))
    if size > MAX_RESULT_BYTES:
        raise ApplicationError(
            f"{name}: result is {size} bytes, over the {MAX_RESULT_BYTES} byte limit",
            type="ResultTooLarge",
            non_retryable=True,
        )


def to_json_value(value: Any) -> Any:
    """Turn what asyncpg returns into plain JSON types.

    Decimal becomes a float when that loses nothing, else a string; date/time values
    become ISO 8601 strings; intervals seconds; UUIDs and addresses strings; bytes
    base64; records and arrays recurse.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        if value.is_finite():
            as_float = float(value)
            if Decimal(repr(as_float)) == value:
                return as_float
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping | asyncpg.Record):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, uuid.UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    return str(value)  # ranges, bit strings, geometric types, network masks…


def _coerce_arg(value: Any, type_name: str) -> Any:
    """Adapt a JSON argument to the parameter type PostgreSQL inferred for it.

    JSON has no dates, decimals or bytes, and asyncpg wants Python objects for them:
    an ISO string for a `date` parameter would otherwise be rejected.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if type_name == "date":
            return dt.date.fromisoformat(value)
        if type_name in ("timestamp", "timestamptz"):
            return dt.datetime.fromisoformat(value)
        if type_name in ("time", "timetz"):
            return dt.time.fromisoformat(value)
        if type_name == "numeric":
            return Decimal(value)
        if type_name == "bytea":
            return base64.b64decode(value, validate=True)
        if type_name == "uuid":
            return uuid.UUID(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if type_name in ("int2", "int4", "int8") and isinstance(value, float):
            return int(value) if value.is_integer() else value
        if type_name == "numeric":
            return Decimal(str(value))
        if type_name == "interval":
            return dt.timedelta(seconds=value)
        if type_name in ("float4", "float8"):
            return float(value)
        if type_name in ("text", "varchar", "bpchar"):
            return str(value)
    return value


def _row_count(status: str | None, rows: int) -> int:
    """Rows affected from the command tag (`INSERT 0 3`, `UPDATE 2`, `SELECT 5`)."""
    last = (status or "").rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else rows


class BuiltinActivities:
    """Holds the worker's shared resources; `activities()` are what the worker registers.

    The HTTP client and the asyncpg pool are created on first use (a worker that
    never runs `sql.query` needs no database) and closed by `close()`. The pool
    connects to `TDSL_SQL_URL` only, never to the project's own database.
    """

    def __init__(
        self,
        sql_url: str | None = None,
        *,
        http_allow: HttpAllowList | str | Sequence[str] | None = None,
    ) -> None:
        """*sql_url* defaults to `TDSL_SQL_URL`, read once, when the worker starts.

        Never `DATABASE_URL`: that is the registry and run history, which a
        definition's author must not read or rewrite (docs/security.md).

        *http_allow*: the internal hosts `http.request` may reach anyway
        (`activities.http_guard`); default `TDSL_HTTP_ALLOW`, read once, here.
        """
        self.sql_url = sql_url or os.environ.get(SQL_URL_VARIABLE) or None
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self.http_allow = HttpAllowList.coerce(http_allow)
        self._http: httpx.AsyncClient | None = None

    def activities(self) -> list[Callable[..., Any]]:
        """The bound activity methods, ready for `Worker(activities=...)`."""
        return [self.echo, self.sleep, self.fail, self.log, self.http_request, self.sql_query]

    async def close(self) -> None:
        """Close the pool and the HTTP client; the object can be used again afterwards."""
        pool, self._pool = self._pool, None
        http, self._http = self._http, None
        if pool is not None:
            await pool.close()
        if http is not None:
            await http.aclose()

    @activity.defn(name="echo")
    async def echo(self, params: dict[str, Any]) -> dict[str, Any]:
        """Return the parameters unchanged: wiring and template tests."""
        return params

    @activity.defn(name="sleep")
    async def sleep(self, params: dict[str, Any]) -> dict[str, Any]:
        """Sleep `seconds`, heartbeating the time slept so far.

        Heartbeats carry cancellation to the activity and let a retry resume where
        the previous attempt stopped.
        """
        _check_keys("sleep", params, required=frozenset({"seconds"}), allowed=frozenset())
        seconds = _number("sleep", "seconds", params["seconds"])
        details = activity.info().heartbeat_details
        done = float(details[0]) if details and isinstance(details[0], int | float) else 0.0
        loop = asyncio.get_running_loop()
        while done < seconds:
            step = min(_SLEEP_SLICE, seconds - done)
            began = loop.time()
            await asyncio.sleep(step)
            done = min(seconds, done + max(step, loop.time() - began))
            activity.heartbeat(done)
        return {"slept": params["seconds"]}

    @activity.defn(name="fail")
    async def fail(self, params: dict[str, Any]) -> dict[str, Any]:
        """Raise until attempt `until_attempt`, then succeed: retry and saga tests."""
        _check_keys(
            "fail",
            params,
            required=frozenset(),
            allowed=frozenset({"message", "error_type", "non_retryable", "until_attempt"}),
        )
        attempt = activity.info().attempt
        until = params.get("until_attempt")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int)):
            raise _invalid("fail", f"until_attempt must be an integer, got {until!r}")
        if until is not None and attempt >= until:
            return {"attempt": attempt}
        raise ApplicationError(
            str(params.get("message", "failed on purpose")),
            {"attempt": attempt},
            type=str(params.get("error_type") or "Failure"),
            non_retryable=bool(params.get("non_retryable", False)),
        )

    @activity.defn(name="log")
    async def log(self, params: dict[str, Any]) -> dict[str, Any]:
        """Write `message` to the worker's log at `level` (default info)."""
        _check_keys("log", params, required=frozenset({"message"}), allowed=frozenset({"level"}))
        level_name = str(params.get("level", "info")).lower()
        if level_name not in _LOG_LEVELS:
            raise _invalid("log", f"level must be one of {', '.join(_LOG_LEVELS)}")
        message = params["message"]
        text = message if isinstance(message, str) else json.dumps(message, default=str)
        activity.logger.log(_LOG_LEVELS[level_name], text)
        return {"logged": message}

    @activity.defn(name="http.request")
    async def http_request(self, params: dict[str, Any]) -> dict[str, Any]:
        """One HTTP request; JSON responses are parsed.

        4xx is non-retryable (`HttpError`) except 408 and 429, which are the server
        asking to come back later; 5xx, timeouts and connection errors are retried.
        Internal addresses are refused on every hop (non-retryable `ForbiddenAddress`)
        unless `TDSL_HTTP_ALLOW` allows them: see `activities.http_guard`.
        """
        _check_keys(
            "http.request",
            params,
            required=frozenset({"url"}),
            allowed=frozenset({"method", "headers", "json", "timeout", "params"}),
        )
        method = str(params.get("method", "GET")).upper()
        url = params["url"]
        timeout = _number("http.request", "timeout", params.get("timeout", 30))
        headers = params.get("headers") or {}
        if not isinstance(url, str) or not isinstance(headers, dict):
            raise _invalid("http.request", "url must be a string and headers an object")
        request_args: dict[str, Any] = {
            "headers": {str(k): str(v) for k, v in headers.items()},
            "params": params.get("params"),
            "timeout": timeout,
        }
        if "json" in params:
            request_args["json"] = params["json"]
        try:
            check_url(url)  # before any I/O; redirects are checked by the client's hook
        except UnsafeUrlError as err:
            raise _invalid("http.request", f"bad url {err.url!r}: {err}") from None
        except httpx.InvalidURL as err:
            raise _invalid("http.request", f"bad url {url!r}: {err}") from None
        if self._http is None:
            self._http = guarded_client(self.http_allow)
        try:
            response, content = await self._fetch(method, url, request_args)
        except ForbiddenAddressError as err:  # raised inside the transport, unwrapped
            raise err.to_application_error() from None
        except UnsafeUrlError as err:  # a redirect to file:, or with user info
            raise _invalid("http.request", f"redirected to {err.url!r}: {err}") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as err:
            raise _invalid("http.request", f"bad url {url!r}: {err}") from err
        except httpx.TooManyRedirects as err:
            raise ApplicationError(
                f"{method} {url}: more than {MAX_REDIRECTS} redirects",
                type="TooManyRedirects",
                non_retryable=True,
            ) from err
        except httpx.TimeoutException as err:
            raise ApplicationError(
                f"{method} {url} timed out after {timeout:g}s", type="HttpTimeout"
            ) from err
        except httpx.TransportError as err:
            raise ApplicationError(
                f"{method} {url} failed: {err!r}", type="HttpConnectionError"
            ) from err
        body: Any = content.decode(response.encoding or "utf-8", errors="replace")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json" or content_type.endswith("+json"):
            with contextlib.suppress(ValueError):  # declared JSON but is not: keep text
                body = json.loads(content)
        result = {"status": response.status_code, "headers": dict(response.headers), "body": body}
        if response.status_code >= 400:
            raise ApplicationError(
                f"{method} {url} returned HTTP {response.status_code}",
                result,
                type="HttpError",
                non_retryable=response.status_code < 500 and response.status_code not in (408, 429),
            )
        return result

    async def _fetch(
        self, method: str, url: str, request_args: dict[str, Any]
    ) -> tuple[httpx.Response, bytes]:
        """Send the request and read the body, never more than `MAX_RESULT_BYTES`.

        Reading first and measuring after would let one response fill the worker's
        memory; a body over the cap fails the step without retry.
        """
        assert self._http is not None
        request = self._http.build_request(method, url, **request_args)
        response = await self._http.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_RESULT_BYTES:
                    raise ApplicationError(
                        f"{method} {url} returned more than {MAX_RESULT_BYTES} bytes, "
                        "the most http.request reads",
                        type="ResultTooLarge",
                        non_retryable=True,
                    )
                chunks.append(chunk)
        finally:
            await response.aclose()
        return response, b"".join(chunks)

    @activity.defn(name="sql.query")
    async def sql_query(self, params: dict[str, Any]) -> dict[str, Any]:
        """Run one parameterised statement (`$1`, `$2`…) against `TDSL_SQL_URL`.

        Arguments are adapted to the parameter types PostgreSQL infers, and results
        converted to JSON types. `row_count` is the rows returned or affected.
        """
        _check_keys("sql.query", params, required=frozenset({"query"}), allowed=frozenset({"args"}))
        query, args = params["query"], params.get("args") or []
        if not isinstance(query, str) or not isinstance(args, list):
            raise _invalid("sql.query", "query must be a string and args a list")
        pool = await self._get_pool()
        try:
            async with pool.acquire() as conn:
                statement = await conn.prepare(query)
                types = [t.name for t in statement.get_parameters()]
                if len(types) != len(args):
                    raise _invalid(
                        "sql.query", f"query takes {len(types)} argument(s), got {len(args)}"
                    )
                try:
                    coerced = [_coerce_arg(a, t) for a, t in zip(args, types, strict=True)]
                except (ValueError, InvalidOperation) as err:
                    raise _invalid("sql.query", f"bad argument: {err}") from err
                records = await statement.fetch(*coerced)
                status = statement.get_statusmsg()
        except asyncpg.PostgresError as err:
            sqlstate = str(getattr(err, "sqlstate", "") or "")
            raise ApplicationError(
                f"sql.query: {err}",
                {"sqlstate": sqlstate},
                type="SqlError",
                non_retryable=sqlstate[:2] not in _RETRYABLE_SQLSTATE_CLASSES,
            ) from err
        except asyncpg.InterfaceError as err:
            if isinstance(err, ValueError):  # an argument asyncpg cannot encode
                raise _invalid("sql.query", str(err)) from err
            raise
        rows = [to_json_value(record) for record in records]
        result = {"rows": rows, "row_count": _row_count(status, len(rows))}
        _check_size("sql.query", result)
        return result

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if not self.sql_url:
            raise ApplicationError(
                f"sql.query is off: set {SQL_URL_VARIABLE} on the worker to the database "
                "(and least-privilege role) definitions may use; see docs/security.md",
                type="ConfigurationError",
                non_retryable=True,
            )
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self.sql_url, min_size=0, max_size=10, init=init_json_codec
                )
        return self._pool
