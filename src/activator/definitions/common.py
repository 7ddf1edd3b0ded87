"""Pieces shared by several definitions: schedules, credential references, rule trees."""

from __future__ import annotations

__all__ = [
    "AttributeCondition",
    "BehaviorCondition",
    "CampaignActivityCondition",
    "Condition",
    "CronSchedule",
    "DateComparison",
    "EnvSecret",
    "Group",
    "JourneyActivityCondition",
    "OnceSchedule",
    "RecurringSchedule",
    "Rules",
    "Schedule",
    "ScoreCondition",
    "SecretRef",
    "SegmentCondition",
    "Window",
    "campaign_references",
    "journey_references",
    "known_credentials",
    "rule_children",
    "rule_conditions",
    "segment_references",
]

from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from activator.definitions.base import Model, Name

# --- Schedules -------------------------------------------------------------------------------


class OnceSchedule(Model):
    """Run once: now when applied and launched, or at a given time."""

    type: Literal["once"] = "once"
    at: datetime | None = None
    """When to run; absent means when launched."""


class RecurringSchedule(Model):
    """Run on a calendar recurrence."""

    type: Literal["recurring"] = "recurring"
    every: Literal["3h", "6h", "12h", "daily", "weekly", "monthly", "quarterly"]
    at: str = "00:00"
    """Time of day (HH:MM) in ``timezone``."""

    timezone: str | None = None
    """IANA time zone; default: the workspace's."""

    start: date | None = None
    end: date | None = None
    """Last day on which a run may start; absent: never ends."""

    max_runs: int | None = Field(default=None, ge=1)
    """End after this many successful runs."""

    @field_validator("at")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        try:
            hours, minutes = (int(part) for part in value.split(":"))
        except ValueError:
            raise ValueError(f"{value!r} is not a time of day; use HH:MM, e.g. '06:30'") from None
        if not (0 <= hours < 24 and 0 <= minutes < 60):
            raise ValueError(f"{value!r} is not a time of day; use HH:MM, e.g. '06:30'")
        return value


class CronSchedule(Model):
    """Run on a cron expression (five fields) in a time zone."""

    type: Literal["cron"] = "cron"
    cron: str
    timezone: str | None = None
    """IANA time zone; default: the workspace's."""

    start: date | None = None
    end: date | None = None
    max_runs: int | None = Field(default=None, ge=1)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter

        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a five-field cron expression, e.g. '0 6 * * 1'")
        return value


Schedule = Annotated[OnceSchedule | RecurringSchedule | CronSchedule, Field(discriminator="type")]

# --- Secrets ---------------------------------------------------------------------------------


class EnvSecret(Model):
    """A secret read from an environment variable at run time; never stored or shown."""

    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class StoreSecret(Model):
    """A secret kept in the workspace's encrypted secrets store, by name."""

    secret: str


SecretRef = EnvSecret | StoreSecret


def known_credentials(
    value: dict[str, SecretRef], allowed: frozenset[str], what: str
) -> dict[str, SecretRef]:
    """Refuse credential names a destination type does not use (a typo would otherwise be
    silently ignored and the connection fail later)."""
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ValueError(f"unknown credentials {unknown}; {what} takes {sorted(allowed)}")
    return value


# --- Rules -----------------------------------------------------------------------------------

Operator = Literal[
    "=", "!=", ">", ">=", "<", "<=", "between", "not_between", "in", "not_in",
    "is_null", "is_not_null", "is_true", "is_false",
    "equals", "not_equals", "contains", "not_contains", "starts_with", "ends_with",
    "empty", "not_empty", "is", "before", "after", "on_or_before", "on_or_after",
]  # fmt: skip


class Window(Model):
    """A time window measured back from the run's as-of time, or between two dates."""

    last: str | None = Field(default=None, pattern=r"^\d+[hdwmy]$")
    """``90d``, ``12w``, ``6m``, ``1y``, ``48h``."""

    between: tuple[date, date] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Window:
        if (self.last is None) == (self.between is None):
            raise ValueError("give exactly one of 'last' (e.g. 90d) or 'between' (two dates)")
        return self


class Comparison(Model):
    """An operator and a value, e.g. ``{op: '>=', value: 3}``."""

    op: Literal["=", "!=", ">", ">=", "<", "<=", "between", "not_between"]
    value: Any


