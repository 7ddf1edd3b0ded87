"""The segment commands run as a user runs them: a separate ``activator`` process."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot

from tests.cli.runner import activator, as_json

pytestmark = pytest.mark.e2e

AS_OF = "2026-11-01"
END_OF_DAY = "TIMESTAMP '2026-11-01 23:59:59.999999'"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Read-only commands only in this module, so one workspace serves every test.
    target = tmp_path_factory.mktemp("segment-cli") / "w"
    result = activator(
        "init", str(target), "--demo", "--customers", "2000", "--seed", "7",
        "--as-of", AS_OF, "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return target


def query(demo: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(demo / "data" / "retail.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def lapsing_high_value(demo: Path) -> list[int]:
    """lapsing-high-value, hand-written: high-value, 3+ orders in a year, none in 90 days."""
    as_of = datetime(2026, 11, 1, 23, 59, 59, 999999)

    def since(days: int) -> str:
        start = as_of - timedelta(days=days)
        return (
            f"NOT is_returned AND ordered_at > TIMESTAMP '{start.isoformat(sep=' ')}' "
            f"AND ordered_at <= {END_OF_DAY}"
        )

    rows = query(
        demo,
        f"""
        WITH spent AS (SELECT customer_id FROM orders WHERE {since(365)}
                       GROUP BY 1 HAVING sum(total) >= 500),
             three AS (SELECT customer_id FROM orders WHERE {since(365)}
                       GROUP BY 1 HAVING count(*) >= 3),
             recent AS (SELECT DISTINCT customer_id FROM orders WHERE {since(90)})
        SELECT customer_id FROM customers JOIN spent USING (customer_id)
          JOIN three USING (customer_id)
        WHERE loyalty_tier IN ('gold', 'platinum')
          AND customer_id NOT IN (SELECT customer_id FROM recent)
          AND NOT (email_opt_in IS NOT DISTINCT FROM false)
        ORDER BY 1
        """,
    )
    return [r[0] for r in rows]


def test_preview_json_is_one_document_with_count_sample_and_insights(demo: Path) -> None:
    result = activator(
        "-w", str(demo), "segment", "preview", "lapsing-high-value",
        "--as-of", AS_OF, "--limit", "3", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = as_json(result)
    expected = lapsing_high_value(demo)
    assert document["segment"] == "lapsing-high-value"
    assert document["as_of"] == "2026-11-01T23:59:59.999999+00:00"
    assert document["count"] == len(expected) > 0
    assert [row["customer_id"] for row in document["sample"]] == expected[:3]
    for row in document["sample"]:
        assert row["email"] is None or "***" in row["email"]
        assert row["first_name"].endswith("***")
        assert row["signup_at"].startswith("20")  # timestamps in ISO 8601
    insights = document["insights"]
    assert set(insights) == {
        "unique_customers", "active_last_year", "revenue_last_year", "reachable",
    }  # fmt: skip
    assert insights["unique_customers"] == len(expected)
    assert 0 < insights["active_last_year"] <= len(expected)
    revenue = Decimal(insights["revenue_last_year"])  # a string, exact
    assert revenue > 0
    assert revenue == revenue.quantize(Decimal("0.01"))
    assert 0 < insights["reachable"] <= len(expected)


def test_preview_for_people_shows_tables(demo: Path) -> None:
    result = activator(
        "-w", str(demo), "segment", "preview", "sms-reachable", "--as-of", AS_OF,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = result.stdout
    count = query(
        demo,
        "SELECT count(*) FROM customers WHERE sms_opt_in AND phone <> '' AND lower(phone) <> 'n/a'",
    )[0][0]
    assert f"{count:,} members" in text
    assert "reachable" in text
    assert "PII masked" in text


def test_sql_for_another_engine(demo: Path) -> None:
    result = activator(
        "-w", str(demo), "segment", "sql", "lapsing-high-value", "--dialect", "snowflake",
        "--as-of", AS_OF, "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = as_json(result)
    assert (document["segment"], document["dialect"]) == ("lapsing-high-value", "snowflake")
    parsed = sqlglot.parse_one(document["sql"], read="snowflake")
    assert {t.name for t in parsed.find_all(sqlglot.exp.Table)} >= {"customers", "orders"}


def test_duckdb_sql_runs_and_gives_the_members(demo: Path) -> None:
    result = activator(
        "-w", str(demo), "segment", "sql", "lapsing-high-value", "--as-of", AS_OF,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = sorted(r[0] for r in query(demo, result.stdout))
    assert got == lapsing_high_value(demo)


def test_why_member_and_non_member(demo: Path) -> None:
    members = lapsing_high_value(demo)
    outsider = next(c for c in range(1, 2001) if c not in set(members))
    for customer, expected in ((members[0], True), (outsider, False)):
        result = activator(
            "-w", str(demo), "segment", "why", "lapsing-high-value", str(customer),
            "--as-of", AS_OF, "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        document = as_json(result)
        assert document["customer_id"] == customer
        assert document["member"] is expected
        assert document["conditions"]["met"] is expected
        assert document["conditions"]["children"]

    human = activator(
        "-w", str(demo), "segment", "why", "lapsing-high-value", str(outsider),
        "--as-of", AS_OF,
    )  # fmt: skip
    assert human.returncode == 0, human.stderr
    assert "is not a member" in human.stdout
    assert "✗" in human.stdout


def test_unknown_segment_exits_2_with_the_known_ones(demo: Path) -> None:
    result = activator("-w", str(demo), "segment", "preview", "vip", "--json")
    assert result.returncode == 2
    error = as_json(result)["error"]
    assert error["type"] == "ConfigError"
    assert "unknown segment 'vip'" in error["message"]
    assert "vip-customers" in error["hint"]
    human = activator("-w", str(demo), "segment", "sql", "vip")
    assert human.returncode == 2
    assert "unknown segment 'vip'" in human.stderr


def test_unknown_customer_and_dialect_exit_2(demo: Path) -> None:
    result = activator(
        "-w", str(demo), "segment", "why", "vip-customers", "99999999", "--json",
    )  # fmt: skip
    assert result.returncode == 2
    assert "99999999" in as_json(result)["error"]["message"]
    dialect = activator(
        "-w", str(demo), "segment", "sql", "vip-customers", "--dialect", "oracle",
    )  # fmt: skip
    assert dialect.returncode == 2
    assert "oracle" in dialect.stderr


def test_as_of_is_validated(demo: Path) -> None:
    result = activator(
        "-w", str(demo), "segment", "preview", "vip-customers", "--as-of", "yesterday-ish",
    )  # fmt: skip
    assert result.returncode == 2
    assert "yesterday-ish" in result.stderr


def test_as_of_in_the_past_changes_the_answer(demo: Path) -> None:
    def count(as_of: str) -> int:
        result = activator(
            "-w", str(demo), "segment", "preview", "vip-customers", "--as-of", as_of,
            "--limit", "0", "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return int(as_json(result)["count"])

    assert count(AS_OF) != count("2025-06-01")
