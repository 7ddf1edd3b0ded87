"""The attribute-mapping definition: shorthand, transform syntax, errors that say the fix."""

from typing import Any, get_args

import pytest
from pydantic import TypeAdapter, ValidationError

from activator.definitions.campaign import CampaignDefinition, DestinationUse
from activator.definitions.mapping import (
    HASH_KEYS,
    AttributeMapping,
    DefaultTransform,
    E164Transform,
    FieldMapping,
    FormatTransform,
    HashKey,
    ReplaceTransform,
    SourceRef,
    mapping_sources,
    parse_source,
)

MAPPING = TypeAdapter(AttributeMapping)


def _errors(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        MAPPING.validate_python(data)
    return [(e["loc"], e["msg"]) for e in caught.value.errors()]


def test_plain_string_is_shorthand_for_a_source_and_order_is_kept() -> None:
    mapping = MAPPING.validate_python({"z_email": "email", "a_sku": "orders.sku", "c": "run.group"})
    assert list(mapping) == ["z_email", "a_sku", "c"]
    assert mapping["z_email"] == FieldMapping(source="email")
    assert mapping["a_sku"].source_ref == SourceRef("related", "sku", "orders")
    assert mapping["c"].source_ref == SourceRef("run", "group")


def test_full_specs_parse_into_typed_transforms_and_hash_options() -> None:
    mapping = MAPPING.validate_python(
        {
            "phone": {
                "source": "phone",
                "transforms": ["trim", {"e164": {"region": "us"}}, "e164"],
                "hash": {"google.phone": {"region": "fr"}},
                "required": True,
            },
            "signup": {
                "source": "signup_at",
                "transforms": [{"format": {"pattern": "%Y-%m-%d", "timezone": "Europe/Paris"}}],
            },
            "tier": {"source": "tier", "transforms": [{"default": "bronze"}, "uppercase"]},
            "code": {
                "source": "code",
                "transforms": [{"replace": {"pattern": r"[^\pL]", "with": "-"}}],
            },
            "country": {"value": "US"},
        }
    )
    phone = mapping["phone"]
    assert phone.transforms[0] == "trim"
    assert isinstance(phone.transforms[1], E164Transform)
    assert phone.transforms[1].e164.region == "US"  # upper-cased
    assert isinstance(phone.transforms[2], E164Transform)
    assert phone.transforms[2].e164.region is None
    assert (phone.hash_key, phone.hash_region, phone.required) == ("google.phone", "FR", True)
    assert isinstance(mapping["signup"].transforms[0], FormatTransform)
    assert isinstance(mapping["tier"].transforms[0], DefaultTransform)
    replace = mapping["code"].transforms[0]
    assert isinstance(replace, ReplaceTransform)
    assert replace.replace.with_ == "-"
    assert mapping["country"].value == "US"
    assert mapping["country"].source_ref is None


def test_unknown_transform_names_the_field_and_lists_the_known_ones() -> None:
    [(loc, msg)] = _errors({"name": {"source": "n", "transforms": ["trim", "upper"]}})
    assert loc[:3] == ("name", "transforms", 1)
    assert "unknown transform 'upper'" in msg
    assert "trim, lowercase, uppercase, digits, e164, default, format, replace" in msg
    [(loc, msg)] = _errors({"name": {"source": "n", "transforms": [{"slugify": {}}]}})
    assert loc[0] == "name"
    assert "unknown transform 'slugify'" in msg


def test_transform_shapes_say_how_to_write_them() -> None:
    [(_, msg)] = _errors({"f": {"source": "n", "transforms": ["default"]}})
    assert "needs arguments" in msg
    [(_, msg)] = _errors({"f": {"source": "n", "transforms": [{"trim": True}]}})
    assert "takes no arguments" in msg
    [(_, msg)] = _errors({"f": {"source": "n", "transforms": [{"default": 1, "trim": None}]}})
    assert "single key" in msg
    [(loc, msg)] = _errors({"f": {"source": "n", "transforms": [{"e164": {"regoin": "US"}}]}})
    assert "regoin" in str(loc)
    assert "Extra inputs are not permitted" in msg


def test_source_and_value_are_exclusive_and_one_is_needed() -> None:
    [(loc, msg)] = _errors({"country": {"source": "c", "value": "US"}})
    assert loc == ("country",)
    assert "either 'source'" in msg
    assert "exactly one" in msg
    [(loc, msg)] = _errors({"country": {"required": True}})
    assert loc == ("country",)
    assert "exactly one" in msg


def test_bad_sources_regions_zones_patterns_and_hash_keys_say_the_fix() -> None:
    [(loc, msg)] = _errors({"f": "run.weather"})
    assert loc[0] == "f"
    assert "unknown run metadata 'run.weather'" in msg
    assert "run.campaign" in msg
    [(_, msg)] = _errors({"f": "a.b.c"})
    assert "`table.column`" in msg
    [(_, msg)] = _errors({"f": {"source": "p", "transforms": [{"e164": {"region": "ZZ"}}]}})
    assert "unknown phone region 'ZZ'" in msg
    zone = {"format": {"pattern": "%Y", "timezone": "Mars/Olympus"}}
    [(_, msg)] = _errors({"f": {"source": "t", "transforms": [zone]}})
    assert "unknown time zone 'Mars/Olympus'" in msg
    [(_, msg)] = _errors({"f": {"source": "t", "transforms": [{"replace": {"pattern": "(["}}]}})
    assert "invalid regular expression" in msg
    [(_, msg)] = _errors({"f": {"source": "e", "hash": "meta.mail"}})
    assert "unknown hash key 'meta.mail'" in msg
    assert "meta.email" in msg
    [(_, msg)] = _errors({"f": {"source": "e", "hash": {"meta.email": {"region": "US"}}}})
    assert "takes no options" in msg
    [(_, msg)] = _errors({" f": "email"})
    assert "spaces around it" in msg


def test_hash_key_literal_matches_the_documented_keys() -> None:
    assert tuple(get_args(HashKey)) == HASH_KEYS


def test_parse_source_kinds() -> None:
    assert parse_source("email") == SourceRef("column", "email")
    assert parse_source("orders.sku").text == "orders.sku"
    assert parse_source("run.time").text == "run.time"
    with pytest.raises(ValueError, match="not a column"):
        parse_source("")


def test_mapping_sources_lists_each_source_once_by_kind() -> None:
    mapping = MAPPING.validate_python(
        {
            "e": "email",
            "e2": {"source": "email", "hash": "sha256"},
            "sku": "orders.sku",
            "price": "orders.price",
            "store": "visits.store",
            "c": "run.campaign",
            "t": "run.time",
            "k": {"value": 1},
        }
    )
    sources = mapping_sources(mapping)
    assert sources.columns == ("email",)
    assert sources.related == {"orders": ("sku", "price"), "visits": ("store",)}
    assert sources.run == ("campaign", "time")
    assert sources.batch_columns == ("email", "orders.sku", "orders.price", "visits.store")
    assert mapping_sources(None).batch_columns == ()


def test_campaign_destination_mapping_keeps_the_old_shorthand_and_locates_errors() -> None:
    use = DestinationUse.model_validate({"destination": "crm", "mapping": {"mail": "email"}})
    assert use.mapping["mail"].source == "email"
    data = {
        "name": "c",
        "audience": {"include": ["a"]},
        "destinations": [
            {"destination": "meta", "mapping": {"em": {"source": "email", "hash": "md5"}}}
        ],
    }
    with pytest.raises(ValidationError) as caught:
        CampaignDefinition.model_validate(data)
    [error] = caught.value.errors()
    assert error["loc"][:4] == ("destinations", 0, "mapping", "em")
    assert "unknown hash key 'md5'" in error["msg"]
    assert "mapping" in str(CampaignDefinition.model_json_schema())
