"""Destinations: configured connections that activations deliver to.

Each type has its own module (``files``, ``table``, ``webhook``); this one gathers them into
the discriminated union a destination file is read as. Credentials are references (an
environment variable or the encrypted secrets store), never values: a definition file can be
committed safely.
"""

from __future__ import annotations

__all__ = [
    "DestinationDefinition",
    "EngineTableDestination",
    "FileDestination",
    "PostgresDestination",
    "WebhookDestination",
]

from typing import Annotated

from pydantic import Field

from activator.definitions.files import FileDestination
from activator.definitions.table import EngineTableDestination, PostgresDestination
from activator.definitions.webhook import WebhookDestination

DestinationDefinition = Annotated[
    FileDestination | PostgresDestination | EngineTableDestination | WebhookDestination,
    Field(discriminator="type"),
]
