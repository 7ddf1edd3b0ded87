"""Applying definitions: versions only on change, and all or nothing."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from activator.errors import StoreError
from activator.store.store import ApplyResult, DefinitionInput, MetadataStore
from tests.store.conftest import FixedClock

VIP = DefinitionInput("segment", "vip", {"rules": {"all": [{"attr": "ltv", "gt": 500}]}}, "s.yaml")


def test_new_definition_is_created_at_version_1(store: MetadataStore, clock: FixedClock) -> None:
    assert store.apply([VIP]) == [ApplyResult("segment", "vip", 1, "created")]
    stored = store.get("segment", "vip")
    assert stored is not None
    assert (stored.version, stored.status, stored.source) == (1, "draft", "s.yaml")
    assert stored.spec == VIP.spec
    canonical = b'{"rules":{"all":[{"attr":"ltv","gt":500}]}}'
    assert stored.content_hash == hashlib.sha256(canonical).hexdigest()
    assert stored.updated_at == clock.now


def test_unchanged_spec_makes_no_new_version(store: MetadataStore) -> None:
    store.apply([VIP])
    # Same content, keys in another order: the canonical JSON is the same.
    reordered = DefinitionInput(
        "segment", "vip", {"rules": {"all": [{"gt": 500, "attr": "ltv"}]}}, "x"
    )
    assert store.apply([reordered]) == [ApplyResult("segment", "vip", 1, "unchanged")]
    assert [v.version for v in store.versions("segment", "vip")] == [1]


def test_changed_spec_makes_version_2_and_keeps_1(store: MetadataStore, clock: FixedClock) -> None:
    store.apply([VIP])
    first_time = clock.now
    changed = DefinitionInput("segment", "vip", {"rules": {"all": []}}, "segments/vip.yaml")
    second_time = clock.advance(hours=1)
    assert store.apply([changed]) == [ApplyResult("segment", "vip", 2, "updated")]

    versions = store.versions("segment", "vip")
    assert [(v.version, v.spec, v.updated_at) for v in versions] == [
        (1, VIP.spec, first_time),
        (2, changed.spec, second_time),
    ]
    current = store.get("segment", "vip")
    assert current is not None
    assert (current.version, current.spec) == (2, changed.spec)
    # Going back to the first content is a change too: history only grows.
    assert store.apply([VIP]) == [ApplyResult("segment", "vip", 3, "updated")]


def test_current_is_ordered_by_kind_then_name_and_filters(store: MetadataStore) -> None:
    store.apply(
        [
            DefinitionInput("segment", "b", {}, "api"),
            DefinitionInput("campaign", "z", {}, "api"),
            DefinitionInput("segment", "a", {}, "api"),
        ]
    )
    assert [(d.kind, d.name) for d in store.current()] == [
        ("campaign", "z"),
        ("segment", "a"),
        ("segment", "b"),
    ]
    assert [d.name for d in store.current("segment")] == ["a", "b"]
    assert store.current("journey") == []
    assert store.get("segment", "missing") is None
    assert store.versions("segment", "missing") == []


def test_apply_is_all_or_nothing(store: MetadataStore) -> None:
    store.apply([VIP])
    batch = [
        DefinitionInput("segment", "vip", {"rules": {"all": []}}, "segments/vip.yaml"),
        DefinitionInput("campaign", "weekly", {"audience": "vip"}, "campaigns/weekly.yaml"),
        DefinitionInput("journey", "welcome", {"when": datetime(2026, 1, 1)}, "journeys/w.yaml"),
    ]
    with pytest.raises(StoreError, match=r"journeys/w\.yaml: journey 'welcome' cannot be stored"):
        store.apply(batch)
    assert [(d.kind, d.name, d.version) for d in store.current()] == [("segment", "vip", 1)]
    assert len(store.versions("segment", "vip")) == 1


def test_spec_with_nan_is_refused(store: MetadataStore) -> None:
    with pytest.raises(StoreError, match="cannot be stored as JSON"):
        store.apply([DefinitionInput("segment", "s", {"x": float("nan")}, "api")])
    assert store.current() == []


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([DefinitionInput("widget", "w", {}, "w.yaml")], "unknown definition kind 'widget'"),
        ([VIP, VIP], "segment 'vip' is given twice"),
    ],
)
def test_bad_batches_are_refused(
    store: MetadataStore, items: list[DefinitionInput], message: str
) -> None:
    with pytest.raises(StoreError, match=message):
        store.apply(items)
    assert store.current() == []


def test_timestamps_come_back_aware_utc(store: MetadataStore, clock: FixedClock) -> None:
    # A clock in another zone: the store keeps the instant and returns it in UTC.
    clock.now = datetime(2026, 3, 1, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    store.apply([VIP])
    stored = store.get("segment", "vip")
    assert stored is not None
    assert stored.updated_at.tzinfo is UTC
    assert stored.updated_at == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def test_status_follows_the_applied_definition(store: MetadataStore) -> None:
    campaign = DefinitionInput("campaign", "spring", {"status": "active"}, "c.yml", "active")
    store.apply([campaign])
    paused = DefinitionInput("campaign", "spring", {"status": "paused"}, "c.yml", "paused")
    assert store.apply([paused]) == [ApplyResult("campaign", "spring", 2, "updated")]
    stored = store.get("campaign", "spring")
    assert stored is not None
    assert (stored.version, stored.status) == (2, "paused")
