"""Destinations: configured connections that activations deliver to.

Credentials are references (an environment variable or the encrypted secrets store), never
values: a definition file can be committed safely.
"""

from __future__ import annotations

__all__ = [
    "DestinationDefinition",
    "FileDestination",
    "PostgresDestination",
    "WebhookDestination",
]

from typing import Annotated, Literal

from pydantic import Field, HttpUrl

from activator.definitions.base import Definition, Model
from activator.definitions.common import SecretRef


class FileFormat(Model):
    """How rows are written to files (filled in by the delivery work)."""

    type: Literal["parquet", "csv", "tsv", "psv", "delimited", "json", "ndjson"] = "csv"
    compression: Literal["none", "gzip", "zip", "tar", "tgz"] = "none"
    header: bool = True


class FileDestination(Definition):
    """A file drop: a local folder, S3, GCS, Azure Blob or SFTP."""

    kind: Literal["destination"] = "destination"
    type: Literal["local", "s3", "gcs", "azure", "sftp"]
    path: str
    """Folder (or bucket and prefix, e.g. ``s3://bucket/feeds``)."""

    filename: str = "{name}_{run_time:%Y%m%d%H%M%S}"
    """Filename template, without extension."""

    format: FileFormat = Field(default_factory=FileFormat)
    credentials: dict[str, SecretRef] = {}
    """Named credentials (e.g. ``access_key_id``, ``password``) as references."""


class PostgresDestination(Definition):
    """A PostgreSQL table."""

    kind: Literal["destination"] = "destination"
    type: Literal["postgres"]
    url: str
    """Connection URL without a password; give it in ``credentials.password``."""

    table: str
    mode: Literal["append", "replace", "upsert"] = "append"
    keys: list[str] = []
    """Columns identifying a row, for ``upsert``."""

    credentials: dict[str, SecretRef] = {}


class WebhookDestination(Definition):
    """An HTTP endpoint receiving signed JSON batches (Standard Webhooks)."""

    kind: Literal["destination"] = "destination"
    type: Literal["webhook"]
    url: HttpUrl
    credentials: dict[str, SecretRef] = {}
    """``signing_secret`` signs every request."""

    allow_private: bool = False
    """Allow private and loopback addresses (refused by default)."""


DestinationDefinition = Annotated[
    FileDestination | PostgresDestination | WebhookDestination,
    Field(discriminator="type"),
]
