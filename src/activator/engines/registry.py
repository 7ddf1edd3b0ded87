"""Engine type (the ``type`` in ``activator.yaml``) → adapter class, imported on demand.

Lazy imports keep ``import activator`` light: PySpark or psycopg are loaded only when a
workspace uses them.
"""

from __future__ import annotations

__all__ = ["ENGINES", "engine_class", "open_engine"]

import importlib
from pathlib import Path

from activator.definitions.config import EngineConfig
from activator.engines.base import Engine
from activator.errors import ActivatorError, ConfigError, EngineError

ENGINES: dict[str, str] = {
    "duckdb": "activator.engines.duckdb:DuckDBEngine",
    "spark": "activator.engines.spark:SparkEngine",
    "postgres": "activator.engines.postgres:PostgresEngine",
}
"""Engine type → ``module:Class`` of its adapter."""


def engine_class(engine_type: str) -> type[Engine]:
    """The adapter class for an engine type.

    Raises:
        ConfigError: the type is unknown.
    """
    try:
        module_name, class_name = ENGINES[engine_type].split(":")
    except KeyError:
        known = ", ".join(sorted(ENGINES))
        raise ConfigError(f"unknown engine type {engine_type!r} (known: {known})") from None
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise TypeError(f"{ENGINES[engine_type]} is not an Engine")
    return cls


def open_engine(
    config: EngineConfig,
    *,
    workspace_root: Path,
    dataplane_schema: str = "activator",
    read_only: bool = False,
) -> Engine:
    """Open the workspace's engine.

    Args:
        config: the ``engine`` section of ``activator.yaml``.
        workspace_root: the workspace folder; relative paths are resolved against it.
        dataplane_schema: schema holding Activator's own tables.
        read_only: open without write access (no writer lock on DuckDB).

    Returns:
        The open engine; close it, or use it as a context manager.

    Raises:
        EngineLockedError: another process holds the embedded engine for writing.
        MissingExtraError: the engine's optional dependency is not installed.
        EngineError: the engine cannot be reached or opened; the message names the engine
            and the reason, never a secret.
    """
    cls = engine_class(config.type)
    try:
        return cls(
            config,
            workspace_root=workspace_root,
            dataplane_schema=dataplane_schema,
            read_only=read_only,
        )
    except ActivatorError:
        raise
    except Exception as exc:
        # Adapters translate what they know; anything else still names the engine. Adapters
        # that hold secrets mask them before this point.
        raise EngineError(
            f"cannot open the {config.type} engine: {type(exc).__name__}: {exc}"
        ) from exc
