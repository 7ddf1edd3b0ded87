"""Campaign results on a small DuckDB fixture whose every figure is computed by hand below.

The fixture (as of 2025-03-12 00:00 UTC, 7-day window) has three runs of campaign ``spring``:
r1 at T1 = 2025-03-01 10:00 UTC, r2 at T2 = 2025-03-08 10:00 UTC and r3 after the as-of time.
Sub-audience ``vip`` has a ``treatment`` group (customers 1-5) and a ``holdout`` control
(6-9); sub-audience ``rest`` (12, 13) has no control. Small extra campaigns cover the cases
where an interval or a relative lift is undefined.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from statistics import NormalDist

import pytest

from activator.definitions.config import (
    CustomerTable,
    DataModel,
    DuckDBEngineConfig,
    EventTable,
)
from activator.engines.base import Engine
from activator.engines.registry import open_engine
from activator.errors import ConfigError
from activator.runtime.results import (
    TABLE_COLUMNS,
    CampaignResults,
    Interval,
    campaign_results,
)

AS_OF = datetime(2025, 3, 12, tzinfo=UTC)
Z95 = NormalDist().inv_cdf(0.975)  # 1.95996...

MODEL = DataModel(
    customers=CustomerTable(table="customers", key="customer_id"),
    events={
        "orders": EventTable(
            table="orders",
            customer_key="customer_id",
            timestamp="ordered_at",
            amount="total",
            returned="returned",
        ),
        # Naive timestamps: wall time in the workspace zone; no amount.
        "visits": EventTable(table="visits", customer_key="customer_id", timestamp="visited_at"),
        # A DATE stands for the start of its day in the workspace zone.
        "daily": EventTable(table="daily", customer_key="customer_id", timestamp="day"),
    },
)

T1 = "2025-03-01 10:00:00+00"
T2 = "2025-03-08 10:00:00+00"
T3 = "2025-03-12 06:00:00+00"  # after AS_OF: ignored

FIXTURE = f"""
CREATE TABLE customers (customer_id INTEGER, email VARCHAR);
INSERT INTO customers SELECT i, 'c' || i || '@example.com' FROM range(1, 14) t(i);

CREATE TABLE orders (order_id INTEGER, customer_id INTEGER, ordered_at TIMESTAMPTZ,
                     total DECIMAL(10, 2), returned BOOLEAN);
INSERT INTO orders VALUES
  (1, 1, '2025-03-01 10:00:00+00', 10.00, false),   -- exactly at exposure T1: not counted
  (2, 1, '2025-03-02 10:00:00+00', 20.00, false),   -- counted
  (3, 1, '2025-03-08 10:00:00+00', 30.00, false),   -- exactly T1 + 7 days: counted
  (4, 1, '2025-03-08 10:00:01+00', 40.00, false),   -- one second late: not counted
  (5, 2, '2025-03-02 10:00:00+00', 99.00, false),   -- before 2's exposure (T2)
  (6, 2, '2025-03-10 10:00:00+00', 100.00, true),   -- returned
  (7, 2, '2025-03-11 10:00:00+00', 15.50, false),   -- counted
  (8, 4, '2025-03-03 10:00:00+00', 12.25, NULL),    -- a NULL flag is "not returned"
  (9, 5, '2025-03-11 00:00:00+00', 8.00, false),    -- counted
  (10, 5, '2025-03-13 00:00:00+00', 60.00, false),  -- in 5's window, but after AS_OF
  (11, 6, '2025-03-04 10:00:00+00', 40.00, false),  -- control, counted
  (12, 8, '2025-03-11 10:00:00+00', 25.00, false),  -- control, T1 + 10 days: not counted
  (13, 9, '2025-03-09 10:00:00+00', 10.00, false),  -- control exposed at T2, counted
  (14, 12, '2025-03-01 11:00:00+00', 5.00, false),  -- rest, counted
  (15, 10, '2025-03-12 07:00:00+00', 70.00, false); -- 10 is only sent after AS_OF

