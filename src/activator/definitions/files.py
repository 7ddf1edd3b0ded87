"""File-drop destinations: local folders, S3, GCS, Azure Blob and SFTP.

A file destination writes the rows of a delivery as one file, or as parts split by rows or by
size, in a folder. Names come from a template (``filename``), rendered with the run's time in a
time zone and the names of the campaign, group or node delivered. A manifest and a ``.DONE``
marker are written last, so a reader that waits for ``.DONE`` sees every part complete.
"""

from __future__ import annotations

__all__ = [
    "TEMPLATE_FIELDS",
    "FileDestination",
    "FileFormat",
    "FileSplit",
    "PgpConfig",
    "parse_size",
    "template_fields",
]

import re
import string
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from activator.definitions.base import Definition, Model, TimeZone
from activator.definitions.common import SecretRef

TEMPLATE_FIELDS: dict[str, str] = {
    "run_time": "the run's as-of time in `timezone` (a strftime format: {run_time:%Y%m%d})",
    "next_day": "the day after the run time ({next_day:%Y-%m-%d})",
    "name": "the destination's name",
    "activation": "the campaign, journey or orchestration delivered",
    "campaign": "the campaign's name",
    "sub_audience": "the sub-audience's name",
    "group": "the group's name (treatment groups)",
    "journey": "the journey's name",
    "node": "the journey node's name",
    "action": "'added' or 'removed' (a mirror campaign's separate files)",
    "orchestration": "the orchestration's name",
    "run_id": "the run's id",
    "part": "the part number, 1-based, zero-padded to 5 digits ({part:03d} for 3)",
}
"""The fields a ``filename`` template may use, with what each one is."""

_DATE_FIELDS = frozenset({"run_time", "next_day"})

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_size(value: str | int) -> int:
    """Bytes in a size such as ``100MB`` (10^6), ``64MiB`` (2^20) or a plain integer.

    Raises:
        ValueError: not a size.
    """
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a size; write e.g. 100MB, 64MiB or 500000 (bytes)")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "b").lower()])


def template_fields(template: str) -> list[tuple[str, str]]:
    """The ``(field, format spec)`` pairs of a filename template, in order.

    Raises:
        ValueError: the template is malformed, uses an unknown field, attribute or index access,
            or a conversion (``!r``).
    """
    allowed = ", ".join(TEMPLATE_FIELDS)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(
            f"filename {template!r} is not a valid template ({exc}); write fields as "
            "{field} or {field:format} and double literal braces ({{ and }})"
        ) from None
    fields: list[tuple[str, str]] = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise ValueError(
                f"filename {template!r}: positional field {{{name}}}; name the field, one of: "
                f"{allowed}"
            )
        if name not in TEMPLATE_FIELDS:
            raise ValueError(
                f"filename {template!r}: unknown field {{{name}}}; the fields are: {allowed}"
            )
        if conversion is not None:
            raise ValueError(f"filename {template!r}: drop the conversion !{conversion}")
        if spec and "{" in spec:
            raise ValueError(f"filename {template!r}: nested fields in a format are not allowed")
        fields.append((name, spec or ""))
    return fields


def check_relative_name(name: str, *, what: str) -> None:
    """Refuse a file name that would leave the destination's folder or hide in it.

    Raises:
        ValueError: absolute, with ``..``, ``.`` or empty segments, a backslash, a control
            character, or a segment starting with ``.`` (dot-names are temporary files).
    """
    problem = None
    if not name:
        problem = "is empty"
    elif "\\" in name:
        problem = "contains a backslash; use / between folders"
    elif name.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", name):
        problem = "is absolute; give a name relative to the destination's path"
    elif any(ord(c) < 32 for c in name):
        problem = "contains a control character"
    else:
        for segment in name.split("/"):
            if segment in ("", ".", ".."):
                problem = "leaves its folder or has an empty folder name (.., ., //)"
                break
            if segment.startswith("."):
                problem = f"has a segment starting with '.' ({segment!r}): those are temporary"
                break
    if problem is not None:
        raise ValueError(f"{what} {name!r} {problem}")


