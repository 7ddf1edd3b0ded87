"""``activator plan`` and ``activator campaign``: plan a run, send a test sample, pause,
resume, archive, and read results."""

from __future__ import annotations

__all__ = ["campaign_app", "plan_command"]

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from activator.cli.common import AsOfOpt, JsonOpt, fail, status_command, workspace_as_of
from activator.cli.output import Output
from activator.cli.runs import finish_run
from activator.errors import ActivatorError

campaign_app = typer.Typer(
    name="campaign",
    help="Send a test sample, pause, resume, archive a campaign; read its results.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The campaign's name.")]


def plan_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The campaign's or orchestration's name.")],
    as_of: AsOfOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Show what a run would do, without sending: for a campaign, the audience,
    sub-audiences and groups (new, staying, leaving versus the previous run), deliveries with
    shrink and expansion; for an orchestration, the rows, columns, files or table it would
    write, and whether only_if_changed would skip it."""
    from activator.services.campaign import CampaignPlan, plan_campaign
    from activator.services.orchestration import (
        OrchestrationPlan,
        is_orchestration,
        plan_orchestration,
    )

    out = Output(json_mode=json_output)
    root: Path = ctx.obj.workspace
    try:
        moment = workspace_as_of(root, as_of)
        if is_orchestration(root, name):
            found: CampaignPlan | OrchestrationPlan = plan_orchestration(
                root, name, as_of=moment, say=out.say
            )
        else:
            found = plan_campaign(root, name, as_of=moment, say=out.say)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    if json_output:
        out.emit_json(found.to_json())
        return
    if isinstance(found, OrchestrationPlan):
        target = found.target
        out.say(
            f"Orchestration [bold]{escape(name)}[/] v{found.version} as of "
            f"{found.as_of:%Y-%m-%d %H:%M}: [bold]{found.rows:,}[/] rows; "
            f"{found.sent:,} sent to {escape(found.destination)} ({target['type']}) "
            f"after {found.shrink:,} shrink and {found.expansion:,} expansion"
        )
        columns = Table("column", "type", title="Columns written")
        for column, kind in found.columns:
            columns.add_row(escape(column), escape(kind))
        out.out.print(columns)
        if "files" in target:
            files = Table("file", "rows", title=f"Files in {escape(target['path'])} (not written)")
            for i, file in enumerate(target["files"]):
                rows = target["part_rows"][i] if i < len(target["part_rows"]) else None
                files.add_row(escape(file), "?" if rows is None else f"{rows:,}")
            if target["estimated"]:
                files.add_row("... (split by size: the parts depend on the bytes written)", "?")
            out.out.print(files)
            extras = [f"manifest {target['manifest']}"] if target["manifest"] else []
            extras += [f"marker {target['done']}"] if target["done"] else []
            out.say(
                f"Format {target['format']}, compression {target['compression']}"
                + (", PGP" if target["pgp"] else "")
                + (f"; then {', '.join(extras)}" if extras else "")
            )
        elif "table" in target:
            keys = f" on {', '.join(target['keys'])}" if target["keys"] else ""
            out.say(f"Table {escape(target['table'])}: {target['mode']}{escape(keys)}")
        if found.fingerprint is not None:
            since = f"run {found.last_run}" if found.last_run else "no earlier run"
            verdict = "would skip (unchanged)" if found.would_skip else "would send"
            out.say(f"only_if_changed: source {found.fingerprint.digest} versus {since}: {verdict}")
            for source in found.fingerprint.sources:
                shown = ", ".join(f"{k}={v}" for k, v in source.items() if k != "table")
                out.say(f"  {escape(source['table'])}: {escape(shown)}")
        for note in found.notes:
            out.say(f"[yellow]note:[/] {escape(note)}")
        return
    plan = found
    doc = plan.to_json()
    baseline = (
        f"versus run {plan.previous_run}" if plan.previous_run else "first run: everyone is new"
    )
    out.say(
        f"Campaign [bold]{escape(name)}[/] as of {plan.as_of:%Y-%m-%d %H:%M} ({plan.mode}, "
        f"{baseline}): [bold]{plan.audience:,}[/] customers qualify; "
        f"{doc['new']:,} new, {doc['staying']:,} staying, {doc['leaving']:,} leaving"
    )
    groups = Table(
        "sub-audience", "group", "customers", "new", "staying", "leaving", "target", "joining",
        title="Sub-audiences and groups",
    )  # fmt: skip
    for g in plan.groups:
        label = f"{escape(g.group)} (control)" if g.control else escape(g.group)
        groups.add_row(
            escape(g.sub_audience), label, *(f"{v:,}" for v in (
                g.customers, g.new, g.staying, g.leaving, g.target, g.joining))
        )  # fmt: skip
    out.out.print(groups)
    if plan.deliveries:
        table = Table(
            "destination", "sub-audience", "group", "action", "customers", "rows", "shrink",
            "expansion", title="Deliveries (mapped, not sent)",
        )  # fmt: skip
        for d in plan.deliveries:
            table.add_row(
                escape(d.destination), escape(d.sub_audience or "(all)"),
                escape(d.group or "(all)"), d.action,
                *(f"{v:,}" for v in (d.customers, d.rows, d.shrink, d.expansion)),
            )  # fmt: skip
        out.out.print(table)
    else:
        out.say("No group of this campaign has a destination: nothing would be sent.")


@campaign_app.command("test")
def campaign_test(
    ctx: typer.Context,
    name: NameArg,
    sample: Annotated[int, typer.Option(help="How many customers to send.", min=1)] = 100,
    destination: Annotated[str | None, typer.Option(help="Send to this destination only.")] = None,
    as_of: AsOfOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Send a sample of the treatment groups now, recorded as a test run."""
    from activator.services.campaign import send_sample

    out = Output(json_mode=json_output)
    root: Path = ctx.obj.workspace
    try:
        moment = workspace_as_of(root, as_of)
        with out.bars() as update:
            run = send_sample(
                root,
                name,
                sample=sample,
                as_of=moment,
                destination=destination,
                progress=update,
                say=out.say,
            )
    except ActivatorError as exc:
        raise fail(out, exc) from None
    finish_run(out, run, json_output)


