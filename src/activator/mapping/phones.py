"""E.164 phone numbers over whole Arrow arrays, from ``phonenumbers``' own metadata.

``phonenumbers`` parses one string at a time. Most phone numbers in a customer table are digits
written nationally (``6505551212``, ``0612345678``) or internationally (``+16505551212``) once
the separators are gone, and for those the library's decision only depends on regular
expressions and lengths of its metadata: the country code, the national prefix for parsing, the
international (IDD) prefix, the general and per-type national number patterns with their
possible lengths, and, for a country code shared by several regions, the leading digits. This
module replays ``phonenumbers.parse`` + ``is_valid_number`` + ``format_number(E164)`` step by
step on those shapes with Arrow kernels (RE2 regexes), and *settles* a row only when every step
it took is one replayed here. Everything else (letters, extensions, ``tel:``, IDD prefixes,
national prefixes with a transform rule, non-geographic country codes, unknown country codes)
is left unsettled for the per-value path, so the result is the library's, value for value.

The metadata patterns are used only when their syntax means the same in Python's ``re`` and in
RE2 (digits, ``\\d``, digit classes, groups, alternation, greedy or lazy quantifiers, ``$``),
checked once per region; a region that uses anything else is not replayed at all.
"""

from __future__ import annotations

__all__ = ["fast_e164"]

import functools
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# phonenumbers.parse's bounds on the national significant number (its module constants).
_MIN_NSN = 2
_MAX_NSN = 17
_MAX_INPUT = 250

# The number types is_valid_number accepts (_number_type_helper returns anything but UNKNOWN).
_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)

# Regex syntax that matches the same strings, with the same leftmost-first extent, in Python's
# `re` and in RE2 (e.g. `{,3}` is a quantifier in Python but literal text in RE2: not allowed).
_SAFE_SYNTAX = re.compile(
    r"(?:\\d|[0-9]|\[(?:[0-9]|\\d|-)+\]|\(\?:|[()|]|[?*+]\??|\{\d+(?:,\d*)?\}\??|\$)*"
)
_CAPTURING_GROUP = re.compile(r"\((?!\?)")

_DIGITS = r"^\+?[0-9]+$"


@dataclass(frozen=True)
class _Rules:
    """One region's metadata, as anchored RE2 patterns and per-length lookups."""

    region: str
    country_code: int
    general: str | None
    """``^(?:general pattern)$``; None if the region has none (nothing matches)."""
    general_lengths: tuple[int, ...]
    """The general description's possible lengths (empty: any)."""
    types: tuple[tuple[tuple[int, ...], str], ...]
    """(possible lengths, ``^(?:p1|p2…)$``) for the number types, grouped by lengths."""
    keep_stripped: tuple[bool, ...]
    """By length (capped at the last index): the length test lets parse keep a number whose
    national prefix was stripped (anything but too short, local only or invalid length)."""
    too_long: tuple[bool, ...]
    """By length (capped): the length test says TOO_LONG."""
    prefix: str | None
    """``^(?:national prefix for parsing)`` with its groups made non-capturing; None if none."""
    prefix_literal: str | None
    """The national prefix for parsing when it is plain digits (a faster test)."""
    prefix_transform: bool
    """The region rewrites its national prefix with a transform rule (not replayed)."""
    idd: str | None
    """``^(?:international prefix)``; None if none."""
    leading: str | None
    """``^(?:leading digits)`` for a region sharing its country code; None if none."""


def _anchored(pattern: str | None, *, full: bool) -> str | None:
    if not pattern:
        return None
    if _SAFE_SYNTAX.fullmatch(pattern) is None:
        raise _Unsupported(pattern)
    return f"^(?:{pattern})$" if full else f"^(?:{pattern})"


class _Unsupported(Exception):
    """A metadata pattern outside the syntax that means the same in ``re`` and RE2."""


def _by_length(metadata: Any) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
    from phonenumbers import ValidationResult
    from phonenumbers.phonenumberutil import _test_number_length

    # The length test only looks at the length: ask the library itself for each length, up to
    # one past the longest possible length (every longer number answers like that one).
    general = metadata.general_desc
    longest = max([*general.possible_length, *general.possible_length_local_only, _MAX_NSN]) + 1
    results = [_test_number_length("0" * length, metadata) for length in range(longest + 1)]
    rejected = (
        ValidationResult.TOO_SHORT,
        ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
        ValidationResult.INVALID_LENGTH,
    )
    keep = tuple(result not in rejected for result in results)
    return keep, tuple(result == ValidationResult.TOO_LONG for result in results)


