"""What every request shares: the workspace, the metadata store, the caller and its role.

The server opens the metadata store once (a connection pool) and keeps it for its life; each
request reads ``Authorization: Bearer <token>``, looks the token's hash up in the store and
gets a :class:`Principal`. Viewers read; editors also define and run; admins also manage
destinations, credentials (secrets) and tokens.
"""

from __future__ import annotations

__all__ = [
    "ROLE_RANK",
    "ApiState",
    "Principal",
    "TokenCache",
    "principal",
    "requires",
    "state",
]

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from activator.api.activations import ActivationsView
from activator.api.errors import ApiError
from activator.api.worker import Worker
from activator.definitions import WorkspaceConfig
from activator.store import MetadataStore
from activator.store.access import TokenRecord, token_hash

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
    activations: ActivationsView
    tokens: TokenCache = field(default_factory=lambda: TokenCache())


class TokenCache:
    """Tokens recently found valid, by the hash of their value, for ``TTL`` seconds: most
    requests then need no look-up in the store. A token revoked through this server is
    forgotten at once; one revoked elsewhere (``activator token revoke``) stops working
    within ``TTL``."""

    TTL = 10.0

    def __init__(self) -> None:
        self._known: dict[str, tuple[float, TokenRecord]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> TokenRecord | None:
        with self._lock:
            found = self._known.get(digest)
        if found is None or time.monotonic() - found[0] > self.TTL:
            return None
        return found[1]

    def keep(self, digest: str, record: TokenRecord) -> None:
        with self._lock:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[digest] = (time.monotonic(), record)

    def forget(self, token_id: str) -> None:
        with self._lock:
            self._known = {k: v for k, v in self._known.items() if v[1].token_id != token_id}


def server_state(request: Request) -> ApiState:
    """The server's state."""
    found: ApiState = request.app.state.activator
    return found


async def state(request: Request) -> ApiState:
    """The server's state, as a dependency (async: answered without a thread)."""
    return server_state(request)


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


async def principal(
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
    current = server_state(request)
    digest = token_hash(credentials.credentials)
    record = current.tokens.get(digest)
    if record is None:
        record = await run_in_threadpool(current.store.authenticate, credentials.credentials)
        if record is not None:
            current.tokens.keep(digest, record)
    if record is None:
        raise ApiError(
            401,
            "unauthenticated",
            "the API token is unknown or revoked",
            headers=challenge,
        )
    return Principal(token_id=record.token_id, name=record.name, role=record.role)


def requires(role: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting callers with ``role`` or a higher one; 403 for the others."""

    async def check(caller: Annotated[Principal, Depends(principal)]) -> Principal:
        if ROLE_RANK[caller.role] < ROLE_RANK[role]:
            raise ApiError(
                403,
                "forbidden",
                f"this needs the {role} role; token {caller.name!r} has the {caller.role} role",
            )
        return caller

    return check


Viewer = Annotated[Principal, Depends(requires("viewer"))]
Editor = Annotated[Principal, Depends(requires("editor"))]
Admin = Annotated[Principal, Depends(requires("admin"))]
State = Annotated[ApiState, Depends(state)]
