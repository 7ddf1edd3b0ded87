"""Transforms over Arrow arrays: string functions, defaults, dates, E.164 phones, SHA-256.

Everything works on a whole array at once: string functions are Arrow compute kernels,
SHA-256 runs in DuckDB over the Arrow data (Arrow has no SHA-256 kernel), and phone numbers
are settled from ``phonenumbers``' metadata with RE2 regexes when they are plain digits (see
:mod:`activator.mapping.phones`), the others parsed once per *distinct* value of the batch.
"""

from __future__ import annotations

__all__ = [
    "apply_transform",
    "as_text",
    "default",
    "e164",
    "empty_to_null",
    "format_time",
    "sha256_hex",
]

import threading
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from activator.definitions.mapping import (
    DefaultTransform,
    E164Transform,
    FormatOptions,
    FormatTransform,
    ReplaceTransform,
    Transform,
)
from activator.errors import ConfigError
from activator.mapping.phones import fast_e164


def as_text(array: pa.Array) -> pa.Array:
    """The array as UTF-8 strings (numbers and times in their canonical text form)."""
    if pa.types.is_string(array.type):
        return array
    if pa.types.is_large_string(array.type) or pa.types.is_string_view(array.type):
        return array.cast(pa.string())
    if pa.types.is_dictionary(array.type):
        return as_text(array.dictionary_decode())
    return pc.cast(array, pa.string())


def empty_to_null(array: pa.Array) -> pa.Array:
    """Empty strings become nulls (a value normalised to nothing is no value)."""
    return pc.if_else(pc.equal(array, ""), pa.scalar(None, array.type), array)


def default(array: pa.Array, value: Any) -> pa.Array:
    """Fills nulls (and, for strings, empty strings) with ``value``."""
    try:
        fill = pa.scalar(value).cast(array.type) if not pa.types.is_null(array.type) else None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        fill = None
    if fill is None:
        # A default of another type than the column (e.g. text for a number): the result is text.
        array, fill = as_text(array), pa.scalar(str(value), pa.string())
    if pa.types.is_string(array.type):
        array = empty_to_null(array)
    return pc.fill_null(array, fill)


def format_time(array: pa.Array, options: FormatOptions) -> pa.Array:
    """Formats dates and times with a ``strftime`` pattern, in a time zone.

    Timestamps with a time zone are converted to ``options.timezone``; timestamps without one
    are taken as UTC first. Dates are formatted as they are. Text is parsed with
    ``options.parse``; what does not parse becomes null.
    """
    from_text = pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
    if from_text:
        array = pc.strptime(as_text(array), format=options.parse, unit="us", error_is_null=True)
    elif not (pa.types.is_timestamp(array.type) or pa.types.is_date(array.type)):
        raise ConfigError(
            f"format needs a date, a timestamp or text, not {array.type}",
            hint="map a date or time column, or format it with `replace` instead",
        )
    if pa.types.is_timestamp(array.type) and options.timezone is not None:
        # Text parsed without an offset is a wall-clock time: it is shown as written.
        if array.type.tz is None and not from_text:
            array = array.cast(pa.timestamp(array.type.unit, "UTC"))
        if array.type.tz is not None:
            array = array.cast(pa.timestamp(array.type.unit, options.timezone))
    if pa.types.is_timestamp(array.type) and array.type.unit != "s" and "%f" not in options.pattern:
        # Arrow prints %S with the sub-second digits of the unit ("59.999999"); strftime's %S
        # is whole seconds. Truncate to seconds (fractions are kept only when asked for, %f).
        array = pc.floor_temporal(array, unit="second").cast(pa.timestamp("s", array.type.tz))
    return pc.strftime(array, format=options.pattern)


# The characters of RE2's `[\s().\-/]` (its `\s` is ASCII `[\t\n\f\r ]`), removed one literal at
# a time: three times faster than the regex replacement, which matches one character per call.
_PHONE_SEPARATORS = ("\t", "\n", "\f", "\r", " ", "(", ")", ".", "-", "/")


def e164(array: pa.Array, region: str | None, *, plus: bool = True) -> pa.Array:
    """Valid phone numbers in E.164 (``+14155550123``; without ``+`` if not ``plus``); else null.

    Numbers made of digits, with or without ``+``, are settled over the whole array with
    ``phonenumbers``' own metadata (:mod:`activator.mapping.phones`); the rest is parsed by
    ``phonenumbers`` once per distinct value. Both give the library's result, value for value.
    """
    # Separators phonenumbers ignores anyway go first, in Arrow: the parse is faster on bare
    # digits, and "(650) 555-1212" and "650.555.1212" become one distinct value.
    text = as_text(array)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    for separator in _PHONE_SEPARATORS:
        text = pc.replace_substring(text, pattern=separator, replacement="")
    result, settled = fast_e164(text, region, plus=plus)
    if pc.all(settled).as_py() is not False:
        return result
    unsettled = pc.invert(settled)
    parsed = _parse_each_distinct(pc.filter(text, unsettled), region, plus=plus)
    return pc.replace_with_mask(result, unsettled, parsed)


def _parse_each_distinct(text: pa.Array, region: str | None, *, plus: bool) -> pa.Array:
    # phonenumbers parses one string at a time: each distinct value once, spread back over the
    # rows with the dictionary indices.
    import phonenumbers  # lazy: its metadata loads on first use

    encoded = pc.dictionary_encode(text)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    formatted: list[str | None] = []
    for value in encoded.dictionary.to_pylist():
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            formatted.append(None)
            continue
        if phonenumbers.is_valid_number(number):
            e164_text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            formatted.append(e164_text if plus else e164_text[1:])
        else:
            formatted.append(None)
    return pc.take(pa.array(formatted, pa.string()), encoded.indices)


_duckdb = threading.local()


def _connection() -> Any:
    # One in-process DuckDB per thread (a connection is not shared between threads); one
    # worker thread each, as the runner already runs tasks side by side.
    connection = getattr(_duckdb, "connection", None)
    if connection is None:
        import duckdb

        connection = duckdb.connect(":memory:", config={"threads": 1})
        _duckdb.connection = connection
    return connection


def sha256_hex(array: pa.Array) -> pa.Array:
    """SHA-256 of each string's UTF-8 bytes as lowercase hex; nulls stay null.

    Runs in DuckDB over the Arrow data (zero-copy in, one string array out).
    """
    text = as_text(array)
    if len(text) == 0:
        return pa.array([], pa.string())
    relation = _connection().from_arrow(pa.table({"v": text}))
    result = relation.select("sha256(v) AS h").arrow().read_all()
    return result.column("h").combine_chunks().cast(pa.string())


def apply_transform(array: pa.Array, transform: Transform) -> pa.Array:
    """Applies one transform of a mapping to an array."""
    if transform == "trim":
        return pc.utf8_trim_whitespace(as_text(array))
    if transform == "lowercase":
        return pc.utf8_lower(as_text(array))
    if transform == "uppercase":
        return pc.utf8_upper(as_text(array))
    if transform == "digits":
        return pc.replace_substring_regex(as_text(array), pattern=r"\D", replacement="")
    if isinstance(transform, DefaultTransform):
        return default(array, transform.default)
    if isinstance(transform, FormatTransform):
        return format_time(array, transform.format)
    if isinstance(transform, E164Transform):
        return e164(array, transform.e164.region)
    if isinstance(transform, ReplaceTransform):
        options = transform.replace
        return pc.replace_substring_regex(
            as_text(array), pattern=options.pattern, replacement=options.with_
        )
    raise AssertionError(f"unhandled transform {transform!r}")  # the definition forbids it
