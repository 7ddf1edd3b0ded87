"""``activator destination`` and ``activator secrets``: test connections, keep credentials."""

from __future__ import annotations

__all__ = ["destination_app", "secrets_app"]

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from activator.cli.common import JsonOpt, fail
from activator.cli.output import Output
from activator.errors import ActivatorError

destination_app = typer.Typer(
    name="destination",
    help="Test destinations' connections; enable a disabled one.",
    no_args_is_help=True,
)
secrets_app = typer.Typer(
    name="secrets",
    help="The workspace's encrypted secrets store (values never printed).",
    no_args_is_help=True,
)

SecretArg = Annotated[str, typer.Argument(help="The secret's name.")]


@destination_app.command("test")
def destination_test(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The destination's name.")],
    json_output: JsonOpt = False,
) -> None:
    """Test a destination for real: connect, write and delete a probe, check privileges, or
    send a signed probe. Exits 1 when a step fails, naming it."""
    from activator.services.destination import test_destination

    out = Output(json_mode=json_output)
    try:
        with out.progress(f"testing {name}"):
            checks = test_destination(ctx.obj.workspace, name, definition=None)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    ok = all(c.ok for c in checks)
    if json_output:
        out.emit_json(
            {
                "destination": name,
                "ok": ok,
                "checks": [{"step": c.step, "ok": c.ok, "detail": c.detail} for c in checks],
            }
        )
    else:
        for c in checks:
            mark = "[green]ok[/]" if c.ok else "[red]FAILED[/]"
            detail = f": {escape(c.detail)}" if c.detail else ""
            out.say(f"{mark} {escape(c.step)}{detail}")
        out.say(f"Destination [bold]{escape(name)}[/] " + ("works." if ok else "does not work."))
    if not ok:
        raise typer.Exit(1)


@destination_app.command("enable")
def destination_enable(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The destination's name.")]
) -> None:
    """Enable a destination that was disabled because it answered 410 Gone."""
    from activator.services.destination import enable_destination

    out = Output(json_mode=False)
    try:
        enable_destination(ctx.obj.workspace, name)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    out.say(f"destination [bold]{escape(name)}[/] enabled")


@secrets_app.command("key")
def secrets_key() -> None:
    """Print a new key for the secrets store (keep it in ACTIVATOR_SECRETS_KEY)."""
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())


@secrets_app.command("set")
def secrets_set(ctx: typer.Context, name: SecretArg) -> None:
    """Store a secret, read from standard input (never from the command line, which would
    leave it in the shell history)."""
    from activator.destinations.secrets import SecretsStore

    out = Output(json_mode=False)
    if sys.stdin.isatty():
        value = typer.prompt(f"value of {name}", hide_input=True)
    else:
        value = sys.stdin.read().rstrip("\n")
    if not value:
        out.error("empty value: nothing stored")
        raise typer.Exit(2)
    try:
        SecretsStore(Path(ctx.obj.workspace)).set(name, value)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    out.say(f"stored secret [bold]{escape(name)}[/]")


@secrets_app.command("list")
def secrets_list(ctx: typer.Context, json_output: JsonOpt = False) -> None:
    """The names of the stored secrets (never their values)."""
    from activator.destinations.secrets import SecretsStore

    out = Output(json_mode=json_output)
    try:
        names = SecretsStore(Path(ctx.obj.workspace)).names()
    except ActivatorError as exc:
        raise fail(out, exc) from None
    if json_output:
        out.emit_json({"secrets": names})
    else:
        for name in names:
            out.say(name)


@secrets_app.command("delete")
def secrets_delete(ctx: typer.Context, name: SecretArg) -> None:
    """Remove a secret."""
    from activator.destinations.secrets import SecretsStore

    out = Output(json_mode=False)
    try:
        removed = SecretsStore(Path(ctx.obj.workspace)).delete(name)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    if not removed:
        out.error(f"no secret named {escape(name)}")
        raise typer.Exit(2)
    out.say(f"deleted secret [bold]{escape(name)}[/]")