class FileFormat(Model):
    """How rows are written to files."""

    type: Literal["parquet", "csv", "tsv", "psv", "delimited", "json", "ndjson"] = "csv"
    """``csv`` (comma), ``tsv`` (tab), ``psv`` (pipe), ``delimited`` (set ``delimiter``),
    ``json`` (one array of objects), ``ndjson`` (one object a line) or ``parquet``."""

    compression: Literal["none", "gzip", "zip", "tar", "tgz"] = "none"
    """``gzip`` compresses the file; ``zip``, ``tar`` and ``tgz`` put each part in its own
    archive, as one member named like the part without the archive's extension. Parquet
    compresses inside the file (see ``codec``), so ``gzip`` is refused for it."""

    header: bool = True
    """Delimited formats: write the column names as the first line."""

    delimiter: str | None = None
    """The one-character delimiter of ``delimited`` (other types fix their own)."""

    quote: Literal["all", "non_null", "needed", "non_numeric", "none"] = "needed"
    """Delimited formats: quote every field (``all``, nulls too), every non-null field
    (``non_null``), fields that contain the delimiter, the quote character, the escape
    character or a line break, and empty strings (``needed``), every field that is not a
    number (``non_numeric``), or nothing (``none``: special characters are then escaped with
    ``escape``, which is required when a value holds one)."""

    quote_char: str = '"'
    """Delimited formats: the quote character."""

    escape: str | None = None
    """Delimited formats: the escape character. Absent: a quote inside a quoted field is
    doubled (``""``). Given: it is written before the quote (and before itself)."""

    line_ending: Literal["lf", "crlf"] = "lf"
    """Text formats: ``lf`` (``\\n``) or ``crlf`` (``\\r\\n``) after each line."""

    null: str = ""
    """Delimited formats: what a null is written as (empty by default)."""

    codec: Literal["snappy", "zstd", "gzip", "lz4", "brotli", "none"] = "snappy"
    """Parquet only: the compression codec inside the file."""

    @field_validator("delimiter", "quote_char", "escape")
    @classmethod
    def _one_character(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 1 or value in "\r\n"):
            raise ValueError(f"{value!r} must be one character, not a line break (e.g. ';')")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FileFormat:
        if self.type == "delimited" and self.delimiter is None:
            raise ValueError("format.type delimited needs format.delimiter, e.g. ';'")
        if self.type != "delimited" and self.delimiter is not None:
            raise ValueError(
                f"format.delimiter applies to type delimited only; {self.type} fixes its own "
                "(use type: delimited to choose one)"
            )
        if self.type == "parquet" and self.compression == "gzip":
            raise ValueError(
                "format.compression gzip does not apply to parquet; set format.codec "
                "(snappy, zstd, gzip...) to compress inside the file"
            )
        delimiter = self.field_delimiter
        if delimiter is not None:
            if self.quote_char == delimiter:
                raise ValueError("format.quote_char must differ from the delimiter")
            if self.escape is not None and self.escape in (delimiter, self.quote_char):
                raise ValueError("format.escape must differ from the delimiter and quote_char")
        return self

    @property
    def field_delimiter(self) -> str | None:
        """The delimiter of the delimited types, None for JSON and Parquet."""
        fixed = {"csv": ",", "tsv": "\t", "psv": "|"}
        return fixed.get(self.type, self.delimiter)

    @property
    def extension(self) -> str:
        """The file extension of the format, e.g. ``.csv``."""
        return ".txt" if self.type == "delimited" else f".{self.type}"

    @property
    def compression_extension(self) -> str:
        """The extension the compression adds, e.g. ``.gz``."""
        return {"none": "", "gzip": ".gz", "zip": ".zip", "tar": ".tar", "tgz": ".tgz"}[
            self.compression
        ]


class FileSplit(Model):
    """Split the output into parts, by rows or by size (give exactly one)."""

    rows: int | None = Field(default=None, ge=1)
    """At most this many rows per part."""

    bytes: str | int | None = None
    """Close a part before it would grow past this size (``100MB``, ``64MiB``, bytes);
    measured on the written file (compressed, encrypted)."""

    batch_rows: int | None = Field(default=None, ge=1)
    """With ``bytes``: source rows per batch, the grain at which parts are cut (and resumed);
    default 10,000. With ``rows`` the batch follows the part size."""

    @field_validator("bytes")
    @classmethod
    def _size(cls, value: str | int | None) -> str | int | None:
        if value is not None and parse_size(value) < 1:
            raise ValueError("split.bytes must be at least 1 byte, e.g. 100MB")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> FileSplit:
        if (self.rows is None) == (self.bytes is None):
            raise ValueError("split: give exactly one of rows (e.g. 100000) or bytes (e.g. 100MB)")
        if self.rows is not None and self.batch_rows is not None:
            raise ValueError(
                "split.batch_rows goes with split.bytes; with rows it is the part size"
            )
        return self

    @property
    def max_bytes(self) -> int | None:
        """The size limit in bytes, when splitting by size."""
        return None if self.bytes is None else parse_size(self.bytes)


