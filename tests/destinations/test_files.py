"""The file connector on local folders: formats, compression, quoting, templates, split.

Everything written is read back with independent readers (pyarrow.parquet, Python's csv and
json, gzip/zipfile/tarfile) and compared with the source. The helpers at the top are shared
with the other ``test_files_*`` modules.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import struct
import tarfile
import zipfile
import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from activator.definitions.files import FileDestination, parse_size
from activator.destinations.base import DeliveryContext
from activator.destinations.files import FileConnector
from activator.destinations.secrets import SecretResolver
from activator.errors import DestinationError
from activator.runtime.delivery import Mapper, TaskResult, deliver_task
from tests.fixtures.ledger import MemoryLedger, table_source

AS_OF = datetime(2024, 5, 1, 22, 30, tzinfo=UTC)
"""22:30 UTC is already the next day (00:30) in Paris."""

NAMES = [
    "plain",
    'comma, and "quotes"',
    "line\nbreak",
    "crlf\r\nbreak",
    "tab\there|pipe;semi",
    "unicode é 日本 🎉",
    "back\\slash",
    "",
    None,
    "  spaces  ",
]


def source_table(rows: int = 50) -> pa.Table:
    """Strings with delimiters, quotes, line breaks and unicode; nulls; ints; decimals; times."""
    base = datetime(2024, 1, 1, 8, 0, 0, 123456)
    return pa.table(
        {
            "id": pa.array(range(1, rows + 1), pa.int64()),
            "name": pa.array([NAMES[i % len(NAMES)] for i in range(rows)], pa.string()),
            "amount": pa.array(
                [None if i % 7 == 3 else Decimal(i * 137 - 900) / 100 for i in range(rows)],
                pa.decimal128(12, 2),
            ),
            "at": pa.array(
                [
                    None if i % 11 == 5 else base + timedelta(hours=i, seconds=i)
                    for i in range(rows)
                ],
                pa.timestamp("us"),
            ),
            "active": pa.array([i % 3 == 0 for i in range(rows)], pa.bool_()),
        }
    )


def context(**names: str) -> DeliveryContext:
    """A campaign delivery's context (names default to campaign=spring)."""
    return DeliveryContext(
        run_id="run-1",
        task="deliver:feed",
        as_of=AS_OF,
        timezone="Europe/Paris",
        activation_kind="campaign",
        activation="spring",
        names=names or {"campaign": "spring"},
    )


def destination(folder: Path, **settings: Any) -> FileDestination:
    """A local file destination writing into ``folder``, named ``{campaign}_{run_time:%Y%m%d}``
    unless ``filename`` is given."""
    settings.setdefault("filename", "{campaign}_{run_time:%Y%m%d}")
    return FileDestination.model_validate(
        {"name": "drop", "type": "local", "path": str(folder), **settings}
    )


def deliver(
    definition: FileDestination,
    table: pa.Table,
    ledger: MemoryLedger | None = None,
    mapper: Mapper | None = None,
    ctx: DeliveryContext | None = None,
    secrets: SecretResolver | None = None,
) -> TaskResult:
    """Run the deliver task with a new connector (as a resumed process would)."""
    root = Path(definition.path)
    connector = FileConnector(definition, secrets or SecretResolver(root, environ={}), root)
    return deliver_task(
        connector, ctx or context(), ledger or MemoryLedger(), table_source(table), mapper
    )


def unpack(path: Path, compression: str) -> bytes:
    """The content of one part, opened with the standard library."""
    data = path.read_bytes()
    member = path.name.rsplit(".", 1)[0]
    if compression == "gzip":
        return gzip.decompress(data)
    if compression == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert archive.namelist() == [member]
            return archive.read(member)
    if compression in ("tar", "tgz"):
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            assert archive.getnames() == [member]
            extracted = archive.extractfile(member)
            assert extracted is not None
            return extracted.read()
    return data


