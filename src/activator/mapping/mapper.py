"""The mapper: a source batch in, the destination's rows out, with shrink and expansion counted.

Steps for one batch, all over whole Arrow arrays:

1. **Expansion.** A source whose Arrow type is a list (a related table with several rows per
   customer, e.g. ``orders.sku``) makes one output row per element. When several fields are
   multi-valued, their lists are *zipped*: a customer gets as many rows as their longest
   list, and shorter lists are padded with nulls (fields of one related table stay aligned
   row by row; no cross product). An empty or null list still gives one row, with a null.
   Single-valued fields are repeated on each of the customer's rows, which stay contiguous and
   in input order.
2. **Transforms**, then the platform **hash**, per field.
3. **Shrink.** Rows where a required field is null or empty are dropped and counted, overall
   and per field (a row missing two required fields counts once overall, once per field).

Output rows = input rows + expansion − shrink.
"""

from __future__ import annotations

__all__ = ["MappedBatch", "Mapper", "MappingTotals", "merged_sources"]

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from activator.definitions.mapping import FieldMapping, MappingSources, SourceRef, mapping_sources
from activator.errors import ConfigError
from activator.mapping.platforms import hash_for_platform
from activator.mapping.transforms import apply_transform


@dataclass(frozen=True)
class MappedBatch:
    """One mapped batch and what the mapping did to its row count.

    Attributes:
        batch: The destination rows; columns are the destination fields in mapping order.
        rows_in: Source rows received.
        expansion: Extra rows made by multi-valued sources.
        shrink: Rows dropped because a required field was missing.
        shrink_by_field: Required field → rows where it was missing.
    """

    batch: pa.RecordBatch
    rows_in: int
    expansion: int = 0
    shrink: int = 0
    shrink_by_field: dict[str, int] = field(default_factory=dict)


@dataclass
class MappingTotals:
    """Counts summed over every batch a :class:`Mapper` was called on (for the run report)."""

    rows_in: int = 0
    rows_out: int = 0
    expansion: int = 0
    shrink: int = 0
    shrink_by_field: dict[str, int] = field(default_factory=dict)

    def add(self, mapped: MappedBatch) -> None:
        """Adds one batch's counts."""
        self.rows_in += mapped.rows_in
        self.rows_out += mapped.batch.num_rows
        self.expansion += mapped.expansion
        self.shrink += mapped.shrink
        for name, count in mapped.shrink_by_field.items():
            self.shrink_by_field[name] = self.shrink_by_field.get(name, 0) + count


def _is_list(data_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(data_type)
        or pa.types.is_large_list(data_type)
        or pa.types.is_fixed_size_list(data_type)
    )


