"""Running a campaign: its audience frozen per run, its groups, its sends and its recipients.

A run of a campaign is an ordinary run (:mod:`activator.runtime.runner`) whose ``evaluate``
task does more than one query:

1. evaluate the audience, allocate sub-audiences and assign groups
   (:mod:`activator.compiler.campaign`), and freeze the result in the data plane as
   ``campaign_audience_<run>`` (customer, sub_audience, treatment_group, newcomer, control);
   new sticky assignments are added to ``campaign_assignments``;
2. compare it with the previous successful run's audience table to find what to send
   (incremental, full or mirror);
3. route each row to the deliveries of its group (a row per customer and delivery, in a
   ``_delivery`` partition; control rows go to partition -1, recorded but never sent) and
   join the customer attributes the mappings read.

After the deliveries, the rows of every delivery that succeeded (and the control rows) are
added to ``recipients``, once (the run's ``recipients`` task records which parts are in).
Every data-plane write here is a CREATE (replacing) or an INSERT, which every engine supports
(Spark tables have no DELETE).
"""

from __future__ import annotations

__all__ = [
    "AUDIENCE_PREFIX",
    "CONTROL_PART",
    "DELIVERY",
    "RECIPIENTS_TABLE",
    "CampaignAudience",
    "Route",
    "audience_table",
    "evaluate_audience",
    "previous_audience",
    "record_recipients",
    "routes",
    "rows_to_send",
]

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.datatypes as idt
import ibis.expr.types as ir

from activator.compiler.campaign import (
    ACTION,
    ASSIGNMENTS_TABLE,
    CONTROL,
    GROUP,
    NEWCOMER,
    PREVIOUS,
    SUB,
    GroupQuota,
    allocate,
    assign,
    changes,
    group_counts,
    prepare,
    quotas,
)
from activator.compiler.segment import CompileContext
from activator.definitions.campaign import CampaignDefinition, CampaignDestination
from activator.definitions.mapping import MappingSources
from activator.engines.base import Engine
from activator.errors import ConfigError
from activator.runtime.runner import snapshot_name
from activator.runtime.sources import with_attributes

AUDIENCE_PREFIX = "campaign_audience_"
RECIPIENTS_TABLE = "recipients"
DELIVERY = "_delivery"
CONTROL_PART = -1
"""The partition of control rows: recorded as recipients, never delivered."""

RESERVED_COLUMNS = (SUB, GROUP, CONTROL, ACTION, DELIVERY)


def audience_table(run_id: str) -> str:
    """The data-plane table holding a campaign run's audience with its groups."""
    return AUDIENCE_PREFIX + run_id.replace("-", "")


@dataclass(frozen=True)
class Route:
    """One delivery of a campaign run: a destination, the groups it carries, an action.

    Attributes:
        part: The ``_delivery`` partition of its rows.
        destination: The destination's name.
        use: The destination as the campaign uses it (mapping, files option).
        action: ``add``, or ``remove`` (mirror mode).
        groups: The (sub-audience, group) pairs whose rows it carries.
        combined: One delivery for every group sending to this destination (rows say their
            sub-audience and group); otherwise exactly one group.
    """

    part: int
    destination: str
    use: CampaignDestination
    action: str
    groups: tuple[tuple[str, str], ...]
    combined: bool

    @property
    def key(self) -> str:
        """Tells this delivery from the campaign's others to the same destination."""
        where = "all" if self.combined else "/".join(self.groups[0])
        return where if self.action == "add" else f"{where}:removed"

    def describe(self) -> dict[str, Any]:
        """Its place in the campaign, for the run's counts."""
        sub, group = (None, None) if self.combined else self.groups[0]
        return {"sub_audience": sub, "group": group, "action": self.action}


def routes(definition: CampaignDefinition, file_destinations: Collection[str]) -> list[Route]:
    """The deliveries of a run, in a stable order.

    Files get one delivery per sub-audience and group unless the campaign's destination says
    ``files: combined``; every other destination (tables, webhooks, APIs) gets one delivery
    for all its groups, the rows carrying their sub-audience and group (a table written once
    per group would be replaced by the last group).
    """
    actions = ["add", "remove"] if definition.mode == "mirror" else ["add"]
    per_destination: dict[str, tuple[CampaignDestination, list[tuple[str, str]]]] = {}
    single: list[tuple[CampaignDestination, tuple[str, str]]] = []
    for sub, groups in definition.parts():
        for group in groups:
            for use in definition.group_destinations(group):
                if use.destination in file_destinations and use.files == "per_group":
                    single.append((use, (sub, group.name)))
                else:
                    entry = per_destination.setdefault(use.destination, (use, []))
                    entry[1].append((sub, group.name))
    found: list[Route] = []
    for action in actions:
        for use, pair in single:
            found.append(Route(len(found), use.destination, use, action, (pair,), False))
        for name, (use, pairs) in per_destination.items():
            _same_mapping(definition, name)
            found.append(Route(len(found), name, use, action, tuple(pairs), True))
    return found


