"""`tdsl`, the command line: one module per command group, each a thin layer over
the library (`interpreter.client`, `interpreter.history`, `dsl`).

`main` parses, dispatches, and turns our errors into one line and an exit code.
"""

from interpreter.cli.app import main

__all__ = ["main"]
