"""Destination use cases: test a destination's connection for real."""

from __future__ import annotations

__all__ = [
    "connector_for",
    "destination_definition",
    "enable_destination",
    "test_destination",
]

import difflib
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from activator.definitions import DestinationDefinition
from activator.definitions.table import EngineTableDestination
from activator.destinations.base import Check, Connector
from activator.destinations.registry import open_connector
from activator.destinations.secrets import SecretResolver
from activator.engines.base import Engine
from activator.errors import ActivatorError, ConfigError
from activator.runtime.engine_table import EngineTableConnector
from activator.services.workspace import open_store, validate_workspace, workspace_engine
from activator.store import MetadataStore
from activator.workspace.loader import Workspace, load_workspace

_DESTINATION = TypeAdapter(DestinationDefinition)


def test_destination(root: Path, name: str, *, definition: Any) -> list[Check]:
    """Check a destination from the workspace's files (or ``definition``, the stored one the
    API passes): connect, write and delete a probe, check privileges, or send a signed probe,
    as its type requires.

    A credential that cannot be resolved is reported as a failed check, naming the reference
    (never a value).

    Raises:
        ConfigError: no destination by that name.
    """
    if definition is not None:
        ws = load_workspace(root, definitions=False)
    else:
        ws = validate_workspace(root, check_engine=False).workspace
        found = {d.name: d for d in ws.of_kind("destination")}
        if name not in found:
            close = difflib.get_close_matches(name, found, n=1)
            raise ConfigError(
                f"unknown destination {name!r}",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"known destinations: {', '.join(sorted(found)) or 'none'}",
            )
        definition = found[name].model
    try:
        if isinstance(definition, EngineTableDestination):
            with workspace_engine(ws) as engine:
                return EngineTableConnector(definition, engine).check()
        return open_connector(definition, SecretResolver(ws.root), ws.root).check()
    except ActivatorError as exc:
        return [Check(step="configure", ok=False, detail=str(exc))]


def enable_destination(root: Path, name: str) -> None:
    """Enable a destination again after it was disabled (a webhook's 410 Gone).

    Raises:
        StoreError: no applied destination by that name.
    """
    with open_store(load_workspace(root)) as store:
        store.set_status("destination", name, "active")


def connector_for(definition: Any, ws: Workspace, engine: Engine) -> Connector:
    """The destination's connector; a table in the engine writes through the run's engine."""
    if isinstance(definition, EngineTableDestination):
        return EngineTableConnector(definition, engine)
    return open_connector(definition, SecretResolver(ws.root), ws.root)


def destination_definition(store: MetadataStore, name: str) -> Any:
    stored = store.get("destination", name)
    if stored is None:
        raise ConfigError(
            f"destination {name!r} is not applied", hint="run `activator apply` first"
        )
    if stored.status == "disabled":
        raise ConfigError(
            f"destination {name!r} is disabled: it answered 410 Gone to an earlier delivery",
            hint=f"once the receiver accepts deliveries again: `activator destination enable "
            f"{name}` (or change its definition and apply)",
        )
    try:
        return _DESTINATION.validate_python(stored.spec)
    except ValidationError as exc:
        # Only the messages: pydantic's own text repeats the input, which may hold a secret.
        reasons = "; ".join(str(e["msg"]) for e in exc.errors(include_url=False))
        raise ConfigError(
            f"destination {name!r} (v{stored.version}) no longer validates: {reasons}",
            hint="fix the destination's file and run `activator apply`",
        ) from None
