"""The ``activator`` command line: a thin front over the services.

Exit codes: 0 success, 1 the work failed, 2 bad input or usage. Every reporting command takes
``--json`` and then prints exactly one JSON document on stdout.
"""

from __future__ import annotations

__all__ = ["app", "main"]

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from activator import __version__
from activator.cli.output import Output
from activator.clock import parse_as_of
from activator.errors import ActivatorError, DefinitionError

app = typer.Typer(
    name="activator",
    help="Turn customer data into marketing activations: campaigns, journeys, orchestrations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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
    workspace: Path


@app.callback()
def _global(
    ctx: typer.Context,
    workspace: Annotated[
        Path,
        typer.Option(
            "--workspace",
            "-w",
            envvar="ACTIVATOR_WORKSPACE",
            help="Workspace folder (default: the current folder, or $ACTIVATOR_WORKSPACE).",
            file_okay=False,
        ),
    ] = Path(),
) -> None:
    ctx.obj = State(workspace=workspace)


def _fail(out: Output, error: ActivatorError) -> typer.Exit:
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


@app.command()
def version(json_output: JsonOpt = False) -> None:
    """Show Activator's version."""
    out = Output(json_mode=json_output)
    if json_output:
        out.emit_json({"version": __version__})
    else:
        out.say(f"activator {__version__}")


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the workspace in.")],
    demo: Annotated[bool, typer.Option("--demo", help="Make the demo retailer with data.")] = False,
    customers: Annotated[int, typer.Option(help="Demo customers to generate.", min=1)] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same data.")] = 42,
    as_of: AsOfOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a workspace: empty, or with --demo the demo retailer, its data and definitions."""
    from activator.services.workspace import init_workspace

    out = Output(json_mode=json_output)
    try:
        moment = parse_as_of(as_of)
        with out.progress("generating demo data" if demo else "creating workspace") as step:
            result = init_workspace(
                directory,
                demo=demo,
                customers=customers,
                seed=seed,
                as_of=moment.date(),
                progress=step,
            )
    except ActivatorError as exc:
        raise _fail(out, exc) from None
    if json_output:
        out.emit_json(
            {
                "workspace": str(result.path),
                "demo": result.demo,
                "tables": result.tables,
                "definitions": result.definitions,
            }
        )
        return
    out.say(f"[green]Created[/] workspace {escape(str(result.path))}")
    if result.demo:
        table = Table("table", "rows", title="Demo data", title_justify="left")
        for name, rows in result.tables.items():
            table.add_row(name, f"{rows:,}")
        out.out.print(table)
        out.say(f"{result.definitions} example definitions. Next: activator -w {result.path} apply")


@app.command()
def validate(
    ctx: typer.Context,
    json_output: JsonOpt = False,
    no_engine: Annotated[
        bool, typer.Option("--no-engine", help="Skip checking the data model against the engine.")
    ] = False,
) -> None:
    """Check every definition, reference and the data model. Stores nothing."""
    from activator.services.workspace import validate_workspace

    out = Output(json_mode=json_output)
    root: Path = ctx.obj.workspace
    try:
        with out.progress("validating") as step:
            report = validate_workspace(root, check_engine=not no_engine, progress=step)
    except ActivatorError as exc:
        raise _fail(out, exc) from None
    warnings = [str(w) for w in report.warnings]
    if json_output:
        out.emit_json({"valid": True, "definitions": report.counts, "warnings": warnings})
        return
    for warning in warnings:
        out.say(f"[yellow]{escape(warning)}[/]")
    summary = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in report.counts.items())
    out.say(f"[green]Valid:[/] {summary or 'no definitions'}")


@app.command()
def apply(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """Validate, then store each changed definition as a new version."""
    from activator.services.workspace import apply_workspace

    out = Output(json_mode=json_output)
    try:
        with out.progress("applying") as step:
            _, results = apply_workspace(ctx.obj.workspace, progress=step)
    except ActivatorError as exc:
        raise _fail(out, exc) from None
    if json_output:
        out.emit_json(
            {
                "applied": [
                    {"kind": r.kind, "name": r.name, "version": r.version, "change": r.change}
                    for r in results
                ]
            }
        )
        return
    table = Table("kind", "name", "version", "change")
    colours = {"created": "green", "updated": "yellow", "unchanged": "dim"}
    for r in results:
        table.add_row(r.kind, r.name, str(r.version), f"[{colours[r.change]}]{r.change}[/]")
    out.out.print(table)
    changed = sum(r.change != "unchanged" for r in results)
    out.say(f"{changed} of {len(results)} definitions stored as new versions")


@app.command()
def status(ctx: typer.Context, as_of: AsOfOpt = None, json_output: JsonOpt = False) -> None:
    """The Activations list: type, name, status, last run and next run."""
    from activator.services.workspace import status as list_status

    out = Output(json_mode=json_output)
    try:
        moment = parse_as_of(as_of)
        rows = list_status(ctx.obj.workspace, as_of=moment)
    except ActivatorError as exc:
        raise _fail(out, exc) from None
    if json_output:
        out.emit_json({"as_of": moment.isoformat(), "activations": [r.to_json() for r in rows]})
        return
    if not rows:
        out.say("No activations yet: define campaigns, journeys or orchestrations, then apply.")
        return
    table = Table("type", "name", "status", "version", "last run", "next run")
    for r in rows:
        last = (
            "never"
            if r.last_run is None
            else f"{r.last_run.status} {r.last_run.started_at:%Y-%m-%d %H:%M}"
        )
        upcoming = f"{r.next_run:%Y-%m-%d %H:%M} UTC" if r.next_run else "-"
        table.add_row(r.type, r.name, r.status, str(r.version), last, upcoming)
    out.out.print(table)


def main() -> None:
    """Entry point of the ``activator`` script."""
    try:
        app()
    except ActivatorError as exc:  # raised outside a command's own handling
        Output(json_mode=False).error(escape(str(exc)))
        sys.exit(2 if exc.bad_input else 1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("ACTIVATOR_DEBUG"):
            raise
        Output(json_mode=False).error(
            f"unexpected {type(exc).__name__}: {escape(str(exc))} "
            "(set ACTIVATOR_DEBUG=1 for the traceback)"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
