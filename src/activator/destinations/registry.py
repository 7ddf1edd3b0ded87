"""Destination type → connector class, imported only when a destination of that type is used.

Every connector is constructed the same way: ``Connector(definition, secrets, workspace_root)``.
"""

from __future__ import annotations

__all__ = ["CONNECTORS", "open_connector"]

import importlib
from pathlib import Path
from typing import Any

from activator.destinations.base import Connector
from activator.destinations.secrets import SecretResolver

CONNECTORS: dict[str, str] = {
    "local": "activator.destinations.files:FileConnector",
    "s3": "activator.destinations.files:FileConnector",
    "gcs": "activator.destinations.files:FileConnector",
    "azure": "activator.destinations.files:FileConnector",
    "sftp": "activator.destinations.files:FileConnector",
    "postgres": "activator.destinations.postgres:PostgresConnector",
    "webhook": "activator.destinations.webhook:WebhookConnector",
}
"""Where each destination type's connector lives (``module:Class``)."""


def open_connector(definition: Any, secrets: SecretResolver, workspace_root: Path) -> Connector:
    """The connector for a destination definition.

    Args:
        definition: A destination definition (one of ``DestinationDefinition``).
        secrets: Resolves the definition's credential references.
        workspace_root: The workspace folder (local paths are relative to it).
    """
    module_name, _, class_name = CONNECTORS[definition.type].partition(":")
    connector_class = getattr(importlib.import_module(module_name), class_name)
    connector: Connector = connector_class(definition, secrets, workspace_root)
    return connector
