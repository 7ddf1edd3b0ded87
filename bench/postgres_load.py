"""Benchmark of the PostgreSQL table connector's bulk load (COPY through a staging table).

Usage:
    python bench/postgres_load.py --url postgresql://user@host:5432/db [--rows 1000000]
        [--mode append|replace|upsert] [--batch-rows 50000] [--baseline]

Generates ``--rows`` rows in Arrow (id, email, tag, score numeric(12,2), active, updated_at
timestamptz, birthday), then delivers them with the real runner loop (``deliver_task``) and a
ledger kept in memory, into a fresh table ``bench_load_<n>`` of the database (dropped at the
end). It times the load phase (every unit: CSV written by Arrow, streamed through ``COPY``,
marker row, commit) and the publish phase (stage → target in one transaction) separately.

``--baseline`` also times psycopg's own binary COPY fed row by row (``write_row`` over
``to_pylist()``), the route that builds Python objects for every value, into a plain table of
the same shape: the reference the vectorised route is compared with.

Prints one JSON object. Results are recorded in docs/destinations/tables.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from activator.definitions.table import PostgresDestination
from activator.destinations.base import DeliveryContext, Unit
from activator.destinations.postgres import PostgresConnector
from activator.destinations.secrets import SecretResolver
from activator.runtime.delivery import deliver_task


class Ledger:
    """A minimal in-memory ledger; notes when the publish step starts."""

    def __init__(self) -> None:
        self.done: dict[int, Unit] = {}
        self.publish_started: float | None = None

    def sending(self, unit: Unit) -> None:
        if unit.index == -1:
            self.publish_started = time.perf_counter()

    def delivered(self, unit: Unit) -> None:
        self.done[unit.index] = unit

    def rejected(self, unit: Unit, rows: pa.Table, reasons: list[str]) -> None:
        raise AssertionError("no rejects expected")

    def event(self, message: str, **fields: Any) -> None:
        pass

    def units(self) -> list[Unit]:
        return [self.done[i] for i in sorted(self.done)]

    def pending(self) -> list[Unit]:
        return []

    def settled(self, unit: Unit) -> None:
        pass


def make_rows(n: int) -> pa.Table:
    """``n`` rows built with Arrow compute (no per-row Python)."""
    ids = pa.array(range(n), pa.int64())
    text_ids = pc.cast(ids, pa.string())
    emails = pc.binary_join_element_wise("user", text_ids, "@example.com", "")
    base = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    seconds = pc.multiply(pc.cast(ids, pa.int64()), 37)
    stamps = pc.add(
        pa.array([base] * 1, pa.timestamp("us", tz="UTC"))[0],
        pc.cast(pc.multiply(seconds, 1_000_000), pa.duration("us")),
    )
    days = pc.cast(
        pc.cast(pc.subtract(pc.multiply(pc.bit_wise_and(ids, 8191), 3), 20000), pa.int32()),
        pa.date32(),
    )
    score = pc.cast(
        pc.divide(pc.cast(pc.bit_wise_and(ids, 65535), pa.float64()), 7.0), pa.decimal128(12, 2)
    )
    return pa.table(
        {
            "id": ids,
            "email": emails,
            "tag": pc.if_else(pc.equal(pc.bit_wise_and(ids, 1), 0), "spring", 'say "hi", ok'),
            "score": score,
            "active": pc.equal(pc.bit_wise_and(ids, 3), 0),
            "updated_at": stamps,
            "birthday": days,
        }
    )


def source_of(table: pa.Table) -> Any:
    numbered = table.append_column("_seq", pa.array(range(table.num_rows), pa.int64()))

    def source(start: int, batch_rows: int) -> Any:
        for offset in range(start, numbered.num_rows, batch_rows):
            yield from numbered.slice(offset, batch_rows).combine_chunks().to_batches()

    return source


def baseline(url: str, table: pa.Table, name: str) -> float:
    """Seconds for psycopg's row-by-row binary COPY of the same rows."""
    with psycopg.connect(url) as conn:
        conn.execute(
            f'CREATE TABLE "{name}" (id bigint, email text, tag text, score numeric(12,2),'
            " active boolean, updated_at timestamptz, birthday date)"
        )
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f'COPY "{name}" FROM STDIN') as copy:
            for batch in table.to_batches(max_chunksize=50_000):
                for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                    copy.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute(f'DROP TABLE "{name}"')
    return elapsed


def main() -> None:
    """Run the benchmark and print its JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="postgresql://user@host:port/db")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--mode", choices=["append", "replace", "upsert"], default="append")
    parser.add_argument("--batch-rows", type=int, default=50_000)
    parser.add_argument("--baseline", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    rows = make_rows(args.rows)
    generated = time.perf_counter() - started
    table = f"bench_load_{uuid.uuid4().hex[:8]}"
    definition = PostgresDestination.model_validate(
        {
            "name": "bench",
            "type": "postgres",
            "url": args.url,
            "table": table,
            "mode": args.mode,
            "keys": ["id"] if args.mode == "upsert" else [],
        }
    )
    connector = PostgresConnector(definition, SecretResolver(Path(".")), batch_rows=args.batch_rows)
    context = DeliveryContext(
        run_id=f"bench-{uuid.uuid4().hex[:8]}",
        task="deliver:bench",
        as_of=datetime.datetime.now(datetime.UTC),
        timezone="UTC",
        activation_kind="campaign",
        activation="bench",
    )
    ledger = Ledger()
    try:
        started = time.perf_counter()
        result = deliver_task(connector, context, ledger, source_of(rows))
        ended = time.perf_counter()
        assert ledger.publish_started is not None
        with psycopg.connect(args.url) as conn:
            count = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        if count is None or count[0] != args.rows:
            raise SystemExit(f"expected {args.rows} rows in {table}, found {count}")
        load = ledger.publish_started - started
        report: dict[str, Any] = {
            "rows": args.rows,
            "mode": args.mode,
            "batch_rows": args.batch_rows,
            "units": len(result.units),
            "generate_seconds": round(generated, 3),
            "load_seconds": round(load, 3),
            "load_rows_per_second": round(args.rows / load),
            "publish_seconds": round(ended - ledger.publish_started, 3),
            "total_rows_per_second": round(args.rows / (ended - started)),
            "arrow_bytes": rows.nbytes,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        }
        if args.baseline:
            seconds = baseline(args.url, rows, table + "_baseline")
            report["baseline_row_by_row_seconds"] = round(seconds, 3)
            report["baseline_rows_per_second"] = round(args.rows / seconds)
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
