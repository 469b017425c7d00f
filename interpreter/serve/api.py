"""The JSON API of `tdsl serve` (docs/api.md): each route a thin layer over the functions
the CLI uses, so a run started here is the run `tdsl run` would start.

Errors are `{"error": message}` with a 4xx status (422 with `{"errors": [{line,
column, message}]}` for a definition), never a traceback: our own error tree maps to
statuses in one place (`_STATUSES`), and anything else is a 500 that says only
"internal error". With `TDSL_API_TOKEN` set, every route that changes something
(anything but GET) needs `Authorization: Bearer <token>`.

`{type: api}` triggers become routes: a request whose method and path match a
definition's trigger (`condition: {endpoint, method}`) starts a run of it with the
body as input. The triggers are read from the definition directories and the
registry when a request matches no other route, so a definition registered while the
server runs is served without a restart.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import Client

from dsl.errors import (
    ConflictError,
    DefinitionError,
    DslError,
    InputError,
    NotFoundError,
    ServiceError,
)
from dsl.models import ApiTrigger
from interpreter.serve.common import ServeSettings, definitions_catalog, jsonable, open_store

if TYPE_CHECKING:
    pass

__all__ = ["ServeSettings", "build_app"]

MAX_BODY = 16 * 1024 * 1024
"""The largest request body read, like the loader's limit for a definition file."""

_STATUSES: tuple[tuple[type[DslError], int], ...] = (
    (InputError, 422),
    (NotFoundError, 404),
    (ConflictError, 409),
    (ServiceError, 503),
)


class StartRun(BaseModel):
    """`POST /api/runs`: which definition, its input, and optionally the workflow id."""

    definition: str = Field(min_length=1)
    version: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class Started(BaseModel):
    workflow_id: str
    run_id: str | None


class TaskFailure(BaseModel):
    message: str = Field(min_length=1)
    error_type: str | None = None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _dsl_error(exc: DslError) -> JSONResponse:
    """Our error as its status: positions for a definition, else one message."""
    if isinstance(exc, DefinitionError):
        errors = [
            {"line": d.line, "column": d.column, "message": d.message} for d in exc.diagnostics
        ]
        return JSONResponse({"errors": errors}, status_code=422)
    status = next((code for kind, code in _STATUSES if isinstance(exc, kind)), 400)
    return _error(status, str(exc))


def _authorized(request: Request, settings: ServeSettings) -> bool:
    """No token configured, or the request carries it (compared in constant time)."""
    if not settings.token:
        return True
    given = request.headers.get("authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {settings.token}".encode())


def _unauthorized() -> JSONResponse:
    return _error(401, "this route needs Authorization: Bearer <TDSL_API_TOKEN>")


def build_app(settings: ServeSettings) -> FastAPI:
    """The API (and, mounted by `interpreter.serve.web`, the pages)."""
    app = FastAPI(
        title="temporal-dsl",
        summary="Definitions, runs, signals and tasks of the temporal-dsl interpreter",
        version="2",
    )
    app.state.settings = settings

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Response:
        if request.method not in ("GET", "HEAD", "OPTIONS") and not _authorized(request, settings):
            return _unauthorized()
        response: Response = await call_next(request)
        return response

    @app.exception_handler(DslError)
    async def dsl_error(request: Request, exc: DslError) -> JSONResponse:
        return _dsl_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return await _api_trigger(request, settings)
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal error")

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return _error(422, f"{where + ': ' if where else ''}{first.get('msg', 'invalid')}")

    _definition_routes(app, settings)
    _run_routes(app, settings)
    _task_routes(app, settings)
    from interpreter.serve.web import add_pages

    add_pages(app, settings)
    return app


# --------------------------------------------------------------------------- definitions


def _definition_routes(app: FastAPI, settings: ServeSettings) -> None:
    @app.get("/api/definitions", summary="The registry, as `tdsl definitions --json`")
    async def definitions() -> list[dict[str, Any]]:
        from interpreter.cli.db import DEFINITION_KEYS

        async with open_store(settings) as store:
            found = await store.definitions()
        return [jsonable({key: d[key] for key in DEFINITION_KEYS}) for d in found]

    @app.post(
        "/api/definitions",
        status_code=201,
        summary="Register a definition (JSON, or YAML with Content-Type: application/yaml)",
    )
    async def register(request: Request) -> dict[str, Any]:
        from dsl.validate import validate_text

        text = await _body_text(request)
        checked = validate_text(text, file="<request>", catalog=await definitions_catalog(settings))
        async with open_store(settings) as store:
            outcome = await store.register(checked.definition, text)
        definition = checked.definition
        return {"name": definition.name, "version": definition.version, "outcome": outcome}


# --------------------------------------------------------------------------- runs


