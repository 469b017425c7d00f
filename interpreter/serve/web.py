"""The web view of `tdsl serve` (docs/serve.md): `/` lists definitions and recent runs, and
`/runs/{id}` draws the run's DAG, each step coloured by its state and updated live.

The pages are server-rendered HTML with every value escaped (a definition's names
and a step's output are user data); the graph is drawn in the browser by
`static/run.js` (plain JS and SVG, no CDN: the machines have no internet) from
`GET /api/runs/{id}/graph`, polled every second while the run is RUNNING. A step's
details (times, error, output, the run's input) come from `GET /ui/steps/{id}`:
the `status` query for what the worker knows now, the run history for outputs.
"""

from __future__ import annotations

import contextlib
import json
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from dsl.diagram import STATE_COLOURS
from dsl.errors import DslError, NotFoundError
from interpreter.client.status import DEFAULT_UI_URL, ui_link
from interpreter.contract import RUN_STATUSES

if TYPE_CHECKING:
    from interpreter.serve.common import ServeSettings

__all__ = ["STATIC", "add_pages", "run_path"]

STATIC = Path(__file__).parent / "static"
"""The page assets (package data): `run.js` draws the graph, `style.css`."""

RUNS_SHOWN = 50


def run_path(workflow_id: str) -> str:
    """The run page of *workflow_id* (any character quoted, slashes too)."""
    return f"/runs/{quote(workflow_id, safe='')}"


def add_pages(app: FastAPI, settings: ServeSettings) -> None:
    """`GET /`, `GET /runs/{id}`, `GET /ui/steps/{id}` and the assets under `/ui/static`."""
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index(status: str = "", definition: str = "") -> HTMLResponse:
        return HTMLResponse(await _index(settings, status.strip().upper(), definition.strip()))

    @app.get("/ui/steps/{workflow_id:path}", include_in_schema=False)
    async def steps(workflow_id: str) -> JSONResponse:
        try:
            return JSONResponse(await _step_details(settings, workflow_id))
        except NotFoundError as err:
            return JSONResponse({"error": str(err)}, status_code=404)

    @app.get("/runs/{workflow_id:path}", response_class=HTMLResponse, include_in_schema=False)
    async def run_page(workflow_id: str) -> HTMLResponse:
        return await _run_page(settings, workflow_id)


# --------------------------------------------------------------------------- pages


def _page(title: str, body: str, *, script: str | None = None) -> str:
    colours = "".join(
        f".st-{state}{{--fill:{fill};--stroke:{stroke}}}"
        for state, (fill, stroke) in STATE_COLOURS.items()
    )
    tail = f'<script src="/ui/static/{script}"></script>' if script else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · temporal-dsl</title>"
        '<link rel="stylesheet" href="/ui/static/style.css">'
        f"<style>{colours}</style></head><body>"
        '<header class="top"><a class="brand" href="/">temporal-dsl</a>'
        '<nav><a href="/">runs &amp; definitions</a> <a href="/docs">API</a></nav></header>'
        f"<main>{body}</main>{tail}</body></html>"
    )


def _ui_base() -> str:
    import os

    return (os.environ.get("TEMPORAL_UI_URL") or DEFAULT_UI_URL).rstrip("/")


async def _namespace(settings: ServeSettings) -> str:
    try:
        return (await settings.client()).namespace
    except Exception:  # the index still lists what the database knows
        return "default"


def _badge(status: str) -> str:
    state = _state_of_run(status)
    return f'<span class="badge st-{state}">{escape(status)}</span>'


def _state_of_run(status: str) -> str:
    return {
        "RUNNING": "running",
        "COMPLETED": "completed",
        "FAILED": "failed",
        "TIMED_OUT": "failed",
        "CANCELED": "cancelled",
        "TERMINATED": "cancelled",
    }.get(status.upper(), "pending")


