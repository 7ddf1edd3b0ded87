"""Each platform's normalisation before hashing, over Arrow arrays.

Sources (the tests check the worked examples of each):

* Meta: Conversions API, "Customer Information Parameters"
  (developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters)
  and the Customer File Custom Audiences hashing table (EMAIL, PHONE, GEN, DOBY, DOBM, DOBD,
  LN, FN, FI, ST, CT, ZIP, COUNTRY, EXTERN_ID).
* Google: Google Ads API enhanced conversions "Normalize and hash user-provided data"
  (developers.google.com/google-ads/api/docs/conversions/enhance-conversions), the Campaign
  Manager 360 enhanced-conversions guide (periods before @gmail.com / @googlemail.com),
  the Display & Video 360 Customer Match "Prepare user data" guide (no whitespace in names
  and e-mail) and ``OfflineUserAddressInfo`` (last name without punctuation; country code and
  postal code sent clear).

Every normaliser maps a value it cannot make sense of to null, so a required field shrinks
rather than sending a hash of garbage.
"""

from __future__ import annotations

__all__ = ["CLEAR_KEYS", "NORMALISERS", "hash_for_platform", "normalise"]

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from activator.definitions.mapping import PLATFORM_KEYS
from activator.mapping.transforms import as_text, e164, empty_to_null, sha256_hex

Normaliser = Callable[[pa.Array, str | None], pa.Array]

CLEAR_KEYS = frozenset({"google.country", "google.postal_code"})
"""Platform keys normalised but not hashed: Google wants country and postal code clear."""

_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def _replace(array: pa.Array, pattern: str, replacement: str = "") -> pa.Array:
    return pc.replace_substring_regex(array, pattern=pattern, replacement=replacement)


def _null_unless(array: pa.Array, pattern: str) -> pa.Array:
    """Keeps values matching ``pattern`` (RE2), nulls the others."""
    return pc.if_else(pc.match_substring_regex(array, pattern=pattern), array, None)


def _clean(array: pa.Array) -> pa.Array:
    return pc.utf8_lower(pc.utf8_trim_whitespace(as_text(array)))


def _email(array: pa.Array, region: str | None) -> pa.Array:
    return _null_unless(_clean(array), _EMAIL)


def _meta_phone(array: pa.Array, region: str | None) -> pa.Array:
    if region is not None:
        # With a default region the country code can be added: E.164 without the '+'.
        return e164(array, region, plus=False)
    # Meta: "Remove symbols, letters, and any leading zeros" (the country code must be there).
    digits = _replace(_replace(as_text(array), r"\D"), r"^0+")
    return empty_to_null(digits)


def _meta_name(array: pa.Array, region: str | None) -> pa.Array:
    # Lowercase, no punctuation; letters of any script stay (Meta hashes them as UTF-8).
    return empty_to_null(pc.utf8_trim_whitespace(_replace(_clean(array), r"[\pP\pS]")))


def _meta_initial(array: pa.Array, region: str | None) -> pa.Array:
    return pc.utf8_slice_codeunits(_meta_name(array, region), 0, 1)


def _meta_gender(array: pa.Array, region: str | None) -> pa.Array:
    # m / f from m, f, male, female (any case); anything else is no value.
    first = pc.utf8_slice_codeunits(_clean(array), 0, 1)
    words = pc.is_in(_clean(array), value_set=pa.array(["m", "f", "male", "female"]))
    return pc.if_else(words, first, None)


def _date_digits(array: pa.Array) -> tuple[pa.Array, bool]:
    """Dates and timestamps as ``YYYYMMDD``; text as its digits (year-month-day order)."""
    if pa.types.is_date(array.type) or pa.types.is_timestamp(array.type):
        return pc.strftime(array, format="%Y%m%d"), True
    return _replace(as_text(array), r"\D"), False


def _meta_birth_date(array: pa.Array, region: str | None) -> pa.Array:
    digits, _ = _date_digits(array)
    return _null_unless(digits, r"^(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$")


def _birth_part(start: int, stop: int, pattern: str) -> Normaliser:
    def normalise(array: pa.Array, region: str | None) -> pa.Array:
        digits, temporal = _date_digits(array)
        part = pc.utf8_slice_codeunits(digits, start, stop)
        if not temporal:
            # A full date gives its part; a bare year, month or day stands for itself.
            whole = pc.equal(pc.utf8_length(digits), 8)
            width = stop - start
            alone = pc.utf8_lpad(digits, width=width, padding="0")
            part = pc.if_else(whole, part, alone)
        return _null_unless(part, pattern)

    return normalise


