"""The schema is migrated on first use, once, and agrees with the ORM models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from activator.errors import StoreError
from activator.store.migrate import alembic_config, head_revision
from activator.store.models import Base
from activator.store.store import DefinitionInput, MetadataStore

TABLES = {
    "alembic_version",
    "api_tokens",
    "audit_log",
    "definitions",
    "definition_versions",
    "runs",
    "run_tasks",
    "ledger_units",
    "rejected_records",
    "run_events",
    "schedule_state",
}


def test_first_open_migrates_to_head(store: MetadataStore) -> None:
    assert set(inspect(store.engine).get_table_names()) == TABLES
    with store.engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        assert versions.all() == [head_revision()]
    assert store.revision() == head_revision()


def test_reopening_keeps_data_and_does_not_migrate_again(store_url: str, tmp_path: Path) -> None:
    with MetadataStore.open(store_url, workspace_root=tmp_path) as first:
        first.apply([DefinitionInput("segment", "vip", {"rules": []}, "segments/vip.yaml")])
    # Running 0001 again would fail on the existing tables.
    with MetadataStore.open(store_url, workspace_root=tmp_path) as second:
        assert second.revision() == head_revision()
        stored = second.get("segment", "vip")
        with second.engine.connect() as connection:
            rows = connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one()
    assert stored is not None
    assert stored.version == 1
    assert rows == 1


def test_models_and_migrations_agree(store: MetadataStore) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_downgrade_to_base_and_upgrade_again(store: MetadataStore) -> None:
    with store.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
    with store.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    assert set(inspect(store.engine).get_table_names()) == TABLES


def test_store_from_a_newer_activator_is_refused(store_url: str, tmp_path: Path) -> None:
    with MetadataStore.open(store_url, workspace_root=tmp_path) as store, store.engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match=r"revision '9999'.*does not know") as raised:
        MetadataStore.open(store_url, workspace_root=tmp_path)
    assert raised.value.hint is not None
    assert "upgrade Activator" in raised.value.hint
