"""`python -m interpreter.cli` is `tdsl`."""

from interpreter.cli.app import run

run()
