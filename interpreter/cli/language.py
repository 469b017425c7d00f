"""`tdsl validate|graph|schema`: the language, no server needed."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from dsl.catalog import TEST_FILE_SUFFIXES, Catalog
from dsl.diagram import FORMATS, render_diagram
from dsl.errors import DefinitionError, InputError
from dsl.schema import schema_text
from dsl.testfiles import load_test_file
from dsl.validate import validate_file
from interpreter.cli.support import (
    EXIT_FAILED,
    EXIT_OK,
    activity_names_of,
    add_connection_options,
    add_definition_options,
    client_for,
    print_diagnostics,
    print_json,
)

if TYPE_CHECKING:
    pass


def register(commands: Any) -> None:
    """`validate`, `graph`, `schema`."""
    validate = commands.add_parser("validate", help="check definitions; one line per problem")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: one JSON list on stdout, one object per problem (file, line, column, message)",
    )
    add_definition_options(validate)
    validate.set_defaults(handler=_validate)

    graph = commands.add_parser("graph", help="print a definition's DAG")
    graph.add_argument("file", metavar="FILE")
    graph.add_argument("--format", choices=FORMATS, default="mermaid")
    graph.add_argument(
        "--run", metavar="ID", help="colour each step by its state in this run (workflow id)"
    )
    add_definition_options(graph)
    add_connection_options(graph)
    graph.set_defaults(handler=_graph, uses_temporal=True)

    schema = commands.add_parser("schema", help="print the JSON Schema of the language")
    schema.set_defaults(handler=_schema)


def _validate(args: argparse.Namespace) -> int:
    names = activity_names_of(args.activities)
    as_json = args.format == "json"
    problems: list[dict[str, Any]] = []
    failed = False
    for file in args.files:
        try:
            if str(file).endswith(TEST_FILE_SUFFIXES):  # `tdsl test` files validate too
                tests = load_test_file(file, activities=names)
                if not as_json:
                    print(f"{file}: ok (tests of {tests.definition}, {len(tests.cases)} cases)")
                continue
            checked = validate_file(
                file, definitions=args.definitions, catalog=_registry(), activities=names
            )
        except DefinitionError as exc:
            failed = True
            if as_json:
                problems += [
                    {"file": d.file, "line": d.line, "column": d.column, "message": d.message}
                    for d in exc.diagnostics
                ]
            else:
                print_diagnostics(exc)
            continue
        if not as_json:
            definition = checked.definition
            steps = sum(len(scope.steps) for scope in checked.graph.scopes.values())
            print(f"{file}: ok ({definition.name} {definition.version}, {steps} steps)")
    if as_json:
        print_json(problems)
    return EXIT_FAILED if failed else EXIT_OK


def _registry() -> Catalog | None:
    """The PostgreSQL registry when DATABASE_URL is set, consulted only for unknown names."""
    from interpreter.client.submit import registry_catalog

    return registry_catalog()


async def _graph(args: argparse.Namespace) -> int:
    checked = validate_file(
        args.file,
        definitions=args.definitions,
        catalog=_registry(),
        activities=activity_names_of(args.activities),
    )
    states = await _run_states(args, checked.definition.name) if args.run else None
    sys.stdout.write(render_diagram(checked.graph, args.format, states))
    return EXIT_OK


async def _run_states(args: argparse.Namespace, name: str) -> dict[str, str]:
    """Step id → state in run *args.run*, which must run the definition drawn."""
    from interpreter.client.status import run_status
    from interpreter.contract import MEMO_NAME

    client = await client_for(args)
    handle = client.get_workflow_handle(args.run)
    status = await run_status(handle)  # NotFoundError for an unknown id
    memo = await (await handle.describe()).memo()
    runs = memo.get(MEMO_NAME)
    if runs is not None and runs != name:
        raise InputError(f"run {args.run!r} runs definition {runs!r}, not {name!r}")
    return {key: str(state["status"]) for key, state in status["steps"].items()}


def _schema(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return EXIT_OK
