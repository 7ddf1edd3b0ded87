"""What every request shares: the workspace, the metadata store, the caller and its role.

The server opens the metadata store once (a connection pool) and keeps it for its life; each
request reads ``Authorization: Bearer <token>``, looks the token's hash up in the store and
gets a :class:`Principal`. Viewers read; editors also define and run; admins also manage
destinations, credentials (secrets) and tokens.
"""

from __future__ import annotations

__all__ = ["ROLE_RANK", "ApiState", "Principal", "principal", "requires", "state"]

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from activator.api.errors import ApiError
from activator.api.worker import Worker
from activator.definitions import WorkspaceConfig
from activator.services.workspace import ActivationStatus, UpcomingCache
from activator.store import MetadataStore

ROLE_RANK = {"viewer": 0, "editor": 1, "admin": 2}
"""Each role can do what the roles before it can."""


@dataclass
class ApiState:
    """The server's shared state (``app.state.activator``)."""

    root: Path
    config: WorkspaceConfig
    store: MetadataStore
    worker: Worker
    clock: Callable[[], datetime]
    upcoming: UpcomingCache = field(default_factory=dict)
    """Next runs already computed (see ``activation_list``)."""

    activations: tuple[float, list[ActivationStatus]] | None = None
    """The Activations list as last computed (monotonic time, rows); see ``routes``."""

    lock: threading.Lock = field(default_factory=threading.Lock)


def state(request: Request) -> ApiState:
    """The server's state."""
    found: ApiState = request.app.state.activator
    return found


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's name and role."""

    token_id: str
    name: str
    role: str

    @property
    def actor(self) -> str:
        """How the audit log names the caller."""
        return f"token:{self.name}"


_bearer = HTTPBearer(auto_error=False, description="An API token: `activator token create`.")


def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from its bearer token; 401 without a valid one."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(
            401,
            "unauthenticated",
            "this request needs an API token: Authorization: Bearer <token>",
            hint="create one with `activator token create --role viewer`",
            headers=challenge,
        )
    record = state(request).store.authenticate(credentials.credentials)
    if record is None:
        raise ApiError(
            401,
            "unauthenticated",
            "the API token is unknown or revoked",
            headers=challenge,
        )
    return Principal(token_id=record.token_id, name=record.name, role=record.role)


def requires(role: str) -> Callable[[Principal], Principal]:
    """A dependency admitting callers with ``role`` or a higher one; 403 for the others."""

    def check(caller: Annotated[Principal, Depends(principal)]) -> Principal:
        if ROLE_RANK[caller.role] < ROLE_RANK[role]:
            raise ApiError(
                403,
                "forbidden",
                f"this needs the {role} role; token {caller.name!r} is a {caller.role}",
            )
        return caller

    return check


Viewer = Annotated[Principal, Depends(requires("viewer"))]
Editor = Annotated[Principal, Depends(requires("editor"))]
Admin = Annotated[Principal, Depends(requires("admin"))]
State = Annotated[ApiState, Depends(state)]
