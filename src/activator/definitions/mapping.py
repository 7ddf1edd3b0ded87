"""Attribute mapping: which source feeds each destination field, and how it is transformed.

A mapping is an ordered dict, destination field → :class:`FieldMapping`; a plain string is
shorthand for ``{source: <string>}``::

    mapping:
      email_sha256: {source: email, hash: meta.email, required: true}
      phone: {source: phone, transforms: [trim, {e164: {region: US}}], required: true}
      skus: orders.sku            # related table `orders`, column `sku` (multi-valued)
      campaign: run.campaign      # run metadata
      country: {value: US}        # a constant

A source is a customer column (``email``), a related table's column reached through the
activation ID (``orders.sku``), or run metadata (``run.campaign``, see :data:`RUN_FIELDS`).
The runtime lives in :mod:`activator.mapping`; this module only describes.
"""

from __future__ import annotations

__all__ = [
    "HASH_KEYS",
    "PLATFORM_KEYS",
    "RUN_FIELDS",
    "TRANSFORM_NAMES",
    "AttributeMapping",
    "DefaultTransform",
    "E164Options",
    "E164Transform",
    "FieldMapping",
    "FormatOptions",
    "FormatTransform",
    "HashOptions",
    "MappingSources",
    "ReplaceOptions",
    "ReplaceTransform",
    "SourceRef",
    "Transform",
    "mapping_sources",
    "parse_source",
]

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    field_validator,
    model_validator,
)

from activator.definitions.base import Model, TimeZone

RUN_FIELDS: dict[str, str] = {
    "campaign": "the campaign's name",
    "journey": "the journey's name",
    "orchestration": "the orchestration's name",
    "sub_audience": "the sub-audience's name",
    "group": "the treatment group's name",
    "node": "the journey or orchestration node's name",
    "time": "the run's as-of time (a timestamp; format it with `format`)",
    "run_id": "the run's id",
    "activation": "the activation's name (campaign, journey or orchestration)",
    "action": "'add', or 'remove' for a customer a mirror campaign takes off a list",
}
"""Run metadata a mapping can use as ``run.<name>``."""

PLATFORM_KEYS: dict[str, str] = {
    "meta.email": "trim, lowercase; not an e-mail address → null; SHA-256",
    "meta.phone": "digits only, country code first, no '+' nor leading zeros; SHA-256",
    "meta.fn": "first name: trim, lowercase, no punctuation (UTF-8 letters kept); SHA-256",
    "meta.ln": "last name: trim, lowercase, no punctuation (UTF-8 letters kept); SHA-256",
    "meta.fi": "first initial: first letter of the normalised first name; SHA-256",
    "meta.ge": "gender: m or f (from m/f/male/female, any case); else null; SHA-256",
    "meta.db": "date of birth YYYYMMDD (from a date, or a year-month-day string); SHA-256",
    "meta.doby": "birth year YYYY (from a date, a full date string or a year); SHA-256",
    "meta.dobm": "birth month MM, 01-12 (from a date, a full date string or a month); SHA-256",
    "meta.dobd": "birth day DD, 01-31 (from a date, a full date string or a day); SHA-256",
    "meta.ct": "city: lowercase letters only (no spaces, punctuation, digits); SHA-256",
    "meta.st": "state: lowercase letters only (use the 2-letter ANSI code in the US); SHA-256",
    "meta.zip": "zip: lowercase, no spaces or dash, US ZIP+4 cut to 5 digits; SHA-256",
    "meta.country": "country: ISO 3166-1 alpha-2, lowercase; else null; SHA-256",
    "meta.external_id": "your customer id: trimmed; SHA-256",
    "google.email": "trim, lowercase, no spaces, dots before @gmail.com removed; SHA-256",
    "google.phone": "E.164 with '+' (validated with phonenumbers); SHA-256",
    "google.first_name": "lowercase, no spaces at all; SHA-256",
    "google.last_name": "lowercase, no spaces, no punctuation; SHA-256",
    "google.country": "ISO 3166-1 alpha-2, upper case; NOT hashed (Google wants it clear)",
    "google.postal_code": "trimmed; NOT hashed (Google wants it clear)",
}
"""Platform keys for ``hash:``: the platform's normalisation, then SHA-256 unless noted."""

HASH_KEYS: tuple[str, ...] = ("sha256", *PLATFORM_KEYS)
"""Every value ``hash:`` accepts: ``sha256`` (no normalisation) and the platform keys."""