def _status_command(action: str, done: str) -> Any:
    def change(root: Path, name: str, what: str) -> str:
        from activator.services.campaign import set_campaign_status

        return set_campaign_status(root, name, what)

    return status_command(
        "campaign",
        action,
        done,
        {
            "pause": "Pause a campaign: it keeps its history and does not run until resumed.",
            "resume": "Resume a paused campaign: it runs on its schedule again.",
            "archive": "Archive a campaign: it no longer runs or shows as active.",
        }[action],
        change,
    )


campaign_app.command("pause")(_status_command("pause", "paused"))
campaign_app.command("resume")(_status_command("resume", "resumed"))
campaign_app.command("archive")(_status_command("archive", "archived"))


@campaign_app.command("results")
def campaign_results(
    ctx: typer.Context,
    name: NameArg,
    conversion: Annotated[
        str, typer.Option(help="Event table counting as a conversion (e.g. orders).")
    ],
    days: Annotated[int, typer.Option(help="Days after the send a conversion counts.", min=1)],
    as_of: AsOfOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Conversion and revenue per sub-audience and group, and lift against the control with
    95% confidence intervals."""
    from activator.services.campaign import campaign_results as results

    out = Output(json_mode=json_output)
    root: Path = ctx.obj.workspace
    try:
        moment = workspace_as_of(root, as_of)
        found = results(root, name, conversion=conversion, days=days, as_of=moment)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    if json_output:
        out.emit_json(found.to_json())
        return
    from activator.runtime.results import TABLE_COLUMNS

    out.say(
        f"Campaign [bold]{escape(name)}[/]: {escape(conversion)} within {days} days of the send, "
        f"as of {moment:%Y-%m-%d %H:%M}; * marks a lift whose "
        f"{found.confidence:.0%} interval excludes zero"
    )
    # Two tables rather than one of twelve columns, which no terminal shows whole.
    rows = found.table_rows()
    parts = {
        "Groups": ("recipients", "purchasers", "conv. rate", "revenue", "rev/recipient"),
        "Against the control": (
            "conv. lift", "conv. lift CI", "rev lift", "rev lift CI", "incremental revenue",
        ),
    }  # fmt: skip
    for title, columns in parts.items():
        picked = [TABLE_COLUMNS.index(c) for c in ("sub-audience", "group", *columns)]
        table = Table(*(TABLE_COLUMNS[i] for i in picked), title=title)
        for row in rows:
            if title == "Groups" or any(row[i] for i in picked[2:]):
                table.add_row(*(escape(row[i]) for i in picked))
        out.out.print(table)
