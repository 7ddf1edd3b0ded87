"""``activator run`` and ``activator runs``: run an activation now, follow, resume and inspect
runs."""

from __future__ import annotations

__all__ = ["finish_run", "run_command", "runs_app"]

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from activator.cli.common import AsOfOpt, JsonOpt, fail, workspace_as_of
from activator.cli.output import Output
from activator.errors import ActivatorError

if TYPE_CHECKING:
    from activator.store import RunSummary


class _RunsGroup(TyperGroup):
    """``activator runs NAME`` is short for ``activator runs list NAME``."""

    # Typed loosely: Typer's own (vendored) Click types are private.
    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["list", *args]
        return super().resolve_command(ctx, args)


runs_app = typer.Typer(
    name="runs",
    cls=_RunsGroup,
    help="List an activation's runs (`activator runs NAME`); show, retry, restart, cancel one.",
    no_args_is_help=True,
)

RunArg = Annotated[str, typer.Argument(help="The run's id.")]
NameArg = Annotated[str, typer.Argument(help="The activation's name.")]


def run_command(
    ctx: typer.Context,
    name: NameArg,
    as_of: AsOfOpt = None,
    retry_rejected: Annotated[
        bool,
        typer.Option(
            "--retry-rejected",
            help="Also resend the records destinations rejected in earlier runs.",
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Run an activation now (its applied version) and report the run."""
    from activator.services.run import run_activation

    out = Output(json_mode=json_output)
    root: Path = ctx.obj.workspace
    try:
        moment = workspace_as_of(root, as_of)
        with out.bars() as update:
            run = run_activation(
                root,
                name,
                as_of=moment,
                retry_rejected=retry_rejected,
                progress=update,
                say=out.say,
            )
    except ActivatorError as exc:
        raise fail(out, exc) from None
    finish_run(out, run, json_output)


@runs_app.command("retry")
def runs_retry(ctx: typer.Context, run_id: RunArg, json_output: JsonOpt = False) -> None:
    """Run a failed or interrupted run again with the same inputs (its definition version and
    as-of time), continuing where it stopped; nothing is sent twice."""
    from activator.services.run import retry_run

    out = Output(json_mode=json_output)
    try:
        with out.bars() as update:
            run = retry_run(ctx.obj.workspace, run_id, progress=update)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    finish_run(out, run, json_output)


runs_app.command("resume", hidden=True, help="The earlier name of `runs retry`.")(runs_retry)


@runs_app.command("restart")
def runs_restart(ctx: typer.Context, run_id: RunArg, json_output: JsonOpt = False) -> None:
    """Run the activation again as of the run's time with its current definition: a new run
    (use it after fixing a definition; `retry` keeps the run's own version)."""
    from activator.services.run import restart_run

    out = Output(json_mode=json_output)
    try:
        with out.bars() as update:
            run = restart_run(ctx.obj.workspace, run_id, progress=update, say=out.say)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    finish_run(out, run, json_output)


@runs_app.command("cancel")
def runs_cancel(ctx: typer.Context, run_id: RunArg, json_output: JsonOpt = False) -> None:
    """Cancel a run: at once when no process executes it, else after the batch in flight
    (the run shows `canceling` until then)."""
    from activator.services.run import cancel_run, run_json

    out = Output(json_mode=json_output)
    try:
        run = cancel_run(ctx.obj.workspace, run_id)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    if json_output:
        out.emit_json(run_json(run))
        return
    if run.shown_status == "canceling":
        out.say(
            f"Run [bold]{run.run_id}[/] is [yellow]canceling[/]: {escape(run.lease_owner or '?')} "
            "stops it after the batch in flight"
        )
    else:
        out.say(f"Run [bold]{run.run_id}[/] is [bold]{run.shown_status}[/]")


@runs_app.command("show")
def runs_show(ctx: typer.Context, run_id: RunArg, json_output: JsonOpt = False) -> None:
    """One run: status, counts, tasks, events and a sample of rejected records."""
    from activator.services.run import show_run

    out = Output(json_mode=json_output)
    try:
        detail = show_run(ctx.obj.workspace, run_id)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    if json_output:
        out.emit_json(detail.to_json())
        return
    _report(out, detail.run, False)
    tasks = Table("task", "status", "rows", "rejected", "shrink", "error", title="Tasks")
    for t in detail.tasks:
        tasks.add_row(
            t.task,
            t.status,
            str(t.counts.get("rows", "-")),
            str(t.counts.get("rejected", "-")),
            str(t.counts.get("shrink", "-")),
            escape(t.error or ""),
        )
    out.out.print(tasks)
    if detail.events:
        events = Table("at", "level", "task", "message", title="Events")
        for e in detail.events:
            events.add_row(f"{e.at:%H:%M:%S}", e.level, e.task or "", escape(e.message))
        out.out.print(events)
    if detail.rejected:
        out.say(f"[bold]{len(detail.rejected)}[/] rejected records (first ones):")
        for r in detail.rejected:
            out.say(f"  {escape(r.destination)}: {escape(r.reason)}")


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    name: NameArg,
    limit: Annotated[int, typer.Option(help="How many runs.", min=1)] = 20,
    json_output: JsonOpt = False,
) -> None:
    """The latest runs of an activation, newest first."""
    from activator.services.run import list_runs, run_json

    out = Output(json_mode=json_output)
    try:
        runs = list_runs(ctx.obj.workspace, name, limit=limit)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    if json_output:
        out.emit_json({"runs": [run_json(r) for r in runs]})
        return
    if not runs:
        out.say(f"{escape(name)} has not run yet.")
        return
    table = Table("run", "status", "trigger", "as of", "audience", "sent", "rows", "rejected")
    for r in runs:
        doc = run_json(r)
        table.add_row(
            r.run_id,
            r.status + (" (test)" if r.is_test else ""),
            r.trigger,
            f"{r.as_of:%Y-%m-%d %H:%M}",
            _number(doc["audience"]),
            _number(doc["sent"]),
            _number(r.counts.get("rows")),
            _number(r.counts.get("rejected")),
        )
    out.out.print(table)


def _number(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def finish_run(out: Output, run: RunSummary, json_output: bool) -> None:
    """Report a run that ended (one JSON document with --json); exit 1 when it failed."""
    from activator.services.run import run_json

    _report(out, run, json_output)
    if json_output:
        out.emit_json(run_json(run))
    if run.status == "failed":
        raise typer.Exit(1)


def _report(out: Output, run: RunSummary, json_output: bool) -> None:
    if json_output:
        return
    colour = {"succeeded": "green", "warning": "yellow", "failed": "red"}.get(run.status, "white")
    counts = run.counts
    if counts.get("unchanged"):
        out.say(
            f"Run [bold]{run.run_id}[/] of {run.kind} [bold]{escape(run.name)}[/]: "
            f"[{colour}]{run.shown_status}[/] - source unchanged since the last run, nothing sent"
        )
        return
    out.say(
        f"Run [bold]{run.run_id}[/] of {run.kind} [bold]{escape(run.name)}[/]: "
        f"[{colour}]{run.shown_status}[/] - {counts.get('rows', 0):,} rows delivered, "
        f"{counts.get('rejected', 0):,} rejected"
    )
    moved = counts.get("journey")
    if moved:
        out.say(
            f"  travellers: {moved.get('entered', 0):,} entered, {moved.get('moved', 0):,} "
            f"moved on, {moved.get('exited', 0):,} exited, {moved.get('goals', 0):,} reached "
            f"a goal, {moved.get('orphaned', 0):,} orphaned"
        )
    if run.error:
        rid = run.run_id
        hint = (
            f"fix the configuration, then `activator runs retry {rid}` (same definition) or "
            f"`activator runs restart {rid}` (the definition applied now)"
            if run.error_kind == "configuration"
            else f"a platform failure: `activator runs retry {rid}` retries it"
        )
        out.say(f"  [red]{escape(run.error)}[/] ({run.error_kind}: {hint})")