def _same_mapping(definition: CampaignDefinition, destination: str) -> None:
    """A combined delivery maps every group's rows with one mapping: refuse groups that
    override it differently."""
    mappings = {
        repr(use.mapping)
        for _, groups in definition.parts()
        for group in groups
        for use in definition.group_destinations(group)
        if use.destination == destination
    }
    if len(mappings) > 1:
        raise ConfigError(
            f"campaign {definition.name}: the groups sending to {destination!r} override its "
            "mapping differently, but they share one delivery (one load or request stream)",
            hint=f"give the mapping once under the campaign's destinations for {destination}",
        )


@dataclass(frozen=True)
class CampaignAudience:
    """A campaign's audience at one as-of time, with sub-audiences and groups.

    Attributes:
        current: (key, sub_audience, treatment_group, newcomer, control) of everyone who
            qualifies.
        quotas: Each group's target and newcomers.
        previous: The previous successful run's audience (None: none yet).
    """

    current: ir.Table
    quotas: list[GroupQuota]
    previous: ir.Table | None


def previous_audience(engine: Engine, run_id: str | None) -> ir.Table | None:
    """The audience table of a run, when there is one (its run succeeded and it was kept)."""
    if run_id is None or audience_table(run_id) not in engine.list_dataplane_tables():
        return None
    return engine.dataplane_table(audience_table(run_id))


def evaluate_audience(
    engine: Engine,
    ctx: CompileContext,
    definition: CampaignDefinition,
    *,
    previous_run: str | None,
    run_id: str | None = None,
) -> CampaignAudience:
    """Evaluate the audience, its sub-audiences and groups.

    Args:
        engine: The engine.
        ctx: Segments and the as-of time.
        definition: The campaign.
        previous_run: The previous successful run (its audience is the baseline).
        run_id: Freeze the result for this run (``campaign_audience_<run>``) and add the new
            assignments to ``campaign_assignments``. None: read only (plans, test sends).
    """
    key = ctx.data_model.customers.key
    tables = engine.list_dataplane_tables()
    assignments = engine.dataplane_table(ASSIGNMENTS_TABLE) if ASSIGNMENTS_TABLE in tables else None
    allocated = allocate(ctx, definition)
    prepared = prepare(allocated, definition, key, assignments)
    staging = None
    if run_id is not None:
        # Evaluated once: the counts and the assignment read the frozen table.
        staging = "campaign_prepare_" + run_id.replace("-", "")
        prepared = engine.create_dataplane_table(staging, prepared, overwrite=True)
    counts = {
        (row[SUB], row[PREVIOUS]): int(row["n"])
        for row in engine.to_pyarrow(group_counts(prepared)).to_pylist()
    }
    plan = quotas(definition, counts)
    current = assign(prepared, key, plan, definition.salt or definition.name)
    if run_id is not None:
        current = engine.create_dataplane_table(audience_table(run_id), current, overwrite=True)
        _add_assignments(engine, definition, key, current, run_id)
        assert staging is not None
        engine.backend.drop_table(staging, database=engine.dataplane_schema)
    return CampaignAudience(current, plan, previous_audience(engine, previous_run))


def _add_assignments(
    engine: Engine, definition: CampaignDefinition, key: str, current: ir.Table, run_id: str
) -> None:
    """Record this run's new assignments (insert-only: repeating it adds nothing).

    Only newcomers can be new: the others' groups came from this table. The anti-join stays
    (a repeated evaluation must add nothing, and a customer whose earlier group was removed
    from the campaign keeps that row), but over the newcomers only.
    """
    current = current.filter(current[NEWCOMER])
    new = current.select(
        campaign=ibis.literal(definition.name, type="string"),
        **{SUB: current[SUB], key: current[key], GROUP: current[GROUP]},
        run_id=ibis.literal(run_id, type="string"),
    )
    if ASSIGNMENTS_TABLE not in engine.list_dataplane_tables():
        engine.create_dataplane_table(ASSIGNMENTS_TABLE, new.limit(0))
    existing = engine.dataplane_table(ASSIGNMENTS_TABLE)
    mine = existing.filter(existing.campaign == definition.name).select(
        _k=existing[key], _s=existing[SUB]
    )
    fresh = new.anti_join(mine, [new[key] == mine._k, new[SUB] == mine._s])
    engine.backend.insert(ASSIGNMENTS_TABLE, fresh, database=engine.dataplane_schema)


