"""Demo data: determinism, shape, consistency and realistic distributions."""

import datetime
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from activator.demo.data import DEFAULT_BLOCK_SIZE, DemoCounts, generate

AS_OF = datetime.date(2026, 11, 29)
TABLES = ("stores", "products", "customers", "orders", "order_items", "email_events")
CUSTOMERS = 5000


def _generate(
    customers: int, seed: int, threads: int | None = None, block_size: int | None = None
) -> Any:
    con = duckdb.connect()
    if threads is not None:
        con.execute(f"SET threads = {threads}")
    if block_size is None:
        generate(con, customers=customers, seed=seed, as_of=AS_OF)
    else:
        generate(con, customers=customers, seed=seed, as_of=AS_OF, block_size=block_size)
    return con


def _checksums(con: Any) -> dict[str, tuple[int, int]]:
    """Row count and an order-independent checksum (sum of row hashes) of every table."""
    out = {}
    for table in TABLES:
        row = con.execute(f"SELECT count(*), sum(hash(t)::HUGEINT) FROM {table} t").fetchone()
        out[table] = (int(row[0]), int(row[1]))
    return out


def _scalar(con: Any, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture(scope="module")
def generated() -> Iterator[tuple[Any, DemoCounts]]:
    connection = duckdb.connect()
    yield connection, generate(connection, customers=CUSTOMERS, seed=42, as_of=AS_OF)
    connection.close()


@pytest.fixture
def con(generated: tuple[Any, DemoCounts]) -> Any:
    return generated[0]


def test_same_seed_gives_identical_tables_whatever_the_thread_count(
    generated: tuple[Any, DemoCounts],
) -> None:
    # Big enough for several DuckDB row groups (122,880 rows) per large table, so two threads
    # really split the work.
    assert _scalar(generated[0], "SELECT current_setting('threads')") >= 2
    assert _checksums(_generate(CUSTOMERS, seed=42, threads=1)) == _checksums(generated[0])


def test_same_seed_gives_identical_tables_whatever_the_block_size(
    generated: tuple[Any, DemoCounts],
) -> None:
    # The fixture is one block (the default block size is larger than CUSTOMERS); 1,200 gives
    # five, the last one shorter. Order ids, totals and events must not depend on the split.
    assert CUSTOMERS < DEFAULT_BLOCK_SIZE
    assert _checksums(_generate(CUSTOMERS, seed=42, block_size=1200)) == _checksums(generated[0])


def test_block_size_does_not_change_small_data() -> None:
    # Blocks of one customer, and blocks that split the customers unevenly.
    first = _checksums(_generate(40, seed=3, block_size=1))
    assert _checksums(_generate(40, seed=3, block_size=17)) == first
    assert _checksums(_generate(40, seed=3)) == first


def test_different_seed_gives_different_tables() -> None:
    first = _checksums(_generate(800, seed=7))
    second = _checksums(_generate(800, seed=8))
    for table in TABLES:
        assert first[table] != second[table], table


def test_customers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="customers"):
        generate(duckdb.connect(), customers=0, seed=1, as_of=AS_OF)


def test_block_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="block_size"):
        generate(duckdb.connect(), customers=10, seed=1, as_of=AS_OF, block_size=0)


def test_progress_names_every_table_and_helpers_are_dropped() -> None:
    messages: list[str] = []
    connection = duckdb.connect()
    generate(connection, customers=50, seed=1, as_of=AS_OF, progress=messages.append)
    assert [m.removeprefix("Generating ") for m in messages] == [
        "stores",
        "products",
        "customers",
        "order_items",
        "orders",
        "email_events",
    ]
    leftovers = connection.execute(
        "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '%activator_demo%'"
    ).fetchall()
    assert leftovers == []


def test_progress_reports_each_block_and_helpers_are_dropped() -> None:
    messages: list[str] = []
    connection = duckdb.connect()
    generate(connection, customers=50, seed=1, as_of=AS_OF, progress=messages.append, block_size=20)
    per_block = ("customers", "order_items", "orders", "email_events")
    assert messages == ["Generating stores", "Generating products"] + [
        f"Generating {table} (block {block}/3)" for block in (1, 2, 3) for table in per_block
    ]
    leftovers = connection.execute(
        "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '%activator_demo%'"
    ).fetchall()
    assert leftovers == []


