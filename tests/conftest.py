"""Shared fixtures. Real components only: DuckDB files, a real PostgreSQL, a real Spark."""

pytest_plugins = ["tests.fixtures.postgres"]
