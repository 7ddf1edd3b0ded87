"""Optional drivers: imported only when used, and a clear error when missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# ``sys.modules[name] = None`` makes ``import name`` fail as if the package were absent.
MISSING = textwrap.dedent(
    """
    import sys
    sys.modules[sys.argv[1]] = None
    from pathlib import Path

    from activator.definitions.config import PostgresEngineConfig, SparkEngineConfig
    from activator.engines.registry import open_engine
    from activator.errors import MissingExtraError

    config = (
        SparkEngineConfig(type="spark")
        if sys.argv[2] == "spark"
        else PostgresEngineConfig(type="postgres", url="postgresql://127.0.0.1:1/db")
    )
    try:
        open_engine(config, workspace_root=Path("."))
    except MissingExtraError as exc:
        print(exc)
        sys.exit(4)
    """
)


@pytest.mark.parametrize(
    ("module", "engine", "extra"),
    [("pyspark", "spark", "spark"), ("psycopg", "postgres", "postgres")],
)
def test_missing_driver_says_which_extra_to_install(module: str, engine: str, extra: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", MISSING, module, engine],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 4, result.stderr
    assert result.stdout.strip().splitlines() == [
        f"this needs the optional package {module!r}, which is not installed",
        f"  hint: install activator[{extra}]  (pip install 'activator[{extra}]')",
    ]


def test_engine_modules_do_not_import_drivers() -> None:
    script = textwrap.dedent(
        """
        import sys
        import activator.engines.registry, activator.engines.spark, activator.engines.postgres
        import activator.engines.datamodel, activator.compiler.functions
        print(sorted(m for m in ("pyspark", "psycopg", "py4j") if m in sys.modules))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