class AttributeCondition(Model):
    """A condition on a column of the customer table or a related table."""

    attribute: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
    """``table.column``; the table is the data model's ``customers`` or an event table name."""

    op: Operator
    value: Any = None
    case_sensitive: bool = True
    """String operators only."""


class BehaviorCondition(Model):
    """Purchase behaviour over an event table of the data model."""

    behavior: Literal[
        "has_purchased",
        "has_not_purchased",
        "first_purchase",
        "repeat_purchase",
        "total_value",
        "most_frequent",
    ]
    table: str
    """Event table, by its name in the data model (``orders``)."""

    count: Comparison | None = None
    value: Comparison | Any = None
    column: str | None = None
    """For ``most_frequent``: the column whose most frequent value is compared."""

    window: Window | None = None
    where: list[AttributeCondition] = []
    """Filters on the event table (category, brand, channel, store)."""


class ScoreCondition(Model):
    """RFM deciles (1–10) over the rolling 12 months before the as-of time."""

    score: Literal["rfm_recency", "rfm_frequency", "rfm_monetary"]
    op: Literal["=", "!=", ">", ">=", "<", "<=", "between", "not_between", "in", "not_in"]
    value: Any
    table: str | None = None
    """Event table the scores are computed on; default: the first event table of the data
    model that declares an ``amount``."""


class SegmentCondition(Model):
    """Membership in another segment (cycles are rejected)."""

    segment: Name


class DateComparison(Model):
    """A date operator and a value, as in date attribute conditions: ``{op: before, value: 30
    days ago}``."""

    op: Literal["is", "before", "after", "on_or_before", "on_or_after", "between", "not_between"]
    value: Any
    """A date, a timestamp, ``now``, ``today``, ``N days ago``...; two of them for between."""


class CampaignActivityCondition(Model):
    """Sends of a campaign to the customer, from the data plane's ``recipients`` table.

    Only sends (action ``add``) at or before the as-of time count. Without ``times``, the
    condition holds when there is at least one matching send.
    """

    campaign: Name
    """The campaign, by name."""

    sub_audience: str | None = None
    """Only sends to this sub-audience (the campaign's remaining name for those matching none)."""

    group: str | None = None
    """Only sends to this treatment group; naming the control group counts its rows."""

    destination: str | None = None
    """Only sends to this destination."""

    include_control: bool = False
    """Count control-group rows (customers held out, not sent anything) as well."""

    window: Window | None = None
    """Only sends in this window; default: every send up to the as-of time."""

    times: Comparison | None = None
    """Number of distinct runs with a matching send, e.g. ``{op: '>=', value: 3}``; default:
    at least one."""

    first: DateComparison | None = None
    """When the first matching send happened."""

    last: DateComparison | None = None
    """When the last matching send happened."""


class JourneyActivityCondition(Model):
    """A journey's travel log for the customer, from the data plane's ``journey_log`` table.

    Only log rows written at or before the as-of time count. ``status`` says what is looked
    for: ``in`` (default) an open position (at ``node`` when given); ``entered`` entries (or
    arrivals at ``node``); ``goal`` goals reached (``goal`` when given); ``exited`` departures,
    exits and orphans (for ``reason`` when given). Without ``times``, the condition holds when
    there is at least one.
    """

    journey: Name
    """The journey, by name."""

    status: Literal["in", "entered", "goal", "exited"] = "in"
    """``in``: travelling now; ``entered``: entered (or reached ``node``); ``goal``: reached a
    goal; ``exited``: left the journey."""

    node: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    """A node id: ``in``, at that node now; ``entered``, reached that node."""

    goal: Name | None = None
    """Status ``goal`` only: this goal (a goal segment's name); default: any goal."""

    reason: Name | None = None
    """Status ``exited`` only: why they left (an exit segment's name, ``exit-node`` or
    ``end``); default: any reason, orphans included."""

    window: Window | None = None
    """Only log rows in this window; default: every row up to the as-of time."""

    times: Comparison | None = None
    """Number of distinct entries with a matching row, e.g. ``{op: '>=', value: 2}``;
    default: at least one. Not for status ``in``."""

    first: DateComparison | None = None
    """When the first matching row was written (``in``: the arrival at the current node)."""

    last: DateComparison | None = None
    """When the last matching row was written."""