def manifest(folder: Path, base: str = "spring_20240502") -> dict[str, Any]:
    """The manifest, after checking every file it lists against its bytes and checksum."""
    data: dict[str, Any] = json.loads((folder / f"{base}.manifest.json").read_text())
    for entry in data["files"]:
        content = (folder / entry["name"]).read_bytes()
        assert len(content) == entry["bytes"]
        assert hashlib.sha256(content).hexdigest() == entry["sha256"]
    assert data["rows"] == sum(f["rows"] for f in data["files"])
    return data


def text_of(value: Any) -> str:
    """How the CSV writer is expected to show a value (computed without Arrow)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    return str(value)


def csv_rows(content: bytes, delimiter: str, header: bool = True) -> list[list[str]]:
    """Rows read with Python's csv module (the header checked and dropped)."""
    reader = csv.reader(io.StringIO(content.decode("utf-8"), newline=""), delimiter=delimiter)
    rows = list(reader)
    if header:
        assert rows[0] == ["id", "name", "amount", "at", "active"]
        rows = rows[1:]
    return rows


def expected_csv(table: pa.Table) -> list[list[str]]:
    """The source as the text a CSV reader gives back."""
    return [[text_of(v) for v in row.values()] for row in table.to_pylist()]


def json_value(value: Any) -> Any:
    """How a value reads back from the JSON writer (decimals parsed as Decimal)."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    return value


# --- Formats and compression, read back independently -----------------------------------------

DELIMITERS = {"csv": ",", "tsv": "\t", "psv": "|", "delimited": ";"}


def _parts(folder: Path) -> list[Path]:
    return [folder / f["name"] for f in manifest(folder)["files"]]


@pytest.mark.parametrize(
    ("kind", "compression"),
    [
        ("csv", "none"),
        ("csv", "gzip"),
        ("csv", "zip"),
        ("csv", "tgz"),
        ("tsv", "gzip"),
        ("psv", "tar"),
        ("delimited", "zip"),
    ],
)
def test_delimited_reads_back_with_the_csv_module(
    tmp_path: Path, kind: str, compression: str
) -> None:
    table = source_table(50)
    fmt: dict[str, Any] = {"type": kind, "compression": compression}
    if kind == "delimited":
        fmt["delimiter"] = ";"
    deliver(destination(tmp_path, format=fmt, split={"rows": 20}), table)
    parts = _parts(tmp_path)
    suffix = {"delimited": ".txt"}.get(kind, f".{kind}")
    suffix += {"none": "", "gzip": ".gz", "zip": ".zip", "tar": ".tar", "tgz": ".tgz"}[compression]
    assert [p.name for p in parts] == [f"spring_20240502_{n:05d}{suffix}" for n in (1, 2, 3)]
    rows = [r for p in parts for r in csv_rows(unpack(p, compression), DELIMITERS[kind])]
    assert rows == expected_csv(table)
    assert [f["rows"] for f in manifest(tmp_path)["files"]] == [20, 20, 10]


@pytest.mark.parametrize("compression", ["none", "gzip", "tgz"])
@pytest.mark.parametrize("kind", ["json", "ndjson"])
def test_json_reads_back_with_the_json_module(tmp_path: Path, kind: str, compression: str) -> None:
    table = source_table(30)
    deliver(destination(tmp_path, format={"type": kind, "compression": compression}), table)
    (part,) = _parts(tmp_path)
    text = unpack(part, compression).decode("utf-8")
    if kind == "json":
        objects = json.loads(text, parse_float=Decimal)
    else:
        lines = text.split("\n")
        assert lines[-1] == ""  # every line ends with \n, raw line breaks never appear inside
        objects = [json.loads(line, parse_float=Decimal) for line in lines[:-1]]
    expected = [{k: json_value(v) for k, v in row.items()} for row in table.to_pylist()]
    assert objects == expected


@pytest.mark.parametrize("compression", ["none", "zip", "tar"])
def test_parquet_reads_back_with_pyarrow(tmp_path: Path, compression: str) -> None:
    table = source_table(50)
    settings = {"format": {"type": "parquet", "compression": compression, "codec": "zstd"}}
    deliver(destination(tmp_path, split={"rows": 25}, **settings), table)
    parts = _parts(tmp_path)
    read = pa.concat_tables(pq.read_table(io.BytesIO(unpack(p, compression))) for p in parts)
    assert read.equals(table)
    if compression == "none":
        meta = pq.ParquetFile(parts[0]).metadata.row_group(0).column(0)
        assert meta.compression == "ZSTD"


def test_nested_values_become_json_arrays_and_objects(tmp_path: Path) -> None:
    table = pa.table(
        {
            "tags": pa.array([["a", 'b"'], None, [], ["x"]], pa.list_(pa.string())),
            "address": pa.array(
                [{"city": "Lyon", "zip": 69001}, None, {"city": None, "zip": 1}, {"city": "é"}],
                pa.struct([("city", pa.string()), ("zip", pa.int32())]),
            ),
            "score": pa.array([1.5, float("nan"), None, 1e20], pa.float64()),
        }
    ).slice(0)
    deliver(destination(tmp_path, format={"type": "ndjson"}), table)
    (part,) = _parts(tmp_path)
    objects = [json.loads(line) for line in part.read_text().splitlines()]
    assert objects == [
        {"tags": ["a", 'b"'], "address": {"city": "Lyon", "zip": 69001}, "score": 1.5},
        {"tags": None, "address": None, "score": None},  # NaN has no JSON form
        {"tags": [], "address": {"city": None, "zip": 1}, "score": None},
        {"tags": ["x"], "address": {"city": "é", "zip": None}, "score": 1e20},
    ]


def test_a_list_column_cannot_be_written_as_csv(tmp_path: Path) -> None:
    table = pa.table({"tags": pa.array([["a"]], pa.list_(pa.string()))})
    with pytest.raises(DestinationError, match=r"column 'tags' of type list<item: string>"):
        deliver(destination(tmp_path), table)
    assert [p.name for p in tmp_path.iterdir()] == []  # the aborted temporary file is gone


# --- Quote modes, escape, line endings: byte-exact ---------------------------------------------

SMALL = pa.table(
    {
        "n": pa.array([1, None], pa.int64()),
        "s": pa.array(["a,b", None], pa.string()),
        "q": pa.array(['say "hi"', ""], pa.string()),
    }
)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ({}, 'n,s,q\n1,"a,b","say ""hi"""\n,,""\n'),
        ({"quote": "all"}, '"n","s","q"\n"1","a,b","say ""hi"""\n"","",""\n'),
        ({"quote": "non_null"}, '"n","s","q"\n"1","a,b","say ""hi"""\n,,""\n'),
        ({"quote": "non_numeric"}, '"n","s","q"\n1,"a,b","say ""hi"""\n,,""\n'),
        ({"quote": "none", "escape": "\\"}, 'n,s,q\n1,a\\,b,say \\"hi\\"\n,,\n'),
        ({"escape": "\\"}, 'n,s,q\n1,"a,b","say \\"hi\\""\n,,""\n'),
        ({"line_ending": "crlf"}, 'n,s,q\r\n1,"a,b","say ""hi"""\r\n,,""\r\n'),
        ({"header": False, "null": "NULL"}, '1,"a,b","say ""hi"""\nNULL,NULL,\n'),
        ({"type": "psv", "quote_char": "'"}, "n|s|q\n1|a,b|say \"hi\"\n||''\n"),
    ],
)
def test_quoting_is_byte_exact(tmp_path: Path, fmt: dict[str, Any], expected: str) -> None:
    deliver(destination(tmp_path, format=fmt), SMALL)
    (part,) = _parts(tmp_path)
    assert part.read_bytes() == expected.encode()


