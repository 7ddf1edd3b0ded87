"""Benchmark of the file connector: mapped rows to gzip CSV and to Parquet.

Usage:
    python bench/files.py [--rows 1000000] [--batch-rows 10000] [--workdir DIR]

Builds a table of ``--rows`` rows and 10 columns (ints, strings with delimiters and quotes,
decimals, timestamps, booleans; some nulls) with DuckDB, then delivers it through
``deliver_task`` and the ``FileConnector`` to a local folder, once as gzip CSV and once as
Parquet (snappy), each as a single file with its manifest and ``.DONE``. Prints one JSON
object: per format the seconds, rows/s, the output's MB and MB/s, and the in-memory Arrow MB/s
(the input's size over the time). The lead compares it with DuckDB's own COPY.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from activator.definitions.files import FileDestination
from activator.destinations.base import SEQ_COLUMN, DeliveryContext, Unit
from activator.destinations.files import FileConnector
from activator.destinations.secrets import SecretResolver
from activator.runtime.delivery import deliver_task


@dataclass
class _Ledger:
    """The smallest ledger: units in memory (the metadata store's costs are not measured)."""

    done: dict[int, Unit] = field(default_factory=dict)

    def sending(self, unit: Unit) -> None:
        pass

    def delivered(self, unit: Unit) -> None:
        self.done[unit.index] = replace(unit)

    def rejected(self, unit: Unit, rows: pa.Table, reasons: list[str]) -> None:
        pass

    def event(self, message: str, **fields: Any) -> None:
        pass

    def units(self) -> list[Unit]:
        return [self.done[i] for i in sorted(self.done)]

    def pending(self) -> list[Unit]:
        return []

    def settled(self, unit: Unit) -> None:
        pass


def _table(rows: int) -> pa.Table:
    return duckdb.sql(
        f"""
        SELECT i AS {SEQ_COLUMN},
               i AS customer_id,
               'cust-' || i AS external_id,
               CASE WHEN i % 13 = 0 THEN NULL ELSE 'user' || i || '@example.com' END AS email,
               CASE i % 4 WHEN 0 THEN 'Dupont, "Jean"' WHEN 1 THEN 'Émilie' ELSE 'Smith' END
                   AS last_name,
               (i % 100000)::DECIMAL(12, 2) / 7 AS lifetime_value,
               i % 37 AS orders,
               TIMESTAMP '2024-01-01' + to_seconds(i) AS last_order_at,
               i % 3 = 0 AS opted_in,
               CASE WHEN i % 5 = 0 THEN NULL ELSE 'FR' END AS country,
               (i * 7919) % 1000 / 10.0 AS score
        FROM range({rows}) t(i)
        """
    ).fetch_arrow_table()


def _run(table: pa.Table, folder: Path, fmt: dict[str, Any], batch_rows: int) -> dict[str, Any]:
    definition = FileDestination.model_validate(
        {"name": "bench", "type": "local", "path": str(folder), "format": fmt}
    )
    context = DeliveryContext(
        run_id="bench", task="deliver:bench", as_of=datetime(2024, 1, 1, tzinfo=UTC),
        timezone="UTC", activation_kind="orchestration", activation="bench",
    )  # fmt: skip
    connector = FileConnector(definition, SecretResolver(folder, environ={}), folder)

    def source(start: int, _rows: int) -> Any:
        for offset in range(start, table.num_rows, batch_rows):
            yield from table.slice(offset, batch_rows).to_batches()

    began = time.perf_counter()
    result = deliver_task(connector, context, _Ledger(), source)
    seconds = time.perf_counter() - began
    size = result.published["bytes"]
    arrow = table.drop_columns([SEQ_COLUMN]).nbytes
    return {
        "seconds": round(seconds, 3),
        "rows_per_s": round(result.rows / seconds),
        "output_mb": round(size / 1e6, 1),
        "output_mb_per_s": round(size / 1e6 / seconds, 1),
        "arrow_mb_per_s": round(arrow / 1e6 / seconds, 1),
    }


def main() -> None:
    """Parse the arguments, run both formats, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    table = _table(args.rows)
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        out = {
            "rows": args.rows,
            "columns": table.num_columns - 1,
            "csv_gzip": _run(table, Path(work) / "csv", {"compression": "gzip"}, args.batch_rows),
            "parquet": _run(table, Path(work) / "pq", {"type": "parquet"}, args.batch_rows),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
