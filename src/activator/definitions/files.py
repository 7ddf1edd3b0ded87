"""File-drop destinations: local folders, S3, GCS, Azure Blob and SFTP."""

from __future__ import annotations

__all__ = ["FileDestination", "FileFormat"]

from typing import Literal

from pydantic import Field

from activator.definitions.base import Definition, Model
from activator.definitions.common import SecretRef


class FileFormat(Model):
    """How rows are written to files."""

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
