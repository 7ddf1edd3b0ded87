"""Journey runs move every traveller exactly as docs/journeys.md says, on DuckDB.

Each test loads customers whose segments start (or stop) holding at known instants
(:mod:`tests.fixtures.journeys`), calls :func:`activator.runtime.journey.step` at chosen as-of
times and reads back the travel log, row by row, run by run: delays end at their due time to
the second (hours exact, days and months on the wall clock, across daylight-saving changes);
a run takes a traveller as far as the graph allows; exits, goals, re-entry (``never``,
``after_exit`` with ``lapse``), conditional and percent splits (with a control, stable across
runs, re-entries and arrival order, changed by the salt), *wait until*, new versions
(orphans) and repeated runs at the same time.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from activator.runtime.journey import StepCounts
from tests.fixtures.journeys import (
    FRENCH,
    Customer,
    JourneyWorld,
    Move,
    activate,
    delay,
    journey,
    open_world,
    ordered,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""The first run of most tests (a Monday, 09:00 UTC)."""

PARIS = ZoneInfo("Europe/Paris")
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[JourneyWorld]:
    """An empty DuckDB world."""
    with open_world(tmp_path) as opened:
        yield opened


def _start(who: str, node: str, parent: str | None = None, path: str | None = None,
           *, entry: int = 1, control: bool = False) -> Move:  # fmt: skip
    return (who, entry, node, parent, path, control, "start")


def _complete(who: str, node: str, path: str | None = None, *, entry: int = 1,
              control: bool = False) -> Move:  # fmt: skip
    return (who, entry, node, None, path, control, "complete")


def _exit(who: str, node: str, path: str, *, entry: int = 1, control: bool = False) -> Move:
    return (who, entry, node, None, path, control, "exit")


def _goal(who: str, node: str, goal: str, *, entry: int = 1) -> Move:
    return (who, entry, node, None, goal, False, "goal")


def _lapse(who: str, entry: int) -> Move:
    return (who, entry, None, None, None, None, "lapse")


def _field(world: JourneyWorld, run_id: str, column: str, **where: Any) -> dict[str, Any]:
    """traveller → ``column`` of the run's rows matching ``where`` (one row per traveller)."""
    rows = world.log(run_id, columns=["traveller", column], **where)
    found = {r["traveller"]: r[column] for r in rows}
    assert len(found) == len(rows)
    return found


# -- delays ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wait", "length"),
    [("3d", 3 * DAY), ("12h", 12 * HOUR)],
)
def test_a_delay_lets_go_at_its_due_time_not_a_second_before(
    world: JourneyWorld, wait: str, length: timedelta
) -> None:
    world.load([Customer("a", joined=T0 - HOUR)])
    nodes = [delay("wait", wait, next="nudge"), activate("nudge")]
    moved = ordered(
        [_complete("a", "wait"), _start("a", "nudge", parent="wait"), _exit("a", "nudge", "end")]
    )

    exact = journey("exact", nodes)
    world.step(exact, T0, "exact-1")
    assert world.moves("exact-1") == [_start("a", "wait")]
    assert _field(world, "exact-1", "due_at", stage="start") == {"a": T0 + length}
    world.step(exact, T0 + length - SECOND, "exact-2")
    assert world.moves("exact-2") == []
    assert world.positions("exact") == {"a": "wait"}
    world.step(exact, T0 + length, "exact-3")
    assert world.moves("exact-3") == moved
    assert world.positions("exact") == {}

    late = journey("late", nodes)
    world.step(late, T0, "late-1")
    world.step(late, T0 + length + SECOND, "late-2")
    assert world.moves("late-2") == moved


