"""The mapper: columns in mapping order, constants, shrink, expansion, contiguous rows."""

import hashlib
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from pydantic import TypeAdapter

from activator.definitions.mapping import AttributeMapping, FieldMapping
from activator.errors import ConfigError
from activator.mapping.mapper import Mapper


def _mapping(data: dict[str, Any]) -> dict[str, FieldMapping]:
    return TypeAdapter(AttributeMapping).validate_python(data)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_no_mapping_passes_the_batch_through() -> None:
    batch = pa.RecordBatch.from_pydict({"a": [1, 2], "b": ["x", "y"]})
    for mapping in (None, {}):
        mapped = Mapper(mapping).apply(batch)
        assert mapped.batch.equals(batch)
        assert (mapped.rows_in, mapped.shrink, mapped.expansion) == (2, 0, 0)


def test_columns_follow_the_mapping_order_with_run_metadata_and_constants() -> None:
    mapping = _mapping(
        {
            "when": {
                "source": "run.time",
                "transforms": [{"format": {"pattern": "%Y-%m-%d %H:%M", "timezone": "Asia/Tokyo"}}],
            },
            "id": "customer_id",
            "campaign": "run.campaign",
            "country": {"value": "US"},
            "score": {"value": 3},
            "em": {"source": "email", "hash": "meta.email"},
        }
    )
    run = {"campaign": "spring", "time": datetime(2024, 3, 1, 20, 0, tzinfo=UTC)}
    batch = pa.RecordBatch.from_pydict(
        {"email": ["A@X.io", None], "customer_id": pa.array([7, 8], pa.int32()), "unused": [1, 2]}
    )
    mapped = Mapper(mapping, run).apply(batch)
    assert mapped.batch.schema.names == ["when", "id", "campaign", "country", "score", "em"]
    assert mapped.batch.schema.field("id").type == pa.int32()  # untransformed keeps its type
    assert mapped.batch.to_pylist() == [
        {
            "when": "2024-03-02 05:00",
            "id": 7,
            "campaign": "spring",
            "country": "US",
            "score": 3,
            "em": _sha("a@x.io"),
        },
        {
            "when": "2024-03-02 05:00",
            "id": 8,
            "campaign": "spring",
            "country": "US",
            "score": 3,
            "em": None,
        },
    ]


def test_required_fields_shrink_and_count_by_field() -> None:
    mapping = _mapping(
        {
            "id": "id",
            "em": {"source": "email", "hash": "meta.email", "required": True},
            "phone": {
                "source": "phone",
                "transforms": [{"e164": {"region": "US"}}],
                "required": True,
            },
            "tier": {"source": "tier", "transforms": [{"default": "bronze"}], "required": True},
        }
    )
    batch = pa.RecordBatch.from_pydict(
        {
            "id": [1, 2, 3, 4, 5],
            "email": ["a@x.io", "   ", "c@x.io", None, "e@x.io"],
            "phone": ["(650) 555-1212", "(650) 555-1213", "12", "nope", "+1 650 555 1214"],
            "tier": [None, "gold", "", None, "silver"],
        }
    )
    mapped = Mapper(mapping).apply(batch)
    assert mapped.batch.column("id").to_pylist() == [1, 5]
    assert mapped.batch.column("tier").to_pylist() == ["bronze", "silver"]
    assert mapped.shrink == 3
    assert mapped.shrink_by_field == {"em": 2, "phone": 2, "tier": 0}
    assert mapped.batch.num_rows == mapped.rows_in + mapped.expansion - mapped.shrink


def test_multi_valued_sources_expand_contiguously_in_input_order() -> None:
    mapping = _mapping(
        {"id": "id", "sku": "orders.sku", "email": {"source": "email", "transforms": ["lowercase"]}}
    )
    batch = pa.RecordBatch.from_pydict(
        {
            "id": [1, 2, 3, 4],
            "orders.sku": pa.array([["a", "b", "c"], [], None, ["d"]], pa.list_(pa.string())),
            "email": ["ONE", "TWO", "THREE", "FOUR"],
        }
    )
    mapped = Mapper(mapping).apply(batch)
    assert [(r["id"], r["sku"], r["email"]) for r in mapped.batch.to_pylist()] == [
        (1, "a", "one"), (1, "b", "one"), (1, "c", "one"),
        (2, None, "two"), (3, None, "three"), (4, "d", "four"),
    ]  # fmt: skip
    assert mapped.expansion == 2
    assert mapped.shrink == 0