def test_counts_match_tables_and_fall_in_expected_ranges(
    generated: tuple[Any, DemoCounts],
) -> None:
    con, returned = generated
    counts = {t: _scalar(con, f"SELECT count(*) FROM {t}") for t in TABLES}
    assert returned == DemoCounts(**counts)
    assert counts["stores"] == 50
    assert counts["products"] == 2000
    assert counts["customers"] == CUSTOMERS
    assert 8 <= counts["orders"] / CUSTOMERS <= 12
    assert 1.8 <= counts["order_items"] / counts["orders"] <= 2.4
    assert counts["email_events"] > CUSTOMERS
    assert _scalar(con, "SELECT count(DISTINCT category) FROM products") == 12
    assert 35 <= _scalar(con, "SELECT count(DISTINCT brand) FROM products") <= 40


def test_columns_and_types(con: Any) -> None:
    expected = {
        "stores": "store_id INTEGER, store_name VARCHAR, city VARCHAR, region VARCHAR, "
        "country VARCHAR",
        "products": "product_id INTEGER, product_name VARCHAR, category VARCHAR, brand VARCHAR, "
        "list_price DECIMAL(12,2)",
        "customers": "customer_id BIGINT, email VARCHAR, phone VARCHAR, first_name VARCHAR, "
        "last_name VARCHAR, address VARCHAR, city VARCHAR, postal_code VARCHAR, "
        "country VARCHAR, birth_date DATE, gender VARCHAR, loyalty_tier VARCHAR, "
        "email_opt_in BOOLEAN, sms_opt_in BOOLEAN, signup_at TIMESTAMP, home_store_id INTEGER",
        "orders": "order_id BIGINT, customer_id BIGINT, ordered_at TIMESTAMP, channel VARCHAR, "
        "store_id INTEGER, total DECIMAL(12,2), discount DECIMAL(12,2), is_returned BOOLEAN",
        "order_items": "order_id BIGINT, customer_id BIGINT, ordered_at TIMESTAMP, "
        "line_number INTEGER, product_id INTEGER, product_name VARCHAR, category VARCHAR, "
        "brand VARCHAR, quantity INTEGER, price DECIMAL(12,2)",
        "email_events": "customer_id BIGINT, occurred_at TIMESTAMP, event_type VARCHAR, "
        "campaign_name VARCHAR",
    }
    for table, columns in expected.items():
        rows = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE table_name = ? ORDER BY column_index",
            [table],
        ).fetchall()
        assert ", ".join(f"{n} {t}" for n, t in rows) == columns
    assert con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() "
        "WHERE table_name = 'customers' AND constraint_type = 'PRIMARY KEY'"
    ).fetchall() == [(["customer_id"],)]


def test_keys_are_unique_and_references_resolve(con: Any) -> None:
    assert _scalar(con, "SELECT count(*) - count(DISTINCT order_id) FROM orders") == 0
    assert (
        _scalar(con, "SELECT count(*) - count(DISTINCT (order_id, line_number)) FROM order_items")
        == 0
    )
    assert (
        _scalar(
            con,
            "SELECT count(*) FROM orders o ANTI JOIN customers c USING (customer_id)",
        )
        == 0
    )
    assert (
        _scalar(con, "SELECT count(*) FROM order_items i ANTI JOIN orders o USING (order_id)") == 0
    )
    assert (
        _scalar(
            con,
            "SELECT count(*) FROM orders WHERE store_id IS NOT NULL "
            "AND store_id NOT IN (SELECT store_id FROM stores)",
        )
        == 0
    )
    assert (
        _scalar(
            con, "SELECT count(*) FROM orders WHERE (channel = 'store') != (store_id IS NOT NULL)"
        )
        == 0
    )


def test_nothing_happens_at_or_after_as_of(con: Any) -> None:
    limit = f"TIMESTAMP '{AS_OF.isoformat()}'"
    assert _scalar(con, f"SELECT count(*) FROM orders WHERE ordered_at >= {limit}") == 0
    assert _scalar(con, f"SELECT count(*) FROM email_events WHERE occurred_at >= {limit}") == 0
    assert _scalar(con, f"SELECT count(*) FROM customers WHERE signup_at >= {limit}") == 0
    # Orders span about three years.
    first = _scalar(con, "SELECT min(ordered_at) FROM orders")
    assert datetime.datetime(2023, 11, 29) <= first < datetime.datetime(2023, 12, 15)