@functools.cache
def _region_rules(region: str) -> _Rules | None:
    """The region's rules, or None when its metadata cannot be replayed in RE2."""
    from phonenumbers import PhoneMetadata

    metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None or metadata.general_desc is None or metadata.country_code is None:
        return None
    general = metadata.general_desc
    try:
        groups: dict[tuple[int, ...], list[str]] = {}
        for name in _TYPES:
            if name == "mobile" and metadata.same_mobile_and_fixed_line_pattern:
                continue  # _number_type_helper skips it: only fixed_line's lengths count
            desc = getattr(metadata, name)
            if desc is None or not desc.national_number_pattern:
                continue
            _anchored(desc.national_number_pattern, full=True)  # checks the syntax
            groups.setdefault(tuple(desc.possible_length), []).append(desc.national_number_pattern)
        types = tuple(
            (lengths, f"^(?:{'|'.join(f'(?:{p})' for p in patterns)})$")
            for lengths, patterns in groups.items()
        )
        npfp = metadata.national_prefix_for_parsing or None
        prefix = _anchored(npfp, full=False)
        if prefix is not None:
            prefix = _CAPTURING_GROUP.sub("(?:", prefix)
        keep, too_long = _by_length(metadata)
        return _Rules(
            region=region,
            country_code=metadata.country_code,
            general=_anchored(general.national_number_pattern, full=True),
            general_lengths=tuple(general.possible_length),
            types=types,
            keep_stripped=keep,
            too_long=too_long,
            prefix=prefix,
            prefix_literal=npfp if npfp is not None and re.fullmatch("[0-9]+", npfp) else None,
            prefix_transform=bool(metadata.national_prefix_transform_rule),
            idd=_anchored(metadata.international_prefix, full=False),
            leading=_anchored(metadata.leading_digits, full=False),
        )
    except _Unsupported:
        return None


@functools.cache
def _country_rules(country_code: int) -> tuple[_Rules, ...] | None:
    """The rules of the regions sharing a country code, main region first; None if any of them
    cannot be replayed (or the code is non-geographic, ``001``)."""
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    rules = [_region_rules(region) for region in regions if region != "001"]
    if not regions or len(rules) != len(regions) or any(r is None for r in rules):
        return None
    return tuple(r for r in rules if r is not None)


@functools.cache
def _supported_regions() -> frozenset[str]:
    from phonenumbers import SUPPORTED_REGIONS

    return frozenset(SUPPORTED_REGIONS)


@functools.cache
def _country_codes() -> pa.Array:
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

    return pa.array(sorted(str(code) for code in COUNTRY_CODE_TO_REGION_CODE), pa.string())


def _matches(text: pa.Array, pattern: str | None) -> pa.Array:
    if pattern is None:
        return pc.fill_null(pa.nulls(len(text), pa.bool_()), False)
    return pc.fill_null(pc.match_substring_regex(text, pattern=pattern), False)


def _lookup(table: tuple[bool, ...], text: pa.Array) -> pa.Array:
    lengths = pc.min_element_wise(pc.utf8_length(text), len(table) - 1)
    return pc.fill_null(pc.take(pa.array(table, pa.bool_()), lengths), False)


def _strip_national_prefix(number: pa.Array, rules: _Rules) -> tuple[pa.Array, pa.Array]:
    """``_maybe_strip_national_prefix_carrier_code``: (number, rows not replayed)."""
    if rules.prefix is None:
        return number, _matches(number, None)
    if rules.prefix_literal is not None:
        matched = pc.fill_null(pc.starts_with(number, pattern=rules.prefix_literal), False)
        rest = pc.utf8_slice_codeunits(number, start=len(rules.prefix_literal))
    else:
        matched = _matches(number, rules.prefix)
        rest = pc.replace_substring_regex(
            number, pattern=rules.prefix, replacement="", max_replacements=1
        )
    if rules.prefix_transform:
        return number, matched  # a rewrite, not a strip: left to phonenumbers
    if not pc.any(matched).as_py():
        return number, matched
    # Stripped unless that turns a number matching the general pattern into one that does not.
    spoils = pc.and_(_matches(number, rules.general), pc.invert(_matches(rest, rules.general)))
    return pc.if_else(pc.and_(matched, pc.invert(spoils)), rest, number), _matches(number, None)