PHONE_KEYS = frozenset({"meta.phone", "google.phone"})
"""Platform keys that parse phone numbers (and so take a default ``region``)."""

TRANSFORM_NAMES: tuple[str, ...] = (
    "trim",
    "lowercase",
    "uppercase",
    "digits",
    "e164",
    "default",
    "format",
    "replace",
)
"""Every transform, in the order the docs list them."""

_SIMPLE = ("trim", "lowercase", "uppercase", "digits")
_WITH_ARGS = ("default", "format", "e164", "replace")

SimpleTransform = Literal["trim", "lowercase", "uppercase", "digits"]


def _check_region(region: str | None) -> str | None:
    if region is None:
        return None
    import phonenumbers  # lazy: only mappings with phone numbers need its metadata

    upper = region.upper()
    if upper not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"unknown phone region {region!r}: use an ISO 3166-1 alpha-2 code such as US, FR, GB"
        )
    return upper


Region = Annotated[str | None, AfterValidator(_check_region)]


class DefaultTransform(Model):
    """``{default: <value>}``: replaces nulls (and empty strings) with the value."""

    default: str | int | float | bool
    """The value used where the source has none."""


class FormatOptions(Model):
    """How ``format`` turns a date or time into text."""

    pattern: str = Field(min_length=1)
    """A ``strftime`` pattern, e.g. ``%Y-%m-%d`` or ``%Y-%m-%dT%H:%M:%S%z``."""

    timezone: TimeZone | None = None
    """IANA time zone the time is shown in (e.g. ``Europe/Paris``). Timestamps with a time
    zone are converted; timestamps without one are taken as UTC. Dates are not shifted."""

    parse: str = "%Y-%m-%d"
    """``strptime`` pattern used when the source is text; values that do not parse → null."""


class FormatTransform(Model):
    """``{format: {pattern: ..., timezone: ..., parse: ...}}``: a date or time as text."""

    format: FormatOptions


class E164Options(Model):
    """How ``e164`` parses phone numbers."""

    region: Region = None
    """Default region (ISO 3166-1 alpha-2, e.g. ``US``) for numbers written without a country
    code. Without it, only numbers starting with ``+`` parse."""


class E164Transform(Model):
    """``e164`` or ``{e164: {region: US}}``: a valid phone number as ``+<digits>``; else null."""

    e164: E164Options = Field(default_factory=E164Options)


class ReplaceOptions(Model):
    """A regular-expression replacement (RE2 syntax)."""

    pattern: str = Field(min_length=1)
    """The RE2 regular expression to find, e.g. ``"[^0-9A-Za-z]"``."""

    with_: str = Field(default="", alias="with")
    """The replacement text (``\\1`` refers to a group); empty by default."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        import pyarrow as pa  # lazy: RE2 (Arrow's regex engine) is the one that runs it
        import pyarrow.compute as pc

        try:
            pc.replace_substring_regex(pa.array([""]), pattern=value, replacement="")
        except pa.ArrowInvalid as error:
            raise ValueError(f"invalid regular expression {value!r}: {error}") from None
        return value


class ReplaceTransform(Model):
    """``{replace: {pattern: ..., with: ...}}``: replaces every match of a pattern."""

    replace: ReplaceOptions


def _known_transforms() -> str:
    return ", ".join(TRANSFORM_NAMES)


def _transform_shape(value: Any) -> Any:
    """Checks a transform's shape first, so an error names the transform and the fix."""
    if isinstance(value, str):
        if value == "e164":
            return {"e164": {}}
        if value in _WITH_ARGS:
            raise ValueError(f"transform {value!r} needs arguments, e.g. {{{value}: ...}}")
        if value not in _SIMPLE:
            raise ValueError(f"unknown transform {value!r}; known: {_known_transforms()}")
        return value
    if isinstance(value, dict):
        if len(value) != 1:
            raise ValueError(
                "a transform with arguments is a mapping with a single key "
                f"(one of {', '.join(_WITH_ARGS)}), got keys {sorted(value)}"
            )
        (name,) = value
        if name in _SIMPLE:
            raise ValueError(f"transform {name!r} takes no arguments: write it as - {name}")
        if name not in _WITH_ARGS:
            raise ValueError(f"unknown transform {name!r}; known: {_known_transforms()}")
        return value
    if isinstance(value, DefaultTransform | FormatTransform | E164Transform | ReplaceTransform):
        return value
    raise ValueError(f"a transform is a name or a single-key mapping; known: {_known_transforms()}")


