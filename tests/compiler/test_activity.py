"""Campaign activity conditions: sends read from the data plane's ``recipients`` table.

The shop's customers 1–8, as of ``shop.AS_OF`` (2026-03-15 12:00 UTC), and these sends:

- r1, 2026-01-10 12:00: winback to 1 (platinum/offer, to drop and to crm), 2 (gold/offer),
  3 (platinum/holdout, the control);
- r2, 2026-03-01 12:00: winback to 1 (drop only), 2, 3 (control) as in r1, 4 (remaining/offer);
- r3, 2026-03-15 12:00 (the as-of time): winback to 1 and 7 (gold/offer); 5 *removed* from crm;
- r4, 2026-03-15 12:00:00.000001 (after the as-of time): winback to 6;
- n1, 2026-03-10 00:00: newsletter to 8.

So for winback, by default (sends, no control, up to as-of): 1 in 3 runs, 2 in 2, 4 and 7 in 1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pytest

from activator.compiler import CompileContext, check_segment, explain_customer, segment_members
from activator.compiler.describe import describe
from activator.compiler.segment import RECIPIENTS_TABLE
from activator.definitions.common import CampaignActivityCondition
from activator.definitions.config import DuckDBEngineConfig
from activator.engines.duckdb import DuckDBEngine
from activator.errors import CompileError
from activator.services.segment import activity_tables
from activator.workspace.loader import load_workspace
from activator.workspace.references import check_references
from tests.compiler import shop
from tests.compiler.conftest import Evaluator, ids

R1 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
R2 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
R3 = shop.AS_OF
R4 = shop.AS_OF + timedelta(microseconds=1)
N1 = datetime(2026, 3, 10, tzinfo=UTC)

_SENDS: list[tuple[str, str, int, str, str, bool, str | None, str, datetime]] = [
    ("winback", "r1", 1, "platinum", "offer", False, "drop", "add", R1),
    ("winback", "r1", 1, "platinum", "offer", False, "crm", "add", R1),
    ("winback", "r1", 2, "gold", "offer", False, "drop", "add", R1),
    ("winback", "r1", 3, "platinum", "holdout", True, None, "add", R1),
    ("winback", "r2", 1, "platinum", "offer", False, "drop", "add", R2),
    ("winback", "r2", 2, "gold", "offer", False, "drop", "add", R2),
    ("winback", "r2", 3, "platinum", "holdout", True, None, "add", R2),
    ("winback", "r2", 4, "remaining", "offer", False, "drop", "add", R2),
    ("winback", "r3", 1, "platinum", "offer", False, "drop", "add", R3),
    ("winback", "r3", 7, "gold", "offer", False, "drop", "add", R3),
    ("winback", "r3", 5, "gold", "offer", False, "crm", "remove", R3),
    ("winback", "r4", 6, "gold", "offer", False, "drop", "add", R4),
    ("newsletter", "n1", 8, "everyone", "treatment", False, "drop", "add", N1),
]

COLUMNS = (
    "campaign",
    "run_id",
    "customer_id",
    "sub_audience",
    "treatment_group",
    "control",
    "destination",
    "action",
    "sent_at",
)
TYPES = (
    pa.string(),
    pa.string(),
    pa.int64(),
    pa.string(),
    pa.string(),
    pa.bool_(),
    pa.string(),
    pa.string(),
    pa.timestamp("us", tz="UTC"),
)


def recipients() -> pa.Table:
    return pa.table(
        {
            name: pa.array([row[i] for row in _SENDS], kind)
            for i, (name, kind) in enumerate(zip(COLUMNS, TYPES, strict=True))
        }
    )


@pytest.fixture(scope="module")
def engine() -> Iterator[DuckDBEngine]:
    """The shop in an in-memory DuckDB engine, with ``recipients`` in its data plane."""
    with DuckDBEngine(
        DuckDBEngineConfig(path=":memory:", threads=2), workspace_root=Path.cwd()
    ) as opened:
        for name, data in shop.tables().items():
            opened.backend.create_table(name, data)
        opened.create_dataplane_table(RECIPIENTS_TABLE, recipients())
        yield opened


class ActivityEvaluator(Evaluator):
    """An evaluator whose contexts read activity from the engine's data plane."""

    def __init__(self, engine: DuckDBEngine) -> None:
        super().__init__(engine.backend)
        self.activity = activity_tables(engine)

    def context(self, **changes: Any) -> CompileContext:
        return super().context(**{"activity": self.activity, **changes})


