"""The FastAPI application: ``create_app(root)`` and its life cycle.

On start-up the server reads ``activator.yaml``, opens the metadata store (once: a connection
pool for every request) and starts its worker thread, which executes the runs launched through
the API and, unless told not to, ticks the scheduler. On shutdown the worker stops after the
unit in flight (the run goes back to the queue) and the store is closed.
"""

from __future__ import annotations

__all__ = ["create_app"]

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from activator import __version__
from activator.api.activations import ActivationsView
from activator.api.context import ApiState
from activator.api.errors import install_error_handlers
from activator.api.routes_admin import admin_router
from activator.api.routes_definitions import definition_router
from activator.api.routes_engine import engine_router
from activator.api.routes_runs import activations_router, runs_router
from activator.api.worker import Worker
from activator.clock import wall_clock
from activator.definitions import (
    CampaignDefinition,
    DestinationDefinition,
    JourneyDefinition,
    OrchestrationDefinition,
    OrchestrationGroupDefinition,
    SegmentDefinition,
)
from activator.services.workspace import open_store
from activator.workspace.loader import load_workspace

DEFINITION_ROUTES = (
    ("segment", "segments", SegmentDefinition, "editor"),
    ("destination", "destinations", DestinationDefinition, "admin"),
    ("campaign", "campaigns", CampaignDefinition, "editor"),
    ("journey", "journeys", JourneyDefinition, "editor"),
    ("orchestration", "orchestrations", OrchestrationDefinition, "editor"),
    ("group", "groups", OrchestrationGroupDefinition, "editor"),
)
"""(kind, URL segment, model, role needed to change one). Destinations hold credentials'
references: only admins change them."""

DESCRIPTION = """\
Every definition, run and status of an Activator workspace over HTTP, with the same services
as the `activator` CLI.

Authenticate with `Authorization: Bearer <token>` (`activator token create --role ROLE`).
Viewers read; editors also define and run; admins also manage destinations, secrets and
tokens. Every error has one shape: `{"error": {"type", "message", "field", "hint", "errors"}}`.
Definitions carry versions: send the version you edited in `If-Match`; an edit made on an
older version is refused with 409.
"""


class FreshAfterWrites:
    """Drop the server's Activations list when a request that may change something answers
    (before its answer starts, so a client reading the list next sees the change). A plain
    ASGI middleware: Starlette's ``BaseHTTPMiddleware`` costs every request a task group."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return

        async def drop_then_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                current: ApiState | None = getattr(scope["app"].state, "activator", None)
                if current is not None:
                    current.activations.drop()
            await send(message)

        await self.app(scope, receive, drop_then_send)


class Health(BaseModel):
    """The server is up."""

    status: str
    version: str
    scheduler: bool


def create_app(
    root: Path,
    *,
    scheduler: bool = True,
    interval: float | None = None,
    clock: Callable[[], datetime] = wall_clock,
) -> FastAPI:
    """The API of the workspace at ``root``.

    Args:
        root: the workspace folder (its ``activator.yaml`` names the engine and the store).
        scheduler: tick the scheduler in this process (the default; it owns the embedded
            engine then). Without it, run ``activator scheduler`` elsewhere.
        interval: seconds between ticks (default: ``scheduler.interval_seconds``).
        clock: the server's clock (default: the wall clock).
    """
    root = root.resolve()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ws = load_workspace(root, definitions=False)
        store = open_store(ws)
        every = interval or ws.config.scheduler.interval_seconds
        worker = Worker(root, scheduler=scheduler, interval=every)
        app.state.activator = ApiState(
            root=root,
            config=ws.config,
            store=store,
            worker=worker,
            clock=clock,
            activations=ActivationsView(store, timezone=ws.config.timezone, clock=clock),
        )
        worker.start()
        try:
            yield
        finally:
            worker.close()
            store.close()

    app = FastAPI(
        title="Activator API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "activations", "description": "The Activations list."},
            {"name": "runs", "description": "Runs: history, control and live events."},
            {"name": "admin", "description": "Tokens, the audit log and secrets (admins)."},
        ],
    )
    install_error_handlers(app)

    app.add_middleware(FreshAfterWrites)

    @app.get("/api/health", operation_id="health", tags=["activations"])
    async def health(request: Request) -> Health:
        current: ApiState = request.app.state.activator
        return Health(
            status="ok", version=__version__, scheduler=current.worker.scheduler is not None
        )

    app.include_router(activations_router)
    app.include_router(runs_router)
    for kind, plural, model, role in DEFINITION_ROUTES:
        app.include_router(definition_router(kind, plural, model, role))
    app.include_router(engine_router)
    app.include_router(admin_router)
    return app
