"""A campaign's audience, sub-audiences and treatment groups, as expressions in the engine.

Four steps, each an Ibis expression over the engine's tables (Python only ever holds counts):

1. **Audience**: the union of the include segments minus the union of the exclude segments.
2. **Allocation**: each member goes to the first sub-audience they match (or to every one
   with ``first_match_only: false``); members matching none go to *All remaining*.
3. **Assignment** (:func:`prepare` then :func:`assign`): groups are *sticky*. A customer
   assigned to a group in an earlier run keeps it. Newcomers are ranked by ``md5(salt:id)``
   (the activation ID as the last tie-breaker: a total order, the same on every engine) and
   fill the groups' shortfalls against their targets, so every run's groups match their
   percentages exactly (to the customer) as the audience grows: 1,200 at 20% control gives
   240 / 960, and 40 newcomers later 248 / 992. Targets are exact apportionments in integer
   arithmetic (:func:`quotas`), so DuckDB, Spark and PostgreSQL agree to the customer.
4. **Changes** against the previous successful run (:func:`changes`): who to send in
   incremental, full and mirror mode.
"""

from __future__ import annotations

__all__ = [
    "ASSIGNMENTS_TABLE",
    "GroupQuota",
    "allocate",
    "assign",
    "changes",
    "prepare",
    "quotas",
    "rank_key",
]

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir

from activator.compiler.functions import md5_hex
from activator.compiler.segment import CompileContext, segment_flags
from activator.definitions.campaign import BASIS_POINTS, CampaignDefinition, basis_points
from activator.definitions.segment import SegmentDefinition

ASSIGNMENTS_TABLE = "campaign_assignments"
"""Data-plane table of sticky group assignments: (campaign, sub_audience, <key>,
treatment_group, run_id), one row per customer and sub-audience, never updated."""

SUB = "sub_audience"
GROUP = "treatment_group"
CONTROL = "control"
ACTION = "action"
NEWCOMER = "newcomer"
PREVIOUS = "_previous_group"
RANK = "_rank_key"


def _inline_name(definition: CampaignDefinition, sub: str) -> str:
    return f"{definition.name}.{sub}"[:128]


def _flags(ctx: CompileContext, definition: CampaignDefinition) -> ir.Table:
    """(key, _in0.., _out0.., _sub0..): every segment of the campaign, evaluated in one plan."""
    flags: dict[str, str | SegmentDefinition] = {}
    for i, name in enumerate(definition.audience.include):
        flags[f"_in{i}"] = name
    for i, name in enumerate(definition.audience.exclude):
        flags[f"_out{i}"] = name
    for i, sub in enumerate(definition.sub_audiences):
        flags[f"_sub{i}"] = (
            sub.segment
            if sub.segment is not None
            # Inline rules are a segment of their own, named <campaign>.<sub-audience>.
            else SegmentDefinition(name=_inline_name(definition, sub.name), rules=sub.rules)
        )
    return segment_flags(ctx, flags)


def _any(table: ir.Table, columns: list[str]) -> Any:
    result: Any = ibis.literal(False)
    for column in columns:
        result = result | table[column]
    return result


def allocate(ctx: CompileContext, definition: CampaignDefinition) -> ir.Table:
    """(key, sub_audience) of the audience: each member's sub-audience(s), *All remaining*
    for those matching none.

    The audience (includes minus excludes) and every sub-audience are flags of one plan
    (:func:`~activator.compiler.segment.segment_flags`): one pass over the customers, not one
    per segment.
    """
    key = ctx.data_model.customers.key
    flags = _flags(ctx, definition)
    include = [f"_in{i}" for i in range(len(definition.audience.include))]
    exclude = [f"_out{i}" for i in range(len(definition.audience.exclude))]
    subs = [f"_sub{i}" for i in range(len(definition.sub_audiences))]
    audience = flags.filter(_any(flags, include) & ~_any(flags, exclude))
    remaining = ibis.literal(definition.remaining.name, type="string")
    if definition.first_match_only or not subs:
        names = [
            (audience[c], sub.name) for c, sub in zip(subs, definition.sub_audiences, strict=True)
        ]
        chosen = ibis.cases(*names, else_=remaining) if names else remaining
        return audience.select(key, **{SUB: chosen.cast("string")})
    parts = [
        audience.filter(audience[c]).select(key, **{SUB: ibis.literal(sub.name, type="string")})
        for c, sub in zip(subs, definition.sub_audiences, strict=True)
    ]
    rest = audience.filter(~_any(audience, subs)).select(key, **{SUB: remaining})
    return ibis.union(*parts, rest, distinct=False)