@pytest.fixture
def shop_eval(engine: DuckDBEngine) -> Evaluator:
    return ActivityEvaluator(engine)


def winback(**spec: Any) -> dict[str, Any]:
    return {"campaign": "winback", **spec}


# --- members -------------------------------------------------------------------------------


def test_in_campaign_counts_sends_up_to_the_as_of_time(shop_eval: Evaluator) -> None:
    assert shop_eval.rule(winback()) == {1, 2, 4, 7}
    assert shop_eval.rule({"campaign": "newsletter"}) == {8}
    assert shop_eval.rule({"campaign": "never-ran"}) == set()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"sub_audience": "platinum"}, {1}),
        ({"sub_audience": "gold"}, {2, 7}),
        ({"sub_audience": "remaining"}, {4}),
        ({"group": "offer"}, {1, 2, 4, 7}),
        ({"destination": "drop"}, {1, 2, 4, 7}),
        ({"destination": "crm"}, {1}),  # 5's crm row is a removal
        ({"sub_audience": "gold", "destination": "drop"}, {2, 7}),
        ({"sub_audience": "platinum", "group": "offer", "destination": "crm"}, {1}),
    ],
)
def test_filters(shop_eval: Evaluator, spec: dict[str, Any], expected: set[int]) -> None:
    assert shop_eval.rule(winback(**spec)) == expected


def test_control_rows_count_only_when_asked_for(shop_eval: Evaluator) -> None:
    assert shop_eval.rule(winback(include_control=True)) == {1, 2, 3, 4, 7}
    assert shop_eval.rule(winback(sub_audience="platinum", include_control=True)) == {1, 3}
    # Naming the control group counts its rows.
    assert shop_eval.rule(winback(group="holdout")) == {3}
    assert shop_eval.rule(winback(group="holdout", times={"op": "=", "value": 2})) == {3}
    # Control rows have no destination: a destination filter never matches them.
    assert shop_eval.rule(winback(include_control=True, destination="drop")) == {1, 2, 4, 7}


def test_window(shop_eval: Evaluator) -> None:
    # (as_of − 14 days, as_of]: r2 is exactly 14 days before, so outside; r3 at as_of inside.
    assert shop_eval.rule(winback(window={"last": "14d"})) == {1, 7}
    assert shop_eval.rule(winback(window={"last": "15d"})) == {1, 2, 4, 7}
    assert shop_eval.rule(winback(window={"between": ["2026-01-01", "2026-01-31"]})) == {1, 2}
    assert shop_eval.rule(winback(window={"between": ["2026-03-15", "2026-03-31"]})) == {1, 7}


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ({"op": ">=", "value": 2}, {1, 2}),
        ({"op": ">", "value": 2}, {1}),
        ({"op": "=", "value": 1}, {4, 7}),
        ({"op": "!=", "value": 1}, {1, 2, 3, 5, 6, 8}),
        ({"op": "<", "value": 2}, {3, 4, 5, 6, 7, 8}),  # never sent: 0 times
        ({"op": "<=", "value": 0}, {3, 5, 6, 8}),
        ({"op": "between", "value": [2, 3]}, {1, 2}),
        ({"op": "not_between", "value": [1, 2]}, {1, 3, 5, 6, 8}),
    ],
)
def test_times_counts_distinct_runs(
    shop_eval: Evaluator, times: dict[str, Any], expected: set[int]
) -> None:
    # Customer 1 had two rows in r1 (drop and crm): one run.
    assert shop_eval.rule(winback(times=times)) == expected


def test_times_within_a_window(shop_eval: Evaluator) -> None:
    spec = winback(window={"last": "30d"}, times={"op": ">=", "value": 2})
    assert shop_eval.rule(spec) == {1}  # r2 and r3; 2 only had r2 in the window


