"""``activator serve``: the REST API (and, by default, the scheduler) in one process."""

from __future__ import annotations

__all__ = ["serve_command"]

import logging
from pathlib import Path
from typing import Annotated

import typer

from activator.cli.common import fail
from activator.cli.output import Output
from activator.errors import ActivatorError


def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler/--no-scheduler",
            help="Tick the scheduler in this process (default). Without it, run "
            "`activator scheduler` elsewhere (PostgreSQL store and a server engine).",
        ),
    ] = True,
    interval: Annotated[
        float | None,
        typer.Option(help="Seconds between ticks (default: scheduler.interval_seconds)."),
    ] = None,
) -> None:
    """Serve the REST API on HOST:PORT (docs at /docs, OpenAPI at /openapi.json).

    The server owns the workspace's engine: it executes the runs launched through the API
    and, unless --no-scheduler, everything the scheduler finds due. SIGTERM or Ctrl-C stops it
    after the unit in flight; an interrupted run is resumed by the next scheduler.
    """
    import uvicorn

    from activator.api import create_app
    from activator.workspace.loader import load_workspace

    out = Output(json_mode=False)
    root: Path = ctx.obj.workspace
    try:
        load_workspace(root, definitions=False)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    # Each scheduler tick opens the store: Alembic's "Context impl" lines would fill the log.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(root, scheduler=scheduler, interval=interval)
    out.say(
        f"serving {root} on http://{host}:{port}"
        + (" with the scheduler" if scheduler else " (no scheduler)")
    )
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
