"""Segment previews, insights, SQL, explanations and snapshots on generated demo data.

Every count is checked against a hand-written DuckDB query (or plain Python) over the same file.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot

from activator.clock import parse_as_of
from activator.demo.data import generate
from activator.engines.registry import open_engine
from activator.errors import ConfigError, DefinitionError, EngineError
from activator.services.segment import (
    DIALECTS,
    SNAPSHOT_TABLE,
    compiled_sql,
    mask,
    preview,
    segment_context,
    snapshot,
    why,
)
from activator.workspace.loader import load_workspace

AS_OF = parse_as_of("2026-11-01")  # the end of that day, UTC
DATA_DAY = date(2026, 11, 1)

FIVE_CONDITIONS = """\
description: Five conditions, two of them purchase behaviours with windows.
rules:
  all:
    - {attribute: customers.loyalty_tier, op: in, value: [silver, gold, platinum]}
    - {attribute: customers.email_opt_in, op: is_true}
    - {attribute: customers.country, op: in, value: [US, GB, CA]}
    - {behavior: has_purchased, table: orders, count: {op: ">=", value: 2}, window: {last: 365d}}
    - {behavior: total_value, table: orders, value: {op: ">=", value: 300}, window: {last: 180d}}
"""

# A SQL segment may return IDs that are not customers: they count, but not as customers.
WITH_STRANGERS = """\
sql: |
  SELECT customer_id FROM customers WHERE customer_id <= 5
  UNION ALL
  SELECT customer_id + 1000000 AS customer_id FROM customers WHERE customer_id <= 3
"""


def _ts(moment: datetime) -> str:
    """A DuckDB TIMESTAMP literal: the demo's timestamps are naive UTC wall times."""
    return f"TIMESTAMP '{moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=' ')}'"


def _window(days: int) -> str:
    # `last: Nd` is (as_of - N days, as_of]; returned orders never count.
    return (
        f"NOT is_returned AND ordered_at > {_ts(AS_OF - timedelta(days=days))} "
        f"AND ordered_at <= {_ts(AS_OF)}"
    )