CREATE TABLE visits (customer_id INTEGER, visited_at TIMESTAMP);
INSERT INTO visits VALUES
  (1, '2025-03-01 11:00:00'),  -- T1 in Paris (UTC+1): at exposure, not counted
  (1, '2025-03-08 11:00:00'),  -- T1 + 7 days in Paris: counted
  (3, '2025-03-01 10:30:00'),  -- before T1 in Paris (after it if misread as UTC)
  (3, '2025-03-08 11:00:01'),  -- after the window in Paris
  (4, '2025-03-01 11:00:01');  -- counted

CREATE TABLE daily (customer_id INTEGER, day DATE);
INSERT INTO daily VALUES
  (1, '2025-03-01'),  -- midnight is before T1: not counted
  (1, '2025-03-02'),  -- counted
  (1, '2025-03-08'),  -- midnight before T1 + 7 days (03-08 11:00 Paris): counted
  (1, '2025-03-09'),  -- not counted
  (2, '2025-03-12'),  -- midnight Paris = 03-11 23:00 UTC, before AS_OF: counted
  (2, '2025-03-13');  -- after AS_OF

CREATE SCHEMA activator;
CREATE TABLE activator.recipients (campaign VARCHAR, run_id VARCHAR, customer_id INTEGER,
    sub_audience VARCHAR, treatment_group VARCHAR, control BOOLEAN, destination VARCHAR,
    action VARCHAR, sent_at TIMESTAMPTZ);
INSERT INTO activator.recipients VALUES
  ('spring', 'r1', 1, 'vip', 'treatment', false, 'email', 'add', '{T1}'),
  ('spring', 'r1', 1, 'vip', 'treatment', false, 'ads', 'add', '{T1}'),  -- 2nd destination
  ('spring', 'r1', 3, 'vip', 'treatment', false, 'email', 'add', '{T1}'),
  ('spring', 'r1', 4, 'vip', 'treatment', false, 'email', 'add', '{T1}'),
  ('spring', 'r1', 6, 'vip', 'holdout', true, NULL, 'add', '{T1}'),
  ('spring', 'r1', 7, 'vip', 'holdout', true, NULL, 'add', '{T1}'),
  ('spring', 'r1', 8, 'vip', 'holdout', true, NULL, 'add', '{T1}'),
  ('spring', 'r1', 12, 'rest', 'treatment', false, 'email', 'add', '{T1}'),
  ('spring', 'r1', 13, 'rest', 'treatment', false, 'email', 'add', '{T1}'),
  ('spring', 'r2', 1, 'vip', 'treatment', false, 'email', 'add', '{T2}'),  -- sent again
  ('spring', 'r2', 2, 'vip', 'treatment', false, 'email', 'add', '{T2}'),
  ('spring', 'r2', 5, 'vip', 'treatment', false, 'email', 'add', '{T2}'),
  ('spring', 'r2', 9, 'vip', 'holdout', true, NULL, 'add', '{T2}'),
  ('spring', 'r2', 11, 'vip', 'treatment', false, 'ads', 'remove', '{T2}'),  -- mirror removal
  ('spring', 'r3', 10, 'vip', 'treatment', false, 'email', 'add', '{T3}'),
  ('spring', 'r3', 3, 'vip', 'treatment', false, 'email', 'add', '{T3}'),
  ('other', 'o1', 6, 'vip', 'treatment', false, 'email', 'add', '{T1}'),
  -- tiny: one customer per group
  ('tiny', 't1', 1, 'all', 'treatment', false, 'email', 'add', '{T1}'),
  ('tiny', 't1', 7, 'all', 'control', true, NULL, 'add', '{T1}'),
  -- zero: the control converts nobody
  ('zero', 'z1', 1, 'all', 'treatment', false, 'email', 'add', '{T1}'),
  ('zero', 'z1', 3, 'all', 'treatment', false, 'email', 'add', '{T1}'),
  ('zero', 'z1', 7, 'all', 'control', true, NULL, 'add', '{T1}'),
  ('zero', 'z1', 8, 'all', 'control', true, NULL, 'add', '{T1}'),
  -- flat: nobody converts
  ('flat', 'f1', 3, 'all', 'treatment', false, 'email', 'add', '{T1}'),
  ('flat', 'f1', 7, 'all', 'treatment', false, 'email', 'add', '{T1}'),
  ('flat', 'f1', 8, 'all', 'control', true, NULL, 'add', '{T1}'),
  ('flat', 'f1', 13, 'all', 'control', true, NULL, 'add', '{T1}'),
  -- late: sent only after AS_OF
  ('late', 'l1', 1, 'all', 'treatment', false, 'email', 'add', '{T3}');
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    root = tmp_path_factory.mktemp("results")
    with open_engine(DuckDBEngineConfig(path="engine.duckdb"), workspace_root=root) as opened:
        for statement in FIXTURE.split(";\n"):
            if statement.strip():
                opened.execute(statement)
        yield opened


