"""Benchmark of the attribute mapping on a realistic Meta mapping.

Usage:
    python bench/mapping.py [--rows 1000000] [--batch-rows 100000] [--seed 42]

Generates ``--rows`` customers in Arrow (mixed-case e-mails with stray spaces, US phone numbers
written nationally, all distinct, first and last names, a birth date and a signup timestamp),
then maps them batch by batch with :class:`activator.mapping.Mapper`:

- ``em``: ``meta.email`` (trim, lowercase, check, SHA-256), required;
- ``ph``: ``trim`` then ``e164`` with region US (vectorised from phonenumbers' metadata; the
  rest once per distinct value), then
  ``meta.phone`` (digits, SHA-256), required;
- ``fn`` / ``ln``: ``meta.fn`` / ``meta.ln``;
- ``db``: ``meta.db`` from a date; ``signup``: ``format`` in Europe/Paris.

It prints rows/s for the whole mapping and for the same mapping without the phone field (the
phone's leftovers are the one per-value step), and the time spent in each field alone.
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import TypeAdapter

from activator.definitions.mapping import AttributeMapping, FieldMapping
from activator.mapping.mapper import Mapper

MAPPING: dict[str, Any] = {
    "em": {"source": "email", "hash": "meta.email", "required": True},
    "ph": {
        "source": "phone",
        "transforms": ["trim", {"e164": {"region": "US"}}],
        "hash": "meta.phone",
        "required": True,
    },
    "fn": {"source": "first_name", "hash": "meta.fn"},
    "ln": {"source": "last_name", "hash": "meta.ln"},
    "db": {"source": "birth_date", "hash": "meta.db"},
    "signup": {
        "source": "signup_at",
        "transforms": [{"format": {"pattern": "%Y-%m-%dT%H:%M:%S%z", "timezone": "Europe/Paris"}}],
    },
}

FIRST = ["Mary", "John", "Valéry", "Zoë", "Ana-Lucía", "O'Neil", "Jean Luc", "정"]
LAST = ["Smith", "Müller", "van der Berg", "O'Brien", "García", "Nguyen", "Dupont-Moretti"]


def customers(rows: int, seed: int) -> pa.Table:
    """``rows`` synthetic customers, built with numpy and Arrow kernels (no Python loop)."""
    rng = np.random.default_rng(seed)
    ids = pa.array(np.arange(rows))
    email = pc.binary_join_element_wise(
        pa.array(np.where(rng.random(rows) < 0.3, "  User.", "user.")),
        pc.cast(ids, pa.string()),
        pa.array(np.where(rng.random(rows) < 0.5, "@Example.com ", "@gmail.com")),
        "",
    )
    # Distinct valid US numbers: area codes that exist, exchange 2xx-9xx, written nationally.
    area = rng.choice(np.array(["650", "415", "212", "617", "303"]), rows)
    line = np.arange(rows) % 10_000_000 + 2_000_000
    phone = pc.binary_join_element_wise(
        pa.array(area),
        pc.utf8_slice_codeunits(pc.cast(pa.array(line), pa.string()), 0, 3),
        pc.utf8_slice_codeunits(pc.cast(pa.array(line), pa.string()), 3, 7),
        "-",
    )
    phone = pc.binary_join_element_wise(pa.scalar("("), phone, "")
    phone = pc.replace_substring(phone, pattern="-", replacement=") ", max_replacements=1)
    birth = pa.array(rng.integers(-15_000, 12_000, rows).astype("datetime64[D]"))
    signup = pa.array(
        (rng.integers(1_500_000_000, 1_750_000_000, rows) * 1_000_000).astype("datetime64[us]")
    ).cast(pa.timestamp("us", "UTC"))
    return pa.table(
        {
            "email": email,
            "phone": phone,
            "first_name": pa.array(rng.choice(np.array(FIRST), rows)),
            "last_name": pa.array(rng.choice(np.array(LAST), rows)),
            "birth_date": birth,
            "signup_at": signup,
        }
    )


def run(mapping: dict[str, FieldMapping], table: pa.Table, batch_rows: int) -> tuple[float, int]:
    """Maps ``table`` batch by batch; returns (seconds, rows out)."""
    mapper = Mapper(mapping)
    start = time.perf_counter()
    for batch in table.to_batches(max_chunksize=batch_rows):
        mapper(batch)
    return time.perf_counter() - start, mapper.totals.rows_out


def main() -> None:
    """Runs the benchmark and prints the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    adapter = TypeAdapter(AttributeMapping)
    mapping = adapter.validate_python(MAPPING)
    table = customers(args.rows, args.seed).combine_chunks()
    machine = platform.processor() or platform.machine()
    print(f"{machine}, {args.rows:,} rows, batches of {args.batch_rows:,}")
    seconds, rows_out = run(mapping, table, args.batch_rows)
    assert rows_out == args.rows, f"every generated row is valid, got {rows_out}"
    print(f"whole mapping: {seconds:.2f} s, {args.rows / seconds:,.0f} rows/s")
    without_phone = {k: v for k, v in mapping.items() if k != "ph"}
    seconds, _ = run(without_phone, table, args.batch_rows)
    print(f"without the phone field: {seconds:.2f} s, {args.rows / seconds:,.0f} rows/s")
    for name, spec in mapping.items():
        seconds, _ = run({name: spec}, table, args.batch_rows)
        print(f"  {name:7} alone: {seconds:6.2f} s, {args.rows / seconds:12,.0f} rows/s")


if __name__ == "__main__":
    main()