class AllGroup(Model):
    all: list[Rules] = Field(min_length=1)


class AnyGroup(Model):
    any: list[Rules] = Field(min_length=1)


class NotGroup(Model):
    not_: Rules = Field(alias="not")


Group = AllGroup | AnyGroup | NotGroup
Condition = (
    AttributeCondition
    | BehaviorCondition
    | ScoreCondition
    | SegmentCondition
    | CampaignActivityCondition
    | JourneyActivityCondition
)

_KINDS = (
    "all", "any", "not", "attribute", "behavior", "score", "segment", "campaign", "journey",
)  # fmt: skip


def _condition_kind(value: Any) -> str | None:
    """Pick the union member by the key a rule starts with, so errors name one shape."""
    if isinstance(value, dict):
        found = [key for key in _KINDS if key in value]
        return found[0] if len(found) == 1 else None
    for kind, cls in zip(
        _KINDS,
        (AllGroup, AnyGroup, NotGroup, AttributeCondition, BehaviorCondition, ScoreCondition,
         SegmentCondition, CampaignActivityCondition, JourneyActivityCondition),
        strict=True,
    ):  # fmt: skip
        if isinstance(value, cls):
            return kind
    return None


Rules = Annotated[
    Annotated[AllGroup, Tag("all")]
    | Annotated[AnyGroup, Tag("any")]
    | Annotated[NotGroup, Tag("not")]
    | Annotated[AttributeCondition, Tag("attribute")]
    | Annotated[BehaviorCondition, Tag("behavior")]
    | Annotated[ScoreCondition, Tag("score")]
    | Annotated[SegmentCondition, Tag("segment")]
    | Annotated[CampaignActivityCondition, Tag("campaign")]
    | Annotated[JourneyActivityCondition, Tag("journey")],
    Discriminator(
        _condition_kind,
        custom_error_type="rule_kind",
        custom_error_message=(
            "a rule starts with exactly one of: all, any, not, attribute, behavior, score, "
            "segment, campaign, journey"
        ),
    ),
]

AllGroup.model_rebuild()
AnyGroup.model_rebuild()
NotGroup.model_rebuild()


def rule_children(node: Rules, path: str) -> Iterator[tuple[str, Rules]]:
    """The direct children of a group, each with its path (``rules.all[0]``); none for a leaf."""
    if isinstance(node, AllGroup):
        for i, child in enumerate(node.all):
            yield f"{path}.all[{i}]", child
    elif isinstance(node, AnyGroup):
        for i, child in enumerate(node.any):
            yield f"{path}.any[{i}]", child
    elif isinstance(node, NotGroup):
        yield f"{path}.not", node.not_


def rule_conditions(rules: Rules | None, prefix: str) -> Iterator[tuple[str, Condition]]:
    """Every condition (leaf) of a rule tree, depth first, each with its path under ``prefix``."""
    if rules is None:
        return
    if isinstance(rules, AllGroup | AnyGroup | NotGroup):
        for path, child in rule_children(rules, prefix):
            yield from rule_conditions(child, path)
    else:
        yield prefix, rules


def segment_references(rules: Rules | None, prefix: str) -> list[tuple[str, str]]:
    """Names of segments a rule tree refers to, each with its path (under ``prefix``)."""
    return [
        (node.segment, f"{path}.segment")
        for path, node in rule_conditions(rules, prefix)
        if isinstance(node, SegmentCondition)
    ]


def campaign_references(rules: Rules | None, prefix: str) -> list[tuple[str, str]]:
    """Names of campaigns a rule tree's activity conditions refer to, each with its path."""
    return [
        (node.campaign, f"{path}.campaign")
        for path, node in rule_conditions(rules, prefix)
        if isinstance(node, CampaignActivityCondition)
    ]


def journey_references(rules: Rules | None, prefix: str) -> list[tuple[str, str]]:
    """Names of journeys a rule tree's activity conditions refer to, each with its path."""
    return [
        (node.journey, f"{path}.journey")
        for path, node in rule_conditions(rules, prefix)
        if isinstance(node, JourneyActivityCondition)
    ]