def test_order_total_is_items_minus_discount(con: Any) -> None:
    mismatches = _scalar(
        con,
        """
        SELECT count(*)
        FROM orders o
        JOIN (SELECT order_id, sum(quantity * price) AS items FROM order_items GROUP BY 1) i
            USING (order_id)
        WHERE o.total != i.items - o.discount OR o.discount < 0 OR o.total < 0
        """,
    )
    assert mismatches == 0
    assert 0.1 <= _scalar(con, "SELECT avg((discount > 0)::INTEGER) FROM orders") <= 0.35


def test_signup_precedes_first_order(con: Any) -> None:
    late = _scalar(
        con,
        """
        SELECT count(*) FROM customers c
        JOIN (SELECT customer_id, min(ordered_at) AS first FROM orders GROUP BY 1) o
            USING (customer_id)
        WHERE c.signup_at > o.first
        """,
    )
    assert late == 0


def test_buyer_mix(con: Any) -> None:
    row = con.execute(
        f"""
        WITH per AS (
            SELECT c.customer_id, count(o.order_id) AS n, max(o.ordered_at) AS last_at
            FROM customers c LEFT JOIN orders o USING (customer_id)
            GROUP BY c.customer_id
        )
        SELECT
            avg((n = 0)::INTEGER),
            sum((n = 1)::INTEGER) / sum((n > 0)::INTEGER),
            sum((n >= 30)::INTEGER) / sum((n > 0)::INTEGER),
            sum((last_at BETWEEN DATE '{AS_OF}' - 548 AND DATE '{AS_OF}' - 183)::INTEGER)
                / sum((n > 0)::INTEGER),
            sum((last_at < DATE '{AS_OF}' - 730)::INTEGER) / sum((n > 0)::INTEGER)
        FROM per
        """
    ).fetchone()
    assert row is not None
    never, one_time, heavy, lapsing, churned = row
    assert 0.12 <= never <= 0.18
    assert 0.33 <= one_time <= 0.42
    assert 0.05 <= heavy <= 0.20
    assert 0.15 <= lapsing <= 0.45
    assert 0.10 <= churned <= 0.35


def test_returns_and_channels(con: Any) -> None:
    assert 0.045 <= _scalar(con, "SELECT avg(is_returned::INTEGER) FROM orders") <= 0.075
    channels = dict(con.execute("SELECT channel, count(*) FROM orders GROUP BY 1").fetchall())
    assert set(channels) == {"web", "app", "store", "marketplace"}
    assert min(channels.values()) / sum(channels.values()) >= 0.03


def test_seasonality_and_weekly_pattern(con: Any) -> None:
    by_month = dict(
        con.execute(
            "SELECT month(ordered_at), count(*) / count(DISTINCT ordered_at::DATE) FROM orders "
            "GROUP BY 1"
        ).fetchall()
    )
    baseline = sum(by_month[m] for m in (1, 2, 3, 4, 5, 9, 10)) / 7
    assert by_month[11] > 1.3 * baseline
    assert by_month[12] > 1.3 * baseline
    assert by_month[7] > 1.05 * baseline
    by_day = dict(
        con.execute("SELECT dayofweek(ordered_at), count(*) FROM orders GROUP BY 1").fetchall()
    )
    assert by_day[6] > 1.15 * by_day[2]  # Saturday over Tuesday


def test_favourite_category_is_meaningful(con: Any) -> None:
    share = _scalar(
        con,
        """
        WITH c AS (
            SELECT customer_id, category, count(*) AS n,
                sum(count(*)) OVER (PARTITION BY customer_id) AS total
            FROM order_items GROUP BY 1, 2
        )
        SELECT avg(n / total) FROM (
            SELECT customer_id, max(n) AS n, any_value(total) AS total FROM c GROUP BY 1
        ) WHERE total >= 10
        """,
    )
    # Without affinity the top category of 10+ items would hold about a quarter of them.
    assert share >= 0.45


