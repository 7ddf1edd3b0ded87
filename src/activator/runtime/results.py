"""Campaign results: conversion, revenue and lift of each treatment group over its control.

A campaign writes every send to the data-plane ``recipients`` table. Results read it as of a
time: each customer of a (sub-audience, group) is *exposed* at their first send to it, and
*converts* with an event of the conversion table (orders) in the ``days`` after exposure.
Every figure per recipient and per group is computed in the engine; only one summary row per
group reaches Python, where the rates, the lifts and their confidence intervals are derived.

Intervals are normal approximations (see ``docs/results.md``):

* difference of conversion rates: unpooled Wald interval;
* difference of revenue per recipient: Welch's normal interval, with the per-recipient revenue
  variance (non-purchasers count as 0);
* relative lift: the delta method on the *log* of the ratio, exponentiated back, so the
  interval stays above -100% and is asymmetric like the ratio itself;
* incremental conversions and revenue: the difference's interval times the group's size.
"""

from __future__ import annotations

__all__ = [
    "TABLE_COLUMNS",
    "CampaignResults",
    "GroupResult",
    "Interval",
    "Lift",
    "campaign_results",
    "conversion_lift",
    "rate_interval",
]

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from statistics import NormalDist
from typing import Any, Literal
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa

from activator.compiler.segment import MONEY, RECIPIENTS_TABLE, money
from activator.definitions.config import DataModel, EventTable
from activator.engines.base import Engine
from activator.errors import ConfigError, EngineError

_SQUARES = dt.Decimal(38, 8)
"""Squares of per-recipient revenue (``MONEY`` squared keeps 8 decimals), summed exactly."""

_PRECISION = 60
"""Decimal digits for the variance arithmetic: ``Σx² − (Σx)²/n`` cancels, so keep many."""

_GROUP = ("sub_audience", "treatment_group", "control")
"""The recipients columns a result is grouped by."""

