"""The ``activator`` command line: a thin front over the services.

Exit codes: 0 success, 1 the work failed, 2 bad input or usage. Every reporting command takes
``--json`` and then prints exactly one JSON document on stdout.
"""

from __future__ import annotations

__all__ = ["app", "main"]

import os
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.tree import Tree

from activator import __version__
from activator.cli.campaigns import campaign_app, plan_command
from activator.cli.common import AsOfOpt, JsonOpt, State, fail, workspace_as_of
from activator.cli.destinations import destination_app, secrets_app
from activator.cli.exports import export_command
from activator.cli.journeys import journey_app
from activator.cli.output import Output
from activator.cli.runs import run_command, runs_app
from activator.cli.scheduler import scheduler_command
from activator.cli.serve import serve_command
from activator.cli.tokens import token_app
from activator.clock import parse_as_of
from activator.errors import ActivatorError

app = typer.Typer(
    name="activator",
    help="Turn customer data into marketing activations: campaigns, journeys, orchestrations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
        raise fail(out, exc) from None
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
        raise fail(out, exc) from None
    warnings = [str(w) for w in report.warnings]
    if json_output:
        out.emit_json({"valid": True, "definitions": report.counts, "warnings": warnings})
        return
    for warning in warnings:
        out.say(f"[yellow]{escape(warning)}[/]")
    summary = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in report.counts.items())
    out.say(f"[green]Valid:[/] {summary or 'no definitions'}")


