"""`tdsl`: the command line. Thin: each command calls library code.

One handler turns our errors into messages and exit codes, so no input — however
broken — ends in a traceback: definition problems print ``FILE:LINE:COL: error: …``
(exit 1, or 2 where a run was refused), bad command-line input prints one line
(exit 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from dsl.errors import DefinitionError, DslError, InputError, NotFoundError
from dsl.render import FORMATS, render
from dsl.schema import schema_text
from dsl.validate import validate_file

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tdsl", description="Declarative YAML workflows on Temporal.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    validate = commands.add_parser("validate", help="check definitions; one line per problem")
    validate.add_argument("files", nargs="+", metavar="FILE")
    _add_definition_options(validate)
    validate.set_defaults(handler=_validate)

    graph = commands.add_parser("graph", help="print a definition's DAG")
    graph.add_argument("file", metavar="FILE")
    graph.add_argument("--format", choices=FORMATS, default="mermaid")
    _add_definition_options(graph)
    graph.set_defaults(handler=_graph)

    schema = commands.add_parser("schema", help="print the JSON Schema of the language")
    schema.set_defaults(handler=_schema)
    return parser


def _add_definition_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--definitions",
        action="append",
        default=[],
        metavar="DIR",
        help="more directories where subworkflow definitions are looked up",
    )
    command.add_argument(
        "--activities",
        action="append",
        default=None,
        metavar="MODULE",
        help="activity modules a worker registers; unknown actions then become errors",
    )


def _activity_names(modules: list[str] | None) -> set[str] | None:
    """Names the worker would register, when the user told us its modules."""
    if modules is None:
        return None
    from activities.builtin import BuiltinActivities
    from activities.registry import activity_names, default_activities, load_activities

    try:
        extra = load_activities(modules)
    except NotFoundError as exc:
        raise InputError(str(exc)) from None
    return set(activity_names([*default_activities(BuiltinActivities()), *extra]))


def _validate(args: argparse.Namespace) -> int:
    names = _activity_names(args.activities)
    failed = False
    for file in args.files:
        try:
            checked = validate_file(file, definitions=args.definitions, activities=names)
        except DefinitionError as exc:
            failed = True
            for diagnostic in exc.diagnostics:
                print(diagnostic, file=sys.stderr)
            continue
        definition = checked.definition
        steps = sum(len(scope.steps) for scope in checked.graph.scopes.values())
        print(f"{file}: ok ({definition.name} {definition.version}, {steps} steps)")
    return EXIT_FAILED if failed else EXIT_OK


def _graph(args: argparse.Namespace) -> int:
    checked = validate_file(
        args.file, definitions=args.definitions, activities=_activity_names(args.activities)
    )
    sys.stdout.write(render(checked.graph, args.format))
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tdsl` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except DefinitionError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        return getattr(args, "definition_exit_code", EXIT_FAILED)
    except InputError as exc:
        print(f"tdsl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DslError as exc:
        print(f"tdsl: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("tdsl: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug of ours: still one line, the traceback on request
        if os.environ.get("TDSL_DEBUG"):
            raise
        print(
            f"tdsl: internal error: {type(exc).__name__}: {exc} (set TDSL_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 70


def run() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    run()
