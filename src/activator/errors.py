"""One hierarchy of errors, each carrying what the user needs to fix the problem.

The CLI maps :class:`ActivatorError` subclasses to exit codes: input problems (bad files,
unknown references, an engine that does not match the data model) exit with 2, failed work
with 1. Messages never contain secrets.
"""

from __future__ import annotations

__all__ = [
    "ActivatorError",
    "CompileError",
    "ConfigError",
    "DefinitionError",
    "DestinationError",
    "EngineError",
    "EngineLockedError",
    "Issue",
    "MissingExtraError",
    "StoreError",
]

from dataclasses import dataclass
from typing import Literal


class ActivatorError(Exception):
    """Base of every error Activator raises on purpose.

    Attributes:
        bad_input: True when the user's input (files, flags, data model) is at fault, so the
            CLI exits with 2; False when the work itself failed (exit 1).
    """

    bad_input: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(ActivatorError):
    """The workspace configuration or the command line is wrong."""

    bad_input = True


@dataclass(frozen=True)
class Issue:
    """One problem found in a definition file.

    Attributes:
        file: path of the file, relative to the workspace where possible.
        line: 1-based line number in the file, when known.
        path: location inside the document, e.g. ``audience.include[1]``.
        message: what is wrong, and the fix where possible.
        severity: ``error`` stops the work; ``warning`` is shown but does not.
    """

    file: str
    line: int | None
    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        message = self.message if self.severity == "error" else f"warning: {self.message}"
        return f"{where} {self.path}: {message}" if self.path else f"{where}: {message}"


class DefinitionError(ConfigError):
    """One or more definition files are invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        lines = "\n".join(f"  {issue}" for issue in issues)
        count = f"{len(issues)} problem" + ("s" if len(issues) != 1 else "")
        super().__init__(f"{count} found:\n{lines}")

    def __str__(self) -> str:
        return self.message


class CompileError(ActivatorError):
    """A definition cannot be compiled to an engine expression."""

    bad_input = True


class EngineError(ActivatorError):
    """The engine is unreachable, or does not match the data model."""

    bad_input = True


class EngineLockedError(EngineError):
    """Another process holds the embedded engine for writing."""


class MissingExtraError(ActivatorError):
    """An optional dependency is not installed."""

    bad_input = True

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(
            f"this needs the optional package {module!r}, which is not installed",
            hint=f"install activator[{extra}]  (pip install 'activator[{extra}]')",
        )
        self.extra = extra


class StoreError(ActivatorError):
    """The metadata store is unreachable or its schema cannot be migrated."""

    bad_input = True


class DestinationError(ActivatorError):
    """A destination refused or failed a delivery.

    Attributes:
        attribution: ``configuration`` when the user must fix something (a wrong bucket, a
            refused credential, a missing table: fix, then restart the run); ``platform`` when
            the destination failed transiently (timeouts, 5xx, 429: retried, then resumable).
        disables_destination: the destination asked for no more deliveries (a webhook's 410
            Gone): the runner marks it disabled until someone enables it again.
    """

    disables_destination: bool = False

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        attribution: Literal["configuration", "platform"] = "platform",
    ) -> None:
        super().__init__(message, hint=hint)
        self.attribution = attribution

    @property
    def retryable(self) -> bool:
        """Whether retrying the same request later can succeed."""
        return self.attribution == "platform"


class RunStopped(BaseException):
    """Raised at a checkpoint (before a unit is sent, between tasks) to stop a run there.

    A ``BaseException``: connectors that turn their own errors into ``DestinationError`` must
    not catch it. ``canceled`` runs end ``canceled``; the others (SIGTERM) go back to the
    queue and are resumed through the ledger by the next scheduler.
    """

    def __init__(self, reason: str, *, canceled: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.canceled = canceled
