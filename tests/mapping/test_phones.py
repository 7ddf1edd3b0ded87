"""The vectorised E.164 path gives phonenumbers' result, value for value.

The reference is the per-value path: the same separator stripping in Arrow, then
``phonenumbers.parse`` + ``is_valid_number`` + ``format_number(E164)`` on each value.
"""

from __future__ import annotations

import random

import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata, PhoneNumberFormat, PhoneNumberType

from activator.mapping import phones
from activator.mapping.phones import fast_e164
from activator.mapping.transforms import e164

REGIONS = ["US", "CA", "GB", "FR", "DE", "IT", "ES", "NL", "AU", "BR", "IN", "JP"]
TYPES = [
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
]
SEPARATORS = r"[\s().\-/]"  # as e164 strips them


def _per_value(values: list[str | None], region: str | None, plus: bool = True) -> list[str | None]:
    stripped = pc.replace_substring_regex(pa.array(values, pa.string()), SEPARATORS, "")
    out: list[str | None] = []
    for value in stripped.to_pylist():
        if value is None:
            out.append(None)
            continue
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            out.append(None)
            continue
        if not phonenumbers.is_valid_number(number):
            out.append(None)
            continue
        text = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        out.append(text if plus else text[1:])
    return out


def _settled(values: list[str], region: str | None) -> list[bool]:
    text = pc.replace_substring_regex(pa.array(values, pa.string()), SEPARATORS, "")
    return list(fast_e164(text, region, plus=True)[1].to_pylist())


def _examples(region: str) -> list[str]:
    """National significant numbers of phonenumbers' example numbers for every type."""
    numbers = (phonenumbers.example_number_for_type(region, kind) for kind in TYPES)
    return [phonenumbers.national_significant_number(n) for n in numbers if n is not None]


def _written(region: str, nsn: str, rng: random.Random) -> list[str]:
    """The ways people write a number: nationally, with the trunk prefix, with the country
    code (with or without +), formatted by phonenumbers itself, and with mistakes."""
    metadata = PhoneMetadata.metadata_for_region(region)
    code, trunk = str(metadata.country_code), metadata.national_prefix or ""
    forms = [
        nsn,
        trunk + nsn,
        f"+{code}{nsn}",
        code + nsn,
        f"+{code}{trunk}{nsn}",
        code + trunk + nsn,
    ]
    number = phonenumbers.parse(f"+{code}{nsn}")
    for style in (PhoneNumberFormat.NATIONAL, PhoneNumberFormat.INTERNATIONAL):
        forms.append(phonenumbers.format_number(number, style))
    forms.append(f"00{code} {nsn}")
    forms.append(f"{nsn} ext. 12")
    forms.append(nsn[:-1])  # one digit short
    forms.append(nsn + str(rng.randrange(10)))  # one digit long
    forms.append("".join(d if rng.random() > 0.3 else str(rng.randrange(10)) for d in nsn))
    forms.append(nsn[:3] + "ABC" + nsn[3:])
    return forms


def _random(region: str, rng: random.Random, count: int) -> list[str]:
    """Random digit strings of every length, with and without +cc, trunk and IDD prefixes."""
    metadata = PhoneMetadata.metadata_for_region(region)
    code, trunk = str(metadata.country_code), metadata.national_prefix or "0"
    heads = ["", "", "", "+", f"+{code}", code, trunk, f"+{code}{trunk}", "00", "011", "1", "+1"]
    values = []
    for _ in range(count):
        body = "".join(str(rng.randrange(10)) for _ in range(rng.randrange(0, 19)))
        values.append(rng.choice(heads) + body)
    return values


@pytest.mark.parametrize("region", REGIONS)
def test_example_numbers_written_every_way_match_phonenumbers(region: str) -> None:
    rng = random.Random(region)
    values = [form for nsn in _examples(region) for form in _written(region, nsn, rng)]
    assert e164(pa.array(values), region).to_pylist() == _per_value(values, region)
    assert e164(pa.array(values), region, plus=False).to_pylist() == _per_value(
        values, region, plus=False
    )
    # Numbers in the international form are settled in Arrow (+cc of the region).
    international = [f"+{PhoneMetadata.metadata_for_region(region).country_code}{nsn}"
                     for nsn in _examples(region)]  # fmt: skip
    assert all(_settled(international, region))


@pytest.mark.parametrize("region", REGIONS)
def test_random_digit_strings_match_phonenumbers(region: str) -> None:
    rng = random.Random(f"random-{region}")
    values = _random(region, rng, 4000)
    # Some with separators, some with letters (those take the per-value path).
    values += [f"({v[:3]}) {v[3:6]}-{v[6:]}" for v in values[:500]]
    values += [v[:4] + "x" + v[4:] for v in values[:200]]
    assert e164(pa.array(values), region).to_pylist() == _per_value(values, region)
    settled = _settled(values, region)
    assert sum(settled) > len(values) / 2  # the fast path does take most of them


def test_every_region_matches_phonenumbers_on_a_sample() -> None:
    rng = random.Random(2024)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        values = _random(region, rng, 150)
        values += [form for nsn in _examples(region) for form in _written(region, nsn, rng)]
        assert e164(pa.array(values), region).to_pylist() == _per_value(values, region), region


