"""The file-drop connector: rows to files in a folder, published atomically.

Every part is written under a temporary dot-name in its final folder, then renamed, so a reader
never sees a partial file; the manifest and the ``.DONE`` marker come last. Works on any
:class:`~activator.destinations.filestores.FileStore` (local folders, S3, GCS, Azure, SFTP).

Units. A unit is one part file (with ``split.rows``, occasionally several, see below) made of
whole source batches:

* no ``split``: the whole output is one unit and one file;
* ``split.rows: N``: batches have N source rows (at most 100,000; a divisor of N where one
  exists) and a part is closed before a batch that would take it past N rows, and as soon as
  it holds N. When the mapping expands rows so that one batch alone holds more than N, that
  batch is cut into several files of N rows (the last one shorter), all in one unit;
* ``split.bytes``: a part is closed before a batch that would take it past the size (estimated
  from what the part compressed so far); a single batch is never cut, so a batch larger than
  the size alone makes one larger part.

Before the renames, ``log.sending`` records each file's final and temporary name, rows, bytes
and SHA-256 (of the file as stored: compressed and encrypted); after them, ``log.delivered``.
:meth:`FileDelivery.settle` keeps a final file whose size and checksum match, finishes the
rename of a complete temporary file, and otherwise has the unit written again under the same
names. Temporary names are a pure function of (run, task, unit, file), so a rewrite replaces
what a crash left behind, and :meth:`FileDelivery.publish` removes any leftover of the task.

Encoding is vectorised over Arrow: each column is turned into its text (quoted, escaped) with
``pyarrow.compute``, the columns are joined into lines, and the batch's bytes are written in
one call. Parquet goes through ``pyarrow.parquet.ParquetWriter``. Memory stays bounded by a
batch; ``tar``/``tgz`` spool a part to a local temporary file first (a tar header carries the
member's size).
"""

from __future__ import annotations

__all__ = ["FileConnector", "FileDelivery", "base_name", "render_filename"]

import contextlib
import hashlib
import io
import json
import os
import re
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from activator.definitions.files import (
    FileDestination,
    FileFormat,
    check_relative_name,
    template_fields,
)
from activator.destinations.base import Check, Connector, Delivery, DeliveryContext, Unit, UnitLog
from activator.destinations.filestores import FileStore, open_store, probe
from activator.destinations.pgp import GpgStream, PgpKey
from activator.destinations.secrets import SecretResolver, describe
from activator.errors import ActivatorError, DestinationError

MAX_BATCH_ROWS = 100_000
"""The largest batch asked of the runner when splitting by rows (memory stays bounded)."""

GZIP_LEVEL = 6
"""zlib's default: about as small as 9 at a fraction of the time (DuckDB's COPY uses the same
level, miniz's ``MZ_DEFAULT_LEVEL``)."""

GZIP_CHUNK = 1 << 20
"""Uncompressed bytes per gzip chunk, compressed in parallel (see :class:`_ParallelGzip`)."""

GZIP_THREADS = max(1, min(4, os.cpu_count() or 1))
"""Threads compressing gzip chunks of one file."""

_NAME_FIELDS = ("campaign", "journey", "sub_audience", "group", "node", "orchestration", "action")

# --- Names ------------------------------------------------------------------------------------


class _Part(int):
    """A part number that formats zero-padded to 5 digits unless a format is given."""

    def __format__(self, spec: str) -> str:
        return int.__format__(self, spec or "05d")


def _run_time(context: DeliveryContext, timezone: str | None) -> datetime:
    as_of = context.as_of if context.as_of.tzinfo else context.as_of.replace(tzinfo=UTC)
    return as_of.astimezone(ZoneInfo(timezone or context.timezone))


def render_filename(
    definition: FileDestination, context: DeliveryContext, part: int, template: str | None = None
) -> str:
    """The file name (without extension) the template gives for ``part`` in this delivery.

    Raises:
        DestinationError: the template uses a name this delivery does not have, or a rendered
            name would leave the folder.
    """
    template = definition.template if template is None else template
    run_time = _run_time(context, definition.timezone)
    values: dict[str, Any] = {
        "run_time": run_time,
        "next_day": run_time + timedelta(days=1),
        "name": definition.name,
        "activation": context.activation,
        "run_id": context.run_id,
        "part": _Part(part),
    }
    values.update({k: v for k, v in context.names.items() if k in _NAME_FIELDS})
    for name, _spec in template_fields(template):
        if name not in values:
            have = ", ".join(sorted(values))
            raise DestinationError(
                f"destination {definition.name}: filename uses {{{name}}}, which a delivery of "
                f"{context.activation_kind} {context.activation!r} does not have",
                hint=f"use fields this delivery has: {have}",
                attribution="configuration",
            )
    rendered = template.format(**values)
    try:
        check_relative_name(rendered, what="filename")
    except ValueError as exc:
        raise DestinationError(
            f"destination {definition.name}: {exc}",
            hint="names in the template must stay inside the destination's path",
            attribution="configuration",
        ) from None
    return rendered


