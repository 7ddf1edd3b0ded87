"""Destination use cases: test a destination's connection for real."""

from __future__ import annotations

__all__ = ["enable_destination", "test_destination"]

import difflib
from pathlib import Path

from activator.definitions.table import EngineTableDestination
from activator.destinations.base import Check
from activator.destinations.registry import open_connector
from activator.destinations.secrets import SecretResolver
from activator.engines.registry import open_engine
from activator.errors import ActivatorError, ConfigError
from activator.runtime.engine_table import EngineTableConnector
from activator.services.workspace import open_store, validate_workspace
from activator.workspace.loader import load_workspace


def test_destination(root: Path, name: str) -> list[Check]:
    """Check a destination from the workspace's files: connect, write and delete a probe,
    check privileges, or send a signed probe, as its type requires.

    A credential that cannot be resolved is reported as a failed check, naming the reference
    (never a value).

    Raises:
        ConfigError: no destination by that name.
    """
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
            with open_engine(
                ws.config.engine,
                workspace_root=ws.root,
                dataplane_schema=ws.config.dataplane_schema,
            ) as engine:
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
