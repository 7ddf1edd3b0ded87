"""Spark specifics: the session built from the config, and left alone when borrowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from activator.definitions.config import SparkEngineConfig
from activator.engines.registry import open_engine
from activator.engines.spark import SparkEngine

pytestmark = pytest.mark.spark


def test_engine_uses_running_session_and_leaves_it_running(
    spark_session: Any, tmp_path: Path
) -> None:
    config = SparkEngineConfig(type="spark", master="local[2]")
    with open_engine(config, workspace_root=tmp_path, dataplane_schema="plane_x") as engine:
        assert isinstance(engine, SparkEngine)
        assert engine.session is spark_session
        assert spark_session.conf.get("spark.sql.session.timeZone") == "UTC"
        engine.ensure_dataplane()
        assert "plane_x" in engine.backend.list_databases()  # type: ignore[attr-defined]
        assert not SparkEngine.SINGLE_WRITER
        assert SparkEngine.DIALECT == "spark"
    # Still usable: closing a borrowed session's engine must not stop it.
    assert spark_session.sql("SELECT 1 AS one").collect()[0]["one"] == 1