@app.command()
def apply(
    ctx: typer.Context,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Store the files even over changes made through the API since they were "
            "last applied or exported (those changes stay in the version history).",
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Validate, then store each changed definition as a new version."""
    from activator.services.workspace import apply_workspace

    out = Output(json_mode=json_output)
    try:
        with out.progress("applying") as step:
            _, results = apply_workspace(ctx.obj.workspace, force=force, progress=step)
    except ActivatorError as exc:
        raise fail(out, exc) from None
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
        moment = workspace_as_of(ctx.obj.workspace, as_of)
        rows = list_status(ctx.obj.workspace, as_of=moment)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    if json_output:
        out.emit_json({"as_of": moment.isoformat(), "activations": [r.to_json() for r in rows]})
        return
    if not rows:
        out.say("No activations yet: define campaigns, journeys or orchestrations, then apply.")
        return
    table = Table("type", "name", "status", "version", "last run", "next run")
    for r in rows:
        last = "never"
        if r.last_run is not None:
            run = r.last_run
            when = run.started_at or run.created_at
            sent = run.counts.get("sent", run.counts.get("rows"))
            last = f"{run.status} {when:%Y-%m-%d %H:%M}" + (
                f" ({sent:,} sent)" if isinstance(sent, int) else ""
            )
        upcoming = f"{r.next_run:%Y-%m-%d %H:%M} UTC" if r.next_run else "-"
        table.add_row(r.type, r.name, r.status.capitalize(), str(r.version), last, upcoming)
    out.out.print(table)


# -- segment commands -------------------------------------------------------------------------

segment_app = typer.Typer(
    name="segment",
    help="Preview segments, show their SQL, and explain why a customer is in or out.",
    no_args_is_help=True,
)
app.add_typer(segment_app, name="segment")

SegmentArg = Annotated[str, typer.Argument(help="The segment's name (its file name).")]


def _plain(value: Any) -> Any:
    """A sample value as JSON: dates and times in ISO 8601, exact decimals as strings."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


@segment_app.command("preview")
def segment_preview(
    ctx: typer.Context,
    name: SegmentArg,
    as_of: AsOfOpt = None,
    limit: Annotated[int, typer.Option(help="Members to show in the sample.", min=0)] = 10,
    json_output: JsonOpt = False,
) -> None:
    """Count a segment's members, show a sample (PII masked) and its insights."""
    from activator.services.segment import preview

    out = Output(json_mode=json_output)
    root: Path = ctx.obj.workspace
    try:
        moment = workspace_as_of(root, as_of)
        with out.progress(f"previewing {name}") as step:
            result = preview(root, name, as_of=moment, limit=limit, progress=step)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    insights = result.insights
    revenue = insights.revenue_last_year
    if json_output:
        out.emit_json(
            {
                "segment": result.segment,
                "as_of": result.as_of.isoformat(),
                "count": result.count,
                "sample": [{k: _plain(v) for k, v in row.items()} for row in result.sample],
                "insights": {
                    "unique_customers": insights.unique_customers,
                    "active_last_year": insights.active_last_year,
                    "revenue_last_year": None if revenue is None else str(revenue),
                    "reachable": insights.reachable,
                },
            }
        )
        return
    out.say(
        f"Segment [bold]{escape(result.segment)}[/] as of {result.as_of:%Y-%m-%d %H:%M} UTC: "
        f"[bold]{result.count:,}[/] members"
    )
    source = f" ({result.purchase_table})" if result.purchase_table else ""
    facts = Table("insight", "value", title="Insights", title_justify="left")
    facts.add_row("unique customers", _count(insights.unique_customers))
    facts.add_row(f"active in the last year{source}", _count(insights.active_last_year))
    facts.add_row(f"revenue in the last year{source}", "-" if revenue is None else f"{revenue:,}")
    facts.add_row("reachable (usable email or phone)", _count(insights.reachable))
    out.out.print(facts)
    if result.sample:
        sample = Table(
            *result.columns,
            title=f"First {len(result.sample)} members (PII masked)",
            title_justify="left",
        )
        for row in result.sample:
            sample.add_row(*("" if v is None else escape(str(_plain(v))) for v in row.values()))
        # A customer table is wider than a terminal: print the sample at its natural width
        # (the terminal wraps long lines) rather than squeezing every value to a few letters.
        natural = Measurement.get(out.out, out.out.options.update_width(10_000), sample).maximum
        width = out.out.width
        out.out.width = max(width, natural)
        try:
            out.out.print(sample, crop=False)
        finally:
            out.out.width = width


@segment_app.command("sql")
def segment_sql(
    ctx: typer.Context,
    name: SegmentArg,
    dialect: Annotated[
        str,
        typer.Option(help="duckdb, spark, postgres, trino, bigquery or snowflake."),
    ] = "duckdb",
    as_of: AsOfOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Print the SQL a segment compiles to, in an engine's dialect."""
    from activator.services.segment import compiled_sql

    out = Output(json_mode=json_output)
    root: Path = ctx.obj.workspace
    try:
        moment = workspace_as_of(root, as_of)
        with out.progress(f"compiling {name}") as step:
            sql = compiled_sql(root, name, dialect=dialect, as_of=moment, progress=step)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    if json_output:
        out.emit_json({"segment": name, "dialect": dialect, "sql": sql})
        return
    out.out.print(sql, markup=False, highlight=False)


@segment_app.command("why")
def segment_why(
    ctx: typer.Context,
    name: SegmentArg,
    customer_id: Annotated[str, typer.Argument(help="The customer's activation ID.")],
    as_of: AsOfOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Show each condition of a segment with whether a customer met it, and why."""
    from activator.services.segment import why

    out = Output(json_mode=json_output)
    root: Path = ctx.obj.workspace
    try:
        moment = workspace_as_of(root, as_of)
        with out.progress(f"explaining {name} for {customer_id}") as step:
            result = why(root, name, customer_id, as_of=moment, progress=step)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    if json_output:
        out.emit_json(
            {
                "segment": result.segment,
                "customer_id": _plain(result.customer_id),
                "as_of": result.as_of.isoformat(),
                "member": result.member,
                "conditions": _condition_json(result.result),
            }
        )
        return
    verdict = "[green]is a member[/]" if result.member else "[red]is not a member[/]"
    out.say(
        f"Customer [bold]{escape(str(result.customer_id))}[/] {verdict} of "
        f"[bold]{escape(result.segment)}[/] as of {result.as_of:%Y-%m-%d %H:%M} UTC"
    )
    out.out.print(_condition_tree(result.result))


def _condition_json(node: Any) -> dict[str, Any]:
    return {
        "path": node.path,
        "description": node.description,
        "met": node.met,
        "value": _plain(node.value),
        "children": [_condition_json(child) for child in node.children],
    }


def _condition_label(node: Any) -> str:
    mark = "[green]✓[/]" if node.met else "[red]✗[/]"
    shown = "" if node.value is None else f" [dim]→[/] {escape(str(_plain(node.value)))}"
    where = f" [dim]({escape(node.path)})[/]" if node.path else ""
    return f"{mark} {escape(node.description)}{shown}{where}"


def _condition_tree(root: Any) -> Tree:
    tree = Tree(_condition_label(root))

    def add(branch: Tree, node: Any) -> None:
        for child in node.children:
            add(branch.add(_condition_label(child)), child)

    add(tree, root)
    return tree


# -- runs, destinations, secrets ----------------------------------------------------------------

app.command("run")(run_command)
app.command("plan")(plan_command)
app.command("scheduler")(scheduler_command)
app.command("serve")(serve_command)
app.command("export")(export_command)
app.add_typer(runs_app, name="runs")
app.add_typer(campaign_app, name="campaign")
app.add_typer(journey_app, name="journey")
app.add_typer(destination_app, name="destination")
app.add_typer(secrets_app, name="secrets")
app.add_typer(token_app, name="token")


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