_PART_FIELD = re.compile(r"[_.\-]?\{part(?::[^}]*)?\}")


def base_name(definition: FileDestination, context: DeliveryContext) -> str:
    """The name the manifest and ``.DONE`` are named after: the template without ``{part}``
    (and the separator before it), e.g. ``feed_20240101`` for ``feed_{run_time:%Y%m%d}_{part}``."""
    template = _PART_FIELD.sub("", definition.template).strip("_.-") or "{activation}"
    return render_filename(definition, context, 1, template)


def _extensions(definition: FileDestination) -> tuple[str, str]:
    """(member extension, file extension): ``.csv`` and ``.csv.zip.gpg`` for example."""
    fmt = definition.format
    if definition.extension is not None:
        return fmt.extension, definition.extension
    suffix = fmt.extension + fmt.compression_extension
    return fmt.extension, suffix + (".gpg" if definition.pgp is not None else "")


# --- Sinks ------------------------------------------------------------------------------------


class _Counter:
    """The bottom of a part's stack: counts and hashes what reaches the store."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.bytes = 0
        self.digest = hashlib.sha256()

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.handle.write(view)
        self.bytes += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.bytes

    def flush(self) -> None:
        self.handle.flush()


class _Sink(io.RawIOBase):
    """A write-only stream with a position over any ``write``: what ParquetWriter, zipfile
    and tarfile need; closing it leaves the stream below open (stages close in order)."""

    def __init__(self, target: Any) -> None:
        super().__init__()
        self.target = target
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.target.write(view)
        self.position += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.position

    def seekable(self) -> bool:
        return False


class _ParallelGzip:
    """A gzip stream (one member, as ``gzip.GzipFile`` writes with ``mtime=0`` and no name)
    whose deflate work runs in threads, as pigz does.

    The input is cut into chunks of :data:`GZIP_CHUNK` bytes; each is deflated on its own,
    primed with the 32 KiB before it (so the ratio is that of one stream), and ends with a
    sync flush, which byte-aligns it: the chunks concatenate into one raw deflate stream,
    closed by an empty final block. The CRC-32 and size of the trailer are computed over the
    input as it comes. zlib releases the GIL, so chunks compress in parallel with each other
    and with the caller encoding the next batch; at most ``2 * threads`` chunks are in flight.
    The output depends only on the bytes written and where :meth:`sync` was called, so a part
    written again is byte-identical.
    """

    HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    """Magic, deflate, no flags, mtime 0, no extra flags, OS unknown: GzipFile's header."""

    def __init__(self, target: Any, level: int = GZIP_LEVEL, threads: int = GZIP_THREADS) -> None:
        self.target = target
        self.level = level
        self.crc = 0
        self.size = 0
        self._pending = bytearray()
        self._window = b""
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="activator-gzip")
        self._inflight: deque[Future[bytes]] = deque()
        self._limit = 2 * threads
        self.target.write(self.HEADER)

    def _deflate(self, data: bytes, window: bytes) -> bytes:
        packer = zlib.compressobj(self.level, zlib.DEFLATED, -zlib.MAX_WBITS, zdict=window)
        return packer.compress(data) + packer.flush(zlib.Z_SYNC_FLUSH)

    def _submit(self, data: bytes) -> None:
        self._inflight.append(self._pool.submit(self._deflate, data, self._window))
        self._window = data[-(1 << 15) :]
        while len(self._inflight) > self._limit:
            self.target.write(self._inflight.popleft().result())

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.crc = zlib.crc32(view, self.crc)
        self.size += view.nbytes
        self._pending += view
        while len(self._pending) >= GZIP_CHUNK:
            self._submit(bytes(self._pending[:GZIP_CHUNK]))
            del self._pending[:GZIP_CHUNK]
        return view.nbytes

    def sync(self) -> None:
        """Compress what was written so far and pass all of it on (the stored size is then
        exact; a sync flush costs a few bytes)."""
        if self._pending:
            self._submit(bytes(self._pending))
            self._pending.clear()
        while self._inflight:
            self.target.write(self._inflight.popleft().result())

    def close(self) -> None:
        """Finish the stream: the last chunks, the final block, the trailer."""
        try:
            self.sync()
            # An empty final block (fixed Huffman codes): ends the deflate stream.
            self.target.write(b"\x03\x00")
            self.target.write(struct.pack("<II", self.crc, self.size & 0xFFFFFFFF))
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Stop the threads without writing anything more."""
        for future in self._inflight:
            future.cancel()
        self._inflight.clear()
        self._pool.shutdown(wait=True)


# --- Encoders ---------------------------------------------------------------------------------


def _column_error(name: str, kind: str, fmt: str) -> DestinationError:
    return DestinationError(
        f"column {name!r} of type {kind} cannot be written as {fmt}",
        hint="map it to a text, number or time column, or use format parquet",
        attribution="configuration",
    )


def _is_numeric(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    )


def _as_text(array: pa.Array, name: str, fmt: str) -> pa.Array:
    """Each value's text (nulls stay null): numbers as written by Arrow, times in ISO 8601."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return _as_text(array.dictionary_decode(), name, fmt)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return array
    if pa.types.is_null(kind):
        return pa.nulls(len(array), pa.string())
    if pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        raise _column_error(name, str(kind), fmt)
    try:
        return pc.cast(array, pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        raise _column_error(name, str(kind), fmt) from None


class _Encoder:
    """Turns record batches into the bytes of a text format."""

    prefix = b""
    suffix = b""
    first_skip = 0
    """Bytes to drop from the very first row of a file (the JSON array's leading comma)."""

    def header(self, schema: pa.Schema) -> bytes:
        return b""

    def encode(self, batch: pa.RecordBatch) -> memoryview:
        raise NotImplementedError


def _buffer(lines: pa.Array) -> memoryview:
    """The concatenated bytes of a string array without nulls (its data buffer, zero-copy)."""
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    if len(lines) == 0:
        return memoryview(b"")
    _validity, offsets_buffer, data = lines.buffers()
    raw = memoryview(offsets_buffer).cast("B")
    offsets = raw.cast("q") if pa.types.is_large_string(lines.type) else raw.cast("i")
    start, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
    return memoryview(data).cast("B")[start:end]


class _DelimitedEncoder(_Encoder):
    """CSV, TSV, PSV or any delimiter, with the five quote modes and an escape character."""

    def __init__(self, fmt: FileFormat) -> None:
        delimiter = fmt.field_delimiter
        assert delimiter is not None
        self.fmt = fmt
        self.delimiter = delimiter
        self.quote = fmt.quote_char
        self.escape = fmt.escape
        self.eol = "\r\n" if fmt.line_ending == "crlf" else "\n"
        specials = {delimiter, self.quote, "\r", "\n"} | ({self.escape} if self.escape else set())
        self.special = "[" + "".join(re.escape(c) for c in sorted(specials)) + "]"
        # Numbers, times and booleans are written with digits, letters and `.-+: `: when no
        # special character is among those, their fields never need quoting or escaping.
        self.plain_safe = not any(c.isalnum() or c in ".-+: " for c in specials)

    def _quoted(self, text: pa.Array) -> pa.Array:
        inner = text
        if self.escape is not None:
            inner = pc.replace_substring(inner, self.escape, self.escape * 2)
            inner = pc.replace_substring(inner, self.quote, self.escape + self.quote)
        else:
            inner = pc.replace_substring(inner, self.quote, self.quote * 2)
        return pc.binary_join_element_wise(self.quote, inner, self.quote, "")

    def _escaped(self, text: pa.Array, name: str) -> pa.Array:
        """Quote mode none: escape the delimiter, quote, escape and line breaks."""
        if self.escape is None:
            if pc.any(pc.match_substring_regex(text, self.special)).as_py():
                raise DestinationError(
                    f"column {name!r} has a value containing the delimiter, the quote "
                    "character or a line break, which quote: none cannot write",
                    hint="set format.escape (e.g. '\\\\') or choose another quote mode",
                    attribution="configuration",
                )
            return text
        out = pc.replace_substring(text, self.escape, self.escape * 2)
        for char in sorted({self.delimiter, self.quote, "\r", "\n"}):
            out = pc.replace_substring(out, char, self.escape + char)
        return out

    def field(self, array: pa.Array, name: str) -> pa.Array:
        """The column's fields as written (no nulls left)."""
        mode = self.fmt.quote
        text = _as_text(array, name, "delimited text")
        null = self.fmt.null
        kind = array.type
        plain = self.plain_safe and not (
            pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
            or pa.types.is_dictionary(kind)
        )
        if mode == "none":
            return (text if plain else self._escaped(text, name)).fill_null(null)
        if mode == "all":
            return self._quoted(text.fill_null(null))
        if mode == "non_null" or (mode == "non_numeric" and not _is_numeric(array.type)):
            return self._quoted(text).fill_null(null)
        if plain:
            return text.fill_null(null)
        needs = pc.match_substring_regex(text, self.special)
        if null == "" and not _is_numeric(array.type):
            # An empty string is quoted so that it reads back differently from a null.
            needs = pc.or_(needs, pc.equal(text, ""))
        if not pc.any(needs).as_py():
            # Most columns need no quoting at all: skip building the quoted variant.
            return text.fill_null(null)
        return pc.if_else(needs, self._quoted(text), text).fill_null(null)

    def _line(self, fields: list[pa.Array]) -> pa.Array:
        if len(fields) == 1:
            return pc.binary_join_element_wise(fields[0], self.eol, "")
        return pc.binary_join_element_wise(
            pc.binary_join_element_wise(*fields, self.delimiter), self.eol, ""
        )

    def header(self, schema: pa.Schema) -> bytes:
        if not self.fmt.header:
            return b""
        fields = [self.field(pa.array([n], pa.string()), n) for n in schema.names]
        return bytes(_buffer(self._line(fields)))

    def encode(self, batch: pa.RecordBatch) -> memoryview:
        fields = [self.field(batch.column(i), n) for i, n in enumerate(batch.schema.names)]
        return _buffer(self._line(fields))


_JSON_ESCAPES = [("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")]
_CONTROL = [chr(c) for c in range(32) if chr(c) not in "\n\r\t"]


def _json_string(text: pa.Array) -> pa.Array:
    for char, escaped in _JSON_ESCAPES:
        text = pc.replace_substring(text, char, escaped)
    if pc.any(pc.match_substring_regex(text, r"[\x00-\x1f]")).as_py():
        for char in _CONTROL:
            text = pc.replace_substring(text, char, f"\\u{ord(char):04x}")
    return pc.binary_join_element_wise('"', text, '"', "")


def _json_values(array: pa.Array, name: str) -> pa.Array:
    """Each value as JSON text (nulls stay null); lists and structs recursively."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return _json_values(array.dictionary_decode(), name)
    if pa.types.is_null(kind):
        return pa.nulls(len(array), pa.string())
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        return pc.cast(array, pa.string())
    if pa.types.is_floating(kind):
        # NaN and infinities have no JSON form: they become null.
        return pc.if_else(pc.is_finite(array), pc.cast(array, pa.string()), None)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        values = _json_values(array.values, name).fill_null("null")
        builder = pa.LargeListArray if pa.types.is_large_list(kind) else pa.ListArray
        joined = pc.binary_join(builder.from_arrays(array.offsets, values), ",")
        return pc.if_else(array.is_valid(), pc.binary_join_element_wise("[", joined, "]", ""), None)
    if pa.types.is_struct(kind):
        children = array.flatten()
        members = [
            pc.binary_join_element_wise(
                json.dumps(kind.field(i).name, ensure_ascii=False) + ":",
                _json_values(child, name).fill_null("null"),
                "",
            )
            for i, child in enumerate(children)
        ]
        inner = (
            pc.binary_join_element_wise(*members, ",") if members else pa.array([""] * len(array))
        )
        return pc.if_else(array.is_valid(), pc.binary_join_element_wise("{", inner, "}", ""), None)
    return _json_string(_as_text(array, name, "JSON"))


class _JsonEncoder(_Encoder):
    """NDJSON (an object a line) or JSON (one array of objects, one object a line)."""

    def __init__(self, fmt: FileFormat) -> None:
        self.eol = "\r\n" if fmt.line_ending == "crlf" else "\n"
        self.array = fmt.type == "json"
        if self.array:
            self.prefix = b"["
            self.suffix = (self.eol + "]" + self.eol).encode()
            self.first_skip = 1

    def encode(self, batch: pa.RecordBatch) -> memoryview:
        members = [
            pc.binary_join_element_wise(
                json.dumps(n, ensure_ascii=False) + ":",
                _json_values(batch.column(i), n).fill_null("null"),
                "",
            )
            for i, n in enumerate(batch.schema.names)
        ]
        if members:
            objects = pc.binary_join_element_wise(
                "{", pc.binary_join_element_wise(*members, ","), "}", ""
            )
        else:
            objects = pa.array(["{}"] * batch.num_rows, pa.string())
        if self.array:
            return _buffer(pc.binary_join_element_wise("," + self.eol, objects, ""))
        return _buffer(pc.binary_join_element_wise(objects, self.eol, ""))


def _encoder(fmt: FileFormat) -> _Encoder | None:
    if fmt.type == "parquet":
        return None
    if fmt.type in ("json", "ndjson"):
        return _JsonEncoder(fmt)
    return _DelimitedEncoder(fmt)


# --- One part file ----------------------------------------------------------------------------


@dataclass
class _PartFile:
    """One file being written: the stack format → compression → encryption → store."""

    name: str
    temp: str
    member: str
    store: FileStore
    definition: FileDestination
    encoder: _Encoder | None
    key: PgpKey | None
    mtime: datetime
    sized: bool = False
    """Splitting by size: keep the stored size measurable after each batch."""
    rows: int = 0
    arrow_bytes: int = 0
    started: bool = False
    counter: _Counter = field(init=False)
    _gzip: _ParallelGzip | None = None
    _skip: int = 0
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _abandon: list[Callable[[], None]] = field(default_factory=list)
    _gpg: GpgStream | None = None
    _parquet: Any = None
    _top: _Sink = field(init=False)

    def open(self) -> None:
        handle = self.store.open_write(self.temp)
        self.counter = _Counter(handle)
        self._closers.append(handle.close)
        target: Any = self.counter
        if self.key is not None:
            self._gpg = self.key.encrypt(self.counter)
            self._closers.insert(0, self._gpg.close)
            target = self._gpg
        compression = self.definition.format.compression
        if compression in ("gzip", "tgz"):
            zipped = _ParallelGzip(target)
            self._closers.insert(0, zipped.close)
            self._abandon.append(zipped.abandon)
            self._gzip = zipped if compression == "gzip" else None
            target = zipped
        if compression == "zip":
            archive = zipfile.ZipFile(_Sink(target), "w", compression=zipfile.ZIP_DEFLATED)
            info = zipfile.ZipInfo(self.member, date_time=self.mtime.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            member = archive.open(info, "w", force_zip64=True)
            self._closers[:0] = [member.close, archive.close]
            target = member
        if compression in ("tar", "tgz"):
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the part's closers
            outer = target
            self._closers[:0] = [lambda: self._add_to_tar(spool, outer), spool.close]
            target = spool
        self._top = _Sink(target)

    def _add_to_tar(self, spool: Any, outer: Any) -> None:
        size = spool.tell()
        spool.seek(0)
        info = tarfile.TarInfo(self.member)
        info.size = size
        info.mtime = int(self.mtime.timestamp())
        info.mode = 0o644
        with tarfile.open(fileobj=_Sink(outer), mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(info, spool)

    def write(self, batch: pa.RecordBatch, payload: memoryview | None) -> None:
        """Append a batch (``payload``: its encoded bytes, for text formats)."""
        if self.encoder is None:
            if self._parquet is None:
                import pyarrow.parquet as pq

                codec = self.definition.format.codec
                self._parquet = pq.ParquetWriter(
                    self._top,
                    batch.schema,
                    compression=codec if codec != "none" else None,
                    use_dictionary=_dictionary_columns(batch),
                )
                self._closers.insert(0, self._parquet.close)
            elif batch.schema != self._parquet.schema:
                batch = pa.Table.from_batches([batch]).cast(self._parquet.schema)
            self._parquet.write_table(pa.Table.from_batches([batch]))
        else:
            assert payload is not None
            if not self.started:
                self._top.write(self.encoder.prefix + self.encoder.header(batch.schema))
                self._skip = self.encoder.first_skip
            if payload.nbytes and self._skip:
                payload, self._skip = payload[self._skip :], 0
            self._top.write(payload)
        if self.sized and self._gzip is not None:
            # zlib holds back output; a sync flush makes the stored size known (and costs a
            # few bytes per batch).
            self._gzip.sync()
        self.started = True
        self.arrow_bytes += batch.nbytes
        self.rows += batch.num_rows

    def size_with(self, batch: pa.RecordBatch, payload: memoryview | None) -> int:
        """The part's stored size, estimated, once ``batch`` is added.

        Exact for plain files and gzip (flushed after each batch). Behind zip, tar or PGP the
        size is taken before archiving or encrypting: compression can only make it smaller.
        """
        inner: int = self._top.position
        if payload is not None:
            more = payload.nbytes
        else:  # parquet: scale by what the part's batches became so far
            more = int(batch.nbytes * inner / self.arrow_bytes) if self.arrow_bytes else 0
        exact = self.key is None and self.definition.format.compression in ("none", "gzip")
        if exact and inner:
            return self.counter.bytes + int(more * self.counter.bytes / inner)
        return inner + more

    def close(self) -> dict[str, Any]:
        """Finish the file; its facts for the ledger."""
        if self.encoder is not None and self.encoder.suffix:
            self._top.write(self.encoder.suffix)
        while self._closers:
            self._closers.pop(0)()
        return {
            "name": self.name,
            "temp": self.temp,
            "rows": self.rows,
            "bytes": self.counter.bytes,
            "sha256": self.counter.digest.hexdigest(),
        }

    def discard(self) -> None:
        """Stop writing and remove the temporary file (after a failure)."""
        if self._gpg is not None:
            self._gpg.kill()
        for abandon in self._abandon:
            abandon()
        for closer in self._closers:
            with contextlib.suppress(Exception):  # the file is being thrown away
                closer()
        self._closers.clear()
        self.store.delete(self.temp)


DICTIONARY_RATIO = 0.5
"""A Parquet column is dictionary-encoded when its first batch has at most this share of
distinct values."""


def _dictionary_columns(batch: pa.RecordBatch) -> list[str]:
    """The columns worth a Parquet dictionary, judged on the part's first batch.

    pyarrow dictionary-encodes every column by default and falls back to plain encoding once a
    dictionary passes its page limit: for mostly distinct columns (ids, e-mails, amounts,
    times) that is work thrown away, and it made Parquet parts twice as slow to write. Like
    DuckDB, we keep dictionaries for the columns with few distinct values. The choice depends
    only on the part's first batch, so a part written again is identical.
    """
    chosen = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        kind = column.type
        if pa.types.is_boolean(kind) or pa.types.is_null(kind) or pa.types.is_nested(kind):
            continue
        if pa.types.is_dictionary(kind):
            chosen.append(name)
            continue
        distinct = pc.count_distinct(column, mode="all").as_py()
        if distinct <= DICTIONARY_RATIO * max(1, len(column)):
            chosen.append(name)
    return chosen


# --- The delivery -----------------------------------------------------------------------------


@dataclass
class _OpenUnit:
    unit: Unit
    parts: list[_PartFile] = field(default_factory=list)


def _rows_batch(limit: int) -> int:
    """Batch rows for a split of ``limit`` rows: ``limit`` itself up to MAX_BATCH_ROWS, else
    the largest divisor of it under that (so parts still hold exactly ``limit`` rows)."""
    if limit <= MAX_BATCH_ROWS:
        return limit
    for size in range(MAX_BATCH_ROWS, 999, -1):
        if limit % size == 0:
            return size
    return MAX_BATCH_ROWS


class FileDelivery(Delivery):
    """One task's files in one folder."""

    def __init__(
        self,
        definition: FileDestination,
        store: FileStore,
        context: DeliveryContext,
        log: UnitLog,
        key: PgpKey | None,
    ) -> None:
        self.definition = definition
        self.store = store
        self.context = context
        self.log = log
        self.key = key
        self.encoder = _encoder(definition.format)
        self.member_ext, self.file_ext = _extensions(definition)
        split = definition.split
        self.max_rows = split.rows if split is not None else None
        self.max_bytes = split.max_bytes if split is not None else None
        if self.max_rows is not None:
            self.batch_rows = _rows_batch(self.max_rows)
        elif split is not None and split.batch_rows is not None:
            self.batch_rows = split.batch_rows
        self.task_key = hashlib.sha256(f"{context.run_id}:{context.task}".encode()).hexdigest()[:10]
        self.run_time = _run_time(context, definition.timezone)
        self._open: _OpenUnit | None = None
        self._next: tuple[int, int] | None = None

    # -- naming

    def _names(self, part: int) -> tuple[str, str]:
        """(final name, archive member) of part number ``part``."""
        base = render_filename(self.definition, self.context, part)
        name = base if base.endswith(self.file_ext) else base + self.file_ext
        return name, _leaf(base) + self.member_ext

    def _position(self) -> tuple[int, int]:
        """(next unit index, next part number) after what earlier attempts delivered."""
        if self._next is None:
            done = [u for u in self.log.units() if u.index >= 0]
            index = max((u.index for u in done), default=-1) + 1
            parts = sum(len(u.detail.get("files", [])) for u in done)
            self._next = (index, parts + 1)
        return self._next

    # -- units

    def _start_unit(self, first_row: int) -> _OpenUnit:
        index, _ = self._position()
        unit = Unit(index, self.context.unit_id(index), first_row, first_row)
        self._open = _OpenUnit(unit)
        return self._open

    def _new_part(self, current: _OpenUnit) -> _PartFile:
        index, part = self._position()
        name, member = self._names(part)
        token = f"{self.task_key}-{index}-{len(current.parts)}"
        part_file = _PartFile(
            name=name,
            temp=self.store.temp_name(name, token),
            member=member,
            store=self.store,
            definition=self.definition,
            encoder=self.encoder,
            key=self.key,
            mtime=self.run_time,
            sized=self.max_bytes is not None,
        )
        current.parts.append(part_file)
        self._next = (index, part + 1)
        part_file.open()
        return part_file

    def _close_unit(self) -> None:
        current = self._open
        if current is None:
            return
        files = [part.close() for part in current.parts]
        unit = current.unit
        unit.rows = sum(f["rows"] for f in files)
        unit.detail = {"files": files}
        self._open = None
        index, part = self._position()
        self._next = (index + 1, part)
        self.log.sending(unit)
        for f in files:
            self.store.publish(f["temp"], f["name"])
        self.log.delivered(unit)

    def write(self, batch: pa.RecordBatch, first_row: int, end_row: int) -> None:
        """Append a batch to the open part, closing and opening parts as the split says."""
        payload = self.encoder.encode(batch) if self.encoder is not None else None
        current = self._open
        if current is not None:
            part = current.parts[-1]
            too_many = self.max_rows is not None and part.rows + batch.num_rows > self.max_rows
            too_big = (
                self.max_bytes is not None
                and part.rows > 0
                and part.size_with(batch, payload) > self.max_bytes
            )
            if too_many or too_big:
                self._close_unit()
                current = None
        if current is None:
            current = self._start_unit(first_row)
            self._new_part(current)
        if self.max_rows is not None and batch.num_rows > self.max_rows:
            # The mapping expanded one batch past a part: cut it into full parts, one unit.
            for offset in range(0, batch.num_rows, self.max_rows):
                piece = batch.slice(offset, self.max_rows)
                part = current.parts[-1] if offset == 0 else self._new_part(current)
                part.write(piece, self.encoder.encode(piece) if self.encoder else None)
        else:
            current.parts[-1].write(batch, payload)
        current.unit.end_row = end_row
        if self.max_rows is not None and (
            len(current.parts) > 1 or current.parts[-1].rows >= self.max_rows
        ):
            self._close_unit()

    def flush(self) -> None:
        """Close and publish the part still open."""
        self._close_unit()

    # -- resume

    def settle(self, unit: Unit) -> bool:
        """Keep the unit when its files are in place (finishing renames a crash interrupted)."""
        files: list[dict[str, Any]] = list(unit.detail.get("files", []))
        if not files:
            return False

        def complete(name: str, facts: dict[str, Any]) -> bool:
            return (
                self.store.exists(name)
                and self.store.size(name) == facts["bytes"]
                and self.store.checksum(name) == facts["sha256"]
            )

        final = [complete(f["name"], f) for f in files]
        temp = [not ok and complete(f["temp"], f) for f, ok in zip(files, final, strict=True)]
        if not all(a or b for a, b in zip(final, temp, strict=True)):
            for f in files:
                self.store.delete(f["temp"])
            return False
        for f, ready in zip(files, temp, strict=True):
            if ready:
                self.store.publish(f["temp"], f["name"])
        self.log.delivered(unit)
        return True

    # -- publish

    def _write_small(self, name: str, content: bytes) -> None:
        """Write a small file atomically, unless it is already there with this content."""
        if (
            self.store.exists(name)
            and self.store.size(name) == len(content)
            and self.store.checksum(name) == hashlib.sha256(content).hexdigest()
        ):
            return
        temp = self.store.temp_name(name, f"{self.task_key}-publish")
        with self.store.open_write(temp) as handle:
            handle.write(content)
        self.store.publish(temp, name)

    def publish(self, units: list[Unit]) -> dict[str, Any]:
        """Write the manifest, then ``.DONE``; remove leftovers of the task."""
        files = [
            {k: f[k] for k in ("name", "rows", "bytes", "sha256")}
            for unit in sorted(units, key=lambda u: u.index)
            for f in unit.detail.get("files", [])
        ]
        rows = sum(f["rows"] for f in files)
        base = base_name(self.definition, self.context)
        summary: dict[str, Any] = {
            "files": [f["name"] for f in files],
            "rows": rows,
            "bytes": sum(f["bytes"] for f in files),
        }
        if self.definition.manifest:
            manifest = {
                "run_id": self.context.run_id,
                "activation": self.context.activation,
                "created": self.context.as_of.isoformat(),
                "rows": rows,
                "files": files,
            }
            name = base + ".manifest.json"
            self._write_small(name, (json.dumps(manifest, indent=2) + "\n").encode())
            summary["manifest"] = name
        if self.definition.done_marker:
            name = base + ".DONE"
            self._write_small(name, b"")
            summary["done"] = name
        self._sweep()
        return summary

    def _sweep(self) -> None:
        """Delete temporary files this task left (a crash while writing a part)."""
        marker = f".{self.task_key}-"
        for name in self.store.list():
            leaf = _leaf(name)
            if leaf.startswith(".") and leaf.endswith(".tmp") and marker in leaf:
                self.store.delete(name)

    def abort(self) -> None:
        """Remove the temporary files of the part being written (not yet in the ledger)."""
        current, self._open = self._open, None
        if current is not None:
            for part in current.parts:
                try:
                    part.discard()
                except Exception:  # publish sweeps what remains
                    continue

    def close(self) -> None:
        """Remove the temporary keyring; release the store's connection."""
        if self.key is not None:
            self.key.cleanup()
        self.store.close()


def _leaf(name: str) -> str:
    """The last segment of a ``/``-separated name."""
    return name.rsplit("/", 1)[-1]


# --- The connector ----------------------------------------------------------------------------


class FileConnector(Connector):
    """A file destination: checks its folder and delivers files into it.

    Args:
        definition: The destination.
        secrets: Resolves the credentials and the PGP key reference.
        workspace_root: Local paths (folder, key file) are relative to it.
    """

    def __init__(
        self, definition: FileDestination, secrets: SecretResolver, workspace_root: Path
    ) -> None:
        self.definition = definition
        self.secrets = secrets
        self.workspace_root = workspace_root
        self._store: FileStore | None = None

    def __repr__(self) -> str:
        return f"FileConnector({self.definition.name}, {self.definition.type})"

    @property
    def store(self) -> FileStore:
        """The destination's folder (credentials resolved on first use)."""
        if self._store is None:
            self._store = open_store(self.definition, self.secrets, self.workspace_root)
        return self._store

    def _key(self) -> PgpKey | None:
        pgp = self.definition.pgp
        if pgp is None:
            return None
        what = f"destination {self.definition.name}: pgp.public_key"
        if not isinstance(pgp.public_key, str):
            secret = self.secrets.resolve(pgp.public_key, what=what)
            return PgpKey(secret.reveal(), describe(pgp.public_key))
        if pgp.public_key.lstrip().startswith("-----BEGIN PGP"):
            return PgpKey(pgp.public_key, "inline key")
        path = Path(pgp.public_key)
        path = path if path.is_absolute() else self.workspace_root / path
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DestinationError(
                f"{what}: cannot read the key file {path}: {exc.strerror}",
                hint="give a path to the recipient's exported public key, or the armored key",
                attribution="configuration",
            ) from None
        return PgpKey(data, str(path))

    def open(self, context: DeliveryContext, log: UnitLog) -> FileDelivery:
        """Start (or resume) writing one task's files."""
        return FileDelivery(self.definition, self.store, context, log, self._key())

    def check(self) -> list[Check]:
        """Write, publish, read back and delete a probe file; load the PGP key if one is set."""
        try:
            store = self.store
        except ActivatorError as exc:
            return [Check("open the folder", False, exc.message)]
        checks = probe(store)
        if all(c.ok for c in checks) and self.definition.pgp is not None:
            checks.append(self._check_key())
        return checks

    def _check_key(self) -> Check:
        try:
            key = self._key()
        except ActivatorError as exc:
            return Check("pgp key", False, exc.message)
        assert key is not None
        try:
            if key.expired:
                return Check("pgp key", False, f"expired or revoked: {', '.join(key.expired)}")
            return Check("pgp key", True, f"encrypting for {key.describe()}")
        finally:
            key.cleanup()
