"""Platform normalisations, checked against the worked examples of the platforms' own docs.

Meta's examples (with their SHA-256) come from the Conversions API page "Customer Information
Parameters": https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters
(META_CIP below). Rules without a worked hash there are compared with hashlib on the
normalised string the rule prescribes.
"""

import hashlib
import unicodedata
from datetime import date, datetime

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from activator.definitions.mapping import PLATFORM_KEYS
from activator.mapping.platforms import CLEAR_KEYS, NORMALISERS, hash_for_platform, normalise

META_CIP = "https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters"
META_AUDIENCES = (
    "https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences"
)
GOOGLE_EC = "https://developers.google.com/google-ads/api/docs/conversions/enhance-conversions"
GOOGLE_CM360 = "https://developers.google.com/doubleclick-advertisers/guides/conversions_ec"
GOOGLE_DV360 = "https://developers.google.com/display-video/api/guides/tasks/upload-customer-match-audience/prepare-data"
GOOGLE_ADDRESS = (
    "https://developers.google.com/google-ads/api/reference/rpc/v20/OfflineUserAddressInfo"
)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _hash(key: str, values: list[object], region: str | None = None) -> list[object]:
    return list(hash_for_platform(key, pa.array(values), region).to_pylist())


def _norm(key: str, values: list[object], region: str | None = None) -> list[object]:
    return list(normalise(key, pa.array(values), region).to_pylist())


def test_every_platform_key_has_a_normaliser() -> None:
    assert set(NORMALISERS) == set(PLATFORM_KEYS)


def test_meta_email_documented_example() -> None:
    # META_CIP, em: "John_Smith@gmail.com" → "john_smith@gmail.com" → 62a14e44…
    assert _hash("meta.email", [" John_Smith@gmail.com ", "not-an-email", "", None]) == [
        "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f", None, None, None,
    ]  # fmt: skip


def test_meta_phone_documented_example() -> None:
    # META_CIP, ph: US phone number "(650)555-1212" → "16505551212" → e323ec62…
    expected = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
    assert _hash("meta.phone", ["(650)555-1212"], region="US") == [expected]
    # Without a region: "Remove symbols, letters, and any leading zeros" (country code given).
    assert _hash("meta.phone", ["+1 (650) 555-1212", "001-650-555-1212"]) == [expected, expected]
    assert _norm("meta.phone", ["+44 844 412 4653", "abc", None]) == ["448444124653", None, None]
    # With a region, an invalid number is no value (a required field shrinks).
    assert _norm("meta.phone", ["12", "06 12 34 56 78"], region="FR") == [None, "33612345678"]


def test_meta_first_and_last_name_documented_examples() -> None:
    # META_CIP, fn: "Mary" → "mary"; "정" stays UTF-8; "Valéry" → "valéry"; each with its hash.
    assert _hash("meta.fn", ["Mary", "정", "Valéry"]) == [
        "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec",
        "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14",
        "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c",
    ]
    # META_CIP, ln: "See First Name": lowercase only with no punctuation.
    assert _norm("meta.ln", [" O'Brien-Smith, Jr. ", "...", None]) == ["obriensmith jr", None, None]
    assert _norm("meta.fi", ["  Mary", "élodie"]) == ["m", "é"]


def test_meta_gender_and_birth_dates() -> None:
    # META_AUDIENCES (GEN): "m for male and f for female".
    assert _norm("meta.ge", ["Female", " M ", "male", "x", "", None]) == [
        "f",
        "m",
        "m",
        None,
        None,
        None,
    ]
    assert _hash("meta.ge", ["F"]) == [_sha("f")]
    # META_CIP, db: YYYYMMDD, "with or without punctuation".
    assert _norm("meta.db", ["1997-02-16", "19970216", "1997/2/16", "2/16/1997", None]) == [
        "19970216", "19970216", None, None, None,
    ]  # fmt: skip
    assert _norm("meta.db", [date(1997, 2, 16)]) == ["19970216"]
    assert _hash("meta.db", [datetime(1997, 2, 16, 8, 0)]) == [_sha("19970216")]
    # META_AUDIENCES: DOBY "YYYY", DOBM "MM: 01 to 12", DOBD "DD: 01 to 31".
    birth = pa.array([date(1997, 2, 6), None])
    assert normalise("meta.doby", birth).to_pylist() == ["1997", None]
    assert normalise("meta.dobm", birth).to_pylist() == ["02", None]
    assert normalise("meta.dobd", birth).to_pylist() == ["06", None]
    assert _norm("meta.dobm", ["2", "1997-02-16", "13"]) == ["02", "02", None]
    assert _norm("meta.dobd", ["6", "31", "32"]) == ["06", "31", None]
    assert _norm("meta.dobd", [6, None]) == ["06", None]
    assert _norm("meta.doby", ["1997", "1997-02-16", "97"]) == ["1997", "1997", None]
    assert _norm("meta.doby", [1997]) == ["1997"]
    assert _hash("meta.dobm", ["2"]) == [_sha("02")]