def rank_key(key: ir.Value, salt: str) -> ir.StringValue:
    """The order newcomers are assigned in: ``md5(salt || ':' || id)`` as lowercase hex."""
    result: ir.StringValue = md5_hex(ibis.literal(f"{salt}:") + key.cast("string"))
    return result


def _valid_group(definition: CampaignDefinition, sub: ir.StringValue, group: ir.Value) -> Any:
    """Whether an earlier assignment names a group the sub-audience still has."""
    return ibis.cases(
        *[
            (sub == name, group.isin([g.name for g in groups]))
            for name, groups in definition.parts()
        ],
        else_=False,
    )


def prepare(
    allocated: ir.Table,
    definition: CampaignDefinition,
    key: str,
    assignments: ir.Table | None,
) -> ir.Table:
    """(key, sub_audience, _previous_group): allocation with earlier assignments.

    ``_previous_group`` is the group the customer was given in this sub-audience by an
    earlier run (NULL for newcomers, or when that group no longer exists).
    """
    if assignments is None:
        return allocated.mutate(**{PREVIOUS: ibis.null("string")})
    mine = assignments.filter(assignments.campaign == definition.name)
    earlier = mine.select(_k=mine[key], _s=mine[SUB], **{PREVIOUS: mine[GROUP].cast("string")})
    on = [allocated[key] == earlier._k, allocated[SUB] == earlier._s]
    joined = allocated.left_join(earlier, on).drop("_k", "_s")
    kept = _valid_group(definition, joined[SUB], joined[PREVIOUS])
    return joined.mutate(**{PREVIOUS: ibis.ifelse(kept, joined[PREVIOUS], ibis.null("string"))})


def group_counts(prepared: ir.Table) -> ir.Table:
    """(sub_audience, _previous_group, n): the only figures :func:`quotas` needs."""
    return prepared.group_by(SUB, PREVIOUS).aggregate(n=prepared.count())


@dataclass(frozen=True)
class GroupQuota:
    """One group of one sub-audience in this run.

    Attributes:
        sub_audience: The sub-audience.
        group: The group.
        control: Whether it is the control.
        target: Customers it should hold now (its exact share of the sub-audience).
        kept: Customers it keeps from earlier runs.
        first: Newcomers ranked ``first`` (0-based) to ``end`` (excluded) join it.
        end: See ``first``.
    """

    sub_audience: str
    group: str
    control: bool
    target: int
    kept: int
    first: int
    end: int

    @property
    def size(self) -> int:
        """Customers in the group after this run's assignment."""
        return self.kept + self.end - self.first


