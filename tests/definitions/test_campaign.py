"""Campaign definitions: groups, shares, destinations and their mappings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from activator.definitions.campaign import CampaignDefinition


def _errors(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        CampaignDefinition.model_validate({"name": "c", "audience": {"include": ["a"]}, **spec})
    return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in caught.value.errors()]


def _campaign(**spec: Any) -> CampaignDefinition:
    return CampaignDefinition.model_validate({"name": "c", "audience": {"include": ["a"]}, **spec})


def test_group_rules() -> None:
    three_decimals = {"remaining": {"groups": [
        {"name": "a", "percent": 33.333}, {"name": "b", "percent": 66.667}]}}  # fmt: skip
    assert any("more than two decimals" in e for e in _errors(three_decimals))
    control_sent = {"remaining": {"groups": [
        {"name": "t", "percent": 90},
        {"name": "h", "percent": 10, "control": True, "destinations": ["d"]}]}}  # fmt: skip
    assert any("is the control: it is never sent" in e for e in _errors(control_sent))
    twice = {"remaining": {"groups": [
        {"name": "t", "percent": 50}, {"name": "t", "percent": 50}]}}  # fmt: skip
    assert any("group names must be unique" in e for e in _errors(twice))
    # Two decimals are fine and add up exactly.
    thirds = _campaign(remaining={"groups": [
        {"name": "a", "percent": 33.33}, {"name": "b", "percent": 33.33},
        {"name": "c", "percent": 33.34}]})  # fmt: skip
    assert [g.percent for g in thirds.remaining.groups] == [33.33, 33.33, 33.34]


def test_sub_audience_names_are_unique_with_the_remaining_one() -> None:
    clash = {"sub_audiences": [{"name": "all-remaining", "segment": "a"}]}
    assert any("sub-audience names must be unique" in e for e in _errors(clash))
    assert any(
        "either 'segment' or 'rules'" in e for e in _errors({"sub_audiences": [{"name": "s"}]})
    )
    assert any("at most 60" in e for e in _errors(
        {"sub_audiences": [{"name": f"s{i}", "segment": "a"} for i in range(61)]}))  # fmt: skip


def test_groups_share_the_campaign_mapping_unless_they_override_it() -> None:
    campaign = _campaign(
        destinations=[
            {"destination": "esp", "mapping": {"email": "email"}, "files": "combined"},
            {"destination": "crm", "mapping": {"id": "customer_id"}},
        ],
        sub_audiences=[{"name": "vip", "segment": "a", "groups": [
            {"name": "everywhere", "percent": 40},
            {"name": "esp-only", "percent": 30, "destinations": ["esp"]},
            {"name": "own", "percent": 20,
             "destinations": [{"destination": "esp", "mapping": {"mail": "email"}}]},
            {"name": "silent", "percent": 5, "destinations": []},
            {"name": "holdout", "percent": 5, "control": True}]}],
    )  # fmt: skip
    groups = {g.name: g for g in campaign.sub_audiences[0].groups}

    def uses(name: str) -> list[tuple[str, list[str], str]]:
        return [
            (u.destination, list(u.mapping), u.files)
            for u in campaign.group_destinations(groups[name])
        ]

    assert uses("everywhere") == [("esp", ["email"], "combined"), ("crm", ["id"], "per_group")]
    assert uses("esp-only") == [("esp", ["email"], "combined")]
    assert uses("own") == [("esp", ["mail"], "combined")]
    assert uses("silent") == []
    assert uses("holdout") == []
    # The remaining part has the default groups: the treatment goes everywhere.
    [(sub, remaining)] = campaign.parts()[1:]
    assert (sub, [g.name for g in remaining]) == ("all-remaining", ["treatment", "control"])
    assert [u.destination for u in campaign.group_destinations(remaining[0])] == ["esp", "crm"]