def _routed(sent: ir.Table, found: list[Route], controls: list[tuple[str, str]]) -> ir.Table:
    """``sent`` with its ``_delivery``: one row per delivery carrying the row's group (a
    group sent to two destinations makes two rows), control rows in partition -1, rows of
    groups sent nowhere dropped.

    Spelled as CASE expressions, one branch per destination a group has (usually one or two),
    rather than a join with a routing table: nothing has to be uploaded to the engine.
    """
    targets: dict[tuple[str, str, str], list[int]] = {}
    for route in found:
        for sub, group in route.groups:
            targets.setdefault((sub, group, route.action), []).append(route.part)
    for sub, group in controls:
        targets.setdefault((sub, group, "add"), []).append(CONTROL_PART)
    if not targets:
        return sent.mutate(**{DELIVERY: ibis.literal(0, type="int32")}).limit(0)
    branches = []
    for j in range(max(len(parts) for parts in targets.values())):
        part = ibis.cases(
            *[
                (
                    (sent[SUB] == sub) & (sent[GROUP] == group) & (sent[ACTION] == action),
                    parts[j],
                )
                for (sub, group, action), parts in targets.items()
                if len(parts) > j
            ],
            else_=ibis.null("int32"),
        ).cast("int32")
        branch = sent.mutate(**{DELIVERY: part})
        branches.append(branch.filter(branch[DELIVERY].notnull()))
    return branches[0] if len(branches) == 1 else ibis.union(*branches, distinct=False)


def rows_to_send(
    audience: CampaignAudience,
    definition: CampaignDefinition,
    found: list[Route],
    *,
    ctx: CompileContext,
    sources: MappingSources | None,
    table: Callable[[str], ir.Table],
    sample: int | None = None,
) -> ir.Table:
    """The run's rows: one per customer and delivery, with the attributes mappings read.

    Args:
        audience: The evaluated audience.
        definition: The campaign.
        found: Its deliveries (:func:`routes`).
        ctx: The compile context (data model).
        sources: What every mapping reads together; None: some delivery sends the customer
            table's columns as they are (no mapping), so all of them are joined.
        table: Customer-data table by name.
        sample: A test send: this many rows of the treatment groups (the lowest activation
            IDs), whatever was sent before, and no control rows.
    """
    model = ctx.data_model
    key = model.customers.key
    if sample is not None:
        current = audience.current
        chosen = current.filter(~current[CONTROL])
        chosen = chosen.order_by([chosen[key], chosen[SUB]]).limit(sample)
        sent = chosen.mutate(**{ACTION: ibis.literal("add", type="string")})
        controls: list[tuple[str, str]] = []
    else:
        sent = changes(audience.current, audience.previous, key, definition.mode)
        controls = [(q.sub_audience, q.group) for q in audience.quotas if q.control]
    routed = _routed(sent, found, controls)
    return with_attributes(
        routed,
        sources,
        data_model=model,
        table=table,
        reserved=RESERVED_COLUMNS,
        what=f"campaign {definition.name}",
    )


def record_recipients(
    engine: Engine,
    definition: CampaignDefinition,
    found: list[Route],
    *,
    key: str,
    run_id: str,
    as_of: dt.datetime,
    parts: list[int],
    check_existing: bool = True,
) -> None:
    """Add the customers of the snapshot's ``parts`` (-1: the control) to ``recipients``.

    Args:
        engine: The engine.
        definition: The campaign.
        found: Its deliveries (to name each part's destination).
        key: The activation ID column.
        run_id: The run.
        as_of: The run's time (``sent_at``).
        parts: The partitions to record.
        check_existing: Skip rows the run already has in the table (an earlier attempt was
            interrupted while recording them). Without it, the rows are inserted as they are:
            the snapshot holds each (customer, sub-audience, group, delivery) once.
    """
    snapshot = engine.dataplane_table(snapshot_name(run_id))
    rows = snapshot.filter(snapshot[DELIVERY].isin(parts))
    branches = [(rows[DELIVERY] == r.part, r.destination) for r in found if r.part in parts]
    destination = (
        ibis.cases(*branches, else_=ibis.null("string")) if branches else ibis.null("string")
    )
    recipients = rows.select(
        campaign=ibis.literal(definition.name, type="string"),
        run_id=ibis.literal(run_id, type="string"),
        **{
            key: rows[key],
            SUB: rows[SUB],
            GROUP: rows[GROUP],
            CONTROL: rows[CONTROL],
            "destination": destination.cast("string"),
            ACTION: rows[ACTION],
        },
        sent_at=ibis.literal(as_of.astimezone(dt.UTC), type=idt.Timestamp(timezone="UTC")),
    )
    if RECIPIENTS_TABLE not in engine.list_dataplane_tables():
        engine.create_dataplane_table(RECIPIENTS_TABLE, recipients.limit(0))
    if check_existing:
        existing = engine.dataplane_table(RECIPIENTS_TABLE)
        done = existing.filter(existing.run_id == run_id).select(
            _k=existing[key],
            _s=existing[SUB],
            _g=existing[GROUP],
            _d=existing.destination.fill_null(""),
            _a=existing[ACTION],
        )
        recipients = recipients.anti_join(
            done,
            [
                recipients[key] == done._k,
                recipients[SUB] == done._s,
                recipients[GROUP] == done._g,
                recipients.destination.fill_null("") == done._d,
                recipients[ACTION] == done._a,
            ],
        )
    engine.backend.insert(RECIPIENTS_TABLE, recipients, database=engine.dataplane_schema)