CALENDAR = [
    # Months: the day is clamped to the month's length.
    ("UTC", datetime(2026, 1, 31, 9, tzinfo=UTC), "1m", datetime(2026, 2, 28, 9, tzinfo=UTC)),
    ("UTC", datetime(2028, 1, 31, 9, tzinfo=UTC), "1m", datetime(2028, 2, 29, 9, tzinfo=UTC)),
    ("UTC", datetime(2026, 4, 30, 9, tzinfo=UTC), "1m", datetime(2026, 5, 30, 9, tzinfo=UTC)),
    ("UTC", datetime(2026, 3, 31, 9, tzinfo=UTC), "2m", datetime(2026, 5, 31, 9, tzinfo=UTC)),
    # Paris goes from UTC+1 to UTC+2 on 29 March 2026: 09:00 CET is 08:00 UTC, 09:00 CEST is
    # 07:00 UTC. Days, weeks and months keep the wall time; hours are elapsed time. (The
    # as-of times are Paris times, as a scheduler in Paris gives them.)
    ("Europe/Paris", datetime(2026, 3, 28, 9, tzinfo=PARIS), "1d",
     datetime(2026, 3, 29, 7, tzinfo=UTC)),
    ("Europe/Paris", datetime(2026, 3, 28, 9, tzinfo=PARIS), "24h",
     datetime(2026, 3, 29, 8, tzinfo=UTC)),
    ("Europe/Paris", datetime(2026, 3, 20, 9, tzinfo=PARIS), "2w",
     datetime(2026, 4, 3, 7, tzinfo=UTC)),
    ("Europe/Paris", datetime(2026, 3, 15, 9, tzinfo=PARIS), "1m",
     datetime(2026, 4, 15, 7, tzinfo=UTC)),
    # And back to UTC+1 on 25 October 2026.
    ("Europe/Paris", datetime(2026, 10, 24, 9, tzinfo=PARIS), "1d",
     datetime(2026, 10, 25, 8, tzinfo=UTC)),
    ("Europe/Paris", datetime(2026, 10, 24, 9, tzinfo=PARIS), "24h",
     datetime(2026, 10, 25, 7, tzinfo=UTC)),
]  # fmt: skip
"""(workspace time zone, arrival, wait, due time)."""


def test_days_and_months_are_calendar_steps_on_the_wall_clock(world: JourneyWorld) -> None:
    world.load([Customer("a", joined=datetime(2025, 1, 1, tzinfo=UTC))])
    due: dict[str, datetime] = {}
    for n, (timezone, arrival, wait, _) in enumerate(CALENDAR):
        world.step(journey(f"calendar-{n}", [delay("wait", wait)]), arrival, f"calendar-{n}",
                   timezone=timezone)  # fmt: skip
        assert world.moves(f"calendar-{n}") == [_start("a", "wait")]
        label = f"{timezone} {arrival:%Y-%m-%d %H:%M} + {wait}"
        due[label] = _field(world, f"calendar-{n}", "due_at", stage="start")["a"]
    assert due == {f"{tz} {arrival:%Y-%m-%d %H:%M} + {wait}": end
                   for tz, arrival, wait, end in CALENDAR}  # fmt: skip

    # Across the change, the day's wait ends an hour before the 24 hours' does.
    for n in (4, 5):
        timezone, _, _, end = CALENDAR[n]
        definition = journey(f"calendar-{n}", [delay("wait", CALENDAR[n][2])])
        world.step(definition, end - SECOND, f"early-{n}", timezone=timezone)
        assert world.moves(f"early-{n}") == []
        world.step(definition, end, f"due-{n}", timezone=timezone)
        assert world.moves(f"due-{n}") == [_exit("a", "wait", "end")]


# -- a run goes as far as the graph allows ---------------------------------------------------

BRANCHED = [
    activate("welcome", next="route"),
    {"id": "route", "type": "conditional_split", "otherwise": "join",
     "paths": [{"name": "vip", "segment": "vip", "next": "vip-offer"}]},
    activate("vip-offer", next="join"),
    {"id": "join", "type": "merge", "next": "wait"},
    delay("wait", "2d", next="nudge"),
    activate("nudge", next="done"),
    {"id": "done", "type": "exit"},
]  # fmt: skip