def _significant(number: pa.Array, rules: _Rules) -> tuple[pa.Array, pa.Array]:
    """parse's last step: the national prefix goes if the length test allows it."""
    stripped, unsettled = _strip_national_prefix(number, rules)
    return pc.if_else(_lookup(rules.keep_stripped, stripped), stripped, number), unsettled


def _matching_desc(
    number: pa.Array, lengths: pa.Array, possible: tuple[int, ...], pattern: str | None
) -> pa.Array:
    # _is_number_matching_desc: the length first (when the description lists any), then a full
    # match of the pattern.
    matched = _matches(number, pattern)
    if possible:
        matched = pc.and_(matched, pc.is_in(lengths, value_set=pa.array(possible, pa.int32())))
    return matched


def _has_type(number: pa.Array, rules: _Rules) -> pa.Array:
    """``_number_type_helper(...) != UNKNOWN``."""
    lengths = pc.utf8_length(number)
    valid = _matches(number, None)
    for possible, pattern in rules.types:
        valid = pc.or_(valid, _matching_desc(number, lengths, possible, pattern))
    general = _matching_desc(number, lengths, rules.general_lengths, rules.general)
    return pc.and_(general, valid)


def _is_valid(number: pa.Array, country: tuple[_Rules, ...]) -> pa.Array:
    """``is_valid_number`` of numbers with this country code (national significant numbers)."""
    if len(country) == 1:
        return _has_type(number, country[0])
    # region_code_for_number: the first region whose leading digits start the number decides,
    # or, without leading digits, the first one the number is valid for.
    valid = _matches(number, None)
    undecided = pc.is_valid(number)
    for rules in country:
        if not pc.any(undecided).as_py():
            break
        subset = pc.filter(number, undecided)
        has_type = _has_type(subset, rules)
        hit = has_type if rules.leading is None else _matches(subset, rules.leading)
        valid = pc.replace_with_mask(valid, undecided, pc.and_(hit, has_type))
        undecided = pc.replace_with_mask(undecided, undecided, pc.invert(hit))
    return valid


def _formatted(number: pa.Array, valid: pa.Array, country_code: int, plus: bool) -> pa.Array:
    prefix = f"+{country_code}" if plus else str(country_code)
    joined = pc.binary_join_element_wise(pa.scalar(prefix), number, "")
    return pc.if_else(valid, joined, pa.scalar(None, pa.string()))


def _finish(
    number: pa.Array, strip: _Rules, country: tuple[_Rules, ...], plus: bool
) -> tuple[pa.Array, pa.Array]:
    """From the national number parse found to E.164 text (or null): (result, unsettled).

    ``strip`` is the region whose national prefix parse strips; ``country`` the regions of the
    country code, which decide validity.
    """
    # Fewer than two digits: TOO_SHORT_NSN, before the prefix is stripped.
    too_short = pc.less(pc.utf8_length(number), _MIN_NSN)
    significant, unsettled = _significant(number, strip)
    length = pc.utf8_length(significant)
    possible = pc.and_(
        pc.invert(too_short),
        pc.and_(pc.greater_equal(length, _MIN_NSN), pc.less_equal(length, _MAX_NSN)),
    )
    valid = pc.and_(possible, _is_valid(significant, country))
    return _formatted(significant, valid, country[0].country_code, plus), unsettled


def _international(text: pa.Array, plus: bool) -> tuple[pa.Array, pa.Array]:
    """``+<digits>``: (result, settled) for the country codes that can be replayed."""
    result = pa.nulls(len(text), pa.string())
    settled = _matches(text, None)
    codes = _country_codes()
    # Country codes are a prefix code: at most one of the 1-, 2- and 3-digit prefixes is one.
    code = pa.nulls(len(text), pa.string())
    for width in (3, 2, 1):
        candidate = pc.utf8_slice_codeunits(text, start=1, stop=1 + width)
        code = pc.if_else(pc.is_in(candidate, value_set=codes), candidate, code)
    for value in pc.unique(pc.drop_null(code)).to_pylist():
        country = _country_rules(int(value))
        if country is None:
            continue
        rows = pc.fill_null(pc.equal(code, value), False)
        subset = pc.filter(text, rows)
        # With a "+", parse strips the national prefix of the code's main region.
        number = pc.utf8_slice_codeunits(subset, start=1 + len(value))
        out, unsettled = _finish(number, country[0], country, plus)
        result = pc.replace_with_mask(result, rows, out)
        settled = pc.replace_with_mask(settled, rows, pc.invert(unsettled))
    return result, settled