class Mapper:
    """Applies an attribute mapping to source batches.

    Args:
        mapping: Destination field → spec (a definition's ``mapping``). Empty or None passes
            the batch through unchanged.
        run_values: Run metadata for ``run.<name>`` sources (``campaign``, ``group``, ``time``,
            ...); each becomes a constant column.
        row_values: Run metadata that varies by row (a campaign file with every group in it),
            as ``run.<name>`` → the batch column holding it.

    Raises:
        ConfigError: A ``run.<name>`` source has no value in ``run_values``.

    A mapper is also the runner's ``Mapper`` callable (batch → batch); called that way it adds
    each batch's counts to :attr:`totals`.
    """

    def __init__(
        self,
        mapping: Mapping[str, FieldMapping] | None,
        run_values: Mapping[str, Any] | None = None,
        row_values: Mapping[str, str] | None = None,
    ) -> None:
        self.mapping: dict[str, FieldMapping] = dict(mapping or {})
        self.run_values: dict[str, Any] = dict(run_values or {})
        self.row_values: dict[str, str] = dict(row_values or {})
        self.totals = MappingTotals()
        self.sources = mapping_sources(self.mapping)
        missing = [
            name
            for name in self.sources.run
            if name not in self.run_values and name not in self.row_values
        ]
        if missing:
            fields = [
                f for f, s in self.mapping.items() if s.source in {f"run.{m}" for m in missing}
            ]
            raise ConfigError(
                f"the mapping uses run metadata this run does not have: "
                f"{', '.join('run.' + m for m in missing)} (fields {', '.join(fields)})",
                hint="map these fields to a column or a constant `value:` instead",
            )

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Maps a batch for the delivery runner, adding its counts to :attr:`totals`."""
        mapped = self.apply(batch)
        self.totals.add(mapped)
        return mapped.batch

    def apply(self, batch: pa.RecordBatch) -> MappedBatch:
        """Maps one source batch (columns named by their source string, e.g. ``orders.sku``)."""
        rows_in = batch.num_rows
        if not self.mapping:
            return MappedBatch(batch, rows_in)
        raw = {name: self._source_column(name, spec, batch) for name, spec in self.mapping.items()}
        columns, rows = self._expand(raw, rows_in)
        expansion = rows - rows_in
        out: dict[str, pa.Array] = {}
        for name, spec in self.mapping.items():
            array = columns[name] if name in columns else self._constant(spec, rows)
            try:
                for transform in spec.transforms:
                    array = apply_transform(array, transform)
                if spec.hash_key is not None:
                    array = hash_for_platform(spec.hash_key, array, spec.hash_region)
            except ConfigError as error:
                raise ConfigError(
                    f"mapping field {name!r}: {error.message}", hint=error.hint
                ) from None
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise ConfigError(
                    f"mapping field {name!r}: cannot apply its transforms to a {array.type} "
                    f"source ({error})",
                    hint="check the transforms against the source column's type",
                ) from None
            out[name] = array
        keep, shrink_by_field = self._required(out, rows)
        result = pa.RecordBatch.from_pydict(out)
        shrink = 0
        if keep is not None:
            result = result.filter(keep)
            shrink = rows - result.num_rows
        return MappedBatch(result, rows_in, expansion, shrink, shrink_by_field)

    def _source_column(
        self, name: str, spec: FieldMapping, batch: pa.RecordBatch
    ) -> pa.Array | None:
        ref = spec.source_ref
        if ref is not None and ref.kind == "run" and ref.name in self.row_values:
            return batch.column(self.row_values[ref.name])
        if ref is None or ref.kind == "run":
            return None
        index = batch.schema.get_field_index(ref.text)
        if index < 0:
            raise ConfigError(
                f"mapping field {name!r}: source column {ref.text!r} is not in the batch "
                f"(columns: {', '.join(batch.schema.names)})",
                hint=_missing_hint(ref),
            )
        return batch.column(index)

    def _constant(self, spec: FieldMapping, rows: int) -> pa.Array:
        ref = spec.source_ref
        value = self.run_values[ref.name] if ref is not None else spec.value
        scalar = pa.scalar(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            scalar = pa.scalar(value, pa.timestamp("us"))
        return pa.repeat(scalar, rows)

    def _expand(
        self, raw: dict[str, pa.Array | None], rows: int
    ) -> tuple[dict[str, pa.Array], int]:
        """Explodes list columns (zipped), repeating the other columns; returns the row count."""
        lists = {name: a for name, a in raw.items() if a is not None and _is_list(a.type)}
        if not lists:
            return {name: a for name, a in raw.items() if a is not None}, rows
        lengths = [
            pc.fill_null(pc.list_value_length(a), 0).to_numpy(zero_copy_only=False).astype(np.int64)
            for a in lists.values()
        ]
        counts = np.maximum(np.maximum.reduce(lengths), 1)
        parent = np.repeat(np.arange(rows, dtype=np.int64), counts)
        starts = np.cumsum(counts) - counts
        position = np.arange(len(parent), dtype=np.int64) - np.repeat(starts, counts)
        parent_index = pa.array(parent)
        columns: dict[str, pa.Array] = {}
        for name, array in raw.items():
            if array is None:
                continue
            if name in lists:
                columns[name] = _elements(array, parent, position)
            else:
                columns[name] = array.take(parent_index)
        return columns, len(parent)

    def _required(
        self, out: dict[str, pa.Array], rows: int
    ) -> tuple[pa.Array | None, dict[str, int]]:
        keep: pa.Array | None = None
        by_field: dict[str, int] = {}
        for name, spec in self.mapping.items():
            if not spec.required:
                continue
            array = out[name]
            missing = pc.is_null(array)
            if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
                missing = pc.or_kleene(missing, pc.fill_null(pc.equal(array, ""), False))
            by_field[name] = int(pc.sum(missing).as_py() or 0)
            present = pc.invert(missing)
            keep = present if keep is None else pc.and_(keep, present)
        return keep, by_field


def _elements(array: pa.Array, parent: np.ndarray, position: np.ndarray) -> pa.Array:
    """Element ``position`` of list ``parent`` for each output row (null past a list's end)."""
    if pa.types.is_fixed_size_list(array.type):
        array = array.cast(pa.list_(array.type.value_type))
    offsets = array.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
    index = offsets[parent] + position
    # Past the end of a shorter (or empty, or null) list: a null index takes a null.
    index_array = pa.array(index, mask=position >= lengths[parent])
    return array.values.take(index_array)


def _missing_hint(ref: SourceRef) -> str:
    if ref.kind == "related":
        return (
            f"the runner selects related columns as '{ref.text}'; check that table "
            f"{ref.table!r} and its column {ref.name!r} exist in the data model"
        )
    return f"check that the customer table has a column {ref.name!r}"


def merged_sources(mappers: list[Mapper | None]) -> MappingSources | None:
    """What several deliveries' mappings read together, so one query serves them all (None:
    one of them has no mapping and sends the customer table's columns as they are)."""
    if any(m is None for m in mappers):
        return None
    merged: dict[str, Any] = {}
    for mapper in mappers:
        assert mapper is not None
        merged.update(mapper.mapping)
    return mapping_sources(merged)