def test_a_traveller_goes_as_far_as_the_graph_allows_in_one_run(world: JourneyWorld) -> None:
    world.load([Customer("a", joined=T0 - HOUR, vip=T0 - HOUR), Customer("b", joined=T0 - HOUR)])
    definition = journey("branched", BRANCHED)

    counts = world.step(definition, T0, "run-1")
    assert world.moves("run-1") == ordered(
        [
            _start("a", "welcome"),
            _complete("a", "welcome"),
            _start("a", "route", parent="welcome"),
            _complete("a", "route", path="vip"),
            _start("a", "vip-offer", parent="route", path="vip"),
            _complete("a", "vip-offer"),
            _start("a", "join", parent="vip-offer"),
            _complete("a", "join"),
            _start("a", "wait", parent="join"),
            _start("b", "welcome"),
            _complete("b", "welcome"),
            _start("b", "route", parent="welcome"),
            _complete("b", "route", path="everyone-else"),
            _start("b", "join", parent="route", path="everyone-else"),
            _complete("b", "join"),
            _start("b", "wait", parent="join"),
        ]
    )
    assert counts.entered == 2
    assert counts.stages == {"start": 9, "complete": 7}
    assert counts.rounds == 4  # welcome, route, vip-offer (a) / join (b), join (a)
    assert counts.nodes["join"] == {"start": 2, "complete": 2}
    # Only activate nodes' start rows are sends.
    assert world.sends(definition, "run-1") == [
        ("a", "vip-offer"),
        ("a", "welcome"),
        ("b", "welcome"),
    ]
    assert _field(world, "run-1", "due_at", node="wait", stage="start") == {
        "a": T0 + 2 * DAY,
        "b": T0 + 2 * DAY,
    }
    assert world.positions("branched") == {"a": "wait", "b": "wait"}

    world.step(definition, T0 + DAY, "run-2")
    assert world.moves("run-2") == []

    world.step(definition, T0 + 2 * DAY, "run-3")
    assert world.moves("run-3") == ordered(
        [
            move
            for who in ("a", "b")
            for move in (
                _complete(who, "wait"),
                _start(who, "nudge", parent="wait"),
                _complete(who, "nudge"),
                _start(who, "done", parent="nudge"),
                _exit(who, "done", "exit-node"),
            )
        ]
    )
    assert world.sends(definition, "run-3") == [("a", "nudge"), ("b", "nudge")]
    assert _field(world, "run-3", "qualified", stage="exit") == {"a": True, "b": True}
    assert world.positions("branched") == {}


# -- exits and goals -------------------------------------------------------------------------


def test_an_exit_segment_takes_travellers_out_while_they_wait(world: JourneyWorld) -> None:
    world.load(
        [
            Customer("a", joined=T0 - HOUR, left=T0 + DAY),
            Customer("b", joined=T0 - HOUR, left=T0 + DAY, bought=T0 + DAY),  # both: the first
            Customer("c", joined=T0 - HOUR, bought=T0 + DAY),
            Customer("d", joined=T0 - HOUR),
            Customer("e", joined=T0 - HOUR, left=T0 - HOUR),  # unsubscribed: never enters
            Customer("f", joined=T0 - HOUR, blocked=T0 - HOUR),  # excluded: never enters
            Customer("g", joined=T0 - HOUR, until=T0 + HOUR, left=T0 + DAY),
            Customer("h", joined=T0 - HOUR, left=T0 + 3 * DAY),  # leaves when the wait ends
        ]
    )
    definition = journey(
        "exits",
        [delay("wait", "3d", next="nudge"), activate("nudge")],
        exit=["unsubscribed", "buyers"],
        exclude=["blocked"],
    )

    world.step(definition, T0, "run-1")
    assert world.moves("run-1") == ordered(_start(who, "wait") for who in "abcdgh")

    world.step(definition, T0 + DAY, "run-2")
    assert world.moves("run-2") == ordered(
        [
            _exit("a", "wait", "unsubscribed"),
            _exit("b", "wait", "unsubscribed"),
            _exit("c", "wait", "buyers"),
            _exit("g", "wait", "unsubscribed"),
        ]
    )
    # Whether they still met the entry rules when leaving: g stopped being new.
    assert _field(world, "run-2", "qualified", stage="exit") == {
        "a": True,
        "b": True,
        "c": True,
        "g": False,
    }
    assert world.positions("exits") == {"d": "wait", "h": "wait"}

    world.step(definition, T0 + 2 * DAY, "run-3")
    assert world.moves("run-3") == []

    # Exits are checked before anyone moves on: h leaves from the delay that just ended.
    world.step(definition, T0 + 3 * DAY, "run-4")
    assert world.moves("run-4") == ordered(
        [
            _complete("d", "wait"),
            _start("d", "nudge", parent="wait"),
            _exit("d", "nudge", "end"),
            _exit("h", "wait", "unsubscribed"),
        ]
    )
    assert world.sends(definition, "run-4") == [("d", "nudge")]
    assert {r["traveller"] for r in world.log(journey="exits")} == set("abcdgh")