def _letters(array: pa.Array, region: str | None) -> pa.Array:
    # City and state: "lowercase only, no punctuation, no special characters, no white space".
    return empty_to_null(_replace(_clean(array), r"[^\pL\pM]"))


def _meta_zip(array: pa.Array, region: str | None) -> pa.Array:
    # Lowercase, no spaces or dash; a US ZIP+4 keeps its first 5 digits.
    text = _replace(_clean(array), r"[\s\-]")
    return empty_to_null(_replace(text, r"^(\d{5})\d{4}$", r"\1"))


def _meta_country(array: pa.Array, region: str | None) -> pa.Array:
    return _null_unless(_replace(_clean(array), r"[^a-z]"), r"^[a-z]{2}$")


def _trimmed(array: pa.Array, region: str | None) -> pa.Array:
    return empty_to_null(pc.utf8_trim_whitespace(as_text(array)))


def _google_email(array: pa.Array, region: str | None) -> pa.Array:
    text = _replace(_clean(array), r"\s")
    # Google: remove the periods before the domain of gmail.com and googlemail.com addresses.
    text = _null_unless(text, _EMAIL)
    gmail = pc.match_substring_regex(text, pattern=r"@(gmail|googlemail)\.com$")
    return pc.if_else(gmail, _strip_local_dots(text), text)


def _strip_local_dots(text: pa.Array) -> pa.Array:
    # RE2 has no look-ahead: split at '@', drop the dots of the local part, join again.
    # Only called on valid addresses (exactly one '@'), so both parts exist.
    parts = pc.split_pattern(text, pattern="@", max_splits=1)
    local = pc.replace_substring(pc.list_element(parts, 0), pattern=".", replacement="")
    return pc.binary_join_element_wise(local, pc.list_element(parts, 1), "@")


def _google_phone(array: pa.Array, region: str | None) -> pa.Array:
    return e164(array, region, plus=True)


def _google_first_name(array: pa.Array, region: str | None) -> pa.Array:
    return empty_to_null(_replace(_clean(array), r"\s"))


def _google_last_name(array: pa.Array, region: str | None) -> pa.Array:
    return empty_to_null(_replace(_clean(array), r"[\s\pP\pS]"))


def _google_country(array: pa.Array, region: str | None) -> pa.Array:
    upper = _replace(pc.utf8_upper(pc.utf8_trim_whitespace(as_text(array))), r"[^A-Z]")
    return _null_unless(upper, r"^[A-Z]{2}$")


NORMALISERS: dict[str, Normaliser] = {
    "meta.email": _email,
    "meta.phone": _meta_phone,
    "meta.fn": _meta_name,
    "meta.ln": _meta_name,
    "meta.fi": _meta_initial,
    "meta.ge": _meta_gender,
    "meta.db": _meta_birth_date,
    "meta.doby": _birth_part(0, 4, r"^(19|20)\d{2}$"),
    "meta.dobm": _birth_part(4, 6, r"^(0[1-9]|1[0-2])$"),
    "meta.dobd": _birth_part(6, 8, r"^(0[1-9]|[12]\d|3[01])$"),
    "meta.ct": _letters,
    "meta.st": _letters,
    "meta.zip": _meta_zip,
    "meta.country": _meta_country,
    "meta.external_id": _trimmed,
    "google.email": _google_email,
    "google.phone": _google_phone,
    "google.first_name": _google_first_name,
    "google.last_name": _google_last_name,
    "google.country": _google_country,
    "google.postal_code": _trimmed,
}
"""Platform key → its normalisation (value → normalised text, or null)."""

assert set(NORMALISERS) == set(PLATFORM_KEYS), "every platform key needs a normaliser"


def normalise(key: str, array: pa.Array, region: str | None = None) -> pa.Array:
    """The platform's normalisation of ``array`` for ``key`` (no hashing)."""
    return NORMALISERS[key](array, region)


def hash_for_platform(key: str, array: pa.Array, region: str | None = None) -> pa.Array:
    """Normalises for ``key`` then hashes with SHA-256 (lowercase hex), except clear keys.

    ``sha256`` hashes the value as it is (after the field's transforms).
    """
    if key == "sha256":
        return sha256_hex(empty_to_null(as_text(array)))
    normalised = normalise(key, array, region)
    return normalised if key in CLEAR_KEYS else sha256_hex(normalised)