def test_first_and_last_send(shop_eval: Evaluator) -> None:
    # 30 days ago is 2026-02-13: only 1 and 2 were first sent before it (r1).
    assert shop_eval.rule(winback(first={"op": "before", "value": "30 days ago"})) == {1, 2}
    # After the day 7 days ago (2026-03-08): from 2026-03-09 on.
    assert shop_eval.rule(winback(last={"op": "after", "value": "7 days ago"})) == {1, 7}
    assert shop_eval.rule(winback(last={"op": "is", "value": "today"})) == {1, 7}
    assert shop_eval.rule(winback(last={"op": "on_or_before", "value": "2026-03-01"})) == {2, 4}
    assert shop_eval.rule(
        winback(last={"op": "between", "value": ["2026-03-01", "2026-03-14"]})
    ) == {2, 4}
    assert shop_eval.rule(
        winback(last={"op": "not_between", "value": ["2026-03-01", "2026-03-14"]})
    ) == {1, 7}
    both = winback(
        first={"op": "before", "value": "30 days ago"}, last={"op": "after", "value": "7 days ago"}
    )
    assert shop_eval.rule(both) == {1}
    # First and last are those of the matching sends: in the window here.
    in_window = winback(window={"last": "30d"}, first={"op": "on_or_after", "value": "2026-03-01"})
    assert shop_eval.rule(in_window) == {1, 2, 4, 7}
    # A customer with no matching send has no first send: never met, even with times < 1.
    assert (
        shop_eval.rule(
            winback(times={"op": "<", "value": 1}, first={"op": "before", "value": "today"})
        )
        == set()
    )


def test_sends_after_the_as_of_time_are_ignored(shop_eval: Evaluator) -> None:
    assert 6 not in shop_eval.rule(winback())
    later = shop.AS_OF + timedelta(days=1)
    assert shop_eval.rule(winback(), as_of=later) == {1, 2, 4, 6, 7}
    # As of a past date, later sends do not exist yet.
    assert shop_eval.rule(winback(), as_of=R2 - timedelta(microseconds=1)) == {1, 2}
    assert shop_eval.rule(winback(times={"op": "=", "value": 2}), as_of=R2) == {1, 2}


def test_removals_are_not_sends(shop_eval: Evaluator) -> None:
    assert 5 not in shop_eval.rule(winback(destination="crm"))
    assert shop_eval.rule(winback(sub_audience="gold", window={"last": "1d"})) == {7}


def test_suppression_and_frequency_capping(shop_eval: Evaluator) -> None:
    suppress = {"not": winback(window={"last": "7d"})}
    assert shop_eval.rule(suppress) == shop.ALL - {1, 7}
    capped = {"not": winback(times={"op": ">=", "value": 2})}
    assert shop_eval.rule(capped) == shop.ALL - {1, 2}
    # Fewer than 2 sends in 30 days: the never-sent are in.
    assert shop_eval.rule(winback(window={"last": "30d"}, times={"op": "<", "value": 2})) == (
        shop.ALL - {1}
    )
    combined = shop_eval.members(
        rules={"all": [{"attribute": "customers.n", "op": ">=", "value": 0}, suppress]},
        exclude={"campaign": "newsletter"},
    )
    # n >= 0: 1, 2, 3, 6, 7, 8; minus winback in 7 days (1, 7); minus newsletter (8).
    assert combined == {2, 3, 6}


def test_no_recipients_table_means_nobody_was_sent_anything(shop_eval: Evaluator) -> None:
    for activity in (None, lambda name: None):
        assert shop_eval.rule(winback(), activity=activity) == set()
        assert shop_eval.rule({"not": winback()}, activity=activity) == shop.ALL
        capped = winback(times={"op": "<", "value": 3})
        assert shop_eval.rule(capped, activity=activity) == shop.ALL
        last = winback(times={"op": "=", "value": 0}, last={"op": "before", "value": "today"})
        assert shop_eval.rule(last, activity=activity) == set()


def test_the_engine_is_asked_for_the_table_at_each_lookup(tmp_path: Path) -> None:
    with DuckDBEngine(
        DuckDBEngineConfig(path=":memory:", threads=1), workspace_root=tmp_path
    ) as fresh:
        for name, data in shop.tables().items():
            fresh.backend.create_table(name, data)
        evaluator = Evaluator(fresh.backend)
        activity = activity_tables(fresh)
        assert activity(RECIPIENTS_TABLE) is None  # no data plane yet
        assert evaluator.rule(winback(), activity=activity) == set()
        fresh.create_dataplane_table(RECIPIENTS_TABLE, recipients())
        assert evaluator.rule(winback(), activity=activity) == {1, 2, 4, 7}


def test_recipients_without_a_column_is_an_error(shop_eval: Evaluator) -> None:
    partial = ibis.memtable(recipients().drop_columns(["treatment_group"]))
    with pytest.raises(CompileError, match="table 'recipients' has no column 'treatment_group'"):
        shop_eval.rule(winback(), activity=lambda name: partial)