def test_goals_are_recorded_once_per_entry_and_remove_nobody(world: JourneyWorld) -> None:
    world.load(
        [
            Customer("a", joined=T0 - HOUR, bought=T0 + DAY),
            Customer("b", joined=T0 - HOUR, bought=T0 - HOUR),  # a buyer on entering
            Customer("c", joined=T0 - HOUR, bought=T0 + DAY, left=T0 + DAY),  # goal and exit
            Customer("d", joined=T0 - HOUR),
        ]
    )
    definition = journey(
        "goals",
        [delay("wait", "3d", next="nudge"), activate("nudge")],
        exit=["unsubscribed"],
        goals=["buyers"],
    )

    world.step(definition, T0, "run-1")
    assert world.moves("run-1") == ordered(
        [*(_start(who, "wait") for who in "abcd"), _goal("b", "wait", "buyers")]
    )

    world.step(definition, T0 + DAY, "run-2")
    assert world.moves("run-2") == ordered(
        [
            _goal("a", "wait", "buyers"),
            _goal("c", "wait", "buyers"),
            _exit("c", "wait", "unsubscribed"),
        ]
    )
    assert world.positions("goals") == {"a": "wait", "b": "wait", "d": "wait"}

    world.step(definition, T0 + 2 * DAY, "run-3")
    assert world.moves("run-3") == []

    world.step(definition, T0 + 3 * DAY, "run-4")
    assert world.moves("run-4") == ordered(
        [
            move
            for who in "abd"
            for move in (
                _complete(who, "wait"),
                _start(who, "nudge", parent="wait"),
                _exit(who, "nudge", "end"),
            )
        ]
    )
    goals = [r for r in world.log(journey="goals") if r["stage"] == "goal"]
    assert Counter(r["traveller"] for r in goals) == {"a": 1, "b": 1, "c": 1}


# -- re-entry --------------------------------------------------------------------------------

REENTRY_CUSTOMERS = [
    Customer("a", joined=T0 - HOUR),  # qualifies all along
    Customer("b", joined=T0 - HOUR, until=T0 + 2 * DAY, again=T0 + 3 * DAY),
    Customer("c", joined=T0 - HOUR, until=T0 + DAY, again=T0 + 2 * DAY),
    Customer("d", joined=T0 - HOUR, until=T0 + 2 * DAY),  # never again
]
SHORT = [activate("hello", next="wait"), delay("wait", "1d")]


def _short_trip(who: str, entry: int = 1) -> list[Move]:
    return [
        _start(who, "hello", entry=entry),
        _complete(who, "hello", entry=entry),
        _start(who, "wait", parent="hello", entry=entry),
    ]