def _transform_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "simple"
    if isinstance(value, dict):
        return next(iter(value), None)
    for tag, model in (
        ("default", DefaultTransform),
        ("format", FormatTransform),
        ("e164", E164Transform),
        ("replace", ReplaceTransform),
    ):
        if isinstance(value, model):
            return tag
    return None


Transform = Annotated[
    Annotated[SimpleTransform, Tag("simple")]
    | Annotated[DefaultTransform, Tag("default")]
    | Annotated[FormatTransform, Tag("format")]
    | Annotated[E164Transform, Tag("e164")]
    | Annotated[ReplaceTransform, Tag("replace")],
    Discriminator(_transform_tag),
    BeforeValidator(_transform_shape),
]
"""One transform: a name (``trim``) or a single-key mapping (``{e164: {region: US}}``)."""


class HashOptions(Model):
    """Options of a platform key written as ``{google.phone: {region: US}}``."""

    region: Region = None
    """Default region for phone numbers without a country code (phone keys only)."""


HashKey = Literal[
    "sha256",
    "meta.email",
    "meta.phone",
    "meta.fn",
    "meta.ln",
    "meta.fi",
    "meta.ge",
    "meta.db",
    "meta.doby",
    "meta.dobm",
    "meta.dobd",
    "meta.ct",
    "meta.st",
    "meta.zip",
    "meta.country",
    "meta.external_id",
    "google.email",
    "google.phone",
    "google.first_name",
    "google.last_name",
    "google.country",
    "google.postal_code",
]


def _hash_shape(value: Any) -> Any:
    if isinstance(value, str) and value not in HASH_KEYS:
        raise ValueError(f"unknown hash key {value!r}; known: {', '.join(HASH_KEYS)}")
    if isinstance(value, dict):
        if len(value) != 1:
            raise ValueError("write a hash key with options as {<key>: {region: ...}}")
        (key,) = value
        if key not in HASH_KEYS:
            raise ValueError(f"unknown hash key {key!r}; known: {', '.join(HASH_KEYS)}")
        if key not in PHONE_KEYS:
            raise ValueError(
                f"hash key {key!r} takes no options; only {', '.join(sorted(PHONE_KEYS))} "
                "take a region"
            )
    return value


_SOURCE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True)
class SourceRef:
    """A parsed source: a customer column, a related table's column, or run metadata.

    Attributes:
        kind: ``column``, ``related`` or ``run``.
        name: The column (or run metadata) name.
        table: The related table, for ``related`` sources.
    """

    kind: Literal["column", "related", "run"]
    name: str
    table: str | None = None

    @property
    def text(self) -> str:
        """The source as written in the mapping (and the batch column's name)."""
        if self.kind == "run":
            return f"run.{self.name}"
        return self.name if self.table is None else f"{self.table}.{self.name}"


def parse_source(source: str) -> SourceRef:
    """Parses a source string; raises ``ValueError`` saying the fix when it is malformed."""
    if not _SOURCE.match(source):
        raise ValueError(
            f"source {source!r} is not a column: write `column`, `table.column` (a related "
            "table reached through the activation ID) or `run.<name>`"
        )
    head, _, tail = source.partition(".")
    if not tail:
        return SourceRef("column", head)
    if head == "run":
        if tail not in RUN_FIELDS:
            raise ValueError(
                f"unknown run metadata {source!r}; known: run.{', run.'.join(RUN_FIELDS)}"
            )
        return SourceRef("run", tail)
    return SourceRef("related", tail, head)