def _run_routes(app: FastAPI, settings: ServeSettings) -> None:
    @app.post("/api/runs", status_code=201, summary="Start a run of a known definition")
    async def start(body: StartRun) -> Started:
        return await _start(settings, body.definition, body.version, body.input, body.id)

    @app.get("/api/runs", summary="Recorded runs, as `tdsl runs --json`")
    async def runs(
        status: str | None = None, definition: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        from interpreter.cli.db import RUN_KEYS

        if not 1 <= limit <= 1000:
            raise InputError(f"limit must be 1 to 1000, not {limit}")
        async with open_store(settings) as store:
            found = await store.runs(
                status=status.upper() if status else None, definition=definition, limit=limit
            )
        return [jsonable({key: run[key] for key in RUN_KEYS}) for run in found]

    @app.get("/api/runs/{workflow_id:path}/graph", summary="The run's DAG with each step's state")
    async def graph(workflow_id: str) -> dict[str, Any]:
        from interpreter.serve.graphs import run_graph

        return await run_graph(
            await settings.client(), workflow_id, await definitions_catalog(settings)
        )

    @app.get("/api/runs/{workflow_id:path}", summary="A run's state, as `tdsl status ID --json`")
    async def status(workflow_id: str) -> dict[str, Any]:
        from interpreter.client.status import run_status

        client = await settings.client()
        found: dict[str, Any] = jsonable(await run_status(client.get_workflow_handle(workflow_id)))
        return found

    @app.post(
        "/api/runs/{workflow_id:path}/signals/{name}", status_code=202, summary="Signal a run"
    )
    async def signal(workflow_id: str, name: str, request: Request) -> dict[str, Any]:
        from interpreter.client.control import signal_run

        text = (await request.body()).decode("utf-8", "replace")
        payload = _json_body(text) if text.strip() else None
        await signal_run(await settings.client(), workflow_id, name, payload)
        return {"workflow_id": workflow_id, "signal": name}

    for action in ("pause", "resume", "cancel", "terminate"):
        _control_route(app, settings, action)


def _control_route(app: FastAPI, settings: ServeSettings, action: str) -> None:
    async def control(workflow_id: str) -> dict[str, Any]:
        from interpreter.client import control as runs

        functions: Mapping[str, Callable[[Client, str], Awaitable[None]]] = {
            "pause": runs.pause_run,
            "resume": runs.resume_run,
            "cancel": runs.cancel_run,
            "terminate": runs.terminate_run,
        }
        await functions[action](await settings.client(), workflow_id)
        return {"workflow_id": workflow_id, "requested": action}

    app.post(
        f"/api/runs/{{workflow_id:path}}/{action}",
        status_code=202,
        summary=f"{action.title()} a run",
    )(control)


# --------------------------------------------------------------------------- tasks


def _task_routes(app: FastAPI, settings: ServeSettings) -> None:
    @app.post("/api/tasks/{token}/complete", status_code=202, summary="Complete a task")
    async def complete(token: str, request: Request) -> dict[str, Any]:
        from interpreter.client.tasks import complete_task

        text = (await request.body()).decode("utf-8", "replace")
        await complete_task(await settings.client(), token, _json_body(text) if text else None)
        return {"completed": True}

    @app.post("/api/tasks/{token}/fail", status_code=202, summary="Fail a task")
    async def fail(token: str, body: TaskFailure) -> dict[str, Any]:
        from interpreter.client.tasks import fail_task

        await fail_task(await settings.client(), token, body.message, error_type=body.error_type)
        return {"failed": True}


# --------------------------------------------------------------------------- api triggers


async def _api_trigger(request: Request, settings: ServeSettings) -> JSONResponse:
    """A request no route matched: a definition's `{type: api}` trigger, or a 404."""
    method, path = request.method.upper(), request.url.path
    for name, version, condition in await _api_triggers(settings):
        endpoint = str(condition.get("endpoint", ""))
        wanted = str(condition.get("method", "POST")).upper()
        if endpoint.rstrip("/") == path.rstrip("/") and wanted == method:
            if not _authorized(request, settings):  # a run starts, whatever the method
                return _unauthorized()
            try:
                text = await _body_text(request)
                body = _json_body(text) if text.strip() else {}
                if not isinstance(body, dict):
                    raise InputError("the body of a trigger is the run's input: a JSON object")
                started = await _start(settings, name, version, body, None)
            except DslError as exc:
                return _dsl_error(exc)
            return JSONResponse(started.model_dump(), status_code=201)
    return _error(404, f"no route {method} {path}")


async def _api_triggers(settings: ServeSettings) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, version, condition) of every `{type: api}` trigger the server knows."""
    catalog = await definitions_catalog(settings)
    if catalog is None:
        return []
    found = []
    for name in catalog.names():
        entry = catalog.find(name)
        if entry is None:
            continue
        for trigger in entry.definition.triggers:
            if isinstance(trigger, ApiTrigger):
                found.append((name, entry.definition.version, dict(trigger.condition)))
    return found


# --------------------------------------------------------------------------- helpers


async def _start(
    settings: ServeSettings,
    name: str,
    version: str | None,
    input_value: dict[str, Any],
    workflow_id: str | None,
) -> Started:
    from interpreter.client.submit import check_workflow_id, prepare_registered, start_run

    if workflow_id is not None:
        check_workflow_id(workflow_id)
    catalog = await definitions_catalog(settings)
    if catalog is None:
        raise ServiceError(
            "no definitions: start tdsl serve with --definitions DIR or DATABASE_URL"
        )
    run_input, _ = prepare_registered(name, version, input_value=input_value, catalog=catalog)
    handle = await start_run(
        await settings.client(), run_input, workflow_id=workflow_id, task_queue=settings.task_queue
    )
    return Started(workflow_id=handle.id, run_id=handle.result_run_id)


async def _body_text(request: Request) -> str:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InputError(f"the body is over {MAX_BODY // (1024 * 1024)} MiB")
    return body.decode("utf-8", "replace")


def _json_body(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"the body is not JSON: {err.msg} at line {err.lineno}") from None