def test_reentry_after_exit_needs_newly_qualifying(world: JourneyWorld) -> None:
    world.load(REENTRY_CUSTOMERS)
    definition = journey("again", SHORT, reentry="after_exit")

    world.step(definition, T0, "run-1")
    assert world.moves("run-1") == ordered(m for who in "abcd" for m in _short_trip(who))

    # Everyone finishes; c no longer qualifies when leaving.
    world.step(definition, T0 + DAY, "run-2")
    assert world.moves("run-2") == ordered(_exit(who, "wait", "end") for who in "abcd")
    assert _field(world, "run-2", "qualified", stage="exit") == {
        "a": True,
        "b": True,
        "c": False,
        "d": True,
    }

    # a still qualifies: not newly qualified, stays out. b and d stop qualifying: lapse.
    # c left while not qualifying and qualifies again: enters at once.
    world.step(definition, T0 + 2 * DAY, "run-3")
    assert world.moves("run-3") == ordered(
        [_lapse("b", 1), _lapse("d", 1), *_short_trip("c", entry=2)]
    )
    assert _field(world, "run-3", "entry_at", stage="start", node="hello") == {"c": T0 + 2 * DAY}

    # b qualifies again after its lapse: entry 2. d lapsed once, not again.
    world.step(definition, T0 + 3 * DAY, "run-4")
    assert world.moves("run-4") == ordered(
        [*_short_trip("b", entry=2), _exit("c", "wait", "end", entry=2)]
    )

    world.step(definition, T0 + 4 * DAY, "run-5")
    assert world.moves("run-5") == [_exit("b", "wait", "end", entry=2)]

    # c finished entry 2 still qualifying: nothing more for anyone.
    world.step(definition, T0 + 5 * DAY, "run-6")
    assert world.moves("run-6") == []


def test_reentry_never_means_one_journey_per_customer(world: JourneyWorld) -> None:
    world.load(REENTRY_CUSTOMERS)
    definition = journey("once", SHORT, reentry="never")
    world.step(definition, T0, "run-1")
    assert world.moves("run-1") == ordered(m for who in "abcd" for m in _short_trip(who))
    world.step(definition, T0 + DAY, "run-2")
    assert world.moves("run-2") == ordered(_exit(who, "wait", "end") for who in "abcd")
    for day in (2, 3, 4):
        world.step(definition, T0 + day * DAY, f"run-{day + 1}")
        assert world.moves(f"run-{day + 1}") == []


# -- conditional split -----------------------------------------------------------------------


def _router(otherwise: str | None, french_next: str | None) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = [
        {
            "id": "route",
            "type": "conditional_split",
            "paths": [
                {"name": "vip", "segment": "vip", "next": "vip-mail"},
                {"name": "french", "rules": FRENCH, "next": french_next},
            ],
            "otherwise": otherwise,
        },
        activate("vip-mail"),
    ]
    if french_next is not None:
        nodes.append(activate(french_next))
    if otherwise is not None:
        nodes.append(activate(otherwise))
    return nodes


def test_a_conditional_split_takes_the_first_matching_path(world: JourneyWorld) -> None:
    world.load(
        [
            Customer("a", joined=T0 - HOUR, vip=T0 - HOUR, french=T0 - HOUR),  # both: vip
            Customer("b", joined=T0 - HOUR, french=T0 - HOUR),
            Customer("c", joined=T0 - HOUR),
            Customer("d", joined=T0 - HOUR, vip=T0 - HOUR),
            Customer("e", joined=T0 - HOUR, french=T0 + HOUR),  # not French yet
        ]
    )

    def through(who: str, path: str, node: str) -> list[Move]:
        return [
            _start(who, "route"),
            _complete(who, "route", path=path),
            _start(who, node, parent="route", path=path),
            _exit(who, node, "end"),
        ]

    # An empty "otherwise": everyone else leaves at the split.
    ended = journey("route-some", _router(otherwise=None, french_next="fr-mail"))
    world.step(ended, T0, "some-1")
    assert world.moves("some-1") == ordered(
        [
            *through("a", "vip", "vip-mail"),
            *through("b", "french", "fr-mail"),
            _start("c", "route"),
            _exit("c", "route", "everyone-else"),
            *through("d", "vip", "vip-mail"),
            _start("e", "route"),
            _exit("e", "route", "everyone-else"),
        ]
    )
    assert _field(world, "some-1", "qualified", stage="exit", node="route") == {
        "c": True,
        "e": True,
    }
    assert world.sends(ended, "some-1") == [
        ("a", "vip-mail"),
        ("b", "fr-mail"),
        ("d", "vip-mail"),
    ]

    # Everyone else to a node of their own; an empty path edge ends the journey there.
    rest = journey("route-all", _router(otherwise="rest", french_next=None))
    world.step(rest, T0, "all-1")
    assert world.moves("all-1") == ordered(
        [
            *through("a", "vip", "vip-mail"),
            _start("b", "route"),
            _exit("b", "route", "french"),
            *through("c", "everyone-else", "rest"),
            *through("d", "vip", "vip-mail"),
            *through("e", "everyone-else", "rest"),
        ]
    )
    assert world.sends(rest, "all-1") == [
        ("a", "vip-mail"),
        ("c", "rest"),
        ("d", "vip-mail"),
        ("e", "rest"),
    ]


