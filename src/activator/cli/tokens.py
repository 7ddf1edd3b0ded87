"""``activator token``: create, list and revoke the tokens the API accepts."""

from __future__ import annotations

__all__ = ["token_app"]

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from activator.cli.common import JsonOpt, fail
from activator.cli.output import Output
from activator.errors import ActivatorError
from activator.store.access import ROLES, TokenRecord
from activator.store.store import MetadataStore

token_app = typer.Typer(
    name="token",
    help="Create, list and revoke API tokens (viewer, editor or admin).",
    no_args_is_help=True,
)

_ACTOR = "cli"


@contextmanager
def _store(root: Path) -> Iterator[MetadataStore]:
    from activator.services.workspace import open_store
    from activator.workspace.loader import load_workspace

    # Only activator.yaml matters: a definition file being edited must not block tokens.
    with open_store(load_workspace(root, definitions=False)) as store:
        yield store


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _record_json(record: TokenRecord) -> dict[str, Any]:
    return {
        "token_id": record.token_id,
        "name": record.name,
        "role": record.role,
        "created_at": _iso(record.created_at),
        "created_by": record.created_by,
        "last_used_at": _iso(record.last_used_at),
        "revoked_at": _iso(record.revoked_at),
    }


def _when(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help=f"One of {', '.join(ROLES)}.")],
    name: Annotated[
        str | None, typer.Option("--name", help="What it is for (default: token-<id>).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Create an API token and print it once: only its hash is kept."""
    out = Output(json_mode=json_output)
    try:
        with _store(ctx.obj.workspace) as store:
            # An empty name makes the store name the token after its id.
            record, plain = store.create_token(name=name or "", role=role, created_by=_ACTOR)
            store.audit(
                actor=_ACTOR,
                action="create",
                kind="token",
                name=record.name,
                detail={"token_id": record.token_id, "role": record.role},
            )
    except ActivatorError as exc:
        raise fail(out, exc) from None
    warning = "Store it now: the token is not shown again (only its hash is kept)."
    if json_output:
        out.emit_json(
            {
                "token_id": record.token_id,
                "name": record.name,
                "role": record.role,
                "token": plain,
                "created_at": _iso(record.created_at),
            }
        )
        out.say(f"[yellow]{warning}[/]")
        return
    out.say(f"Created {record.role} token [bold]{escape(record.name)}[/] (id {record.token_id}):")
    out.out.print(plain, markup=False, highlight=False)
    out.say(f"[yellow]{warning}[/]")


@token_app.command("list")
def token_list(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """List the API tokens, oldest first, revoked ones included (never their values)."""
    out = Output(json_mode=json_output)
    try:
        with _store(ctx.obj.workspace) as store:
            records = store.list_tokens()
    except ActivatorError as exc:
        raise fail(out, exc) from None
    if json_output:
        out.emit_json({"tokens": [_record_json(r) for r in records]})
        return
    if not records:
        out.say("No API tokens yet: create one with `activator token create --role viewer`.")
        return
    table = Table("id", "name", "role", "created", "created by", "last used", "revoked")
    for r in records:
        table.add_row(
            r.token_id,
            escape(r.name),
            r.role,
            _when(r.created_at),
            escape(r.created_by or "-"),
            _when(r.last_used_at),
            "[red]" + _when(r.revoked_at) + "[/]" if r.revoked_at else "-",
        )
    out.out.print(table)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token's id (see `activator token list`).")],
    json_output: JsonOpt = False,
) -> None:
    """Revoke an API token: it authenticates nothing from now on. Revoking twice is harmless."""
    out = Output(json_mode=json_output)
    try:
        with _store(ctx.obj.workspace) as store:
            before = {r.token_id: r for r in store.list_tokens()}.get(token_id)
            record = store.revoke_token(token_id)
            if before is not None and before.revoked_at is None:
                store.audit(
                    actor=_ACTOR,
                    action="revoke",
                    kind="token",
                    name=record.name,
                    detail={"token_id": record.token_id},
                )
    except ActivatorError as exc:
        raise fail(out, exc) from None
    if json_output:
        out.emit_json(_record_json(record))
        return
    out.say(
        f"Token [bold]{escape(record.name)}[/] ({record.token_id}) revoked at "
        f"{_when(record.revoked_at)}."
    )
