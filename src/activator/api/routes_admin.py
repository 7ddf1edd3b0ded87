"""Tokens, the audit log and credentials (secrets): admins only. Token values and secret
values go in and never come out."""

# No `from __future__ import annotations`: FastAPI reads the models from the signatures.

__all__ = ["admin_router"]

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from activator.api.context import Admin, State
from activator.api.errors import not_found
from activator.api.routes_definitions import ERRORS
from activator.api.schemas import AuditOut, TokenCreated, TokenOut
from activator.destinations.secrets import SecretsStore

admin_router = APIRouter(prefix="/api", tags=["admin"], responses=ERRORS)


class TokenRequest(BaseModel):
    """A token to create."""

    role: Literal["viewer", "editor", "admin"]
    name: str | None = Field(default=None, max_length=128, examples=["airflow"])
    """Shown in listings and the audit log; default ``token-<id>``."""


class SecretValue(BaseModel):
    """A credential's value: stored encrypted, never returned."""

    value: str = Field(min_length=1, examples=["s3cr3t"])


class SecretNames(BaseModel):
    """The names of the secrets in the workspace's secrets store (never their values)."""

    names: list[str]


@admin_router.post(
    "/tokens", operation_id="create_token", summary="Create an API token", status_code=201
)
def create_token(st: State, caller: Admin, body: TokenRequest) -> TokenCreated:
    record, token = st.store.create_token(
        name=body.name or "", role=body.role, created_by=caller.actor
    )
    st.store.audit(actor=caller.actor, action="create", kind="token", name=record.name,
                   detail={"token_id": record.token_id, "role": record.role})  # fmt: skip
    return TokenCreated(**TokenOut.of(record).model_dump(), token=token)


@admin_router.get("/tokens", operation_id="list_tokens", summary="API tokens (no values)")
def list_tokens(st: State, _caller: Admin) -> list[TokenOut]:
    return [TokenOut.of(t) for t in st.store.list_tokens()]


@admin_router.delete("/tokens/{token_id}", operation_id="revoke_token", summary="Revoke a token")
def revoke_token(st: State, caller: Admin, token_id: str) -> TokenOut:
    if token_id not in {t.token_id for t in st.store.list_tokens()}:
        raise not_found(f"token {token_id}")
    record = st.store.revoke_token(token_id)
    st.tokens.forget(token_id)
    st.store.audit(actor=caller.actor, action="revoke", kind="token", name=record.name,
                   detail={"token_id": token_id})  # fmt: skip
    return TokenOut.of(record)


@admin_router.get("/audit", operation_id="list_audit", summary="The audit log, newest first")
def list_audit(
    st: State,
    _caller: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=0, le=2**31 - 1, description="Entries older than this entry_id.")
    ] = None,
    kind: str | None = None,
    name: str | None = None,
    actor: str | None = None,
) -> list[AuditOut]:
    entries = st.store.audit_log(limit=limit, before=before, kind=kind, name=name, actor=actor)
    return [AuditOut.of(e) for e in entries]


@admin_router.get("/secrets", operation_id="list_secrets", summary="Secret names")
def list_secrets(st: State, _caller: Admin) -> SecretNames:
    return SecretNames(names=SecretsStore(st.root).names())


@admin_router.put(
    "/secrets/{name}",
    operation_id="set_secret",
    summary="Set a credential (referenced as {secret: NAME})",
    status_code=204,
)
def set_secret(st: State, caller: Admin, name: str, body: SecretValue) -> None:
    SecretsStore(st.root).set(name, body.value)
    st.store.audit(actor=caller.actor, action="set", kind="secret", name=name)


@admin_router.delete("/secrets/{name}", operation_id="delete_secret", status_code=204)
def delete_secret(st: State, caller: Admin, name: str) -> None:
    if not SecretsStore(st.root).delete(name):
        raise not_found(f"secret {name!r}")
    st.store.audit(actor=caller.actor, action="delete", kind="secret", name=name)