# -- percent split ---------------------------------------------------------------------------

TRAVELLERS = 20_000
HALF = TRAVELLERS // 2
SHARES = {"a": 70, "b": 20, "holdout": 10}

SPLIT = [
    {"id": "ab", "type": "percent_split",
     "paths": [{"name": "a", "percent": 70, "next": "mail-a"},
               {"name": "b", "percent": 20, "next": "mail-b"},
               {"name": "holdout", "percent": 10, "control": True, "next": "join"}]},
    activate("mail-a", next="join"),
    activate("mail-b", next="join"),
    {"id": "join", "type": "merge", "next": "wait"},
    delay("wait", "1d", next="final"),
    activate("final"),
]  # fmt: skip


def _ident(i: int) -> str:
    return f"C{i:05d}"


def _reference(salt: str) -> dict[str, str]:
    """Traveller → path: ``int(md5("<salt>:ab:<id>")[:8], 16) % 10000`` against 7000, 9000."""
    paths = {}
    for i in range(TRAVELLERS):
        ident = _ident(i)
        digest = hashlib.md5(f"{salt}:ab:{ident}".encode()).hexdigest()
        bucket = int(digest[:8], 16) % 10_000
        paths[ident] = "a" if bucket < 7_000 else "b" if bucket < 9_000 else "holdout"
    return paths


def _taken(world: JourneyWorld, run_id: str, entry: int = 1) -> dict[str, str]:
    """traveller → the path they took at the split in this run."""
    return _field(world, run_id, "path", node="ab", stage="complete", entry=entry)


def _assert_shares(paths: dict[str, str]) -> None:
    counts = Counter(paths.values())
    assert sum(counts.values()) == TRAVELLERS
    for path, percent in SHARES.items():
        assert abs(100 * counts[path] / TRAVELLERS - percent) <= 1.5, (path, counts)


@pytest.mark.slow
def test_a_percent_split_is_stable_exact_in_share_and_keeps_its_control(
    world: JourneyWorld,
) -> None:
    # The first half is new at T0 and VIP a day later; the second half the other way round.
    # Everyone stops being new at T0+2d and is new again at T0+3d.
    early, late = T0 - HOUR, T0 + DAY - HOUR
    world.load(
        [
            Customer(
                _ident(i),
                joined=early if i < HALF else late,
                vip=late if i < HALF else early,
                until=T0 + 2 * DAY,
                again=T0 + 3 * DAY,
            )
            for i in range(TRAVELLERS)
        ]
    )
    expected = _reference("ab-test")
    _assert_shares(expected)
    first, second = set(list(expected)[:HALF]), set(list(expected)[HALF:])
    definition = journey("split", SPLIT, salt="ab-test", reentry="after_exit")

    world.step(definition, T0, "run-1")
    assert _taken(world, "run-1") == {t: expected[t] for t in first}
    assert world.sends(definition, "run-1") == sorted(
        (t, f"mail-{expected[t]}") for t in first if expected[t] != "holdout"
    )
    holdouts = {t for t in first if expected[t] == "holdout"}
    assert _field(world, "run-1", "control", node="wait", stage="start") == {
        t: t in holdouts for t in first
    }

    # The first half reaches "final" (the control is recorded there, not sent); the second
    # half enters.
    world.step(definition, T0 + DAY, "run-2")
    assert _taken(world, "run-2") == {t: expected[t] for t in second}
    assert _field(world, "run-2", "control", node="final", stage="start") == {
        t: t in holdouts for t in first
    }
    assert world.sends(definition, "run-2") == sorted(
        [(t, "final") for t in first if expected[t] != "holdout"]
        + [(t, f"mail-{expected[t]}") for t in second if expected[t] != "holdout"]
    )

    # Nobody is new at T0+2d: the second half finishes (not qualifying), the first lapses.
    world.step(definition, T0 + 2 * DAY, "run-3")
    stages = Counter(r["stage"] for r in world.log("run-3", columns=["stage"]))
    assert stages == {"complete": HALF, "start": HALF, "exit": HALF, "lapse": HALF}

    # Everyone is new again: entry 2 takes the same path as entry 1.
    world.step(definition, T0 + 3 * DAY, "run-4")
    assert _taken(world, "run-4", entry=2) == expected

    # A traveller is control after the split for the rest of each entry, nowhere else.
    rows = world.log(journey="split", columns=["traveller", "node", "stage", "control"])
    # Entry 1: 10 rows a traveller (8 in the control), half lapse, entry 2 up to "wait": 7 (5).
    controls = len([t for t in expected if expected[t] == "holdout"])
    assert len(rows) == 17 * TRAVELLERS - 4 * controls + HALF
    for row in rows:
        in_control = expected[row["traveller"]] == "holdout" and row["node"] != "ab"
        assert row["control"] is (None if row["stage"] == "lapse" else in_control), row

    # Another journey with the same salt, where the second half arrives first, alone: the
    # same paths.
    reordered = journey("split-reordered", SPLIT, salt="ab-test", entry=["vip"])
    world.step(reordered, T0, "reordered-1")
    assert _taken(world, "reordered-1") == {t: expected[t] for t in second}

    # Another salt: another assignment, just as balanced.
    salted = journey("split-salted", SPLIT, salt="other-salt", entry=["vip"])
    world.step(salted, T0 + DAY, "salted-1")
    other = _taken(world, "salted-1")
    assert other == _reference("other-salt")
    _assert_shares(other)
    changed = sum(other[t] != expected[t] for t in expected)
    assert 0.40 * TRAVELLERS < changed < 0.52 * TRAVELLERS  # 1 - (.7² + .2² + .1²) = 46%