@pytest.mark.parametrize(
    ("fmt", "dialect"),
    [
        ({"quote": "all"}, {}),
        ({"quote": "non_numeric", "escape": "\\"}, {"doublequote": False, "escapechar": "\\"}),
        ({"quote": "none", "escape": "\\"}, {"quoting": csv.QUOTE_NONE, "escapechar": "\\"}),
        ({"line_ending": "crlf", "quote": "non_null"}, {}),
    ],
)
def test_each_quote_mode_reads_back_with_its_dialect(
    tmp_path: Path, fmt: dict[str, Any], dialect: dict[str, Any]
) -> None:
    table = source_table(20)
    deliver(destination(tmp_path, format=fmt), table)
    (part,) = _parts(tmp_path)
    text = part.read_bytes().decode()
    rows = list(csv.reader(io.StringIO(text, newline=""), **dialect))
    assert rows[1:] == expected_csv(table)


def test_quote_none_without_escape_refuses_a_value_it_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(DestinationError, match=r"column 's' has a value containing") as caught:
        deliver(destination(tmp_path, format={"quote": "none"}), SMALL)
    assert "format.escape" in str(caught.value)


# --- Templates --------------------------------------------------------------------------------


def test_run_time_is_shown_in_the_time_zone(tmp_path: Path) -> None:
    paris = deliver(destination(tmp_path / "a", filename="feed_{run_time:%Y%m%d_%H%M}"), SMALL)
    utc = deliver(
        destination(tmp_path / "b", filename="feed_{run_time:%Y%m%d_%H%M}", timezone="UTC"), SMALL
    )
    assert paris.published["files"] == ["feed_20240502_0030.csv"]
    assert utc.published["files"] == ["feed_20240501_2230.csv"]