HAND_WRITTEN = {
    "five-conditions": f"""
        WITH a AS (SELECT customer_id FROM orders WHERE {_window(365)}
                   GROUP BY 1 HAVING count(*) >= 2),
             b AS (SELECT customer_id FROM orders WHERE {_window(180)}
                   GROUP BY 1 HAVING sum(total) >= 300)
        SELECT c.customer_id FROM customers c JOIN a USING (customer_id) JOIN b USING (customer_id)
        WHERE c.loyalty_tier IN ('silver', 'gold', 'platinum') AND c.email_opt_in
          AND c.country IN ('US', 'GB', 'CA')
    """,
    "vip-customers": f"""
        WITH spent AS (SELECT customer_id FROM orders WHERE {_window(365)}
                       GROUP BY 1 HAVING sum(total) >= 2500),
             often AS (SELECT customer_id FROM orders WHERE {_window(180)}
                       GROUP BY 1 HAVING count(*) >= 2)
        SELECT customer_id FROM customers JOIN often USING (customer_id)
        WHERE loyalty_tier = 'platinum' OR customer_id IN (SELECT customer_id FROM spent)
    """,
    "sms-reachable": """
        SELECT customer_id FROM customers
        WHERE sms_opt_in AND phone IS NOT NULL AND phone <> '' AND lower(phone) <> 'n/a'
    """,
    "email-subscribers": """
        SELECT customer_id FROM customers
        WHERE email_opt_in AND email IS NOT NULL AND email <> ''
    """,
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo workspace over 2,000 generated customers, plus two test segments."""
    root = tmp_path_factory.mktemp("segments") / "w"
    with resources.as_file(resources.files("activator.demo") / "workspace") as template:
        shutil.copytree(template, root)
    (root / "segments" / "five-conditions.yml").write_text(FIVE_CONDITIONS)
    (root / "segments" / "with-strangers.yml").write_text(WITH_STRANGERS)
    (root / "data").mkdir(exist_ok=True)
    con = duckdb.connect(str(root / "data" / "retail.duckdb"))
    generate(con, customers=2000, seed=7, as_of=DATA_DAY)
    con.close()
    return root


def _query(root: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(root / "data" / "retail.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def _members(root: Path, name: str) -> list[int]:
    return sorted(row[0] for row in _query(root, f"SELECT DISTINCT * FROM ({HAND_WRITTEN[name]})"))


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_count_matches_hand_written_sql(workspace: Path, name: str) -> None:
    expected = _members(workspace, name)
    assert len(expected) > 10, "the segment should select a meaningful group"
    result = preview(workspace, name, as_of=AS_OF, limit=5)
    assert result.count == len(expected)
    assert [row["customer_id"] for row in result.sample] == expected[:5]


@pytest.mark.parametrize(
    "name", ["new-customers", "first-time-buyers", "at-risk", "lapsing-high-value", "high-value"]
)
def test_demo_segments_select_a_real_group(workspace: Path, name: str) -> None:
    result = preview(workspace, name, as_of=AS_OF, limit=0)
    assert 0 < result.count < 2000
    assert result.sample == []


def _usable_email(value: str | None) -> bool:
    if value is None:
        return False
    local, at, domain = value.strip().partition("@")
    head, dot, tld = domain.rpartition(".")
    return bool(local and at and head and dot and tld) and "@" not in domain


def _usable_phone(value: str | None) -> bool:
    return value is not None and sum(ch.isdigit() for ch in value) >= 7


def test_insights_match_hand_written_sql(workspace: Path) -> None:
    name = "five-conditions"
    members = set(_members(workspace, name))
    contacts = _query(workspace, "SELECT customer_id, email, phone FROM customers")
    reachable = sum(
        1 for cid, email, phone in contacts
        if cid in members and (_usable_email(email) or _usable_phone(phone))
    )  # fmt: skip
    rows = _query(
        workspace,
        f"SELECT customer_id, sum(total) FROM orders WHERE {_window(365)} GROUP BY 1",
    )
    spent = {cid: total for cid, total in rows if cid in members}

    insights = preview(workspace, name, as_of=AS_OF, limit=0).insights

    assert insights.unique_customers == len(members)
    assert insights.active_last_year == len(spent)
    assert insights.revenue_last_year == sum(spent.values(), Decimal(0))
    assert isinstance(insights.revenue_last_year, Decimal)
    assert insights.reachable == reachable
    # Not trivially everyone: the demo data has invalid and missing contacts.
    assert reachable > 0


def test_reachable_counts_dirty_contacts_correctly(workspace: Path) -> None:
    everyone = _query(workspace, "SELECT email, phone FROM customers")
    usable = sum(1 for e, p in everyone if _usable_email(e) or _usable_phone(p))
    email_only = sum(1 for e, _ in everyone if _usable_email(e))
    # Sanity of the reference itself: some emails are unusable, and phones make up for some.
    assert email_only < usable < len(everyone)
    members = set(_members(workspace, "sms-reachable"))
    phones = dict(_query(workspace, "SELECT customer_id, phone FROM customers"))
    emails = dict(_query(workspace, "SELECT customer_id, email FROM customers"))
    expected = sum(1 for c in members if _usable_email(emails[c]) or _usable_phone(phones[c]))
    assert preview(workspace, "sms-reachable", as_of=AS_OF, limit=0).insights.reachable == (
        expected
    )


def test_ids_that_are_not_customers_count_but_not_as_customers(workspace: Path) -> None:
    result = preview(workspace, "with-strangers", as_of=AS_OF, limit=10)
    assert result.count == 8
    assert result.insights.unique_customers == 5
    ids = [row["customer_id"] for row in result.sample]
    assert ids == [1, 2, 3, 4, 5, 1000001, 1000002, 1000003]
    assert result.sample[-1]["email"] is None


def test_sample_masks_pii_and_keeps_the_rest(workspace: Path) -> None:
    result = preview(workspace, "email-subscribers", as_of=AS_OF, limit=8)
    ids = [row["customer_id"] for row in result.sample]
    assert ids == _members(workspace, "email-subscribers")[:8]
    raw = {
        row[0]: row
        for row in _query(
            workspace,
            "SELECT customer_id, email, phone, first_name, last_name, address, birth_date, "
            f"city, country, loyalty_tier FROM customers WHERE customer_id IN {tuple(ids)}",
        )
    }
    assert result.columns[0] == "customer_id"
    for row in result.sample:
        _, email, phone, first, last, address, birth, city, country, tier = raw[row["customer_id"]]
        assert row["email"] == mask(email)
        assert row["email"] is not None
        assert re.fullmatch(r"[^@]\*\*\*@.+", row["email"]), row["email"]
        assert row["email"] != email
        assert row["email"].split("@")[1] == email.strip().split("@")[1]
        for masked, original in ((row["first_name"], first), (row["last_name"], last)):
            assert masked == f"{original[0]}***"
        assert row["address"] == mask(address)
        assert row["phone"] == mask(phone)
        assert row["birth_date"] == (None if birth is None else "***")
        # Not PII: shown as stored.
        assert (row["city"], row["country"], row["loyalty_tier"]) == (city, country, tier)


def test_mask_shapes() -> None:
    assert mask("jane.doe@example.com") == "j***@example.com"
    assert mask("  JANE@EXAMPLE.COM ") == "J***@EXAMPLE.COM"
    assert mask("Jane") == "J***"
    assert mask(date(1980, 1, 2)) == "***"
    assert mask(None) is None


def test_as_of_moves_windows(workspace: Path) -> None:
    now = preview(workspace, "five-conditions", as_of=AS_OF, limit=0).count
    earlier = preview(
        workspace, "five-conditions", as_of=AS_OF - timedelta(days=400), limit=0
    ).count
    assert now != earlier


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("name", "tables", "members"),
    [
        ("five-conditions", {"customers", "orders"}, None),
        ("with-strangers", {"customers"}, [1, 2, 3, 4, 5, 1000001, 1000002, 1000003]),
    ],
)
def test_sql_in_every_dialect(
    workspace: Path, dialect: str, name: str, tables: set[str], members: list[int] | None
) -> None:
    sql = compiled_sql(workspace, name, dialect=dialect, as_of=AS_OF)
    parsed = sqlglot.parse_one(sql, read=dialect)
    assert {t.name for t in parsed.find_all(sqlglot.exp.Table)} == tables
    if dialect == "duckdb":
        # The engine's own SQL runs as is and gives the same members.
        got = sorted(r[0] for r in _query(workspace, sql))
        assert got == (members or _members(workspace, name))
    else:
        # No catalog or schema of the DuckDB file leaks into another engine's SQL.
        assert all(not t.db and not t.catalog for t in parsed.find_all(sqlglot.exp.Table))


def test_unknown_dialect_and_segment_are_config_errors(workspace: Path) -> None:
    with pytest.raises(ConfigError, match="unknown dialect 'oracle'"):
        compiled_sql(workspace, "vip-customers", dialect="oracle", as_of=AS_OF)
    with pytest.raises(ConfigError, match="unknown segment 'vip'") as caught:
        preview(workspace, "vip", as_of=AS_OF, limit=1)
    assert caught.value.hint is not None
    assert "vip-customers" in caught.value.hint
    assert "new-customers" in caught.value.hint


def test_invalid_workspace_is_a_definition_error(workspace: Path, tmp_path: Path) -> None:
    copy = tmp_path / "w"
    shutil.copytree(workspace, copy)
    (copy / "segments" / "broken.yml").write_text("rules: {segment: no-such-segment}\n")
    with pytest.raises(DefinitionError, match="no-such-segment"):
        preview(copy, "vip-customers", as_of=AS_OF, limit=1)


@pytest.mark.parametrize("name", ["five-conditions", "vip-customers", "sms-reachable"])
def test_why_agrees_with_membership(workspace: Path, name: str) -> None:
    members = _members(workspace, name)
    member_set = set(members)
    outsiders = [c for c in range(1, 2001) if c not in member_set]
    for cid in [*members[:3], *outsiders[:3]]:
        explained = why(workspace, name, str(cid), as_of=AS_OF)
        assert explained.customer_id == cid
        assert explained.member == (cid in member_set), cid
        assert explained.result.met == explained.member, cid
        assert explained.result.children, "each condition is explained"


def test_why_names_each_condition_with_its_value(workspace: Path) -> None:
    (member, *_) = _members(workspace, "five-conditions")
    tree = why(workspace, "five-conditions", str(member), as_of=AS_OF).result
    leaves: list[Any] = []

    def walk(node: Any) -> None:
        if not node.children:
            leaves.append(node)
        for child in node.children:
            walk(child)

    walk(tree)
    assert len(leaves) == 5
    assert all(leaf.met for leaf in leaves)
    tier = _query(workspace, f"SELECT loyalty_tier FROM customers WHERE customer_id = {member}")
    assert any(leaf.value == tier[0][0] for leaf in leaves)


def test_why_unknown_customer_names_the_id(workspace: Path) -> None:
    with pytest.raises(ConfigError, match="987654321"):
        why(workspace, "vip-customers", "987654321", as_of=AS_OF)
    with pytest.raises(ConfigError, match="'abc'"):
        why(workspace, "vip-customers", "abc", as_of=AS_OF)


def _snapshot_rows(root: Path) -> list[tuple[Any, ...]]:
    return _query(
        root,
        "SELECT segment, run_id, timezone('UTC', as_of), customer_id "
        f"FROM activator.{SNAPSHOT_TABLE} ORDER BY ALL",
    )


def test_snapshot_is_idempotent_per_run(workspace: Path, tmp_path: Path) -> None:
    root = tmp_path / "w"
    shutil.copytree(workspace, root)
    ws = load_workspace(root)
    expected = _members(root, "vip-customers")
    with open_engine(
        ws.config.engine, workspace_root=root, dataplane_schema=ws.config.dataplane_schema
    ) as engine:
        ctx = segment_context(ws, as_of=AS_OF, tables=engine.table, dialect=engine.DIALECT)
        assert snapshot(engine, ctx, "vip-customers", run_id="run-1") == len(expected)
        first = _snapshot_rows_open(engine)
        # The same run again replaces its rows: nothing is duplicated.
        assert snapshot(engine, ctx, "vip-customers", run_id="run-1") == len(expected)
        assert _snapshot_rows_open(engine) == first
        # Another run and another segment add their own rows beside it.
        assert snapshot(engine, ctx, "vip-customers", run_id="run-2") == len(expected)
        sms = snapshot(engine, ctx, "sms-reachable", run_id="run-1")
    rows = _snapshot_rows(root)
    assert len(rows) == 2 * len(expected) + sms
    assert sms == len(_members(root, "sms-reachable"))
    run1 = [r for r in rows if r[:2] == ("vip-customers", "run-1")]
    assert [r[3] for r in run1] == expected
    assert {r[2] for r in rows} == {AS_OF.replace(tzinfo=None)}


def _snapshot_rows_open(engine: Any) -> list[tuple[Any, ...]]:
    table = engine.dataplane_table(SNAPSHOT_TABLE)
    return sorted(engine.to_pyarrow(table).to_pylist(), key=lambda r: tuple(map(str, r.values())))


def test_snapshot_needs_a_writable_engine(workspace: Path) -> None:
    ws = load_workspace(workspace)
    with open_engine(
        ws.config.engine,
        workspace_root=workspace,
        dataplane_schema=ws.config.dataplane_schema,
        read_only=True,
    ) as engine:
        ctx = segment_context(ws, as_of=AS_OF, tables=engine.table, dialect=engine.DIALECT)
        with pytest.raises(EngineError, match="read-only"):
            snapshot(engine, ctx, "vip-customers", run_id="run-1")
    assert "segment_members" not in str(
        _query(workspace, "SELECT table_name FROM information_schema.tables")
    )