def test_bad_values_name_their_path(shop_eval: Evaluator) -> None:
    with pytest.raises(CompileError, match=r"^rules\.first\.value: 'soon' is not a date"):
        shop_eval.rule(winback(first={"op": "before", "value": "soon"}))
    with pytest.raises(CompileError, match=r"^rules\.times\.value: 'x' is not a number"):
        shop_eval.rule(winback(times={"op": ">=", "value": "x"}))


# --- explanation and words -----------------------------------------------------------------


def test_explanation_shows_the_number_of_runs(shop_eval: Evaluator) -> None:
    shop_eval.segments["capped"] = shop.segment(
        "capped",
        rules={
            "all": [
                winback(),
                {"not": winback(window={"last": "7d"}, times={"op": ">=", "value": 1})},
            ]
        },
    )
    ctx = shop_eval.context()
    members = ids(segment_members(ctx, "capped"))
    assert members == {2, 4}
    for customer in sorted(shop.ALL):
        assert explain_customer(ctx, "capped", customer).met == (customer in members)
    sent, recent = explain_customer(ctx, "capped", 1).children[0].children
    assert (sent.path, sent.description, sent.met, sent.value) == (
        "rules.all[0]",
        "in campaign winback",
        True,
        3,
    )
    (inner,) = recent.children
    assert (inner.path, inner.description, inner.met, inner.value) == (
        "rules.all[1].not",
        "in campaign winback at least 1 time in the last 7 days",
        True,
        1,
    )
    sent_3 = explain_customer(ctx, "capped", 3).children[0].children[0]
    assert (sent_3.met, sent_3.value) == (False, 0)  # only control rows
    missing = explain_customer(shop_eval.context(activity=None), "capped", 1)
    assert missing.children[0].children[0].value == 0
    assert not missing.met


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ({}, "in campaign winback"),
        (
            {"group": "offer", "times": {"op": ">=", "value": 3}, "window": {"last": "30d"}},
            "in campaign winback (group offer) at least 3 times in the last 30 days",
        ),
        (
            {
                "sub_audience": "platinum",
                "destination": "drop",
                "include_control": True,
                "times": {"op": "<", "value": 2},
            },
            "in campaign winback (sub-audience platinum, destination drop, control included) "
            "fewer than 2 times",
        ),
        (
            {"times": {"op": "between", "value": [2, 4]}},
            "in campaign winback between 2 and 4 times",
        ),
        (
            {
                "window": {"between": ["2026-01-01", "2026-01-31"]},
                "first": {"op": "on_or_before", "value": "30 days ago"},
                "last": {"op": "after", "value": "7 days ago"},
            },
            "in campaign winback between 2026-01-01 and 2026-01-31, first sent on or before "
            "30 days ago, last sent after 7 days ago",
        ),
    ],
)
def test_description(spec: dict[str, Any], text: str) -> None:
    assert describe(CampaignActivityCondition.model_validate(winback(**spec))) == text


# --- checks and references -----------------------------------------------------------------


def problems(rules: dict[str, Any]) -> list[tuple[str, str]]:
    definition = shop.segment("s", rules=rules)
    return check_segment(definition, data_model=shop.DATA_MODEL, schemas={}, dialect="duckdb")


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        (
            {"window": {"between": ["2026-02-01", "2026-01-01"]}},
            "rules.window.between",
            "the window ends (2026-01-01) before it starts (2026-02-01)",
        ),
        ({"window": {"last": "0d"}}, "rules.window.last", "a window of length 0 holds nothing"),
        (
            {"times": {"op": ">=", "value": -1}},
            "rules.times.value",
            "-1 is not a number of times (0, 1, 2...)",
        ),
        (
            {"times": {"op": ">=", "value": 1.5}},
            "rules.times.value",
            "1.5 is not a number of times (0, 1, 2...)",
        ),
        (
            {"times": {"op": "between", "value": [3, 1]}},
            "rules.times.value",
            "between: the low bound 3 is above the high",
        ),
        (
            {"times": {"op": "between", "value": 3}},
            "rules.times.value",
            "between takes two numbers of times: [low, high]",
        ),
        (
            {"times": {"op": "=", "value": [1, 2]}},
            "rules.times.value",
            "= takes one number, not a list",
        ),
        (
            {"first": {"op": "before", "value": "soon"}},
            "rules.first.value",
            "'soon' is not a date; use 2026-03-01, 2026-03-01T09:30, 'today', 'N days ago', "
            "'N weeks ago', 'N months ago' or 'N years ago'",
        ),
        (
            {"last": {"op": "between", "value": ["today", "30 days ago"]}},
            "rules.last.value",
            "between: today is after 30 days ago",
        ),
        (
            {"last": {"op": "after", "value": ["today"]}},
            "rules.last.value",
            "after takes one date, not a list",
        ),
    ],
)
def test_check_problems(spec: dict[str, Any], path: str, message: str) -> None:
    assert problems(winback(**spec)) == [(path, message)]