def _national(
    text: pa.Array, rules: _Rules, country: tuple[_Rules, ...], plus: bool
) -> tuple[pa.Array, pa.Array]:
    """Digits without ``+``, with a default region: (result, unsettled)."""
    # An international (IDD) prefix makes it an international number: left to phonenumbers.
    unsettled = _matches(text, rules.idd)
    # _maybe_extract_country_code: a number starting with the region's country code loses it
    # when the rest matches the general pattern but the whole does not, or the whole is too long.
    code = str(rules.country_code)
    starts = pc.fill_null(pc.starts_with(text, pattern=code), False)
    number, without_code = text, _matches(text, None)
    if pc.any(starts).as_py():
        subset = pc.filter(text, starts)
        rest = pc.utf8_slice_codeunits(subset, start=len(code))
        rest, rest_unsettled = _strip_national_prefix(rest, rules)
        drop = pc.or_(
            pc.and_(pc.invert(_matches(subset, rules.general)), _matches(rest, rules.general)),
            _lookup(rules.too_long, subset),
        )
        without_code = pc.replace_with_mask(without_code, starts, drop)
        number = pc.replace_with_mask(text, starts, pc.if_else(drop, rest, subset))
        unsettled = pc.replace_with_mask(
            unsettled, starts, pc.or_(pc.filter(unsettled, starts), rest_unsettled)
        )
    # parse strips the national prefix with the metadata of the country code's main region when
    # it found the code in the number (CA → US), else with the default region's.
    main = country[0]
    result, last_unsettled = _finish(number, main, country, plus)
    if main.region != rules.region:
        alone, alone_unsettled = _finish(number, rules, country, plus)
        result = pc.if_else(without_code, result, alone)
        last_unsettled = pc.if_else(without_code, last_unsettled, alone_unsettled)
    return result, pc.or_(unsettled, last_unsettled)


def fast_e164(text: pa.Array, region: str | None, *, plus: bool) -> tuple[pa.Array, pa.Array]:
    """E.164 text of the rows whose parse is replayed here.

    Args:
        text: The phone numbers with separators already removed (``string``).
        region: The default region, as given to ``phonenumbers.parse``.
        plus: Keep the ``+``.

    Returns:
        ``(result, settled)``: ``result`` holds the E.164 text, or null for an invalid number,
        wherever ``settled`` is true (null inputs are settled, as null); the other rows must go
        through ``phonenumbers`` one value at a time.
    """
    result = pa.nulls(len(text), pa.string())
    settled = pc.is_null(text)
    digits = _matches(text, _DIGITS)
    length = pc.utf8_length(text)
    plus_sign = pc.fill_null(pc.starts_with(text, pattern="+"), False)
    # "+" and at least three digits (phonenumbers finds no viable number in fewer); national
    # numbers of at least two digits; both within parse's maximum input length.
    short = pc.if_else(plus_sign, 4, _MIN_NSN)
    shaped = pc.fill_null(
        pc.and_(
            digits,
            pc.and_(pc.greater_equal(length, short), pc.less_equal(length, _MAX_INPUT)),
        ),
        False,
    )
    international = pc.and_(shaped, plus_sign)
    if pc.any(international).as_py():
        out, done = _international(pc.filter(text, international), plus)
        result = pc.replace_with_mask(result, international, out)
        settled = pc.replace_with_mask(settled, international, done)
    # parse checks the region as given (case-sensitively) and then reads its metadata.
    rules = _region_rules(region) if region in _supported_regions() else None
    country = _country_rules(rules.country_code) if rules is not None else None
    if rules is not None and country is not None:
        national = pc.and_(shaped, pc.invert(plus_sign))
        if pc.any(national).as_py():
            out, unsettled = _national(pc.filter(text, national), rules, country, plus)
            result = pc.replace_with_mask(result, national, out)
            settled = pc.replace_with_mask(settled, national, pc.invert(unsettled))
    return result, settled
