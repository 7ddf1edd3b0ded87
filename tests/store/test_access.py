"""What the API keeps in the store and reads from it: tokens, the audit log, and run listings
across activations (latest run of each, filtered pages of runs)."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, text

from activator.errors import StoreError
from activator.store import ROLES, AuditEntry, TokenRecord
from activator.store.models import ApiTokenRow, RunRow
from activator.store.store import MetadataStore, RunSummary
from tests.store.conftest import FixedClock

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


# -- tokens ------------------------------------------------------------------------------------


def test_create_token_stores_only_the_hash(store: MetadataStore, clock: FixedClock) -> None:
    record, plain = store.create_token(name="ci", role="editor", created_by="cli")
    assert plain.startswith("act_")
    assert len(plain) == len("act_") + 43  # token_urlsafe(32): 43 characters
    assert record == TokenRecord(
        token_id=record.token_id,
        name="ci",
        role="editor",
        created_at=clock.now,
        created_by="cli",
        last_used_at=None,
        revoked_at=None,
    )
    assert len(record.token_id) == 12
    with store.engine.connect() as connection:
        rows = connection.execute(select(ApiTokenRow.__table__)).mappings().all()
        dumped = connection.execute(text("SELECT * FROM api_tokens")).all()
    assert len(rows) == 1
    assert rows[0]["token_hash"] == hashlib.sha256(plain.encode()).hexdigest()
    # The plain token appears nowhere in the table.
    assert all(plain not in str(value) for row in dumped for value in row)


def test_empty_name_becomes_token_and_id(store: MetadataStore) -> None:
    record, _ = store.create_token(name="", role="viewer")
    assert record.name == f"token-{record.token_id}"
    assert record.created_by is None


def test_unknown_role_is_refused_naming_the_roles(store: MetadataStore) -> None:
    with pytest.raises(StoreError, match="unknown role 'owner'") as raised:
        store.create_token(name="x", role="owner")
    assert "viewer, editor, admin" in raised.value.message
    assert raised.value.bad_input
    assert store.list_tokens() == []
    assert ROLES == ("viewer", "editor", "admin")


def test_authenticate_and_last_used_once_a_minute(store: MetadataStore, clock: FixedClock) -> None:
    created, plain = store.create_token(name="web", role="viewer")
    assert store.authenticate("act_not-a-token") is None
    assert store.authenticate(plain[:-1]) is None
    assert store.authenticate("") is None

    first_use = clock.advance(minutes=5)
    found = store.authenticate(plain)
    assert found is not None
    assert (found.token_id, found.role, found.last_used_at) == (
        created.token_id,
        "viewer",
        first_use,
    )
    assert store.list_tokens()[0].last_used_at == first_use

    clock.advance(seconds=59)
    again = store.authenticate(plain)
    assert again is not None
    assert again.last_used_at == first_use  # no write within the minute
    assert store.list_tokens()[0].last_used_at == first_use

    later = clock.advance(seconds=1)
    assert store.authenticate(plain) is not None
    assert store.list_tokens()[0].last_used_at == later


def test_revoke_is_final_and_idempotent(store: MetadataStore, clock: FixedClock) -> None:
    record, plain = store.create_token(name="old", role="admin")
    clock.advance(seconds=1)
    other, other_plain = store.create_token(name="new", role="editor")
    revoked_at = clock.advance(hours=1)
    revoked = store.revoke_token(record.token_id)
    assert revoked.revoked_at == revoked_at
    assert store.authenticate(plain) is None
    assert store.authenticate(other_plain) is not None
    clock.advance(hours=1)
    assert store.revoke_token(record.token_id).revoked_at == revoked_at
    with pytest.raises(StoreError, match="no API token 'nope'"):
        store.revoke_token("nope")
    listed = store.list_tokens()
    assert [t.name for t in listed] == ["old", "new"]
    assert [t.revoked_at for t in listed] == [revoked_at, None]
    assert listed[1].token_id == other.token_id


def test_tokens_are_listed_oldest_first(store: MetadataStore, clock: FixedClock) -> None:
    names = ["c", "a", "b"]
    for name in names:
        store.create_token(name=name, role="viewer")
        clock.advance(minutes=1)
    assert [t.name for t in store.list_tokens()] == names


# -- audit log --------------------------------------------------------------------------------


def test_audit_log_newest_first_with_cursor_and_filters(
    store: MetadataStore, clock: FixedClock
) -> None:
    assert store.audit_log() == []
    store.audit(actor="cli", action="create", kind="token", name="ci")
    clock.advance(minutes=1)
    store.audit(actor="ci", action="update", kind="segment", name="vip", detail={"version": 2})
    clock.advance(minutes=1)
    store.audit(actor="ci", action="run", kind="campaign", name="promo", detail={"run": "r1"})
    clock.advance(minutes=1)
    store.audit(actor="web", action="update", kind="segment", name="vip", detail={"version": 3})

    entries = store.audit_log()
    assert [(e.actor, e.action, e.name) for e in entries] == [
        ("web", "update", "vip"),
        ("ci", "run", "promo"),
        ("ci", "update", "vip"),
        ("cli", "create", "ci"),
    ]
    assert entries[0] == AuditEntry(
        entry_id=entries[0].entry_id,
        at=clock.now,
        actor="web",
        action="update",
        kind="segment",
        name="vip",
        detail={"version": 3},
    )
    assert entries[-1].detail == {}
    ids = [e.entry_id for e in entries]
    assert ids == sorted(ids, reverse=True)

    first_page = store.audit_log(limit=2)
    second_page = store.audit_log(limit=2, before=first_page[-1].entry_id)
    assert first_page + second_page == entries
    assert store.audit_log(limit=2, before=second_page[-1].entry_id) == []

    assert [e.detail["version"] for e in store.audit_log(kind="segment", name="vip")] == [3, 2]
    assert [e.action for e in store.audit_log(actor="ci")] == ["run", "update"]
    assert [e.name for e in store.audit_log(kind="token")] == ["ci"]
    assert store.audit_log(kind="segment", actor="cli") == []


# -- run listings -----------------------------------------------------------------------------


def _random_runs(store: MetadataStore, clock: FixedClock, seed: int) -> list[RunSummary]:
    rng = random.Random(seed)
    activations = [("campaign", f"c{i}") for i in range(5)] + [
        ("journey", "j0"),
        ("orchestration", "o0"),
        ("orchestration", "o1"),
        ("group", "g0"),
        ("segment", "not-an-activation"),
    ]
    runs = []
    for _ in range(120):
        kind, name = rng.choice(activations)
        # Often several runs in the same second, so ties fall to run_id.
        if rng.random() < 0.6:
            clock.advance(seconds=rng.choice([1, 30, 3600]))
        runs.append(
            store.create_run(
                kind=kind,
                name=name,
                definition_version=1,
                trigger=rng.choice(["manual", "schedule", "retry"]),
                as_of=AS_OF,
                is_test=rng.random() < 0.2,
            )
        )
        if rng.random() < 0.5:
            store.start_run(runs[-1].run_id)
    # Only test runs for this one: it has no latest run.
    store.create_run(
        kind="campaign", name="tests-only", definition_version=1, trigger="manual",
        as_of=AS_OF, is_test=True,
    )  # fmt: skip
    return runs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_latest_runs_equals_last_run_of_each_activation(
    store: MetadataStore, clock: FixedClock, seed: int
) -> None:
    runs = _random_runs(store, clock, seed)
    kinds = ("campaign", "journey", "orchestration", "group")
    latest = store.latest_runs(kinds)
    activations = {(r.kind, r.name) for r in runs} | {("campaign", "tests-only")}
    expected = {
        key: last
        for key in activations
        if key[0] in kinds and (last := store.last_run(*key)) is not None
    }
    assert latest == expected
    assert ("campaign", "tests-only") not in latest
    assert ("segment", "not-an-activation") not in latest
    assert store.latest_runs(["journey"]) == {
        k: v for k, v in expected.items() if k[0] == "journey"
    }
    assert store.latest_runs([]) == {}


def _newest_first(runs: list[RunSummary]) -> list[RunSummary]:
    return sorted(runs, key=lambda r: (r.created_at, r.run_id), reverse=True)


def test_find_runs_filters_and_pages(store: MetadataStore, clock: FixedClock) -> None:
    start = clock.now
    _random_runs(store, clock, seed=7)
    every = store.find_runs(include_tests=True, limit=500)
    assert len(every) == 121
    assert every == _newest_first(every)
    stored = {r.run_id: r for r in every}

    def expect(**match: object) -> list[RunSummary]:
        return _newest_first(
            [
                r
                for r in stored.values()
                if all(getattr(r, key) == value for key, value in match.items())
            ]
        )

    assert store.find_runs(limit=500) == expect(is_test=False)
    assert store.find_runs(kind="campaign", limit=500) == expect(kind="campaign", is_test=False)
    assert store.find_runs(name="o1", limit=500) == expect(name="o1", is_test=False)
    assert store.find_runs(status="running", trigger="retry", limit=500) == expect(
        status="running", trigger="retry", is_test=False
    )
    tests_too = store.find_runs(kind="campaign", name="c1", include_tests=True, limit=500)
    assert tests_too == expect(kind="campaign", name="c1")

    since, until = start + timedelta(hours=5), start + timedelta(hours=20)
    window = store.find_runs(since=since, until=until, limit=500)
    assert window == [r for r in expect(is_test=False) if since <= r.created_at < until]
    assert window  # the seed spreads runs over more than a day

    # Keyset pages of 7 walk every run exactly once, in order, with ties on created_at.
    pages: list[RunSummary] = []
    after = None
    while True:
        page = store.find_runs(include_tests=True, limit=7, after=after)
        assert len(page) <= 7
        if not page:
            break
        pages += page
        after = page[-1].run_id
    assert pages == every
    assert len({r.created_at for r in every}) < len(every)  # there were ties

    filtered_pages: list[RunSummary] = []
    after = None
    while page := store.find_runs(kind="orchestration", limit=3, after=after):
        filtered_pages += page
        after = page[-1].run_id
    assert filtered_pages == expect(kind="orchestration", is_test=False)

    assert len(store.find_runs(include_tests=True, limit=0)) == 1
    with pytest.raises(StoreError, match="no run nope"):
        store.find_runs(after="nope")


def test_find_runs_returns_at_most_500(store: MetadataStore, clock: FixedClock) -> None:
    rows = [
        {
            "run_id": f"run-{i:04d}",
            "kind": "campaign",
            "name": "big",
            "definition_version": 1,
            "status": "succeeded",
            "trigger": "schedule",
            "as_of": AS_OF,
            "created_at": clock.now + timedelta(minutes=i),
            "counts": {},
            "is_test": False,
            "inputs": {},
        }
        for i in range(520)
    ]
    with store.engine.begin() as connection:
        connection.execute(insert(RunRow), rows)
    found = store.find_runs(limit=10_000)
    assert [r.run_id for r in found] == [f"run-{i:04d}" for i in range(519, 19, -1)]