class FieldMapping(Model):
    """How one destination field is filled: a source or a constant, transforms, a hash."""

    source: str | None = None
    """``column``, ``table.column`` (a related table through the activation ID; many values
    per customer make several rows) or ``run.<name>`` (run metadata)."""

    value: str | int | float | bool | None = None
    """A constant instead of a source."""

    transforms: list[Transform] = []
    """Applied in order: ``trim``, ``lowercase``, ``uppercase``, ``digits``, ``e164``,
    ``{default: ...}``, ``{format: ...}``, ``{replace: ...}``."""

    hash: Annotated[HashKey | dict[HashKey, HashOptions] | None, BeforeValidator(_hash_shape)] = (
        None
    )
    """After the transforms: a platform key (its normalisation, then SHA-256 in lowercase hex,
    unless the platform wants the value clear) or ``sha256`` (no normalisation)."""

    required: bool = False
    """Rows where this field ends up null or empty are dropped and counted (shrink)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `field: column` is shorthand for `field: {source: column}`.
        if isinstance(data, str):
            return {"source": data}
        return data

    @field_validator("source")
    @classmethod
    def _valid_source(cls, value: str | None) -> str | None:
        if value is not None:
            parse_source(value)
        return value

    @model_validator(mode="after")
    def _source_or_value(self) -> FieldMapping:
        if (self.source is None) == (self.value is None):
            raise ValueError(
                "give either 'source' (a column, table.column or run.<name>) or 'value' "
                "(a constant), exactly one"
            )
        return self

    @property
    def source_ref(self) -> SourceRef | None:
        """The parsed source, or None for a constant."""
        return None if self.source is None else parse_source(self.source)

    @property
    def hash_key(self) -> str | None:
        """The ``hash`` key without its options."""
        if isinstance(self.hash, dict):
            return next(iter(self.hash))
        return self.hash

    @property
    def hash_region(self) -> str | None:
        """The default phone region given with the ``hash`` key, if any."""
        if isinstance(self.hash, dict):
            return next(iter(self.hash.values())).region
        return None


def _field_names(value: dict[str, FieldMapping]) -> dict[str, FieldMapping]:
    for name in value:
        if not name or name != name.strip():
            raise ValueError(f"destination field name {name!r} is empty or has spaces around it")
    return value


def _from_entries(value: Any) -> Any:
    """Accept the stored form: a list of ``{field: name, ...spec}`` entries, in order."""
    if not isinstance(value, list):
        return value
    found: dict[str, Any] = {}
    for entry in value:
        if not isinstance(entry, dict) or "field" not in entry:
            raise ValueError("a mapping given as a list holds {field: NAME, source: ...} entries")
        rest = {k: v for k, v in entry.items() if k != "field"}
        if entry["field"] in found:
            raise ValueError(f"destination field {entry['field']!r} is mapped twice")
        found[entry["field"]] = rest
    return found


def _to_entries(value: dict[str, FieldMapping]) -> list[dict[str, Any]]:
    # JSON objects do not keep their key order everywhere (PostgreSQL's JSONB sorts keys, the
    # metadata store hashes sorted JSON), but the order of a mapping is the destination's
    # column order: stored specs keep it as a list.
    return [
        {"field": name, **spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)}
        for name, spec in value.items()
    ]


AttributeMapping = Annotated[
    dict[str, FieldMapping],
    BeforeValidator(_from_entries),
    AfterValidator(_field_names),
    PlainSerializer(_to_entries, when_used="json"),
]
"""Destination field → how it is filled, in the destination's column order. YAML writes it as
a mapping; stored (JSON) specs as a list of ``{field, ...}`` entries, which keeps the order."""


@dataclass(frozen=True)
class MappingSources:
    """What a mapping reads, so the runner selects just that from the engine.

    Attributes:
        columns: Customer-table columns.
        related: Related table → its columns (joined through the activation ID).
        run: Run metadata names (``campaign``, ``time``, ...), supplied by the runner.
    """

    columns: tuple[str, ...] = ()
    related: dict[str, tuple[str, ...]] = field(default_factory=dict)
    run: tuple[str, ...] = ()

    @property
    def batch_columns(self) -> tuple[str, ...]:
        """The batch columns the mapper expects, named as in the mapping (``orders.sku``)."""
        related = (f"{table}.{column}" for table, cols in self.related.items() for column in cols)
        return (*self.columns, *related)


def mapping_sources(mapping: dict[str, FieldMapping] | None) -> MappingSources:
    """Lists the sources a mapping needs, each once, in first-use order."""
    columns: dict[str, None] = {}
    related: dict[str, dict[str, None]] = {}
    run: dict[str, None] = {}
    for spec in (mapping or {}).values():
        ref = spec.source_ref
        if ref is None:
            continue
        if ref.kind == "column":
            columns[ref.name] = None
        elif ref.kind == "run":
            run[ref.name] = None
        else:
            assert ref.table is not None
            related.setdefault(ref.table, {})[ref.name] = None
    return MappingSources(
        columns=tuple(columns),
        related={table: tuple(cols) for table, cols in related.items()},
        run=tuple(run),
    )
