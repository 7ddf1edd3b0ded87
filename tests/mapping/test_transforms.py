"""Transforms over Arrow arrays: each one, nulls, defaults, dates in a time zone, E.164, SHA-256."""

import hashlib
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activator.definitions.mapping import FieldMapping, FormatOptions
from activator.errors import ConfigError
from activator.mapping.transforms import apply_transform, default, e164, format_time, sha256_hex


def _run(values: Any, *transforms: Any, type_: pa.DataType | None = None) -> list[Any]:
    spec = FieldMapping.model_validate({"source": "x", "transforms": list(transforms)})
    array = pa.array(values, type_)
    for transform in spec.transforms:
        array = apply_transform(array, transform)
    return list(array.to_pylist())


def test_string_transforms_keep_nulls() -> None:
    assert _run(["  Ab c\t", None], "trim") == ["Ab c", None]
    assert _run(["ÉcOLE", None], "lowercase") == ["école", None]
    assert _run(["café", None], "uppercase") == ["CAFÉ", None]
    assert _run(["+1 (650) 555-1212", None], "digits") == ["16505551212", None]
    assert _run(["a-b_c", None], {"replace": {"pattern": "[-_]", "with": " "}}) == ["a b c", None]
    # String transforms work on numbers through their text form.
    assert _run([12, None], "trim", type_=pa.int64()) == ["12", None]


def test_default_fills_nulls_and_empty_strings_and_keeps_the_column_type() -> None:
    assert _run([None, "", "gold"], {"default": "bronze"}, "uppercase") == [
        "BRONZE",
        "BRONZE",
        "GOLD",
    ]
    filled = default(pa.array([None, 3], pa.int32()), 7)
    assert filled.type == pa.int32()
    assert filled.to_pylist() == [7, 3]
    # A default of another type turns the column to text rather than failing.
    assert default(pa.array([None, 3]), "none").to_pylist() == ["none", "3"]


def test_format_converts_aware_and_utc_naive_timestamps_to_the_zone() -> None:
    options = FormatOptions(pattern="%Y-%m-%d %H:%M", timezone="Europe/Paris")
    aware = pa.array([datetime(2024, 1, 1, 23, 30, tzinfo=UTC), None], pa.timestamp("us", "UTC"))
    assert format_time(aware, options).to_pylist() == ["2024-01-02 00:30", None]
    summer = pa.array([datetime(2024, 7, 1, 22, 30)], pa.timestamp("ms"))  # naive → UTC
    assert format_time(summer, options).to_pylist() == ["2024-07-02 00:30"]
    no_zone = FormatOptions(pattern="%Y-%m-%dT%H:%M")
    assert format_time(summer, no_zone).to_pylist() == ["2024-07-01T22:30"]


def test_format_shows_whole_seconds_like_strftime() -> None:
    late = datetime(2026, 1, 2, 23, 59, 59, 999999, tzinfo=UTC)
    for unit in ("ms", "us", "ns"):
        array = pa.array([late, None], pa.timestamp(unit, "UTC"))
        options = FormatOptions(pattern="%Y-%m-%dT%H:%M:%S%z", timezone="Europe/Paris")
        assert format_time(array, options).to_pylist() == ["2026-01-03T00:59:59+0100", None]
    naive = pa.array([datetime(2026, 1, 2, 8, 0, 1, 500000)], pa.timestamp("us"))
    assert format_time(naive, FormatOptions(pattern="%H:%M:%S")).to_pylist() == ["08:00:01"]


def test_format_dates_and_text() -> None:
    options = FormatOptions(pattern="%d/%m/%Y", timezone="America/New_York")
    assert format_time(pa.array([date(1997, 2, 16)]), options).to_pylist() == ["16/02/1997"]
    text = pa.array(["1997-02-16", "16.02.1997", None])
    assert format_time(text, options).to_pylist() == ["16/02/1997", None, None]
    german = FormatOptions(pattern="%Y%m%d", parse="%d.%m.%Y")
    assert format_time(text, german).to_pylist() == [None, "19970216", None]
    with pytest.raises(ConfigError, match="format needs a date"):
        format_time(pa.array([1, 2]), options)


def test_e164_with_default_regions_and_invalid_numbers() -> None:
    values = pa.array(
        [
            "(650) 555-1212",  # US national
            "+44 20 7183 8750",  # already international
            "06 12 34 56 78",  # FR national with its trunk 0
            "12",  # too short
            "not a phone",
            None,
            "(650) 555-1212",  # repeated: parsed once, result spread back
        ]
    )
    assert e164(values, "US").to_pylist() == [
        "+16505551212", "+442071838750", None, None, None, None, "+16505551212",
    ]  # fmt: skip
    assert e164(values, "FR").to_pylist()[2] == "+33612345678"
    # Without a region only international numbers parse.
    assert e164(values, None).to_pylist()[:3] == [None, "+442071838750", None]
    assert e164(values, "US", plus=False).to_pylist()[0] == "16505551212"
    assert _run(["+1 650 555 1212"], "e164") == ["+16505551212"]
    # Italian numbers keep their leading zero; separators and dots do not matter.
    assert e164(pa.array(["+39 06 1234 5678", "650.555.1212"]), "US").to_pylist() == [
        "+390612345678", "+16505551212",
    ]  # fmt: skip


def test_e164_of_a_dictionary_or_sliced_array() -> None:
    values = pa.array(["x", "(650) 555-1212", "(650) 555-1212"]).dictionary_encode()
    assert e164(values, "US").to_pylist() == [None, "+16505551212", "+16505551212"]
    assert e164(pa.array(["1", "+16505551212"])[1:], None).to_pylist() == ["+16505551212"]


def test_sha256_is_lowercase_hex_of_utf8_and_keeps_nulls() -> None:
    values = ["john_smith@gmail.com", "Valéry", "", None]
    expected = [hashlib.sha256(v.encode()).hexdigest() if v is not None else None for v in values]
    assert sha256_hex(pa.array(values)).to_pylist() == expected
    assert sha256_hex(pa.array([], pa.string())).to_pylist() == []
    assert sha256_hex(pa.array(["a"], pa.large_string())).type == pa.string()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text()), max_size=40))
def test_sha256_matches_hashlib_on_random_text(values: list[str | None]) -> None:
    expected = [hashlib.sha256(v.encode()).hexdigest() if v is not None else None for v in values]
    assert sha256_hex(pa.array(values, pa.string())).to_pylist() == expected
