from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

CONFIG = """\
engine: {type: duckdb, path: data/w.duckdb}
timezone: UTC
data_model:
  customers: {table: customers, key: customer_id, pii: [email]}
  events:
    orders: {table: orders, customer_key: customer_id, timestamp: ordered_at, amount: total}
"""

Writer = Callable[[str, str], Path]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "activator.yaml").write_text(CONFIG)
    return tmp_path


@pytest.fixture
def write(workspace: Path) -> Writer:
    """Write a definition file: ``write("segments/vip.yml", "...")``."""

    def _write(relative: str, text: str) -> Path:
        path = workspace / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return _write
