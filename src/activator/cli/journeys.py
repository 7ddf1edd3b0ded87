"""``activator journey``: show a journey's graph with its counters, simulate it over past days,
pause, resume or end it, and read its travel log."""

from __future__ import annotations

__all__ = ["journey_app"]

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.tree import Tree

from activator.cli.common import JsonOpt, fail, status_command, workspace_as_of
from activator.cli.output import Output
from activator.errors import ActivatorError

journey_app = typer.Typer(
    name="journey",
    help="Show, simulate, pause, resume or end a journey; read its travel log.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The journey's name.")]


@journey_app.command("show")
def show(
    ctx: typer.Context,
    name: NameArg,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="End of the milestones' 7/30/90-day windows (date or ISO timestamp; default: "
            "now). The node counters are those of the travel log as it is.",
        ),
    ] = None,
    goal: Annotated[
        str | None,
        typer.Option(help="Goal segment the percent splits are compared on (default: first)."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """The journey as a tree of nodes, each with travellers in total, in the latest run and
    waiting now; then its milestones and its percent splits against their control."""
    from activator.services.journey import journey_overview

    out = Output(json_mode=json_output)
    root: Path = ctx.obj.workspace
    try:
        moment = workspace_as_of(root, as_of)
        overview = journey_overview(root, name, as_of=moment, goal=goal)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    doc = overview.to_json()
    if json_output:
        out.emit_json(doc)
        return
    last = overview.last_run
    tree = Tree(
        f"[bold]{escape(name)}[/] v{overview.version} · {overview.status.capitalize()} · "
        + (f"latest run {last.run_id} as of {last.as_of:%Y-%m-%d %H:%M}" if last else "never run")
    )
    nodes = {n["id"]: n for n in doc["nodes"]}
    shown: set[str] = set()

    def add(branch: Tree, node_id: str, path: str) -> None:
        node = nodes[node_id]
        prefix = f"[italic]{escape(path)}[/] → " if path else ""
        label = f"{prefix}[bold]{escape(node['name'])}[/] ({node['type'].replace('_', ' ')})"
        if node_id in shown:
            branch.add(f"{label} [dim]see above[/]")
            return
        shown.add(node_id)
        child = branch.add(
            f"{label}  total {node['total']:,} · latest run {node['run']:,} · "
            f"waiting {node['waiting']:,}"
        )
        for edge in node["next"]:
            if edge["node"] is None:
                if node["type"] != "exit":
                    child.add(f"[italic]{escape(edge['path'] or 'then')}[/] → [dim]leaves[/]")
                continue
            add(child, edge["node"], edge["path"])

    add(tree, doc["first"], "")
    out.out.print(tree)
    if overview.milestones:
        table = Table(
            "milestone", "name", "all time", "7 days", "30 days", "90 days", "median days",
            title=f"Milestones as of {moment:%Y-%m-%d}",
        )  # fmt: skip
        for m in overview.milestones:
            median = "" if m["median_days"] is None else f"{m['median_days']:.1f}"
            table.add_row(
                m["kind"], escape(m["name"]), f"{m['all_time']:,}", f"{m['last_7_days']:,}",
                f"{m['last_30_days']:,}", f"{m['last_90_days']:,}", median,
            )  # fmt: skip
        out.out.print(table)
    for split in overview.splits:
        table = Table(
            "path", "travellers", "reached goal", "rate", "lift vs control", "95% CI",
            title=f"Percent split {split['node']} on goal {split['goal']}",
        )  # fmt: skip
        for p in split["paths"]:
            lift = p.get("lift")
            relative = lift.get("relative") if lift else None
            span = lift.get("relative_interval") if lift else None
            table.add_row(
                escape(p["path"]) + (" (control)" if p["control"] else ""),
                f"{p['travellers']:,}",
                f"{p['converted']:,}",
                "" if p["rate"] is None else f"{p['rate']:.2%}",
                "" if relative is None else f"{relative:+.1%}",
                "" if not span else f"{span['low']:+.1%} to {span['high']:+.1%}",
            )
        out.out.print(table)


@journey_app.command("simulate")
def simulate(
    ctx: typer.Context,
    name: NameArg,
    start: Annotated[str, typer.Option(help="First simulated time (date or ISO timestamp).")],
    days: Annotated[int, typer.Option(help="Days to simulate.", min=1)],
    every: Annotated[str, typer.Option(help="Time between simulated runs: 1d, 12h, 1w.")] = "1d",
    json_output: JsonOpt = False,
) -> None:
    """Run the journey as of each simulated time against the data, from no travellers,
    recording sends without delivering them; print each run's counts per node."""
    from activator.services.journey import parse_every, simulate_journey

    out = Output(json_mode=json_output)
    root: Path = ctx.obj.workspace
    try:
        first = workspace_as_of(root, start)
        step = parse_every(every)
        with Progress(
            TextColumn("simulating"), BarColumn(), MofNCompleteColumn(),
            console=out.err, transient=True, disable=json_output,
        ) as bar:  # fmt: skip
            task = bar.add_task("runs", total=None)
            found = simulate_journey(
                root,
                name,
                start=first,
                days=days,
                every=step,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except ActivatorError as exc:
        raise fail(out, exc) from None
    doc = found.to_json()
    if json_output:
        out.emit_json(doc)
        return
    # One row per run; per-node figures would make a table wider than any terminal, so the
    # row names the nodes where travellers wait (entered/left per node are in --json).
    table = Table("as of", "entered", "sent", "exited", "goals", "waiting now, by node")
    for run in found.runs:
        waiting = " · ".join(
            f"{escape(node)} {counts['waiting']:,}"
            for node, counts in run["nodes"].items()
            if counts["waiting"]
        )
        table.add_row(
            run["as_of"][:16].replace("T", " "), f"{run['entered']:,}", f"{run['sends']:,}",
            f"{run['exited']:,}", f"{run['goals']:,}", waiting or "-",
        )  # fmt: skip
    out.say(
        f"Journey [bold]{escape(name)}[/] simulated: {len(found.runs)} runs from "
        f"{first:%Y-%m-%d %H:%M}, starting with no travellers; nothing was sent"
    )
    out.out.print(table)


def _status_command(action: str, done: str) -> Any:
    def change(root: Path, name: str, what: str) -> str:
        from activator.services.journey import set_journey_status

        return set_journey_status(root, name, what)

    return status_command(
        "journey",
        action,
        done,
        {
            "pause": "Pause a journey: no runs; travellers stay where they are until resumed.",
            "resume": "Resume a paused journey: it runs on its schedule again.",
            "end": "End a journey: no one enters and no one moves any more.",
        }[action],
        change,
    )


journey_app.command("pause")(_status_command("pause", "paused"))
journey_app.command("resume")(_status_command("resume", "resumed"))
journey_app.command("end")(_status_command("end", "ended"))


@journey_app.command("log")
def log(
    ctx: typer.Context,
    name: NameArg,
    customer: Annotated[str | None, typer.Option(help="Only this customer's rows.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows, newest first.", min=1)] = 50,
    json_output: JsonOpt = False,
) -> None:
    """The travel log: every start, complete, exit, goal and orphan, newest first."""
    from activator.services.journey import journey_log

    out = Output(json_mode=json_output)
    try:
        rows = journey_log(ctx.obj.workspace, name, customer=customer, limit=limit)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    if json_output:
        out.emit_json({"journey": name, "rows": rows})
        return
    table = Table("time", "customer", "entry", "stage", "node", "from", "path", "control", "run")
    for r in rows:
        table.add_row(
            str(r["entered_at"])[:16].replace("T", " "),
            escape(str(r["traveller"])), str(r["entry"]),
            r["stage"], escape(r["node"] or ""), escape(r["parent"] or ""),
            escape(r["path"] or ""), "yes" if r["control"] else "", r["run_id"],
        )  # fmt: skip
    out.out.print(table)