def _apportion(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` by ``weights``: cumulative shares rounded half up, so the parts add up
    to ``total`` exactly and depend on integers only."""
    whole = sum(weights)
    if whole == 0:
        return [0] * len(weights)
    bounds, cumulative = [0], 0
    for weight in weights:
        cumulative += weight
        bounds.append((2 * total * cumulative + whole) // (2 * whole))
    return [b - a for a, b in itertools.pairwise(bounds)]


def quotas(
    definition: CampaignDefinition, counts: Mapping[tuple[str, str | None], int]
) -> list[GroupQuota]:
    """Each group's target, and the range of newcomer ranks that joins it.

    Args:
        definition: The campaign.
        counts: (sub-audience, earlier group or None for newcomers) → customers, from
            :func:`group_counts`.

    Targets apportion the sub-audience by the percentages (in declared order). Customers keep
    their earlier group even when it is above target (the same customer never changes
    group); newcomers are apportioned by each group's shortfall, so groups reach their
    targets exactly whenever no group is above it.
    """
    found: list[GroupQuota] = []
    for sub, groups in definition.parts():
        kept = [counts.get((sub, g.name), 0) for g in groups]
        newcomers = counts.get((sub, None), 0)
        total = sum(kept) + newcomers
        targets = _apportion(total, [basis_points(g.percent) for g in groups])
        assert sum(basis_points(g.percent) for g in groups) == BASIS_POINTS
        shortfalls = [max(0, t - k) for t, k in zip(targets, kept, strict=True)]
        joining = _apportion(newcomers, shortfalls)
        first = 0
        for group, target, keep, join in zip(groups, targets, kept, joining, strict=True):
            found.append(
                GroupQuota(sub, group.name, group.control, target, keep, first, first + join)
            )
            first += join
    return found


def assign(prepared: ir.Table, key: str, plan: list[GroupQuota], salt: str) -> ir.Table:
    """(key, sub_audience, treatment_group, newcomer, control) for every customer of
    ``prepared``; ``newcomer`` marks those given a group by this assignment.

    Only newcomers are ranked (hashed): most of a recurring campaign's audience keeps its
    group, and MD5 over millions of IDs is a visible part of a run.
    """
    kept = prepared.filter(prepared[PREVIOUS].notnull())
    kept = kept.select(key, SUB, **{GROUP: kept[PREVIOUS], NEWCOMER: ibis.literal(False)})
    new = prepared.filter(prepared[PREVIOUS].isnull())
    new = new.mutate(**{RANK: rank_key(new[key], salt)})
    rank = ibis.row_number().over(group_by=new[SUB], order_by=[new[RANK], new[key]])
    new = new.mutate(_rank=rank)
    branches = [
        ((new[SUB] == q.sub_audience) & (new._rank >= q.first) & (new._rank < q.end), q.group)
        for q in plan
        if q.end > q.first
    ]
    # No branch: nobody is new (every customer keeps an earlier group).
    chosen = ibis.cases(*branches, else_=ibis.null("string")) if branches else ibis.null("string")
    new = new.select(key, SUB, **{GROUP: chosen.cast("string"), NEWCOMER: ibis.literal(True)})
    everyone = ibis.union(kept, new, distinct=False)
    controls = [(q.sub_audience, q.group) for q in plan if q.control]
    is_control: Any = ibis.literal(False)
    for sub, group in controls:
        is_control = is_control | ((everyone[SUB] == sub) & (everyone[GROUP] == group))
    return everyone.mutate(**{CONTROL: is_control})


def changes(current: ir.Table, previous: ir.Table | None, key: str, mode: str) -> ir.Table:
    """The rows a run sends, with ``action`` 'add' or 'remove'.

    Args:
        current: This run's (key, sub_audience, treatment_group, control).
        previous: The same for the previous successful run (None: the first run).
        key: The activation ID column.
        mode: ``incremental``: who is new to their sub-audience; ``full``: everyone;
            ``mirror``: who is new to their sub-audience and group as 'add', and who left it
            as 'remove' (treatment groups only: the control was never sent).
    """
    columns = [key, SUB, GROUP, CONTROL]
    adds = current.select(*columns)
    if previous is not None and mode == "incremental":
        adds = adds.anti_join(previous, [key, SUB])
    elif previous is not None and mode == "mirror":
        adds = adds.anti_join(previous, [key, SUB, GROUP])
    adds = adds.mutate(**{ACTION: ibis.literal("add", type="string")})
    if previous is None or mode != "mirror":
        return adds
    gone = previous.filter(~previous[CONTROL]).anti_join(current, [key, SUB, GROUP])
    removes = gone.select(*columns).mutate(**{ACTION: ibis.literal("remove", type="string")})
    return ibis.union(adds, removes, distinct=False)