# -- wait until ------------------------------------------------------------------------------


def test_wait_until_is_met_or_times_out_at_the_first_run_after(world: JourneyWorld) -> None:
    world.load(
        [
            Customer("a", joined=T0 - HOUR, bought=T0 + DAY),
            Customer("b", joined=T0 - HOUR),  # never buys
            Customer("c", joined=T0 - HOUR, bought=T0 + 3 * DAY + HOUR),  # met after timeout
            Customer("d", joined=T0 - HOUR, bought=T0 - HOUR),  # met on arrival
        ]
    )
    definition = journey(
        "await",
        [
            {"id": "await", "type": "wait_until", "segment": "buyers", "timeout": "3d",
             "met": "thanks", "timed_out": "nudge"},
            activate("thanks"),
            activate("nudge"),
        ],
    )  # fmt: skip

    def leaves(who: str, path: str, node: str) -> list[Move]:
        return [
            _complete(who, "await", path=path),
            _start(who, node, parent="await", path=path),
            _exit(who, node, "end"),
        ]

    world.step(definition, T0, "run-1")
    assert world.moves("run-1") == ordered(
        [*(_start(who, "await") for who in "abcd"), *leaves("d", "met", "thanks")]
    )
    due = _field(world, "run-1", "due_at", node="await", stage="start")
    assert due == dict.fromkeys("abcd", T0 + 3 * DAY)

    world.step(definition, T0 + DAY, "run-2")
    assert world.moves("run-2") == ordered(leaves("a", "met", "thanks"))

    world.step(definition, T0 + 3 * DAY - SECOND, "run-3")
    assert world.moves("run-3") == []

    # Both met and timed out at this run: met wins.
    world.step(definition, T0 + 3 * DAY + 6 * HOUR, "run-4")
    assert world.moves("run-4") == ordered(
        [*leaves("b", "timed-out", "nudge"), *leaves("c", "met", "thanks")]
    )
    assert world.sends(definition, "run-4") == [("b", "nudge"), ("c", "thanks")]


# -- versions --------------------------------------------------------------------------------


