"""``activator scheduler``: run campaigns, journeys, orchestrations and groups when due."""

from __future__ import annotations

__all__ = ["scheduler_command"]

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Literal

import typer
from rich.markup import escape

from activator.cli.common import AsOfOpt, JsonOpt, fail, workspace_as_of
from activator.cli.output import Output
from activator.errors import ActivatorError


def scheduler_command(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="One tick, then exit (cron, CI, an orchestrator).")
    ] = False,
    as_of: AsOfOpt = None,
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval", help="Seconds between ticks (default: scheduler.interval_seconds)."
        ),
    ] = None,
    catch_up: Annotated[
        str | None,
        typer.Option(
            "--catch-up",
            help="latest | all | none: missed slots (default: scheduler.catch_up).",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Run everything that is due, then keep watching (until SIGTERM or Ctrl-C).

    SIGTERM (or Ctrl-C) stops after the batch in flight: the run goes back to the queue and
    the next scheduler resumes it through the ledger. `--once --as-of T` runs one tick as if
    it were T (backfills, tests).
    """
    from activator.services.scheduler import Scheduler, TickReport
    from activator.workspace.loader import load_workspace

    out = Output(json_mode=json_output)
    root: Path = ctx.obj.workspace
    if catch_up not in (None, "latest", "all", "none"):
        raise fail(out, ActivatorError(f"--catch-up {catch_up!r}: use latest, all or none"))
    policy: Literal["latest", "all", "none"] | None = catch_up  # type: ignore[assignment]
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        out.say(f"[yellow]{signal.Signals(signum).name}[/]: stopping after the batch in flight")
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    scheduler = Scheduler(root, stop=stop, catch_up=policy, say=out.say)

    def report(tick: TickReport) -> None:
        if json_output:
            out.emit_json(tick.to_json())
            return
        for kind, name, message in tick.errors:
            out.say(f"[red]{kind} {escape(name)}:[/] {escape(message)}")
        for kind, name, count in tick.skipped:
            out.say(f"{kind} {escape(name)}: {count} missed slot(s) passed over (catch-up)")

    try:
        if once:
            moment = workspace_as_of(root, as_of)
            report(scheduler.tick(moment))
        else:
            ws = load_workspace(root, definitions=False)
            every = interval or ws.config.scheduler.interval_seconds
            out.say(f"scheduler {scheduler.owner}: ticking every {every:g} s")
            scheduler.serve(interval=every, on_tick=report)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop.is_set():
        out.say("scheduler stopped")
