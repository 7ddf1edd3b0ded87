from typing import Any

import pytest
from pydantic import ValidationError

from activator.definitions.campaign import CampaignDefinition
from activator.definitions.common import segment_references
from activator.definitions.journey import JourneyDefinition
from activator.definitions.orchestration import OrchestrationDefinition
from activator.definitions.segment import SegmentDefinition
from activator.definitions.sql import check_select


def _messages(model: type[Any], data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [e["msg"] for e in caught.value.errors()]


def test_campaign_defaults_to_ninety_ten_with_a_control() -> None:
    campaign = CampaignDefinition.model_validate(
        {
            "name": "c",
            "audience": {"include": ["a"]},
            "sub_audiences": [{"name": "s", "segment": "a"}],
        }
    )
    groups = campaign.sub_audiences[0].groups
    assert [(g.name, g.percent, g.control) for g in groups] == [
        ("treatment", 90, False),
        ("control", 10, True),
    ]
    assert campaign.mode == "incremental"


def test_group_percentages_must_sum_to_100_and_names_not_reserved() -> None:
    base = {"name": "c", "audience": {"include": ["a"]}}
    bad_sum = {**base, "sub_audiences": [{"name": "s", "segment": "a", "groups": [
        {"name": "x", "percent": 50}, {"name": "y", "percent": 40}]}]}  # fmt: skip
    assert any("add up to 90, not 100" in m for m in _messages(CampaignDefinition, bad_sum))
    reserved = {**base, "sub_audiences": [{"name": "s", "segment": "a", "groups": [
        {"name": "_all", "percent": 100}]}]}  # fmt: skip
    assert any("reserved" in m for m in _messages(CampaignDefinition, reserved))


def test_audience_takes_one_to_ten_include_segments() -> None:
    too_many = {"name": "c", "audience": {"include": [f"s{i}" for i in range(11)]}}
    assert any("at most 10" in m for m in _messages(CampaignDefinition, too_many))


def test_segment_is_rules_or_sql() -> None:
    assert any("exactly one" in m for m in _messages(SegmentDefinition, {"name": "s"}))
    both = {"name": "s", "sql": "select 1", "rules": {"segment": "x"}}
    assert any("exactly one" in m for m in _messages(SegmentDefinition, both))


def test_segment_references_walk_nested_groups() -> None:
    segment = SegmentDefinition.model_validate(
        {"name": "s", "rules": {"all": [{"segment": "a"}, {"any": [{"not": {"segment": "b"}}]}]}}
    )
    assert segment_references(segment.rules, "rules") == [
        ("a", "rules.all[0].segment"),
        ("b", "rules.all[1].any[0].not.segment"),
    ]


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("SELECT customer_id FROM customers", None),
        ("WITH a AS (SELECT 1 AS id) SELECT id FROM a", None),
        ("SELECT 1; SELECT 2", "exactly one SELECT statement, found 2"),
        ("DROP TABLE customers", "not DROP"),
        ("INSERT INTO t SELECT 1", "not INSERT"),
        ("SELECT * INTO copy FROM customers", "found INTO"),
        ("SELEC 1", "does not parse"),
        ("SELECT 'unterminated FROM customers", "does not parse as postgres"),
        ("SELECT 1 /* unterminated", "does not parse as postgres"),
    ],
)
def test_only_one_read_only_select(sql: str, problem: str | None) -> None:
    found = check_select(sql, "postgres")
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_orchestration_query_is_checked() -> None:
    messages = _messages(
        OrchestrationDefinition,
        {"name": "o", "query": "DELETE FROM customers", "destination": "d"},
    )
    assert any("query: only a SELECT is accepted here, not DELETE" in m for m in messages)


def test_journey_nodes_are_a_discriminated_union() -> None:
    journey = {
        "name": "j",
        "start": {"entry": ["new"]},
        "schedule": {"type": "recurring", "every": "daily"},
        "nodes": [{"id": "w", "name": "Wait", "type": "delay", "wait": "3 days"}],
    }
    with pytest.raises(ValidationError) as caught:
        JourneyDefinition.model_validate(journey)
    (error,) = caught.value.errors()
    assert error["loc"] == ("nodes", 0, "delay", "wait")


def test_cron_schedule_is_validated() -> None:
    bad = {
        "name": "o",
        "table": "customers",
        "destination": "d",
        "schedule": {"type": "cron", "cron": "every day"},
    }
    assert any("five-field cron" in m for m in _messages(OrchestrationDefinition, bad))