def _when(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    return escape(text[:19].replace("T", " "))


async def _index(settings: ServeSettings, status: str, definition: str) -> str:
    from interpreter.serve.common import open_store

    notes: list[str] = []
    definitions: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    if status and status not in RUN_STATUSES:
        notes.append(f"unknown status {status!r}: one of {', '.join(RUN_STATUSES)}")
        status = ""
    if settings.database_url:
        try:
            async with open_store(settings) as store:
                definitions = await store.definitions()
                runs = await store.runs(
                    status=status or None, definition=definition or None, limit=RUNS_SHOWN
                )
        except Exception as err:
            notes.append(f"the run history cannot be read: {err}")
    else:
        notes.append(
            "DATABASE_URL is not set: no registry or run history to list. "
            "Open a run with /runs/WORKFLOW_ID."
        )
    namespace = await _namespace(settings)
    ui = f"{_ui_base()}/namespaces/{quote(namespace, safe='')}/workflows"

    options = "".join(
        f'<option value="{s}"{" selected" if s == status else ""}>{s}</option>'
        for s in RUN_STATUSES
    )
    names = sorted({str(d["name"]) for d in definitions} | ({definition} if definition else set()))
    definition_options = "".join(
        f'<option value="{escape(n)}"{" selected" if n == definition else ""}>{escape(n)}</option>'
        for n in names
    )
    form = (
        '<form class="filters" method="get" action="/">'
        '<label>status <select name="status"><option value="">any</option>'
        f"{options}</select></label> "
        '<label>definition <select name="definition"><option value="">any</option>'
        f"{definition_options}</select></label> "
        '<button type="submit">filter</button> <a href="/">clear</a></form>'
    )
    rows = []
    for run in runs:
        workflow_id = str(run["workflow_id"])
        link = ui_link(workflow_id, str(run.get("run_id") or "") or None, namespace)
        rows.append(
            "<tr>"
            f'<td><a href="{escape(run_path(workflow_id))}">{escape(workflow_id)}</a></td>'
            f"<td>{_badge(str(run.get('status') or ''))}</td>"
            f"<td>{escape(str(run.get('definition') or ''))}"
            f' <span class="dim">{escape(str(run.get("version") or ""))}</span></td>'
            f"<td>{_when(run.get('started_at'))}</td><td>{_when(run.get('ended_at'))}</td>"
            f'<td><a href="{escape(link)}" target="_blank" rel="noopener">Temporal UI</a></td>'
            "</tr>"
        )
    runs_table = (
        '<table class="list"><thead><tr><th>run</th><th>status</th><th>definition</th>'
        "<th>started</th><th>ended</th><th></th></tr></thead><tbody>"
        + ("".join(rows) or '<tr><td colspan="6" class="dim">no runs</td></tr>')
        + "</tbody></table>"
    )
    definition_rows = []
    for d in definitions:
        name = str(d["name"])
        filtered = "/?" + urlencode({"definition": name})
        deprecated = ' <span class="dim">deprecated</span>' if d.get("deprecated_at") else ""
        definition_rows.append(
            f'<tr><td><a href="{escape(filtered)}">{escape(name)}</a>{deprecated}</td>'
            f"<td>{escape(str(d.get('version') or ''))}</td>"
            f"<td><code>{escape(str(d.get('sha256') or '')[:12])}</code></td>"
            f"<td>{_when(d.get('registered_at'))}</td></tr>"
        )
    definitions_table = (
        '<table class="list"><thead><tr><th>definition</th><th>version</th>'
        "<th>content</th><th>registered</th></tr></thead><tbody>"
        + ("".join(definition_rows) or '<tr><td colspan="4" class="dim">none registered</td></tr>')
        + "</tbody></table>"
    )
    body = (
        "".join(f'<p class="note">{escape(n)}</p>' for n in notes)
        + '<section><h2>Recent runs <a class="small" href="'
        + escape(ui)
        + '" target="_blank" rel="noopener">all in the Temporal UI</a></h2>'
        + form
        + runs_table
        + "</section><section><h2>Definitions</h2>"
        + definitions_table
        + "</section>"
    )
    return _page("runs", body)


async def _run_page(settings: ServeSettings, workflow_id: str) -> HTMLResponse:
    from interpreter.serve.common import definitions_catalog
    from interpreter.serve.graphs import run_graph

    try:
        client = await settings.client()
        data = await run_graph(client, workflow_id, await definitions_catalog(settings))
    except NotFoundError as err:
        status = 404 if str(err).startswith("no run") else 422
        body = f'<h1>{escape(workflow_id)}</h1><p class="note">{escape(str(err))}</p>'
        return HTMLResponse(_page(workflow_id, body), status_code=status)
    except DslError as err:
        body = f'<h1>{escape(workflow_id)}</h1><p class="note">{escape(str(err))}</p>'
        return HTMLResponse(_page(workflow_id, body), status_code=503)
    run = data["run"]
    graph = data["graph"]
    link = ui_link(str(run["workflow_id"]), str(run.get("run_id") or "") or None, client.namespace)
    boot = {
        "workflow_id": workflow_id,
        "graph": graph,
        "run": run,
        "ui": link,
        "colours": STATE_COLOURS,
    }
    rows = "".join(
        f'<tr data-step="{escape(str(n["id"]))}"><td><code>{escape(str(n["id"]))}</code></td>'
        f"<td>{escape(str(n.get('name') or ''))}</td><td>{escape(str(n.get('type') or ''))}"
        f"{' · ' + escape(str(n['action'])) if n.get('action') else ''}</td>"
        f'<td><span class="badge st-{escape(str(n.get("status") or "pending"))}">'
        f"{escape(str(n.get('status') or 'pending'))}</span></td>"
        f"<td>{int(n.get('attempts') or 0)}</td></tr>"
        for n in graph["nodes"]
    )
    body = (
        '<div class="runhead">'
        f'<h1><span id="run-title">{escape(str(graph.get("name") or ""))}</span>'
        f' <span class="dim">{escape(str(graph.get("version") or ""))}</span></h1>'
        f'<div class="meta"><code>{escape(workflow_id)}</code> '
        f'<span id="run-status">{_badge(str(run["status"]))}</span> '
        f'<a href="{escape(link)}" target="_blank" rel="noopener">history in the Temporal UI</a>'
        '</div><div id="run-error" class="error-line"></div></div>'
        '<div class="toolbar">'
        '<button data-act="fit" title="fit the graph (F)">fit</button>'
        '<button data-act="in">+</button><button data-act="out">&minus;</button>'
        '<button data-act="expand">expand all</button>'
        '<button data-act="collapse">collapse all</button>'
        '<span class="legend">'
        + "".join(f'<span class="badge st-{state}">{state}</span>' for state in STATE_COLOURS)
        + '</span><span id="live" class="dim"></span></div>'
        '<div class="runview"><div id="graph" class="graph" tabindex="0"></div>'
        '<aside id="details" class="details"><p class="dim">Click a step for its status, '
        "attempts, times, output and error. Click a parallel, foreach or loop box's title "
        "to collapse or expand it; wheel to zoom, drag to pan.</p></aside></div>"
        '<details class="steps"><summary>all steps as a table</summary>'
        '<table class="list" id="step-table"><thead><tr><th>id</th><th>name</th><th>type</th>'
        f"<th>status</th><th>attempts</th></tr></thead><tbody>{rows}</tbody></table></details>"
        f'<script id="boot" type="application/json">{_script_json(boot)}</script>'
    )
    return HTMLResponse(_page(str(graph.get("name") or workflow_id), body, script="run.js"))


def _script_json(value: Any) -> str:
    """JSON safe inside a `<script>` element: no `</script>`, no `<!--`."""
    text = json.dumps(value, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# --------------------------------------------------------------------------- step details


async def _step_details(settings: ServeSettings, workflow_id: str) -> dict[str, Any]:
    """`{"steps": {id: {status, attempts, started_at, ended_at, error, output}},
    "input": the run's input or None, "recorded": whether the history had the run}`."""
    from interpreter.client.status import _describe, query_status
    from interpreter.serve.common import jsonable, open_store

    handle = (await settings.client()).get_workflow_handle(workflow_id)
    await _describe(handle)  # NotFoundError for an unknown id
    query = await query_status(handle)
    steps: dict[str, dict[str, Any]] = {}
    live = query.get("steps") if query else None
    if isinstance(live, dict):
        for step_id, state in live.items():
            if isinstance(state, dict):
                steps[str(step_id)] = {
                    key: state.get(key)
                    for key in ("status", "attempts", "started_at", "ended_at", "error")
                }
    recorded: dict[str, Any] | None = None
    if settings.database_url:
        with contextlib.suppress(Exception):
            async with open_store(settings) as store:
                recorded = await store.run(workflow_id)
    for row in (recorded or {}).get("steps", []):
        step = steps.setdefault(str(row["step_id"]), {})
        for key in ("status", "attempts", "started_at", "ended_at", "error"):
            if step.get(key) is None and row.get(key) is not None:
                step[key] = row[key]
        if row.get("output") is not None:
            step["output"] = row["output"]
    result: dict[str, Any] = jsonable(
        {
            "steps": steps,
            "input": (recorded or {}).get("input"),
            "recorded": recorded is not None,
        }
    )
    return result