@pytest.fixture(scope="module")
def spring(engine: Engine) -> CampaignResults:
    return campaign_results(engine, MODEL, "spring", conversion="orders", days=7, as_of=AS_OF)


def _close(interval: Interval | None, low: float, high: float) -> None:
    assert interval is not None
    assert interval.low == pytest.approx(low, rel=1e-12, abs=1e-12)
    assert interval.high == pytest.approx(high, rel=1e-12, abs=1e-12)


# Per-recipient revenue within each one's window (see the orders' comments):
TREATMENT = [20 + 30, 15.50, 0, 12.25, 8.00]  # customers 1, 2, 3, 4, 5
CONTROL = [40.00, 0, 0, 10.00]  # customers 6, 7, 8, 9


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _variance(values: list[float]) -> float:
    # Sample variance, n - 1 in the denominator.
    mean = _mean(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def test_groups_are_ordered_by_sub_audience_control_first(spring: CampaignResults) -> None:
    assert [(g.sub_audience, g.group, g.control) for g in spring.groups] == [
        ("rest", "treatment", False),
        ("vip", "holdout", True),
        ("vip", "treatment", False),
    ]
    assert (spring.campaign, spring.conversion, spring.days) == ("spring", "orders", 7)
    assert (spring.as_of, spring.confidence, spring.revenue_measured) == (AS_OF, 0.95, True)


def test_treatment_figures(spring: CampaignResults) -> None:
    g = spring.group("vip", "treatment")
    # Customers 1-5: 1 counted once (two destinations, two runs); 11 was only removed; 10 and
    # the second send of 3 came after AS_OF; campaign "other" is not this one.
    assert g.recipients == 5
    # 1 (orders 2, 3), 2 (order 7), 4 (order 8), 5 (order 9); 3 bought nothing.
    assert g.purchasers == 4
    assert g.orders == 5
    assert g.revenue == Decimal("85.75")  # 20 + 30 + 15.50 + 12.25 + 8.00
    assert g.conversion_rate == 4 / 5
    assert g.revenue_per_recipient == pytest.approx(85.75 / 5)
    assert g.average_order_value == pytest.approx(85.75 / 5)  # 5 orders


def test_control_figures(spring: CampaignResults) -> None:
    g = spring.group("vip", "holdout")
    assert (g.control, g.recipients, g.purchasers, g.orders) == (True, 4, 2, 2)
    assert g.revenue == Decimal("50.00")  # 40 (customer 6) + 10 (customer 9)
    assert g.conversion_rate == 2 / 4
    assert g.revenue_per_recipient == pytest.approx(50 / 4)
    assert g.average_order_value == pytest.approx(50 / 2)
    assert g.conversion_lift is None
    assert g.revenue_lift is None


def test_conversion_lift_against_hand_formulas(spring: CampaignResults) -> None:
    lift = spring.group("vip", "treatment").conversion_lift
    assert lift is not None
    p_t, n_t, p_c, n_c = 4 / 5, 5, 2 / 4, 4
    assert (lift.treatment, lift.control) == (p_t, p_c)
    assert lift.difference == pytest.approx(0.3)
    # Unpooled Wald: sqrt(0.8 * 0.2 / 5 + 0.5 * 0.5 / 4) = sqrt(0.0945).
    se = math.sqrt(0.0945)
    _close(lift.difference_interval, 0.3 - Z95 * se, 0.3 + Z95 * se)
    assert lift.relative == pytest.approx(0.6)  # 0.8 / 0.5 - 1
    # Delta method on log(p_t / p_c): var = (1 - p_t) / (n_t p_t) + (1 - p_c) / (n_c p_c)
    # = 0.2 / 4 + 0.5 / 2 = 0.3.
    log_se = math.sqrt(0.2 / (n_t * p_t) + 0.5 / (n_c * p_c))
    assert log_se == pytest.approx(math.sqrt(0.3))
    _close(
        lift.relative_interval,
        math.exp(math.log(1.6) - Z95 * log_se) - 1,
        math.exp(math.log(1.6) + Z95 * log_se) - 1,
    )
    assert lift.incremental == pytest.approx(0.3 * 5)  # 1.5 conversions
    _close(lift.incremental_interval, (0.3 - Z95 * se) * 5, (0.3 + Z95 * se) * 5)
    assert lift.significant is False  # 0.3 ± 0.60 includes 0


def test_revenue_lift_against_hand_formulas(spring: CampaignResults) -> None:
    lift = spring.group("vip", "treatment").revenue_lift
    assert lift is not None
    m_t, m_c = _mean(TREATMENT), _mean(CONTROL)  # 17.15 and 12.5
    assert m_t == pytest.approx(17.15)
    assert m_c == pytest.approx(12.5)
    assert lift.difference == pytest.approx(4.65)
    # Welch: sqrt(s_t² / n_t + s_c² / n_c), non-purchasers at 0 revenue.
    se = math.sqrt(_variance(TREATMENT) / 5 + _variance(CONTROL) / 4)
    _close(lift.difference_interval, 4.65 - Z95 * se, 4.65 + Z95 * se)
    assert lift.relative == pytest.approx(17.15 / 12.5 - 1)
    # Delta method on log(m_t / m_c): var = s_t² / (n_t m_t²) + s_c² / (n_c m_c²).
    log_se = math.sqrt(_variance(TREATMENT) / (5 * 17.15**2) + _variance(CONTROL) / (4 * 12.5**2))
    ratio = 17.15 / 12.5
    _close(
        lift.relative_interval,
        math.exp(math.log(ratio) - Z95 * log_se) - 1,
        math.exp(math.log(ratio) + Z95 * log_se) - 1,
    )
    assert lift.incremental == pytest.approx(4.65 * 5)  # 23.25
    _close(lift.incremental_interval, (4.65 - Z95 * se) * 5, (4.65 + Z95 * se) * 5)
    assert lift.significant is False


def test_sub_audience_without_control_has_no_lift(spring: CampaignResults) -> None:
    g = spring.group("rest", "treatment")
    # 12 bought one hour after T1; 13 nothing.
    assert (g.recipients, g.purchasers, g.orders, g.revenue) == (2, 1, 1, Decimal("5.00"))
    assert g.conversion_lift is None
    assert g.revenue_lift is None


def test_lower_confidence_narrows_the_interval_to_significance(engine: Engine) -> None:
    results = campaign_results(
        engine, MODEL, "spring", conversion="orders", days=7, as_of=AS_OF, confidence=0.5
    )
    lift = results.group("vip", "treatment").conversion_lift
    assert lift is not None
    z50 = NormalDist().inv_cdf(0.75)  # 0.674...
    se = math.sqrt(0.0945)
    _close(lift.difference_interval, 0.3 - z50 * se, 0.3 + z50 * se)  # [0.093, 0.507]
    assert lift.significant is True


def test_a_shorter_window(engine: Engine) -> None:
    # One day: 1's order at T1 + 1 day counts, the one at T1 + 7 days no longer does; 2's at
    # T2 + 3 days, 4's at T1 + 2 days and 5's at T2 + 2.6 days drop out.
    results = campaign_results(engine, MODEL, "spring", conversion="orders", days=1, as_of=AS_OF)
    g = results.group("vip", "treatment")
    assert (g.purchasers, g.orders, g.revenue) == (1, 1, Decimal("20.00"))
    control = results.group("vip", "holdout")
    # 6's order is at T1 + 3 days; 9's exactly at T2 + 1 day counts.
    assert (control.purchasers, control.orders, control.revenue) == (1, 1, Decimal("10.00"))


def test_a_table_without_amount_measures_conversion_only(engine: Engine) -> None:
    results = campaign_results(
        engine, MODEL, "spring", conversion="visits", days=7, as_of=AS_OF, timezone="Europe/Paris"
    )
    assert results.revenue_measured is False
    g = results.group("vip", "treatment")
    # Paris wall time: 1's visit at 03-08 11:00 and 4's at 03-01 11:00:01 count; 1's at
    # exposure, 3's before it and 3's one second after the window do not.
    assert (g.purchasers, g.orders) == (2, 2)
    assert (g.revenue, g.revenue_per_recipient, g.average_order_value) == (None, None, None)
    assert g.revenue_lift is None
    assert g.conversion_lift is not None
    assert g.conversion_lift.difference == pytest.approx(2 / 5 - 0 / 4)
    assert g.conversion_lift.relative is None  # the control converted nobody


def test_naive_timestamps_are_read_in_the_given_zone(engine: Engine) -> None:
    # Read as UTC, exposure is 10:00 wall time: 1's visit at 03-01 11:00 and 3's at 10:30
    # count, 1's at 03-08 11:00 is past the window; 4's counts either way.
    results = campaign_results(engine, MODEL, "spring", conversion="visits", days=7, as_of=AS_OF)
    g = results.group("vip", "treatment")
    assert (g.purchasers, g.orders) == (3, 3)


def test_dates_stand_for_the_start_of_their_day(engine: Engine) -> None:
    results = campaign_results(
        engine, MODEL, "spring", conversion="daily", days=7, as_of=AS_OF, timezone="Europe/Paris"
    )
    g = results.group("vip", "treatment")
    # 1: 03-02 and 03-08; 2: 03-12 (its window is cut at AS_OF, 03-12 01:00 in Paris).
    assert (g.purchasers, g.orders) == (2, 3)


def test_one_recipient_per_group_has_no_intervals(engine: Engine) -> None:
    results = campaign_results(engine, MODEL, "tiny", conversion="orders", days=7, as_of=AS_OF)
    treatment = results.group("all", "treatment")
    assert (treatment.recipients, treatment.purchasers, treatment.revenue) == (
        1,
        1,
        Decimal("50.00"),
    )
    conv = treatment.conversion_lift
    assert conv is not None
    assert (conv.difference, conv.incremental) == (1.0, 1.0)  # 1/1 - 0/1, times 1
    assert conv.difference_interval is None
    assert conv.incremental_interval is None
    assert conv.relative is None  # the control's rate is 0
    assert conv.relative_interval is None
    assert conv.significant is False
    rev = treatment.revenue_lift
    assert rev is not None
    assert (rev.treatment, rev.control, rev.difference) == (50.0, 0.0, 50.0)
    assert rev.difference_interval is None
    assert rev.relative is None


def test_a_control_that_never_converts(engine: Engine) -> None:
    results = campaign_results(engine, MODEL, "zero", conversion="orders", days=7, as_of=AS_OF)
    conv = results.group("all", "treatment").conversion_lift
    assert conv is not None
    # p_t = 1/2 (customer 1), p_c = 0/2: se = sqrt(0.5 * 0.5 / 2 + 0).
    se = math.sqrt(0.125)
    _close(conv.difference_interval, 0.5 - Z95 * se, 0.5 + Z95 * se)
    assert conv.relative is None
    assert conv.relative_interval is None
    rev = results.group("all", "treatment").revenue_lift
    assert rev is not None
    # Revenue [50, 0] against [0, 0]: s_t² = (25² + 25²) / 1 = 1250, s_c² = 0.
    se_rev = math.sqrt(1250 / 2 + 0 / 2)
    assert se_rev == 25
    _close(rev.difference_interval, 25 - Z95 * 25, 25 + Z95 * 25)
    assert rev.relative is None
    assert rev.relative_interval is None


def test_no_conversions_anywhere_gives_no_interval(engine: Engine) -> None:
    results = campaign_results(engine, MODEL, "flat", conversion="orders", days=7, as_of=AS_OF)
    g = results.group("all", "treatment")
    assert (g.purchasers, g.orders, g.revenue, g.average_order_value) == (
        0,
        0,
        Decimal("0"),
        None,
    )
    assert g.conversion_lift is not None
    assert g.revenue_lift is not None
    # Both rates 0 and both revenues 0: no variance, so no interval and nothing significant.
    assert g.conversion_lift.difference == 0
    assert g.conversion_lift.difference_interval is None
    assert g.revenue_lift.difference_interval is None
    assert g.conversion_lift.significant is False


def test_to_json(spring: CampaignResults) -> None:
    document = json.loads(json.dumps(spring.to_json()))
    assert document["as_of"] == "2025-03-12T00:00:00+00:00"
    assert [g["group"] for g in document["groups"]] == ["treatment", "holdout", "treatment"]
    treatment = document["groups"][2]
    assert treatment["revenue"] == "85.7500"  # exact decimal as a string
    assert treatment["recipients"] == 5
    assert treatment["conversion_rate"] == 0.8
    conv = treatment["conversion_lift"]
    se = math.sqrt(0.0945)
    assert conv["difference_interval"]["low"] == pytest.approx(0.3 - Z95 * se)
    assert conv["significant"] is False
    assert treatment["revenue_lift"]["measure"] == "revenue_per_recipient"
    assert document["groups"][1]["conversion_lift"] is None


def test_table_rows(spring: CampaignResults) -> None:
    rows = spring.table_rows()
    assert len(TABLE_COLUMNS) == len(rows[0])
    assert rows[0] == ("rest", "treatment", "2", "1", "50.00%", "", "", "5.00", "2.50", "", "", "")
    assert rows[1][:5] == ("vip", "holdout (control)", "4", "2", "50.00%")
    se = math.sqrt(0.0945)
    low, high = (0.3 - Z95 * se) * 100, (0.3 + Z95 * se) * 100
    assert rows[2][:8] == (
        "vip",
        "treatment",
        "5",
        "4",
        "80.00%",
        "+30.00 pts (+60.0%)",  # 0.8 - 0.5; 0.8 / 0.5 - 1
        f"[{low:+.2f} pts, {high:+.2f} pts]",
        "85.75",
    )
    assert rows[2][8:10] == ("17.15", "+4.65 (+37.2%)")  # 17.15 / 12.5 - 1 = 0.372
    assert rows[2][11] == "+23.25"


def test_unknown_conversion_table_lists_the_known_ones(engine: Engine) -> None:
    known = r"unknown conversion table 'sales' \(event tables: daily, orders, visits\)"
    with pytest.raises(ConfigError, match=known):
        campaign_results(engine, MODEL, "spring", conversion="sales", days=7, as_of=AS_OF)


@pytest.mark.parametrize("campaign", ["ghost", "late"])
def test_campaign_without_recipients(engine: Engine, campaign: str) -> None:
    # "late" was only sent after AS_OF.
    message = (
        f"campaign '{campaign}' has no recipients yet as of 2025-03-12T00:00:00+00:00; run it first"
    )
    with pytest.raises(ConfigError) as caught:
        campaign_results(engine, MODEL, campaign, conversion="orders", days=7, as_of=AS_OF)
    assert caught.value.message == message


def test_no_recipients_table(tmp_path: Path) -> None:
    config = DuckDBEngineConfig(path="empty.duckdb")
    with (
        open_engine(config, workspace_root=tmp_path) as empty,
        pytest.raises(ConfigError, match="campaign 'spring' has no recipients yet"),
    ):
        campaign_results(empty, MODEL, "spring", conversion="orders", days=7, as_of=AS_OF)


@pytest.mark.parametrize(
    ("days", "confidence", "message"),
    [(0, 0.95, "days must be at least 1"), (7, 1.0, "confidence must be between 0 and 1")],
)
def test_bad_arguments(engine: Engine, days: int, confidence: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        campaign_results(
            engine,
            MODEL,
            "spring",
            conversion="orders",
            days=days,
            as_of=AS_OF,
            confidence=confidence,
        )