def test_meta_location_keys() -> None:
    # META_AUDIENCES (CT): "a-z only. Lowercase only, no punctuation, no special characters,
    # no white space"; (ST): 2-character ANSI code, lowercase, same rules outside the US.
    assert _norm("meta.ct", ["Menlo Park", "Saint-Étienne", " 123 "]) == [
        "menlopark",
        "saintétienne",
        None,
    ]
    assert _hash("meta.st", ["CA"]) == [_sha("ca")]
    # (ZIP): lowercase, no white space; only the first 5 digits for the US.
    assert _norm("meta.zip", ["94025-1234", "940251234", "94025", "SW1A 1AA", ""]) == [
        "94025", "94025", "94025", "sw1a1aa", None,
    ]  # fmt: skip
    # (COUNTRY): 2-letter ISO 3166-1 alpha-2, lowercase.
    assert _norm("meta.country", ["US", " fr ", "USA", None]) == ["us", "fr", None, None]
    assert _hash("meta.country", ["US"]) == [_sha("us")]
    assert _hash("meta.external_id", [" 12345 "]) == [_sha("12345")]


def test_google_email_normalisation() -> None:
    # GOOGLE_EC / GOOGLE_CM360: trim, lowercase, and remove the periods before the domain of
    # gmail.com and googlemail.com addresses; GOOGLE_DV360: no whitespace in e-mail values.
    values = [
        " Jane.Doe@Gmail.com ",
        "jane.doe@example.com",
        "j.d@googlemail.com",
        "a b@x.org",
        "x",
    ]
    assert _norm("google.email", values) == [
        "janedoe@gmail.com", "jane.doe@example.com", "jd@googlemail.com", "ab@x.org", None,
    ]  # fmt: skip
    assert _hash("google.email", values[:1]) == [_sha("janedoe@gmail.com")]


def test_google_phone_is_e164_with_plus() -> None:
    # GOOGLE_EC: "Format phone numbers according to the E164 standard" (with the '+').
    assert _norm("google.phone", ["(650) 555-1212", "+33 6 12 34 56 78", "555"], region="US") == [
        "+16505551212", "+33612345678", None,
    ]  # fmt: skip
    assert _hash("google.phone", ["+1 650 555 1212"]) == [_sha("+16505551212")]


def test_google_names_country_and_postal_code() -> None:
    # GOOGLE_DV360: take out any whitespace from first and last names, lowercase;
    # GOOGLE_ADDRESS: last name "lower case only and no punctuation".
    assert _norm("google.first_name", [" Mary Ann ", "Jean-Luc"]) == ["maryann", "jean-luc"]
    assert _norm("google.last_name", [" Van der Berg ", "O'Neil"]) == ["vanderberg", "oneil"]
    assert _hash("google.first_name", ["Mary Ann"]) == [_sha("maryann")]
    # GOOGLE_EC: do not hash country and postal code; GOOGLE_ADDRESS: ISO-3166-1 alpha-2.
    assert {"google.country", "google.postal_code"} == CLEAR_KEYS
    assert _hash("google.country", [" us", "Fr", "USA"]) == ["US", "FR", None]
    assert _hash("google.postal_code", [" 94303-5300 ", "  "]) == ["94303-5300", None]


def test_plain_sha256_hashes_the_value_as_it_is() -> None:
    assert _hash("sha256", ["Mixed Case", "", None]) == [_sha("Mixed Case"), None, None]


# Characters where Arrow's and Python's Unicode rules agree (simple case mapping, whitespace,
# punctuation), so a plain per-value reference can be compared with the vectorised code.
_ALPHABET = st.sampled_from(list("aAbBzZéÉçÇßøØ정한 \t.,-'!?@_0123456789+()"))


def _meta_name_reference(value: str) -> str | None:
    kept = "".join(c for c in value.strip().lower() if unicodedata.category(c)[0] not in "PS")
    return kept.strip() or None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(_ALPHABET, max_size=12), max_size=30))
def test_vectorised_name_normalisation_matches_a_per_value_reference(values: list[str]) -> None:
    assert _norm("meta.fn", list(values)) == [_meta_name_reference(v) for v in values]
    expected = [_sha(n) if (n := _meta_name_reference(v)) is not None else None for v in values]
    assert _hash("meta.fn", list(values)) == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(_ALPHABET, max_size=12), max_size=30))
def test_vectorised_phone_digits_match_a_per_value_reference(values: list[str]) -> None:
    def reference(value: str) -> str | None:
        return "".join(c for c in value if c in "0123456789").lstrip("0") or None

    assert _norm("meta.phone", list(values)) == [reference(v) for v in values]
