"""The one error tree of temporal-dsl.

Errors a user caused carry enough context to be fixed without reading our code;
anything else is a bug and is allowed to be a plain exception. Raise a leaf, never
`DslError` itself: the leaf says what kind of trouble it is, and the CLI turns
`DefinitionError` and `InputError` into exit code 2, every other leaf into 1.

    DslError                    everything we raise on purpose (never raised itself)
    ├── DefinitionError         a definition file is wrong: one Diagnostic per mistake,
    │                           each printed as FILE:LINE:COL: error: message
    ├── ExpressionError         a template or JsonLogic condition cannot be parsed or
    │                           resolved (validation attaches a position; at run time
    │                           the interpreter turns it into a step failure)
    ├── InputError              run input or a CLI argument is invalid (exit code 2)
    ├── NotFoundError           a named definition, run or activity does not exist
    ├── ConflictError           what is asked contradicts what is stored
    │   └── VersionConflict     (interpreter.history.definitions) a registered version
    │                           with other content
    ├── ConfigurationError      the installation or environment is wrong: settings
    │                           files, activity modules, ports, a missing extra
    ├── ServiceError            Temporal, PostgreSQL or an embedded server is
    │   │                       unreachable, refused the request or failed
    │   ├── DatabaseUnavailable (interpreter.history.store) PostgreSQL cannot be reached
    │   └── PayloadStoreUnavailable (interpreter.payloads) also a PayloadError
    └── PayloadError            (interpreter.payloads) a value too large to send, or a
                                stored value that cannot be read
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ConfigurationError",
    "ConflictError",
    "DefinitionError",
    "Diagnostic",
    "DslError",
    "ExpressionError",
    "InputError",
    "NotFoundError",
    "Problem",
    "ServiceError",
]


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One mistake at one place; line and column are 1-based like every editor's."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: error: {self.message}"


class DslError(Exception):
    """Base of every error temporal-dsl raises on purpose."""


class DefinitionError(DslError):
    """A definition is invalid; carries every problem found, sorted by position."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(sorted(set(diagnostics)))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class ExpressionError(DslError):
    """A template or condition is malformed or names a value that is not there."""


class InputError(DslError):
    """Input given on the command line or to a run is invalid; nothing was started."""


class NotFoundError(DslError):
    """A definition, run, schedule or activity that was named does not exist."""


class ConflictError(DslError):
    """What was asked contradicts what is stored (e.g. an immutable version)."""


class ConfigurationError(DslError):
    """The installation or the environment is wrong; the fix is a setting, not input."""


class ServiceError(DslError):
    """A service we need (Temporal, PostgreSQL, an embedded server) is unreachable,
    refused the request or failed; usually worth trying again once it is back."""


@dataclass(frozen=True)
class Problem:
    """A mistake located by its path in the document, before positions are known.

    The validator turns each one into a `Diagnostic` through the document's source
    map; `at_key` points at the key instead of its value (unknown or missing keys).
    """

    path: tuple[str | int, ...]
    message: str
    at_key: bool = False