def test_a_new_version_keeps_travellers_at_surviving_nodes_and_orphans_the_rest(
    world: JourneyWorld,
) -> None:
    world.load(
        [
            Customer("a", joined=T0 - HOUR),
            Customer("b", joined=T0 + DAY - HOUR),
            Customer("c", joined=T0 + DAY + HOUR),
        ]
    )
    v1 = journey(
        "versions",
        [activate("hello", next="wait-a"), delay("wait-a", "1d", next="wait-b"),
         delay("wait-b", "5d", next="bye"), activate("bye")],
    )  # fmt: skip
    # wait-b removed, extra added, wait-a lengthened (for later arrivals only).
    v2 = journey(
        "versions",
        [activate("hello", next="wait-a"), delay("wait-a", "2d", next="extra"),
         activate("extra", next="bye"), activate("bye")],
    )  # fmt: skip

    def arrive(who: str) -> list[Move]:
        return [_start(who, "hello"), _complete(who, "hello"), _start(who, "wait-a", "hello")]

    world.step(v1, T0, "run-1", version=1)
    assert world.moves("run-1") == ordered(arrive("a"))
    world.step(v1, T0 + DAY, "run-2", version=1)
    assert world.moves("run-2") == ordered(
        [_complete("a", "wait-a"), _start("a", "wait-b", parent="wait-a"), *arrive("b")]
    )
    assert _field(world, "run-2", "due_at", stage="start", node="wait-a") == {"b": T0 + 2 * DAY}
    assert world.positions("versions") == {"a": "wait-b", "b": "wait-a"}

    # a's node is gone: orphan. b waits on (its due time is kept). c enters under v2.
    world.step(v2, T0 + DAY + 12 * HOUR, "run-3", version=2)
    assert world.moves("run-3") == ordered(
        [("a", 1, "wait-b", None, None, False, "orphan"), *arrive("c")]
    )
    assert _field(world, "run-3", "qualified", stage="orphan") == {"a": True}
    assert _field(world, "run-3", "due_at", stage="start", node="wait-a") == {
        "c": T0 + 3 * DAY + 12 * HOUR
    }
    assert world.positions("versions") == {"b": "wait-a", "c": "wait-a"}

    def onwards(who: str) -> list[Move]:
        return [
            _complete(who, "wait-a"),
            _start(who, "extra", parent="wait-a"),
            _complete(who, "extra"),
            _start(who, "bye", parent="extra"),
            _exit(who, "bye", "end"),
        ]

    world.step(v2, T0 + 2 * DAY, "run-4", version=2)
    assert world.moves("run-4") == ordered(onwards("b"))
    world.step(v2, T0 + 3 * DAY + 12 * HOUR, "run-5", version=2)
    assert world.moves("run-5") == ordered(onwards("c"))
    assert world.sends(v2, "run-5") == [("c", "bye"), ("c", "extra")]

    versions = Counter((r["run_id"], r["version"]) for r in world.log(journey="versions"))
    assert versions == {
        ("run-1", 1): 3,
        ("run-2", 1): 5,
        ("run-3", 2): 4,
        ("run-4", 2): 5,
        ("run-5", 2): 5,
    }


# -- repeated runs ---------------------------------------------------------------------------


def test_a_second_run_at_the_same_time_moves_nobody_again(world: JourneyWorld) -> None:
    world.load([Customer("a", joined=T0 - HOUR, vip=T0 - HOUR), Customer("b", joined=T0 - HOUR)])
    definition = journey("twice", BRANCHED)

    first = world.step(definition, T0, "run-1")
    assert first.entered == 2
    assert len(world.moves("run-1")) == 16

    again = world.step(definition, T0, "run-2")
    assert again == StepCounts()
    assert world.moves("run-2") == []
    assert world.sends(definition, "run-2") == []
    assert world.positions("twice") == {"a": "wait", "b": "wait"}

    world.step(definition, T0 + 2 * DAY, "run-3")
    world.step(definition, T0 + 2 * DAY, "run-4")
    assert world.sends(definition, "run-3") == [("a", "nudge"), ("b", "nudge")]
    assert world.moves("run-4") == []
    starts = Counter(
        (r["traveller"], r["node"]) for r in world.log(journey="twice") if r["stage"] == "start"
    )
    assert set(starts.values()) == {1}