Measure = Literal["conversion_rate", "revenue_per_recipient"]


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval.

    Attributes:
        low: lower bound.
        high: upper bound.
    """

    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        """Whether 0 lies outside the interval."""
        return self.low > 0 or self.high < 0

    def scaled(self, factor: float) -> Interval:
        """The interval multiplied by a positive factor."""
        return Interval(self.low * factor, self.high * factor)

    def to_json(self) -> dict[str, float]:
        """``{"low": ..., "high": ...}``."""
        return {"low": self.low, "high": self.high}


@dataclass(frozen=True)
class Lift:
    """One treatment group against its sub-audience's control, on one measure.

    Attributes:
        measure: ``conversion_rate`` or ``revenue_per_recipient``.
        treatment: the measure in the treatment group.
        control: the measure in the control group.
        difference: ``treatment - control`` (absolute lift).
        difference_interval: its confidence interval; None when undefined (a group of fewer
            than 2 recipients, or no variance in either group).
        relative: ``treatment / control - 1``; None when the control's value is not positive.
        relative_interval: its confidence interval (delta method on the log ratio); None
            when undefined (also when the treatment's value is not positive).
        incremental: ``difference * treatment recipients``: conversions or revenue the
            treatment brought beyond what its recipients would have done without it.
        incremental_interval: ``difference_interval`` times the treatment recipients.
    """

    measure: Measure
    treatment: float
    control: float
    difference: float
    difference_interval: Interval | None
    relative: float | None
    relative_interval: Interval | None
    incremental: float
    incremental_interval: Interval | None

    @property
    def significant(self) -> bool:
        """The difference's interval excludes 0 (False when it is undefined)."""
        return self.difference_interval is not None and self.difference_interval.excludes_zero

    def to_json(self) -> dict[str, Any]:
        """The lift as JSON: floats, intervals as ``{"low", "high"}`` or null."""
        return {
            "measure": self.measure,
            "treatment": self.treatment,
            "control": self.control,
            "difference": self.difference,
            "difference_interval": _interval_json(self.difference_interval),
            "relative": self.relative,
            "relative_interval": _interval_json(self.relative_interval),
            "incremental": self.incremental,
            "incremental_interval": _interval_json(self.incremental_interval),
            "significant": self.significant,
        }


@dataclass(frozen=True)
class GroupResult:
    """Results of one treatment group (or the control) of one sub-audience.

    Attributes:
        sub_audience: the sub-audience's name.
        group: the treatment group's name.
        control: whether this is the sub-audience's control group (sent nothing).
        recipients: distinct customers exposed as of the results' time.
        purchasers: recipients with at least one conversion in their window.
        conversion_rate: ``purchasers / recipients``.
        orders: conversions (events) in the recipients' windows.
        revenue: the conversions' amounts, exact; None when the table has no amount.
        revenue_per_recipient: ``revenue / recipients``; None without an amount.
        average_order_value: ``revenue / orders``; None without an amount or without orders.
        conversion_lift: against the sub-audience's control; None for the control itself and
            for sub-audiences without a control.
        revenue_lift: likewise, on revenue per recipient; also None without an amount.
    """

    sub_audience: str
    group: str
    control: bool
    recipients: int
    purchasers: int
    conversion_rate: float
    orders: int
    revenue: Decimal | None
    revenue_per_recipient: float | None
    average_order_value: float | None
    conversion_lift: Lift | None = None
    revenue_lift: Lift | None = None

    def to_json(self) -> dict[str, Any]:
        """The group as JSON; ``revenue`` is a string, to keep the exact decimal."""
        return {
            "sub_audience": self.sub_audience,
            "group": self.group,
            "control": self.control,
            "recipients": self.recipients,
            "purchasers": self.purchasers,
            "conversion_rate": self.conversion_rate,
            "orders": self.orders,
            "revenue": None if self.revenue is None else str(self.revenue),
            "revenue_per_recipient": self.revenue_per_recipient,
            "average_order_value": self.average_order_value,
            "conversion_lift": _lift_json(self.conversion_lift),
            "revenue_lift": _lift_json(self.revenue_lift),
        }


TABLE_COLUMNS = (
    "sub-audience",
    "group",
    "recipients",
    "purchasers",
    "conv. rate",
    "conv. lift",
    "conv. lift CI",
    "revenue",
    "rev/recipient",
    "rev lift",
    "rev lift CI",
    "incremental revenue",
)
"""Headers of :meth:`CampaignResults.table_rows`. Lifts read ``+30.00 pts (+60.0%) *``:
absolute, relative, and a star when significant."""


@dataclass(frozen=True)
class CampaignResults:
    """Results of a campaign as of a time, per sub-audience and group.

    Attributes:
        campaign: the campaign's name.
        conversion: the event table that counts as a conversion (``orders``).
        days: the conversion window after each recipient's exposure, in days.
        as_of: the time the results are measured at (aware, UTC).
        confidence: the intervals' confidence level (0.95).
        revenue_measured: whether the conversion table has an amount (revenue figures).
        groups: one result per (sub-audience, group): by sub-audience, the control first,
            then the other groups by name.
    """

    campaign: str
    conversion: str
    days: int
    as_of: datetime
    confidence: float
    revenue_measured: bool
    groups: tuple[GroupResult, ...]

    def group(self, sub_audience: str, group: str) -> GroupResult:
        """The result of one group.

        Raises:
            KeyError: no such (sub-audience, group) among the recipients.
        """
        for result in self.groups:
            if result.sub_audience == sub_audience and result.group == group:
                return result
        raise KeyError((sub_audience, group))

    def to_json(self) -> dict[str, Any]:
        """The results as JSON (the CLI's ``--json`` and the API).

        Rates, means, lifts and intervals are floats; exact money totals (``revenue``) are
        decimal strings; undefined figures are null.
        """
        return {
            "campaign": self.campaign,
            "conversion": self.conversion,
            "days": self.days,
            "as_of": self.as_of.isoformat(),
            "confidence": self.confidence,
            "revenue_measured": self.revenue_measured,
            "groups": [group.to_json() for group in self.groups],
        }

    def table_rows(self) -> list[tuple[str, ...]]:
        """One row of display strings per group, under :data:`TABLE_COLUMNS`."""
        rows: list[tuple[str, ...]] = []
        for g in self.groups:
            conv, rev = g.conversion_lift, g.revenue_lift
            rows.append(
                (
                    g.sub_audience,
                    f"{g.group} (control)" if g.control else g.group,
                    f"{g.recipients:,}",
                    f"{g.purchasers:,}",
                    f"{g.conversion_rate:.2%}",
                    _points(conv.difference) + _relative(conv) + _star(conv) if conv else "",
                    _span(conv.difference_interval, _points) if conv else "",
                    "-" if g.revenue is None else f"{g.revenue:,.2f}",
                    _money(g.revenue_per_recipient),
                    _signed(rev.difference) + _relative(rev) + _star(rev) if rev else "",
                    _span(rev.difference_interval, _signed) if rev else "",
                    _signed(rev.incremental) if rev else "",
                )
            )
        return rows


def campaign_results(
    engine: Engine,
    data_model: DataModel,
    campaign: str,
    *,
    conversion: str,
    days: int,
    as_of: datetime,
    confidence: float = 0.95,
    timezone: str = "UTC",
) -> CampaignResults:
    """Conversion, revenue and lift of a campaign's groups, as of a time.

    Args:
        engine: the open engine holding the data-plane ``recipients`` table.
        data_model: the workspace's data model.
        campaign: the campaign's name.
        conversion: name of the event table (in ``data_model.events``) whose events count as
            conversions, e.g. ``orders``; returned events are excluded where it declares
            ``returned``.
        days: an event converts when ``exposure < timestamp <= exposure + days`` (calendar
            days in ``timezone``) and ``timestamp <= as_of``.
        as_of: the one clock: sends after it are ignored, and so are events after it.
        confidence: level of every interval, between 0 and 1.
        timezone: the workspace time zone: naive timestamp columns hold wall time in it, a
            DATE stands for the start of its day in it, and days are counted in it.

    Returns:
        One result per (sub-audience, group), with lifts against the sub-audience's control.

    Raises:
        ConfigError: an unknown conversion table, a bad ``days`` or ``confidence``, or a
            campaign without recipients as of ``as_of``.
        EngineError: the tables do not have the expected columns.
        ValueError: ``as_of`` is naive (a programming error: the clock gives aware times).
    """
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError(f"as_of must be an aware datetime, got {as_of!r}")
    as_of = as_of.astimezone(UTC)
    event = _conversion_table(data_model, conversion)
    if days < 1:
        raise ConfigError(
            f"campaign results: days must be at least 1, got {days}",
            hint="give the conversion window in whole days, e.g. 7",
        )
    if not 0 < confidence < 1:
        raise ConfigError(
            f"campaign results: confidence must be between 0 and 1, got {confidence}",
            hint="e.g. 0.95 for 95% intervals",
        )
    zone = ZoneInfo(timezone)
    key = data_model.customers.key
    no_recipients = ConfigError(
        f"campaign {campaign!r} has no recipients yet as of {as_of.isoformat()}; run it first",
        hint="results compare the groups a campaign has sent to (and its control)",
    )
    if RECIPIENTS_TABLE not in engine.list_dataplane_tables():
        raise no_recipients
    recipients = engine.dataplane_table(RECIPIENTS_TABLE)
    _require(recipients, (key, *_GROUP, "campaign", "action", "sent_at"), "recipients")

    sends = recipients.filter(
        recipients.campaign == campaign,
        recipients.action == "add",
        recipients.sent_at <= ibis.literal(as_of),
    )
    # A run has one as-of time, so there are as many send times as runs: a small table.
    run_times = engine.to_pyarrow(sends.select("sent_at").distinct()).column(0).to_pylist()
    if not run_times:
        raise no_recipients

    events = engine.table(event.table)
    _require(
        events,
        tuple(c for c in (event.customer_key, event.timestamp, event.amount, event.returned) if c),
        event.table,
    )
    at_type = events.schema()[event.timestamp]
    if not (at_type.is_timestamp() or at_type.is_date()):
        raise ConfigError(
            f"data_model.events.{conversion}.timestamp: column {event.table}.{event.timestamp} "
            f"is {at_type}; it must be a date or a timestamp",
            hint="cast it in a view if it is text",
        )
    windows = ibis.memtable(_windows(run_times, days=days, as_of=as_of, zone=zone, at_type=at_type))

    exposures = sends.group_by([key, *_GROUP]).aggregate(_exposed_at=sends.sent_at.min())
    exposed = exposures.join(windows, exposures._exposed_at == windows._sent_at)
    conversions = _conversions(events, event)
    joined = exposed.left_join(
        conversions,
        [
            exposed[key] == conversions._customer,
            conversions._at > exposed._low,
            conversions._at <= exposed._high,
        ],
    )
    per_recipient_figures: dict[str, ir.Value] = {"_orders": joined._at.count()}
    if event.amount is not None:
        # Non-purchasers count as 0 revenue in the mean and the variance.
        per_recipient_figures["_revenue"] = joined._amount.sum().cast(MONEY).fill_null(0)
    per_recipient = joined.group_by([key, *_GROUP]).aggregate(**per_recipient_figures)
    figures: dict[str, ir.Value] = {
        "recipients": per_recipient.count(),
        "purchasers": (per_recipient._orders > 0).ifelse(1, 0).sum(),
        "orders": per_recipient._orders.sum(),
    }
    if event.amount is not None:
        revenue = per_recipient._revenue
        figures["revenue"] = revenue.sum()
        figures["squares"] = (revenue * revenue).cast(_SQUARES).sum()
    summary = per_recipient.group_by(list(_GROUP)).aggregate(**figures)
    rows = engine.to_pyarrow(summary).to_pylist()
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    groups = _results(rows, z=z, revenue_measured=event.amount is not None)
    return CampaignResults(
        campaign=campaign,
        conversion=conversion,
        days=days,
        as_of=as_of,
        confidence=confidence,
        revenue_measured=event.amount is not None,
        groups=groups,
    )


def _conversion_table(data_model: DataModel, conversion: str) -> EventTable:
    event = data_model.events.get(conversion)
    if event is None:
        known = ", ".join(sorted(data_model.events)) or "none declared"
        raise ConfigError(
            f"campaign results: unknown conversion table {conversion!r} (event tables: {known})",
            hint="name an event table of data_model.events in activator.yaml, e.g. orders",
        )
    return event


def _require(table: ir.Table, columns: tuple[str, ...], name: str) -> None:
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise EngineError(
            f"table {name!r} has no column {', '.join(repr(c) for c in missing)}",
            hint="check data_model in activator.yaml against the engine's tables",
        )


def _windows(
    run_times: list[datetime], *, days: int, as_of: datetime, zone: ZoneInfo, at_type: dt.DataType
) -> pa.Table:
    """Per send time, the conversion window's bounds in the event column's own type.

    Bounds are computed here rather than in SQL because engines disagree on time zones:
    DuckDB adds days to a TIMESTAMPTZ in its session zone, and none converts a naive wall
    time portably. One row per run keeps this small.
    """
    lows: list[Any] = []
    highs: list[Any] = []
    for sent in run_times:
        exposed = sent.astimezone(zone)
        # Calendar days in the workspace zone: aware arithmetic on a ZoneInfo datetime keeps
        # the wall time across a daylight-saving change.
        end = min((exposed + timedelta(days=days)).astimezone(UTC), as_of)
        lows.append(_bound(exposed, at_type, zone))
        highs.append(_bound(end, at_type, zone))
    arrow_type = _arrow_type(at_type)
    return pa.table(
        {
            "_sent_at": pa.array(run_times, pa.timestamp("us", tz="UTC")),
            "_low": pa.array(lows, arrow_type),
            "_high": pa.array(highs, arrow_type),
        }
    )


def _bound(moment: datetime, at_type: dt.DataType, zone: ZoneInfo) -> datetime | date:
    """An instant as a value of the event column's type, for ``> low`` and ``<= high``.

    A DATE stands for the start of its day in the zone, so ``midnight(d) > L`` is
    ``d > date(L)`` and ``midnight(d) <= U`` is ``d <= date(U)``.
    """
    local = moment.astimezone(zone)
    if at_type.is_date():
        return local.date()
    assert isinstance(at_type, dt.Timestamp)
    if at_type.timezone is None:
        return local.replace(tzinfo=None)
    return moment.astimezone(UTC)


def _arrow_type(at_type: dt.DataType) -> pa.DataType:
    if at_type.is_date():
        return pa.date32()
    assert isinstance(at_type, dt.Timestamp)
    return pa.timestamp("us", tz=None if at_type.timezone is None else "UTC")


def _conversions(events: ir.Table, event: EventTable) -> ir.Table:
    """The conversion table's events, not returned, under names that cannot collide."""
    if event.returned is not None:
        # A NULL flag is read as "not returned", as in purchase behaviour conditions.
        events = events.filter(~events[event.returned].fill_null(False))
    columns: dict[str, ir.Value] = {
        "_customer": events[event.customer_key],
        "_at": events[event.timestamp],
    }
    if event.amount is not None:
        columns["_amount"] = money(events[event.amount])
    return events.select(**columns)


# --- statistics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Summary:
    """One group's figures from the engine, in exact numbers."""

    n: int
    purchasers: int
    revenue: Decimal
    squares: Decimal

    @property
    def rate(self) -> float:
        return self.purchasers / self.n

    def mean(self) -> Decimal:
        with localcontext() as ctx:
            ctx.prec = _PRECISION
            return self.revenue / self.n

    def variance(self) -> Decimal | None:
        """Sample variance of per-recipient revenue; None below 2 recipients."""
        if self.n < 2:
            return None
        with localcontext() as ctx:
            ctx.prec = _PRECISION
            deviations = self.squares - self.revenue * self.revenue / self.n
            return max(deviations, Decimal(0)) / (self.n - 1)


def _results(
    rows: list[dict[str, Any]], *, z: float, revenue_measured: bool
) -> tuple[GroupResult, ...]:
    rows = sorted(rows, key=lambda r: (r["sub_audience"], not r["control"], r["treatment_group"]))
    seen: set[tuple[str, str]] = set()
    controls: dict[str, _Summary] = {}
    for row in rows:
        name = (row["sub_audience"], row["treatment_group"])
        if name in seen:
            raise EngineError(
                f"recipients: group {name[1]!r} of sub-audience {name[0]!r} has both control "
                "and non-control rows",
                hint="the recipients table is inconsistent; check the campaign's runs",
            )
        seen.add(name)
        if row["control"]:
            if row["sub_audience"] in controls:
                raise EngineError(
                    f"recipients: sub-audience {row['sub_audience']!r} has more than one "
                    "control group",
                    hint="the recipients table is inconsistent; check the campaign's runs",
                )
            controls[row["sub_audience"]] = _summary(row)

    results: list[GroupResult] = []
    for row in rows:
        own = _summary(row)
        control = None if row["control"] else controls.get(row["sub_audience"])
        orders = int(row["orders"])
        results.append(
            GroupResult(
                sub_audience=row["sub_audience"],
                group=row["treatment_group"],
                control=bool(row["control"]),
                recipients=own.n,
                purchasers=own.purchasers,
                conversion_rate=own.rate,
                orders=orders,
                revenue=own.revenue if revenue_measured else None,
                revenue_per_recipient=float(own.mean()) if revenue_measured else None,
                average_order_value=(
                    float(own.revenue / orders) if revenue_measured and orders else None
                ),
                conversion_lift=None if control is None else _conversion_lift(own, control, z),
                revenue_lift=(
                    _revenue_lift(own, control, z)
                    if control is not None and revenue_measured
                    else None
                ),
            )
        )
    return tuple(results)


def _summary(row: dict[str, Any]) -> _Summary:
    return _Summary(
        n=int(row["recipients"]),
        purchasers=int(row["purchasers"]),
        revenue=Decimal(row.get("revenue") or 0),
        squares=Decimal(row.get("squares") or 0),
    )


def _conversion_lift(treatment: _Summary, control: _Summary, z: float) -> Lift:
    """Difference of proportions: unpooled Wald; ratio: delta method on log(p_t / p_c)."""
    p_t, p_c = treatment.rate, control.rate
    interval: Interval | None = None
    relative_interval: Interval | None = None
    if treatment.n >= 2 and control.n >= 2:
        se = math.sqrt(p_t * (1 - p_t) / treatment.n + p_c * (1 - p_c) / control.n)
        interval = _around(p_t - p_c, se, z)
        if p_t > 0 and p_c > 0:
            # Var(log p̂) ≈ Var(p̂) / p² = (1 - p) / (n p).
            log_se = math.sqrt((1 - p_t) / (treatment.n * p_t) + (1 - p_c) / (control.n * p_c))
            relative_interval = _log_ratio(p_t / p_c, log_se, z)
    return _lift("conversion_rate", p_t, p_c, p_t - p_c, interval, relative_interval, treatment.n)


def conversion_lift(
    treatment: tuple[int, int], control: tuple[int, int], *, confidence: float = 0.95
) -> Lift:
    """A treatment's conversion against a control's, each given as (converted, total); both
    totals must be positive. Intervals as in campaign results (Wald; log-ratio delta)."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    return _conversion_lift(
        _Summary(n=treatment[1], purchasers=treatment[0], revenue=Decimal(0), squares=Decimal(0)),
        _Summary(n=control[1], purchasers=control[0], revenue=Decimal(0), squares=Decimal(0)),
        z,
    )


def rate_interval(converted: int, total: int, *, confidence: float = 0.95) -> Interval | None:
    """The Wald interval of a proportion (None below 2 or with no variance)."""
    if total < 2:
        return None
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    rate = converted / total
    return _around(rate, math.sqrt(rate * (1 - rate) / total), z)


def _revenue_lift(treatment: _Summary, control: _Summary, z: float) -> Lift:
    """Difference of means: Welch's normal interval; ratio: delta method on log(m_t / m_c)."""
    m_t, m_c = treatment.mean(), control.mean()
    v_t, v_c = treatment.variance(), control.variance()
    interval: Interval | None = None
    relative_interval: Interval | None = None
    if v_t is not None and v_c is not None:
        s2_t, s2_c = float(v_t), float(v_c)
        se = math.sqrt(s2_t / treatment.n + s2_c / control.n)
        interval = _around(float(m_t - m_c), se, z)
        if m_t > 0 and m_c > 0:
            # Var(log m̂) ≈ Var(m̂) / m² = s² / (n m²).
            log_se = math.sqrt(
                s2_t / (treatment.n * float(m_t) ** 2) + s2_c / (control.n * float(m_c) ** 2)
            )
            relative_interval = _log_ratio(float(m_t / m_c), log_se, z)
    return _lift(
        "revenue_per_recipient",
        float(m_t),
        float(m_c),
        float(m_t - m_c),
        interval,
        relative_interval,
        treatment.n,
    )


def _lift(
    measure: Measure,
    treatment: float,
    control: float,
    difference: float,
    interval: Interval | None,
    relative_interval: Interval | None,
    n: int,
) -> Lift:
    return Lift(
        measure=measure,
        treatment=treatment,
        control=control,
        difference=difference,
        difference_interval=interval,
        relative=treatment / control - 1 if control > 0 else None,
        relative_interval=relative_interval,
        incremental=difference * n,
        incremental_interval=None if interval is None else interval.scaled(n),
    )


def _around(estimate: float, se: float, z: float) -> Interval | None:
    # A zero standard error (every rate 0 or 1, every revenue equal) is the normal
    # approximation failing, not certainty: report no interval rather than a point.
    if se == 0:
        return None
    return Interval(estimate - z * se, estimate + z * se)


def _log_ratio(ratio: float, log_se: float, z: float) -> Interval | None:
    if log_se == 0:
        return None
    log = math.log(ratio)
    return Interval(math.exp(log - z * log_se) - 1, math.exp(log + z * log_se) - 1)


# --- display ------------------------------------------------------------------------------


def _lift_json(lift: Lift | None) -> dict[str, Any] | None:
    return None if lift is None else lift.to_json()


def _interval_json(interval: Interval | None) -> dict[str, float] | None:
    return None if interval is None else interval.to_json()


def _points(value: float) -> str:
    return f"{value * 100:+.2f} pts"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _signed(value: float) -> str:
    return f"{value:+,.2f}"


def _span(interval: Interval | None, show: Callable[[float], str]) -> str:
    return "-" if interval is None else f"[{show(interval.low)}, {show(interval.high)}]"


def _relative(lift: Lift) -> str:
    return "" if lift.relative is None else f" ({lift.relative:+.1%})"


def _star(lift: Lift) -> str:
    return " *" if lift.significant else ""
