"""Versions guard edits: an API edit made on a version that is no longer current is refused,
and applying the files never silently undoes a change made through the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, select

from activator.errors import StoreError
from activator.store import DefinitionConflictError
from activator.store.migrate import alembic_config
from activator.store.models import DefinitionVersionRow
from activator.store.store import DefinitionInput, MetadataStore
from tests.store.conftest import FixedClock

V1 = {"rules": {"attribute": "customers.tier", "op": "equals", "value": "gold"}}
V2 = {"rules": {"attribute": "customers.tier", "op": "equals", "value": "platinum"}}
V3 = {"rules": {"attribute": "customers.tier", "op": "in", "value": ["gold", "platinum"]}}


def _file(spec: dict[str, Any], name: str = "vip") -> DefinitionInput:
    return DefinitionInput("segment", name, spec, f"segments/{name}.yml", from_files=True)


def _api(spec: dict[str, Any], expected: int | None, name: str = "vip") -> DefinitionInput:
    return DefinitionInput("segment", name, spec, "api", expected_version=expected)


def _versions(store: MetadataStore) -> int:
    with store.engine.connect() as connection:
        count: int = connection.execute(
            select(func.count()).select_from(DefinitionVersionRow)
        ).scalar_one()
    return count


def test_api_edit_on_a_stale_version_is_refused_and_nothing_stored(
    store: MetadataStore, clock: FixedClock
) -> None:
    store.apply([_api(V1, 0)])
    changed_at = clock.advance(minutes=5)
    assert store.apply([_api(V2, 1)])[0].version == 2
    clock.advance(minutes=5)
    before = _versions(store)
    with pytest.raises(DefinitionConflictError) as raised:
        # Another definition in the same batch is not stored either: all or nothing.
        store.apply([_api(V1, 0, name="other"), _api(V3, 1)])
    error = raised.value
    assert error.message == (
        "segment 'vip' is at version 2, not 1: it was changed "
        f"(by api, {changed_at.isoformat()}) after you read it; read it again and reapply "
        "your change"
    )
    assert (error.kind, error.name, error.current_version) == ("segment", "vip", 2)
    assert error.bad_input
    assert isinstance(error, StoreError)
    assert _versions(store) == before
    assert store.get("segment", "other") is None
    current = store.get("segment", "vip")
    assert current is not None
    assert (current.version, current.spec) == (2, V2)
    # The editor reads version 2 again and reapplies: accepted.
    assert store.apply([_api(V3, 2)])[0].version == 3


def test_expected_zero_on_an_existing_definition_is_refused(
    store: MetadataStore, clock: FixedClock
) -> None:
    created_at = clock.now
    store.apply([_file(V1)])
    with pytest.raises(DefinitionConflictError) as raised:
        store.apply([_api(V1, 0)])  # even with the same content
    assert raised.value.message == (
        f"segment 'vip' already exists (version 1, from segments/vip.yml, "
        f"{created_at.isoformat()}): read it and change it instead of creating it"
    )
    assert raised.value.current_version == 1


def test_expected_version_of_a_missing_definition_is_refused(store: MetadataStore) -> None:
    with pytest.raises(DefinitionConflictError, match="does not exist, not at version 3"):
        store.apply([_api(V1, 3)])
    assert store.current() == []


def test_api_create_and_edit_leave_file_version_alone(store: MetadataStore) -> None:
    store.apply([_api(V1, 0)])
    stored = store.get("segment", "vip")
    assert stored is not None
    assert stored.file_version is None
    store.apply([_file(V2, name="filed")])
    store.apply([_api(V3, 1, name="filed")])
    filed = store.get("segment", "filed")
    assert filed is not None
    assert (filed.version, filed.file_version) == (2, 1)


def test_file_apply_after_an_api_edit_is_refused_naming_the_file(
    store: MetadataStore, clock: FixedClock
) -> None:
    store.apply([_file(V1)])
    edited_at = clock.advance(hours=1)
    store.apply([_api(V2, 1)])
    before = _versions(store)
    with pytest.raises(DefinitionConflictError) as raised:
        store.apply([_file(V1, name="new-one"), _file(V1)])
    assert raised.value.message == (
        "segments/vip.yml: segment 'vip' was changed through the API (version 2, "
        f"{edited_at.isoformat()}) after these files were applied; `activator export` writes "
        "it into the files, `activator apply --force` overwrites it"
    )
    assert raised.value.current_version == 2
    assert _versions(store) == before
    assert store.get("segment", "new-one") is None

    # A file already holding the API's content is no conflict: it is unchanged, and the
    # files now hold version 2.
    result = store.apply([_file(V2)])[0]
    assert (result.version, result.change) == (2, "unchanged")
    stored = store.get("segment", "vip")
    assert stored is not None
    assert stored.file_version == 2
    # From there, editing the file works again.
    assert store.apply([_file(V3)])[0].change == "updated"


def test_force_overwrites_the_api_edit(store: MetadataStore) -> None:
    store.apply([_file(V1)])
    store.apply([_api(V2, 1)])
    result = store.apply([_file(V1)], force=True)[0]
    assert (result.version, result.change) == (3, "updated")
    stored = store.get("segment", "vip")
    assert stored is not None
    assert (stored.spec, stored.file_version) == (V1, 3)
    assert [v.source for v in store.versions("segment", "vip")] == [
        "segments/vip.yml",
        "api",
        "segments/vip.yml",
    ]
    # Files applied without --force now go through again.
    assert store.apply([_file(V2)])[0].version == 4


def test_definition_created_through_the_api_conflicts_with_a_different_file(
    store: MetadataStore,
) -> None:
    store.apply([_api(V1, 0)])
    with pytest.raises(DefinitionConflictError, match="changed through the API"):
        store.apply([_file(V2)])
    result = store.apply([_file(V1)])[0]
    assert result.change == "unchanged"
    stored = store.get("segment", "vip")
    assert stored is not None
    assert stored.file_version == 1


def test_mark_exported_lets_the_files_apply(store: MetadataStore) -> None:
    store.apply([_file(V1)])
    store.apply([_api(V2, 1)])
    store.mark_exported("segment", "vip", 2)
    stored = store.get("segment", "vip")
    assert stored is not None
    assert stored.file_version == 2
    # The exported file edited and applied: a new version from the file.
    result = store.apply([_file(V3)])[0]
    assert (result.version, result.change) == (3, "updated")
    with pytest.raises(StoreError, match="no segment 'ghost'"):
        store.mark_exported("segment", "ghost", 1)


def test_items_without_checks_behave_as_before(store: MetadataStore) -> None:
    plain = DefinitionInput("segment", "vip", V1, "segments/vip.yml")
    store.apply([plain])
    store.apply([_api(V2, 1)])
    # Neither expected_version nor from_files: stored as a new version, no questions asked.
    assert store.apply([plain])[0].version == 3


def test_migration_sets_file_version_of_existing_definitions(
    store_url: str, tmp_path: Path
) -> None:
    with MetadataStore.open(store_url, workspace_root=tmp_path) as store:
        with store.engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0003")
        with store.engine.begin() as connection:
            for name, versions in (("a", 1), ("b", 3)):
                connection.exec_driver_sql(
                    "INSERT INTO definitions (kind, name, current_version, status, created_at, "
                    f"updated_at) VALUES ('segment', '{name}', {versions}, 'active', "
                    "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                )
        with store.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
        assert [(d.name, d.file_version) for d in store.current()] == []  # no versions rows
        with store.engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT name, file_version FROM definitions ORDER BY name"
            ).all()
    assert [tuple(row) for row in rows] == [("a", 1), ("b", 3)]