def test_template_names_next_day_and_folders(tmp_path: Path) -> None:
    template = "{run_time:%Y/%m}/{campaign}-{group}_{next_day:%Y-%m-%d}_{run_id}"
    ctx = context(campaign="spring", group="treatment")
    result = deliver(destination(tmp_path, filename=template), SMALL, ctx=ctx)
    assert result.published["files"] == ["2024/05/spring-treatment_2024-05-03_run-1.csv"]
    assert (tmp_path / "2024/05/spring-treatment_2024-05-03_run-1.csv").is_file()
    assert (tmp_path / "2024/05/spring-treatment_2024-05-03_run-1.DONE").is_file()


def test_extension_is_not_doubled_and_can_be_given(tmp_path: Path) -> None:
    named = deliver(
        destination(tmp_path / "a", filename="feed.csv.gz", format={"compression": "gzip"}), SMALL
    )
    given = deliver(destination(tmp_path / "b", filename="feed", extension=".dat"), SMALL)
    assert named.published["files"] == ["feed.csv.gz"]
    assert given.published["files"] == ["feed.dat"]


def test_part_field_takes_a_format(tmp_path: Path) -> None:
    result = deliver(
        destination(tmp_path, filename="feed-{part:03d}-of-run", split={"rows": 1}), SMALL
    )
    assert result.published["files"] == ["feed-001-of-run.csv", "feed-002-of-run.csv"]
    assert result.published["manifest"] == "feed-of-run.manifest.json"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("../feed", "leaves its folder"),
        ("out/../../feed", "leaves its folder"),
        ("/etc/feed", "is absolute"),
        ("C:/feed", "is absolute"),
        ("a\\b", "backslash"),
        ("a//b", "empty folder name"),
        (".hidden", "starting with '.'"),
        ("{campain}", "unknown field {campain}; the fields are: run_time, next_day, name"),
        ("{run_time.year}", "unknown field {run_time.year}"),
        ("{}", "positional field"),
        ("{campaign!r}", "drop the conversion"),
        ("feed_{", "not a valid template"),
    ],
)
def test_unsafe_or_unknown_templates_are_refused(
    tmp_path: Path, template: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        destination(tmp_path, filename=template)


def test_a_name_the_delivery_lacks_is_an_error_naming_the_fields(tmp_path: Path) -> None:
    with pytest.raises(DestinationError, match=r"filename uses \{node\}") as caught:
        deliver(destination(tmp_path, filename="{node}_{run_time:%Y}"), SMALL)
    assert caught.value.attribution == "configuration"
    assert "campaign" in str(caught.value.hint)


# --- Settings validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"format": {"type": "delimited"}}, "needs format.delimiter"),
        ({"format": {"type": "csv", "delimiter": ";"}}, "applies to type delimited only"),
        ({"format": {"type": "delimited", "delimiter": ";;"}}, "must be one character"),
        ({"format": {"type": "parquet", "compression": "gzip"}}, "set format.codec"),
        ({"format": {"escape": '"'}}, "format.escape must differ"),
        ({"split": {"rows": 10, "bytes": "1MB"}}, "exactly one of rows"),
        ({"split": {}}, "exactly one of rows"),
        ({"split": {"bytes": "lots"}}, "is not a size"),
        ({"split": {"rows": 10, "batch_rows": 5}}, "split.batch_rows goes with split.bytes"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"extension": "csv"}, "must start with '.'"),
        ({"quote": "all"}, "Extra inputs are not permitted"),
    ],
)
def test_settings_errors_name_the_field_and_the_fix(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        destination(tmp_path, **settings)


def test_sizes_and_options_parse() -> None:
    assert parse_size("100MB") == 100_000_000
    assert parse_size("64MiB") == 64 * 2**20
    assert parse_size("1.5KB") == 1500
    assert parse_size(42) == 42
    parsed = FileDestination.model_validate(
        {"name": "s", "type": "sftp", "path": "/in", "options": {"port": 2222, "strict": True}}
    )
    assert parsed.options == {"port": "2222", "strict": "true"}


# --- Split ------------------------------------------------------------------------------------


def _ids(folder: Path, kind: str = "csv", compression: str = "none") -> list[list[int]]:
    """The ids in each part, in manifest order."""
    out = []
    for part in _parts(folder):
        content = unpack(part, compression)
        if kind == "parquet":
            out.append(pq.read_table(io.BytesIO(content)).column("id").to_pylist())
        else:
            out.append([int(r[0]) for r in csv_rows(content, ",")])
    return out


def test_split_by_rows_numbers_parts_and_keeps_every_row_once(tmp_path: Path) -> None:
    table = source_table(95)
    result = deliver(destination(tmp_path, split={"rows": 20}), table)
    ids = _ids(tmp_path)
    assert [len(p) for p in ids] == [20, 20, 20, 20, 15]
    assert [i for p in ids for i in p] == list(range(1, 96))
    data = manifest(tmp_path)
    assert data["rows"] == 95
    assert data["run_id"] == "run-1"
    assert data["activation"] == "spring"
    assert data["created"] == "2024-05-01T22:30:00+00:00"
    assert [u.rows for u in result.units] == [20, 20, 20, 20, 15]


def test_split_rows_with_expansion_cuts_a_batch_into_several_parts(tmp_path: Path) -> None:
    def triple(batch: pa.RecordBatch) -> pa.RecordBatch:
        return pa.concat_batches([batch, batch, batch])

    result = deliver(destination(tmp_path, split={"rows": 8}), source_table(20), mapper=triple)
    ids = _ids(tmp_path)
    assert all(len(p) <= 8 for p in ids)
    assert sorted(i for p in ids for i in p) == sorted(list(range(1, 21)) * 3)
    assert [p.name for p in _parts(tmp_path)] == [
        f"spring_20240502_{n:05d}.csv" for n in range(1, len(ids) + 1)
    ]
    assert sum(u.rows for u in result.units) == 60


def test_split_rows_with_shrink_keeps_parts_under_the_limit(tmp_path: Path) -> None:
    def evens(batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch.filter(pc.equal(pc.bit_wise_and(batch.column("id"), 1), 0))

    deliver(destination(tmp_path, split={"rows": 10}), source_table(60), mapper=evens)
    ids = _ids(tmp_path)
    assert all(len(p) <= 10 for p in ids)
    assert [i for p in ids for i in p] == list(range(2, 61, 2))


def test_split_by_bytes_keeps_parts_under_the_size(tmp_path: Path) -> None:
    table = source_table(2000)
    deliver(destination(tmp_path, split={"bytes": "6KB", "batch_rows": 40}), table)
    data = manifest(tmp_path)
    assert len(data["files"]) > 5
    assert all(f["bytes"] <= 6000 for f in data["files"])
    assert [i for p in _ids(tmp_path) for i in p] == list(range(1, 2001))


def test_split_by_bytes_compressed(tmp_path: Path) -> None:
    table = source_table(3000)
    settings = {"format": {"compression": "gzip"}, "split": {"bytes": "8KB", "batch_rows": 100}}
    deliver(destination(tmp_path, **settings), table)
    data = manifest(tmp_path)
    assert len(data["files"]) > 2
    assert all(f["bytes"] <= 8000 for f in data["files"])
    assert [i for p in _ids(tmp_path, compression="gzip") for i in p] == list(range(1, 3001))


def test_nothing_to_send_still_publishes_an_empty_manifest(tmp_path: Path) -> None:
    result = deliver(destination(tmp_path), source_table(0))
    assert result.published["files"] == []
    assert manifest(tmp_path)["files"] == []
    assert (tmp_path / "spring_20240502.DONE").read_bytes() == b""


def test_manifest_and_done_can_be_turned_off(tmp_path: Path) -> None:
    deliver(destination(tmp_path, manifest=False, done_marker=False), SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spring_20240502.csv"]


def test_done_is_written_after_the_manifest_and_the_parts(tmp_path: Path) -> None:
    deliver(destination(tmp_path, split={"rows": 10}), source_table(30))
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    done = stamps.pop("spring_20240502.DONE")
    written = stamps.pop("spring_20240502.manifest.json")
    assert len(stamps) == 3
    assert max(stamps.values()) <= written <= done


def test_gzip_output_is_reproducible(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        deliver(destination(tmp_path / folder, format={"compression": "gzip"}), source_table(40))
    first, second = (manifest(tmp_path / f)["files"] for f in ("a", "b"))
    assert first == second


# --- check ------------------------------------------------------------------------------------


def test_check_writes_reads_and_deletes_a_probe(tmp_path: Path) -> None:
    definition = destination(tmp_path)
    checks = FileConnector(definition, SecretResolver(tmp_path, environ={}), tmp_path).check()
    assert [c.ok for c in checks] == [True] * len(checks)
    assert len(checks) >= 3
    assert list(tmp_path.iterdir()) == []


def test_check_names_the_folder_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    definition = destination(tmp_path / "file" / "drop")
    checks = FileConnector(definition, SecretResolver(tmp_path, environ={}), tmp_path).check()
    assert not checks[-1].ok
    assert str(tmp_path / "file" / "drop") in checks[-1].detail


def test_parquet_part_of_many_batches(tmp_path: Path) -> None:
    table = source_table(300)
    split = {"bytes": "1MB", "batch_rows": 40}
    deliver(destination(tmp_path, format={"type": "parquet"}, split=split), table)
    (part,) = _parts(tmp_path)
    assert pq.read_table(part).equals(table)
    assert pq.ParquetFile(part).metadata.num_row_groups == 8


def test_numbers_are_quoted_when_the_delimiter_can_appear_in_them(tmp_path: Path) -> None:
    table = pa.table({"x": pa.array([Decimal("1.50"), Decimal("-2.00")], pa.decimal128(5, 2))})
    deliver(destination(tmp_path, format={"type": "delimited", "delimiter": "."}), table)
    (part,) = _parts(tmp_path)
    assert part.read_bytes() == b'x\n"1.50"\n"-2.00"\n'


# --- Throughput paths: parallel gzip, Parquet dictionaries, unquoted columns -----------------


def _wide_table(rows: int) -> pa.Table:
    """Rows whose CSV runs to several megabytes (several gzip chunks), no special characters."""
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "email": pa.array([f"customer{i * 7919}@example.com" for i in range(rows)]),
            "tier": pa.array([["bronze", "silver", "gold"][i % 3] for i in range(rows)]),
        }
    )


def test_gzip_of_many_chunks_is_one_standard_member(tmp_path: Path) -> None:
    table = _wide_table(120_000)
    deliver(destination(tmp_path / "a", format={"compression": "gzip"}), table)
    deliver(destination(tmp_path / "b", format={"compression": "gzip"}), table)
    (entry,) = manifest(tmp_path / "a")["files"]
    assert manifest(tmp_path / "b")["files"] == [entry]  # byte-identical when written again
    data = (tmp_path / "a" / entry["name"]).read_bytes()
    # One member: a raw inflate of the body ends exactly at the 8-byte trailer.
    assert data[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    content = inflater.decompress(data[10:])
    assert inflater.eof
    assert len(inflater.unused_data) == 8
    assert content == gzip.decompress(data)
    assert len(content) > 4 * (1 << 20)  # several chunks of GZIP_CHUNK
    crc, size = struct.unpack("<II", inflater.unused_data)
    assert (crc, size) == (zlib.crc32(content), len(content))
    lines = content.decode().splitlines()
    assert lines[0] == "id,email,tier"
    assert lines[1:] == [
        f"{i},customer{i * 7919}@example.com,{['bronze', 'silver', 'gold'][i % 3]}"
        for i in range(120_000)
    ]
    # Chunks primed with the data before them compress as well as one stream (within 1%).
    single = gzip.compress(content, compresslevel=6, mtime=0)
    assert len(data) <= len(single) * 1.01


def test_gzip_split_by_bytes_across_chunks_reads_back(tmp_path: Path) -> None:
    settings = {"format": {"compression": "gzip"}, "split": {"bytes": "1MB", "batch_rows": 40_000}}
    deliver(destination(tmp_path, **settings), _wide_table(200_000))
    files = manifest(tmp_path)["files"]
    assert len(files) > 1
    ids = []
    for entry in files:
        rows = gzip.decompress((tmp_path / entry["name"]).read_bytes()).decode().splitlines()
        assert rows[0] == "id,email,tier"
        ids += [int(r.split(",")[0]) for r in rows[1:]]
    assert ids == list(range(200_000))


def test_parquet_dictionaries_only_for_repetitive_columns(tmp_path: Path) -> None:
    table = _wide_table(1000).append_column("score", pa.array([i % 10 / 4 for i in range(1000)]))
    deliver(destination(tmp_path, format={"type": "parquet"}), table)
    (path,) = _parts(tmp_path)
    assert pq.read_table(path).equals(table)
    meta = pq.ParquetFile(path).metadata.row_group(0)
    dictionary = {
        meta.column(i).path_in_schema: "RLE_DICTIONARY" in meta.column(i).encodings
        for i in range(meta.num_columns)
    }
    assert dictionary == {"id": False, "email": False, "tier": True, "score": True}


def test_a_batch_without_special_characters_still_quotes_empty_strings(tmp_path: Path) -> None:
    table = pa.table({"id": [1, 2, 3], "name": ["plain", "", None]})
    deliver(destination(tmp_path), table)
    (path,) = _parts(tmp_path)
    assert path.read_bytes() == b'id,name\n1,plain\n2,""\n3,\n'