def test_check_accepts_a_good_condition() -> None:
    good = winback(
        group="offer",
        window={"last": "30d"},
        times={"op": "between", "value": [1, "3"]},
        first={"op": "between", "value": ["2026-01-01", "30 days ago"]},
        last={"op": "on_or_after", "value": "7 days ago"},
    )
    assert problems({"all": [good, {"not": good}]}) == []


def test_first_and_last_take_date_operators_only() -> None:
    with pytest.raises(ValueError, match=r"rules\.campaign\.first\.op"):
        shop.segment("s", rules=winback(first={"op": ">=", "value": "today"}))


def test_unknown_campaigns_are_reported_with_file_and_path(tmp_path: Path) -> None:
    (tmp_path / "activator.yaml").write_text(
        "engine: {type: duckdb, path: data/w.duckdb}\n"
        "data_model:\n  customers: {table: customers, key: customer_id}\n"
    )
    (tmp_path / "segments").mkdir()
    (tmp_path / "segments" / "sent.yml").write_text("rules: {campaign: winback}\n")
    (tmp_path / "segments" / "fresh.yml").write_text(
        "rules:\n  all:\n    - {attribute: customers.customer_id, op: '>', value: 0}\n"
        "    - not: {campaign: winbak, window: {last: 7d}}\n"
    )
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "winback.yml").write_text(
        "audience: {include: [fresh]}\n"
        "sub_audiences:\n"
        "  - name: never-sent\n"
        "    rules: {not: {campaign: newsletter}}\n"
    )
    issues = [str(issue) for issue in check_references(load_workspace(tmp_path))]
    assert issues == [
        "segments/fresh.yml:4 rules.all[1].not.campaign: "
        "unknown campaign 'winbak' (known: winback)",
        "campaigns/winback.yml:4 sub_audiences[0].rules.not.campaign: "
        "unknown campaign 'newsletter' (known: winback)",
    ]


# --- golden SQL ----------------------------------------------------------------------------

GOLDEN = Path(__file__).parent / "golden"
DIALECTS = {
    "bigquery": "bigquery",
    "duckdb": "duckdb",
    "postgres": "postgres",
    "snowflake": "snowflake",
    "spark": "pyspark",
    "trino": "trino",
}


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_golden_sql(dialect: str) -> None:
    """Suppression over unbound tables; regenerate with ACTIVATOR_UPDATE_GOLDEN=1."""
    if dialect == "spark":
        _ = ibis.pyspark  # registers the options its SQL compiler reads
    unbound = {
        name: ibis.table(ibis.Schema.from_pyarrow(data.schema), name=name)
        for name, data in shop.tables().items()
    }
    dataplane = ibis.table(
        ibis.Schema.from_pyarrow(recipients().schema), name=RECIPIENTS_TABLE, database="activator"
    )
    segments = {
        "suppressed": shop.segment(
            "suppressed",
            rules={
                "all": [
                    {"attribute": "customers.flag", "op": "is_true"},
                    {"not": winback(group="offer", window={"last": "7d"})},
                    {"not": winback(times={"op": ">=", "value": 3})},
                ]
            },
        )
    }
    ctx = CompileContext(
        tables=unbound.__getitem__,
        data_model=shop.DATA_MODEL,
        segments=segments,
        as_of=shop.AS_OF,
        timezone="Europe/Paris",
        dialect=dialect,
        activity={RECIPIENTS_TABLE: dataplane}.get,
    )
    sql = str(ibis.to_sql(segment_members(ctx, "suppressed"), dialect=DIALECTS[dialect]))
    path = GOLDEN / dialect / "campaign-suppression.sql"
    text = sql.strip() + "\n"
    if os.environ.get("ACTIVATOR_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with ACTIVATOR_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs: run with ACTIVATOR_UPDATE_GOLDEN=1"