class PgpConfig(Model):
    """Encrypt every part for a recipient's public key (OpenPGP, binary ``.gpg`` output)."""

    public_key: str | SecretRef
    """The recipient's public key: a path to an armored or binary key file (relative to the
    workspace), the armored key itself (``-----BEGIN PGP PUBLIC KEY BLOCK-----``), or a secret
    reference holding the armored key."""


class FileDestination(Definition):
    """A file drop: a local folder, S3, GCS, Azure Blob or SFTP."""

    kind: Literal["destination"] = "destination"
    type: Literal["local", "s3", "gcs", "azure", "sftp"]
    path: str
    """Folder (or bucket and prefix, e.g. ``s3://bucket/feeds``)."""

    filename: str = "{activation}_{run_time:%Y%m%d%H%M%S}"
    """Filename template, relative to ``path`` (may hold sub-folders), without extension:
    by default the activation's name (two activations sharing a destination at the same time
    must not write the same file: keep ``{activation}`` or ``{orchestration}`` in a template
    of your own);
    fields ``{run_time:%Y%m%d}``, ``{next_day:%Y-%m-%d}``, ``{name}``, ``{activation}``,
    ``{campaign}``, ``{sub_audience}``, ``{group}``, ``{node}``, ``{orchestration}``,
    ``{run_id}``, ``{part}``. With ``split`` and no ``{part}``, ``_{part}`` is appended."""

    extension: str | None = None
    """The file's extension; absent: from the format, compression and encryption
    (``.csv.gz``, ``.parquet.zip``, ``.ndjson.gpg``). ``""`` adds none."""

    timezone: TimeZone | None = None
    """IANA time zone ``run_time`` and ``next_day`` are shown in; default: the workspace's."""

    format: FileFormat = Field(default_factory=FileFormat)
    split: FileSplit | None = None
    """Split into parts by rows or by size; absent: one file."""

    manifest: bool = True
    """Write ``<base>.manifest.json`` (run id, total rows, each file with its rows, bytes and
    SHA-256) once every part is in place."""

    done_marker: bool = True
    """Write an empty ``<base>.DONE`` last, after the parts and the manifest."""

    pgp: PgpConfig | None = None
    """Encrypt each part with a public key (adds ``.gpg``)."""

    credentials: dict[str, SecretRef] = {}
    """Named credentials (e.g. ``access_key_id``, ``password``) as references."""

    options: dict[str, str] = {}
    """Connection settings of the store type (``endpoint_url``, ``region``, ``host``,
    ``port``, ``timeout``...); see docs/destinations/files.md."""

    @field_validator("options", mode="before")
    @classmethod
    def _options_as_text(cls, value: Any) -> Any:
        # YAML reads `port: 22` as a number and `anonymous: true` as a boolean; the stores
        # parse their options from text.
        if isinstance(value, dict):
            return {
                k: (str(v).lower() if isinstance(v, bool) else str(v))
                if isinstance(v, int | float | bool)
                else v
                for k, v in value.items()
            }
        return value

    @field_validator("filename")
    @classmethod
    def _safe_template(cls, value: str) -> str:
        template_fields(value)
        # Render with harmless values so the literal text is checked as a path too; the real
        # values are checked again when rendered.
        sample: dict[str, Any] = dict.fromkeys(TEMPLATE_FIELDS, "x")
        sample["run_time"] = sample["next_day"] = datetime(2000, 1, 2, 3, 4, 5)
        sample["part"] = 1
        try:
            rendered = value.format(**sample)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"filename {value!r}: a field's format is invalid ({exc})") from None
        check_relative_name(rendered, what="filename")
        return value

    @field_validator("extension")
    @classmethod
    def _safe_extension(cls, value: str | None) -> str | None:
        if value and ("/" in value or "\\" in value or not value.startswith(".")):
            raise ValueError(f"extension {value!r} must start with '.' and name no folder")
        return value

    @property
    def template(self) -> str:
        """The filename template with ``_{part}`` appended when splitting without ``{part}``."""
        if self.split is not None and "part" not in {f for f, _ in template_fields(self.filename)}:
            return self.filename + "_{part}"
        return self.filename
