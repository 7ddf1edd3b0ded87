"""What every command module shares: options, the global state, error and as-of handling."""

from __future__ import annotations

__all__ = ["AsOfOpt", "JsonOpt", "State", "fail", "status_command", "workspace_as_of"]

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from activator.cli.output import Output
from activator.clock import parse_as_of
from activator.errors import ActivatorError, DefinitionError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
AsOfOpt = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Evaluate as of this date (end of day) or ISO timestamp; default: now.",
    ),
]


@dataclass
class State:
    """The global options (``-w``), handed to every command through the Typer context."""

    workspace: Path


def fail(out: Output, error: ActivatorError) -> typer.Exit:
    """Report an error (as JSON too in ``--json`` mode) and the exit to raise: 2 for bad
    input, 1 when the work failed."""
    code = 2 if error.bad_input else 1
    if out.json_mode:
        document: dict[str, Any] = {
            "error": {"type": type(error).__name__, "message": error.message, "hint": error.hint}
        }
        if isinstance(error, DefinitionError):
            document["error"]["issues"] = [
                {"file": i.file, "line": i.line, "path": i.path, "message": i.message}
                for i in error.issues
            ]
        out.emit_json(document)
    out.error(escape(str(error)))
    return typer.Exit(code)


def workspace_as_of(root: Path, value: str | None) -> datetime:
    """``--as-of`` read in the workspace's time zone (a bare date is the end of that day)."""
    from activator.workspace.loader import load_workspace

    # Only activator.yaml is needed: a broken definition file must not stop `scheduler --once`.
    return parse_as_of(value, timezone=load_workspace(root, definitions=False).config.timezone)


def status_command(
    kind: str, action: str, done: str, doc: str, change: Callable[[Path, str, str], str]
) -> Callable[..., None]:
    """A ``<kind> <action> NAME [--json]`` command: ``change(workspace, name, action)``
    returns the new status, reported as ``<Kind> NAME <done>: now <status>.``."""

    def command(ctx: typer.Context, name: str, json_output: JsonOpt = False) -> None:
        out = Output(json_mode=json_output)
        try:
            status = change(ctx.obj.workspace, name, action)
        except ActivatorError as exc:
            raise fail(out, exc) from None
        if json_output:
            out.emit_json({kind: name, "status": status})
        else:
            out.say(f"{kind.capitalize()} [bold]{escape(name)}[/] {done}: now {status}.")

    command.__doc__ = doc
    # The argument's help names the kind (set here: the annotation cannot name a local).
    command.__annotations__["name"] = Annotated[str, typer.Argument(help=f"The {kind}'s name.")]
    return command