def test_emails_are_mostly_valid_with_some_dirty_invalid_and_missing(con: Any) -> None:
    row = con.execute(
        r"""
        SELECT
            avg((email IS NULL)::INTEGER),
            avg((email IS NOT NULL AND NOT regexp_full_match(
                lower(trim(email)), '[a-z0-9._]+@[a-z0-9-]+(\.[a-z0-9-]+)+'))::INTEGER),
            avg((email != trim(email) OR email != lower(email))::INTEGER),
            count(DISTINCT lower(trim(email))) / count(email)
        FROM customers
        """
    ).fetchone()
    assert row is not None
    missing, invalid, dirty, distinct = row
    assert 0.03 <= missing <= 0.07
    assert 0.02 <= invalid <= 0.045
    assert 0.02 <= dirty <= 0.10
    assert distinct >= 0.99


def test_phones_mix_formats_with_some_invalid_and_missing(con: Any) -> None:
    row = con.execute(
        """
        SELECT
            avg((phone IS NULL)::INTEGER),
            avg((phone IS NOT NULL AND (regexp_matches(phone, '[A-Za-z]')
                 OR length(regexp_replace(phone, '[^0-9]', '', 'g')) < 7))::INTEGER)
        FROM customers
        """
    ).fetchone()
    assert row is not None
    missing, invalid = row
    assert 0.07 <= missing <= 0.13
    assert 0.025 <= invalid <= 0.06
    for prefix in ("+1 ", "(", "+44 ", "0033 ", "+33 ", "+49 "):
        assert _scalar(con, f"SELECT count(*) FROM customers WHERE phone LIKE '{prefix}%'") > 0
    assert (
        _scalar(con, r"SELECT count(*) FROM customers WHERE phone SIMILAR TO '\d{3}\.\d{3}\.\d{4}'")
        > 0
    )


def test_country_matches_phone_most_of_the_time(con: Any) -> None:
    agreement = _scalar(
        con,
        """
        SELECT avg((country = CASE
            WHEN phone LIKE '+44%' THEN 'GB' WHEN phone LIKE '+33%' OR phone LIKE '0033%' THEN 'FR'
            WHEN phone LIKE '+49%' THEN 'DE' END)::INTEGER)
        FROM customers WHERE phone LIKE '+44%' OR phone LIKE '+33%' OR phone LIKE '0033%'
            OR phone LIKE '+49%'
        """,
    )
    assert 0.85 <= agreement < 1.0


def test_email_events_follow_send_open_click(con: Any) -> None:
    row = con.execute(
        """
        WITH e AS (
            SELECT customer_id, campaign_name,
                min(occurred_at) FILTER (event_type = 'sent') AS sent,
                min(occurred_at) FILTER (event_type = 'open') AS opened,
                min(occurred_at) FILTER (event_type = 'click') AS clicked,
                count(*) FILTER (event_type = 'sent') AS sends,
                count(*) FILTER (event_type = 'open') AS opens,
                count(*) FILTER (event_type = 'click') AS clicks
            FROM email_events GROUP BY 1, 2
        )
        SELECT
            count(*) FILTER (sent IS NULL OR opened <= sent OR clicked <= opened
                             OR (clicked IS NOT NULL AND opened IS NULL)
                             OR sends != 1 OR opens > 1 OR clicks > 1),
            sum(opens) / sum(sends),
            sum(clicks) / sum(opens),
            count(DISTINCT campaign_name)
        FROM e
        """
    ).fetchone()
    assert row is not None
    broken, open_rate, click_rate, campaigns = row
    assert broken == 0
    assert 0.20 <= open_rate <= 0.30
    assert 0.10 <= click_rate <= 0.20
    assert 50 <= campaigns <= 53
    not_reachable = _scalar(
        con,
        """
        SELECT count(*) FROM (SELECT DISTINCT customer_id FROM email_events)
        JOIN customers USING (customer_id)
        WHERE NOT email_opt_in OR email IS NULL
        """,
    )
    assert not_reachable == 0
    per_customer_rates = _scalar(
        con,
        """
        SELECT stddev(opens / sends) FROM (
            SELECT customer_id, count(*) FILTER (event_type = 'open') AS opens,
                count(*) FILTER (event_type = 'sent') AS sends
            FROM email_events GROUP BY 1 HAVING sends >= 20
        )
        """,
    )
    assert per_customer_rates >= 0.1  # engagement varies per customer