def test_realistic_us_numbers_are_all_settled_in_arrow() -> None:
    rng = random.Random(5)
    values = [
        f"({rng.choice(['650', '415', '212', '617', '303'])}) {rng.randrange(200, 1000)}-"
        f"{rng.randrange(10_000):04d}"
        for _ in range(2000)
    ]
    values += [f"+1 {v}" for v in values[:500]] + [f"1-{v}" for v in values[500:1000]]
    assert all(_settled(values, "US"))
    assert e164(pa.array(values), "US").to_pylist() == _per_value(values, "US")


def test_shared_country_codes_are_valid_per_the_region_they_belong_to() -> None:
    values = [
        "+12042345678",  # Canada (Manitoba)
        "+12684601234",  # Antigua: leading digits 268
        "+12680001234",  # 268 but not a valid Antiguan number: invalid, though US-shaped
        "+14415551234",  # Bermuda
        "2042345678",  # Canadian, written nationally with region US
        "+447400123456",  # GB mobile
        "+447624123456",  # Isle of Man: leading digits 7624
        "+79123456789",  # RU mobile
        "+77012345678",  # Kazakhstan: leading digit 7
        "+390612345678",  # IT keeps its leading zero
        "+3906698123456",  # Vatican shares +39
    ]
    for region in ("US", "CA", "GB", "AG", None):
        assert e164(pa.array(values), region).to_pylist() == _per_value(values, region)
    assert e164(pa.array(values), "US").to_pylist()[:3] == [
        "+12042345678", "+12684601234", None,
    ]  # fmt: skip
    assert all(_settled(values, "US"))


def test_trunk_prefixes_and_country_codes_without_plus() -> None:
    cases = {
        "FR": ["0612345678", "33612345678", "+330612345678", "0033612345678", "612345678"],
        "GB": ["02071838750", "442071838750", "+4402071838750", "1800202071838750"],
        "DE": ["030123456", "4930123456", "+49030123456", "0049301234567"],
        "AU": ["0212345678", "61212345678", "18312212345678", "+61212345678"],
        "BR": ["011987654321", "11987654321", "0211987654321", "+5511987654321"],
        "JP": ["0312345678", "81312345678", "+81312345678", "00037680312345678"],
        "US": ["16505551212", "6505551212", "0116505551212", "+116505551212", "5551212"],
        "IT": ["0612345678", "390612345678", "3123456789", "+39 312 345 6789"],
    }
    for region, values in cases.items():
        assert e164(pa.array(values), region).to_pylist() == _per_value(values, region), region


def test_regions_without_fast_path_and_odd_inputs_match_phonenumbers() -> None:
    values = ["6505551212", "+16505551212", "+800 1234 5678", "+999 123", "+0123", "1", "", None]
    for region in (None, "us", "XX", "001", "US"):
        assert e164(pa.array(values, pa.string()), region).to_pylist() == _per_value(values, region)
    chunked = pa.chunked_array([["(650) 555-1212", None], ["+1 650 555 1212"]])
    assert e164(chunked, "US").to_pylist() == ["+16505551212", None, "+16505551212"]
    assert e164(pa.array([], pa.string()), "US").to_pylist() == []


def test_patterns_outside_the_shared_re_and_re2_syntax_are_refused() -> None:
    # `{,3}` is a quantifier in Python but text in RE2; lookarounds do not exist in RE2.
    for pattern in (r"\d{,3}", r"(?=1)\d+", r"(\d)\1", r"\w+", r"[^0]"):
        assert phones._SAFE_SYNTAX.fullmatch(pattern) is None
    for pattern in (
        r"[2-9]\d{9}|3\d{6}",
        r"(183[12])|0",
        r"(000[2569]\d{4,6})$|0",
        r"8\d{5}(?:\d{2,4})?",
    ):
        assert phones._SAFE_SYNTAX.fullmatch(pattern) is not None
    # Every region's metadata is in that syntax today: all replayed, none skipped.
    assert all(phones._region_rules(r) is not None for r in phonenumbers.SUPPORTED_REGIONS)


_HEADS = ["", "+", "+1", "1", "0", "00", "011", "+33", "33", "+44", "+49", "0049", "+39", "+61",
          "+55", "+81", "+91", "+7", "8", "9", "+0", "+800"]  # fmt: skip
_TAILS = ["", "", "", " ext. 5", "x12", "#", "a", " ", "-"]


@st.composite
def _phone_like(draw: st.DrawFn) -> str:
    body = draw(st.text(alphabet="0123456789", max_size=18))
    if draw(st.booleans()):
        # Separators at random places.
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
        seps = draw(st.lists(st.sampled_from([" ", "-", ".", "(", ")", "/"]), min_size=4))
        parts, last = [], 0
        for cut, sep in zip(cuts, seps, strict=False):
            parts += [body[last:cut], sep]
            last = cut
        body = "".join(parts) + body[last:]
    return draw(st.sampled_from(_HEADS)) + body + draw(st.sampled_from(_TAILS))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(_phone_like(), st.text(max_size=12), st.none()), max_size=25),
    st.sampled_from([*REGIONS, None]),
    st.booleans(),
)
def test_property_fast_path_equals_phonenumbers(
    values: list[str | None], region: str | None, plus: bool
) -> None:
    assert e164(pa.array(values, pa.string()), region, plus=plus).to_pylist() == _per_value(
        values, region, plus
    )


def test_separators_are_exactly_those_of_the_regex_before() -> None:
    # e164 strips literal characters; the per-value reference strips with RE2's [\s().\-/].
    odd = [chr(i) for i in range(0x3001)] + ["\u2028", "\u202f", "\ufeff"]
    values = [f"650{c}555{c}1212" for c in odd]
    assert e164(pa.array(values), "US").to_pylist() == _per_value(values, "US")