def test_required_multi_valued_field_drops_customers_without_values() -> None:
    mapping = _mapping(
        {"id": "id", "sku": {"source": "orders.sku", "transforms": ["uppercase"], "required": True}}
    )
    batch = pa.RecordBatch.from_pydict(
        {
            "id": [1, 2, 3],
            "orders.sku": pa.array([["a", None], None, ["c"]], pa.large_list(pa.string())),
        }
    )
    mapped = Mapper(mapping).apply(batch)
    assert mapped.batch.to_pylist() == [{"id": 1, "sku": "A"}, {"id": 3, "sku": "C"}]
    assert (mapped.expansion, mapped.shrink, mapped.shrink_by_field) == (1, 2, {"sku": 2})


def test_two_multi_valued_fields_are_zipped_not_crossed() -> None:
    mapping = _mapping({"sku": "orders.sku", "price": "orders.price", "store": "visits.store"})
    full = pa.RecordBatch.from_pydict(
        {
            "orders.sku": pa.array([["a", "b"], ["c"]], pa.list_(pa.string())),
            "orders.price": pa.array([[1.0, 2.0], [3.0]], pa.list_(pa.float64())),
            "visits.store": pa.array([["s1"], ["s2", "s3", "s4"]], pa.list_(pa.string())),
        }
    )
    batch = full.slice(0)  # also through a slice: offsets are absolute into the values
    mapped = Mapper(mapping).apply(batch)
    assert [tuple(r.values()) for r in mapped.batch.to_pylist()] == [
        ("a", 1.0, "s1"), ("b", 2.0, None),
        ("c", 3.0, "s2"), (None, None, "s3"), (None, None, "s4"),
    ]  # fmt: skip
    assert mapped.expansion == 3
    second = Mapper(mapping).apply(full.slice(1))
    assert [r["store"] for r in second.batch.to_pylist()] == ["s2", "s3", "s4"]


def test_missing_column_and_missing_run_value_are_config_errors_naming_the_field() -> None:
    mapping = _mapping({"sku": "orders.sku"})
    with pytest.raises(
        ConfigError, match=r"mapping field 'sku': source column 'orders\.sku'"
    ) as caught:
        Mapper(mapping).apply(pa.RecordBatch.from_pydict({"email": ["x"]}))
    assert "table 'orders'" in str(caught.value)
    with pytest.raises(ConfigError, match=r"run\.group \(fields g\)"):
        Mapper(_mapping({"g": "run.group"}), {"campaign": "c"})


def test_type_errors_in_transforms_name_the_field() -> None:
    mapping = _mapping(
        {"joined": {"source": "joined", "transforms": [{"format": {"pattern": "%Y"}}]}}
    )
    with pytest.raises(ConfigError, match="mapping field 'joined': format needs a date"):
        Mapper(mapping).apply(pa.RecordBatch.from_pydict({"joined": [1]}))


def test_calling_the_mapper_adds_up_totals_for_the_runner() -> None:
    mapping = _mapping({"sku": {"source": "orders.sku", "required": True}})
    mapper = Mapper(mapping)
    batches = [
        pa.RecordBatch.from_pydict(
            {"orders.sku": pa.array([["a", "b"], None], pa.list_(pa.string()))}
        ),
        pa.RecordBatch.from_pydict(
            {"orders.sku": pa.array([["c"], ["d", "e", "f"]], pa.list_(pa.string()))}
        ),
    ]
    out = [mapper(batch) for batch in batches]
    assert [b.num_rows for b in out] == [2, 4]
    totals = mapper.totals
    assert (totals.rows_in, totals.rows_out, totals.expansion, totals.shrink) == (4, 6, 3, 1)
    assert totals.shrink_by_field == {"sku": 1}
