"""The PostgreSQL table connector against a real server: modes, types, crashes, privileges."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from pydantic import ValidationError

from activator.definitions.table import PostgresDestination
from activator.destinations.base import DeliveryContext, Unit
from activator.destinations.postgres import (
    LOADS_TABLE,
    STAGE_PREFIX,
    PostgresConnector,
    postgres_type,
)
from activator.destinations.secrets import SecretResolver
from activator.errors import DestinationError, MissingExtraError
from activator.runtime.delivery import deliver_task
from tests.fixtures.ledger import MemoryLedger, SimulatedCrash, table_source

AS_OF = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)


def definition(url: str, **settings: Any) -> PostgresDestination:
    return PostgresDestination.model_validate(
        {"name": "crm", "type": "postgres", "url": url, "table": "audience", **settings}
    )


def connector(
    url: str, *, batch_rows: int = 10, environ: dict[str, str] | None = None, **settings: Any
) -> PostgresConnector:
    secrets = SecretResolver(Path("."), environ={} if environ is None else environ)
    return PostgresConnector(definition(url, **settings), secrets, batch_rows=batch_rows)


def context(run_id: str = "run-1", task: str = "deliver:crm") -> DeliveryContext:
    return DeliveryContext(
        run_id=run_id,
        task=task,
        as_of=AS_OF,
        timezone="UTC",
        activation_kind="campaign",
        activation="spring",
    )


def people(ids: range, *, tag: str = "new") -> pa.Table:
    return pa.table(
        {
            "id": pa.array(list(ids), pa.int64()),
            "email": pa.array([f"p{i}@example.com" for i in ids]),
            "tag": pa.array([tag] * len(ids)),
        }
    )


def run_sql(url: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def contents(url: str, table: str = "public.audience") -> list[tuple[Any, ...]]:
    return run_sql(url, f"SELECT * FROM {table} ORDER BY 1")


def activator_tables(url: str) -> list[str]:
    rows = run_sql(
        url,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        " AND tablename LIKE '\\_activator\\_%' ORDER BY 1",
    )
    return [r[0] for r in rows]


def create_people_table(url: str, ids: range, *, key: bool = True, tag: str = "old") -> None:
    pk = " PRIMARY KEY" if key else ""
    run_sql(url, f"CREATE TABLE audience (id bigint{pk}, email text, tag text)")
    for i in ids:
        run_sql(url, "INSERT INTO audience VALUES (%s, %s, %s)", (i, f"p{i}@example.com", tag))


# --- definition -------------------------------------------------------------------------------


def test_a_url_with_a_password_is_refused_naming_the_fix() -> None:
    with pytest.raises(ValidationError) as caught:
        definition("postgresql://app:hunter2@db.internal/crm")
    [error] = caught.value.errors()
    assert error["loc"] == ("url",)
    assert "url must not contain a password" in error["msg"]
    assert "credentials.password" in error["msg"]
    assert "hunter2" not in error["msg"]  # the message itself; pydantic's str() echoes input
    with pytest.raises(ValidationError, match=r"credentials\.password"):
        definition("postgresql://app@db.internal/crm?password=hunter2")


def test_upsert_needs_keys_and_names_are_identifiers() -> None:
    with pytest.raises(ValidationError, match="mode upsert needs keys"):
        definition("postgresql://db/crm", mode="upsert")
    with pytest.raises(ValidationError, match="table"):
        definition("postgresql://db/crm", table='audience"; DROP TABLE x; --')
    with pytest.raises(ValidationError, match="unknown credentials"):
        definition("postgresql://db/crm", credentials={"token": {"env": "X"}})
    assert definition("postgresql://db/crm", schema="crm").schema_ == "crm"


def test_arrow_types_map_to_postgres_types() -> None:
    assert postgres_type(pa.int64()) == "bigint"
    assert postgres_type(pa.int16()) == "smallint"
    assert postgres_type(pa.uint64()) == "numeric(20,0)"
    assert postgres_type(pa.decimal128(12, 2)) == "numeric(12,2)"
    assert postgres_type(pa.timestamp("us", tz="UTC")) == "timestamp with time zone"
    assert postgres_type(pa.timestamp("ns")) == "timestamp without time zone"
    assert postgres_type(pa.dictionary(pa.int32(), pa.string())) == "text"
    assert postgres_type(pa.list_(pa.int64())) is None


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingExtraError, match=r"activator\[postgres\]"):
        connector("postgresql://127.0.0.1/x").connect()


# --- modes ------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_append_adds_the_rows_and_cleans_up(postgres_url: str) -> None:
    create_people_table(postgres_url, range(100, 102), key=False)
    ledger = MemoryLedger()
    result = deliver_task(
        connector(postgres_url), context(), ledger, table_source(people(range(25)))
    )
    assert [u.rows for u in result.units] == [10, 10, 5]
    assert result.published["rows"] == 25
    assert result.published["affected"] == 25
    expected = [(i, f"p{i}@example.com", "new") for i in range(25)]
    expected += [(i, f"p{i}@example.com", "old") for i in range(100, 102)]
    assert contents(postgres_url) == expected
    # The stage is gone; only the publish marker remains.
    assert activator_tables(postgres_url) == [LOADS_TABLE]
    assert run_sql(postgres_url, f"SELECT unit_id, rows FROM {LOADS_TABLE}") == [
        ("run-1:deliver:crm:-1", 25)
    ]


@pytest.mark.postgres
def test_append_creates_a_missing_table_with_mapped_types(postgres_url: str) -> None:
    deliver_task(
        connector(postgres_url, keys=["id"]), context(), MemoryLedger(),
        table_source(people(range(3))),
    )  # fmt: skip
    columns = run_sql(
        postgres_url,
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_name = 'audience' ORDER BY ordinal_position",
    )
    assert columns == [("id", "bigint"), ("email", "text"), ("tag", "text")]
    primary = run_sql(
        postgres_url,
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
        " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'audience'::regclass AND i.indisprimary",
    )
    assert primary == [("id",)]
    assert len(contents(postgres_url)) == 3


@pytest.mark.postgres
def test_a_missing_table_without_create_is_a_configuration_error(postgres_url: str) -> None:
    with pytest.raises(DestinationError, match="does not exist") as caught:
        deliver_task(
            connector(postgres_url, create=False), context(), MemoryLedger(),
            table_source(people(range(3))),
        )  # fmt: skip
    assert caught.value.attribution == "configuration"
    assert "create: true" in str(caught.value)


@pytest.mark.postgres
def test_columns_missing_from_the_target_are_named(postgres_url: str) -> None:
    run_sql(postgres_url, "CREATE TABLE audience (id bigint)")
    with pytest.raises(DestinationError, match=r"has no columns \['email', 'tag'\]") as caught:
        deliver_task(
            connector(postgres_url), context(), MemoryLedger(), table_source(people(range(3)))
        )
    assert caught.value.attribution == "configuration"
    assert contents(postgres_url) == []


@pytest.mark.postgres
def test_types_round_trip(postgres_url: str) -> None:
    paris = timezone(timedelta(hours=1))
    tricky = ["a,b", 'say "hi"', "two\nlines", "é€😀 ünï", "", None, "back\\slash", "tab\there"]
    n = len(tricky)
    table = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "small": pa.array([-(2**15), 2**15 - 1, 0, 1, 2, 3, None, 5], pa.int16()),
            "big": pa.array([2**62, -(2**62), 0, 1, 2, 3, 4, None], pa.int64()),
            "amount": pa.array(
                [Decimal("1234567890.12"), Decimal("-0.01"), None, *[Decimal("1.10")] * 5],
                pa.decimal128(12, 2),
            ),
            "ratio": pa.array([0.1, -2.5e300, None, 1.0, 2.0, 3.0, 4.0, 5.0], pa.float64()),
            "text": pa.array(tricky),
            "flag": pa.array([True, False, None, True, False, True, False, True]),
            "seen_at": pa.array(
                [datetime(2024, 3, 31, 1, 59, 59, 123456, tzinfo=paris), None]
                + [datetime(2000, 1, 1, tzinfo=UTC)] * (n - 2),
                pa.timestamp("us", tz="Europe/Paris"),
            ),
            "local_at": pa.array(
                [datetime(1999, 12, 31, 23, 59, 59, 999999), None] + [datetime(2020, 2, 29)] * 6,
                pa.timestamp("us"),
            ),
            "born": pa.array([date(1970, 1, 1), date(2024, 2, 29), None] + [date(1, 1, 1)] * 5),
            "segment": pa.array(["a", "b", None, "a", "b", "a", "b", "a"]).dictionary_encode(),
        }
    )
    deliver_task(
        connector(postgres_url, batch_rows=3), context(), MemoryLedger(), table_source(table)
    )
    with psycopg.connect(postgres_url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        cur = conn.execute("SELECT * FROM audience ORDER BY id")
        names = [c.name for c in cur.description or []]
        got = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    assert got == table.to_pylist()
    types = dict(
        run_sql(
            postgres_url,
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = 'audience'",
        )
    )
    assert types["amount"] == "numeric"
    assert types["seen_at"] == "timestamp with time zone"
    assert types["local_at"] == "timestamp without time zone"
    assert types["born"] == "date"
    assert types["flag"] == "boolean"
    assert types["small"] == "smallint"


@pytest.mark.postgres
def test_into_an_existing_table_its_column_types_apply(postgres_url: str) -> None:
    # The target's types win: integers into text, text into a date, defaults for the rest.
    run_sql(
        postgres_url,
        "CREATE TABLE audience (id text, born date, loaded boolean DEFAULT true, tag text)",
    )
    table = pa.table({"id": pa.array([1, 2], pa.int64()), "born": ["2024-01-02", None]})
    deliver_task(connector(postgres_url), context(), MemoryLedger(), table_source(table))
    assert contents(postgres_url) == [("1", date(2024, 1, 2), True, None), ("2", None, True, None)]


@pytest.mark.postgres
def test_upsert_updates_existing_keys_and_inserts_new_ones(postgres_url: str) -> None:
    create_people_table(postgres_url, range(5))
    delivered = pa.concat_tables([people(range(3, 12)), people(range(7, 8), tag="last")])
    result = deliver_task(
        connector(postgres_url, mode="upsert", keys=["id"]), context(), MemoryLedger(),
        table_source(delivered),
    )  # fmt: skip
    expected = [(i, f"p{i}@example.com", "old") for i in range(3)]
    expected += [(i, f"p{i}@example.com", "last" if i == 7 else "new") for i in range(3, 12)]
    assert contents(postgres_url) == expected
    assert result.published["rows"] == 10
    assert result.published["affected"] == 9  # 2 updates and 7 inserts; key 7 once


@pytest.mark.postgres
def test_upsert_creates_the_table_with_its_keys_then_merges(postgres_url: str) -> None:
    settings = {"mode": "upsert", "keys": ["id"]}
    deliver_task(
        connector(postgres_url, **settings), context("run-1"), MemoryLedger(),
        table_source(people(range(4), tag="first")),
    )  # fmt: skip
    deliver_task(
        connector(postgres_url, **settings), context("run-2"), MemoryLedger(),
        table_source(people(range(2, 6), tag="second")),
    )  # fmt: skip
    assert [row[2] for row in contents(postgres_url)] == ["first"] * 2 + ["second"] * 4


@pytest.mark.postgres
def test_upsert_without_a_unique_index_on_the_keys_is_refused(postgres_url: str) -> None:
    create_people_table(postgres_url, range(2), key=False)
    with pytest.raises(DestinationError, match=r"no unique index on \(id\)") as caught:
        deliver_task(
            connector(postgres_url, mode="upsert", keys=["id"]), context(), MemoryLedger(),
            table_source(people(range(3))),
        )  # fmt: skip
    assert caught.value.attribution == "configuration"
    assert "CREATE UNIQUE INDEX" in str(caught.value)
    assert len(contents(postgres_url)) == 2


@pytest.mark.postgres
def test_replace_swaps_atomically_under_a_concurrent_reader(postgres_url: str) -> None:
    role = f"reader_{uuid.uuid4().hex[:8]}"
    run_sql(postgres_url, f"CREATE ROLE {role}")
    try:
        create_people_table(postgres_url, range(0), key=True)
        run_sql(
            postgres_url,
            "INSERT INTO audience SELECT g, 'x', 'old' FROM generate_series(1, 1000) g",
        )
        run_sql(postgres_url, "CREATE INDEX audience_email ON audience (email)")
        run_sql(postgres_url, f"GRANT SELECT ON audience TO {role}")
        run_sql(postgres_url, "COMMENT ON TABLE audience IS 'the spring audience'")
        before = run_sql(
            postgres_url, "SELECT indexname FROM pg_indexes WHERE tablename = 'audience'"
        )

        seen: list[int] = []
        errors: list[BaseException] = []
        stop = threading.Event()

        def read() -> None:
            try:
                with psycopg.connect(postgres_url, autocommit=True) as conn:
                    while not stop.is_set():
                        seen.append(conn.execute("SELECT count(*) FROM audience").fetchone()[0])
            except BaseException as exc:
                errors.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            while not seen and reader.is_alive():
                time.sleep(0.01)
            result = deliver_task(
                connector(postgres_url, mode="replace", batch_rows=1000), context(),
                MemoryLedger(), table_source(people(range(3000))),
            )  # fmt: skip
            after_publish = len(seen)
            while len(seen) < after_publish + 5 and reader.is_alive():
                time.sleep(0.01)
        finally:
            stop.set()
            reader.join()

        assert errors == []
        assert set(seen) == {1000, 3000}  # the old table, then the new one; nothing between
        assert seen[0] == 1000
        assert 1000 not in seen[seen.index(3000) :]
        assert result.published["affected"] == 3000
        assert contents(postgres_url)[0] == (0, "p0@example.com", "new")
        assert (
            run_sql(postgres_url, "SELECT indexname FROM pg_indexes WHERE tablename = 'audience'")
            == before
        )
        assert run_sql(
            postgres_url, "SELECT has_table_privilege(%s, 'audience', 'SELECT')", (role,)
        ) == [(True,)]
        assert run_sql(postgres_url, "SELECT obj_description('audience'::regclass)") == [
            ("the spring audience",)
        ]
        assert activator_tables(postgres_url) == [LOADS_TABLE]
    finally:
        run_sql(postgres_url, f"DROP OWNED BY {role}")
        run_sql(postgres_url, f"DROP ROLE {role}")


@pytest.mark.postgres
def test_replace_with_no_rows_empties_the_table(postgres_url: str) -> None:
    create_people_table(postgres_url, range(3))
    result = deliver_task(
        connector(postgres_url, mode="replace"), context(), MemoryLedger(),
        table_source(people(range(0))),
    )  # fmt: skip
    assert result.published["rows"] == 0
    assert contents(postgres_url) == []


@pytest.mark.postgres
def test_replace_refuses_to_drop_a_table_a_view_depends_on(postgres_url: str) -> None:
    create_people_table(postgres_url, range(3))
    run_sql(postgres_url, "CREATE VIEW audience_emails AS SELECT email FROM audience")
    with pytest.raises(DestinationError, match="view audience_emails depends on") as caught:
        deliver_task(
            connector(postgres_url, mode="replace"), context(), MemoryLedger(),
            table_source(people(range(5))),
        )  # fmt: skip
    assert caught.value.attribution == "configuration"
    assert contents(postgres_url) == [(i, f"p{i}@example.com", "old") for i in range(3)]
    assert run_sql(postgres_url, "SELECT count(*) FROM audience_emails") == [(3,)]


@pytest.mark.postgres
def test_replace_creates_a_missing_table(postgres_url: str) -> None:
    deliver_task(
        connector(postgres_url, mode="replace", keys=["id"]), context(), MemoryLedger(),
        table_source(people(range(12))),
    )  # fmt: skip
    assert contents(postgres_url) == [(i, f"p{i}@example.com", "new") for i in range(12)]
    with pytest.raises(psycopg.errors.UniqueViolation):
        run_sql(postgres_url, "INSERT INTO audience VALUES (1, 'dup', 'dup')")


# --- crashes and resumes ----------------------------------------------------------------------

ROWS = 35  # 4 units of 10 rows, then the publish: 5 sending and 5 delivered calls
CRASH_POINTS = [(what, n) for what in ("sending", "delivered") for n in range(1, 6)]


def expected_after(mode: str) -> list[tuple[Any, ...]]:
    new = [(i, f"p{i}@example.com", "new") for i in range(20, 20 + ROWS)]
    if mode == "replace":
        return new
    old = [(i, f"p{i}@example.com", "old") for i in range(30)]
    if mode == "append":
        return sorted(old + new)
    return sorted([row for row in old if row[0] < 20] + new)


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["append", "upsert", "replace"])
@pytest.mark.parametrize(("what", "n"), CRASH_POINTS)
def test_a_crash_anywhere_then_resume_loads_exactly_once(
    postgres_url: str, mode: str, what: str, n: int
) -> None:
    create_people_table(postgres_url, range(30), key=True, tag="old")
    if mode == "append":
        run_sql(postgres_url, "ALTER TABLE audience DROP CONSTRAINT audience_pkey")
    source = table_source(people(range(20, 20 + ROWS)))
    settings = {"mode": mode, "keys": ["id"] if mode == "upsert" else []}
    ledger = MemoryLedger(crash_at=(what, n))
    with pytest.raises(SimulatedCrash):
        deliver_task(connector(postgres_url, **settings), context(), ledger, source)
    if (what, n) != ("delivered", 5):  # until the publish commits, the target is untouched
        assert contents(postgres_url) == [(i, f"p{i}@example.com", "old") for i in range(30)]

    result = deliver_task(connector(postgres_url, **settings), context(), ledger, source)

    assert sorted(contents(postgres_url)) == expected_after(mode)  # ids repeat in append
    assert [(u.first_row, u.end_row, u.rows) for u in ledger.units() if u.index >= 0] == [
        (0, 10, 10), (10, 20, 10), (20, 30, 10), (30, 35, 5),
    ]  # fmt: skip
    assert ledger.pending() == []
    assert result.published["rows"] == ROWS
    assert activator_tables(postgres_url) == [LOADS_TABLE]
    markers = run_sql(postgres_url, f"SELECT unit_id, rows FROM {LOADS_TABLE}")
    assert markers == [("run-1:deliver:crm:-1", ROWS)]


@pytest.mark.postgres
def test_a_crash_after_the_publish_committed_does_not_insert_twice(postgres_url: str) -> None:
    ledger = MemoryLedger(crash_at=("delivered", 3))  # units 1 and 2, then the publish
    source = table_source(people(range(20)))
    with pytest.raises(SimulatedCrash):
        deliver_task(connector(postgres_url), context(), ledger, source)
    assert len(contents(postgres_url)) == 20
    assert [u.index for u in ledger.pending()] == [-1]

    result = deliver_task(connector(postgres_url), context(), ledger, source)

    assert result.published == {
        "table": "public.audience",
        "mode": "append",
        "rows": 20,
        "already_published": True,
    }
    assert contents(postgres_url) == [(i, f"p{i}@example.com", "new") for i in range(20)]


@pytest.mark.postgres
def test_a_crash_before_commit_leaves_no_rows_and_settles_by_asking_the_target(
    postgres_url: str,
) -> None:
    ledger = MemoryLedger(crash_at=("delivered", 2))  # unit 1 committed, the ledger missed it
    with pytest.raises(SimulatedCrash):
        deliver_task(connector(postgres_url), context(), ledger, table_source(people(range(30))))
    assert [u.index for u in ledger.pending()] == [1]
    stage = activator_tables(postgres_url)[1]
    assert stage.startswith(STAGE_PREFIX)
    assert run_sql(postgres_url, f"SELECT count(*) FROM {stage}") == [(20,)]

    delivery = connector(postgres_url).open(context(), ledger)
    try:
        assert delivery.settle(ledger.pending()[0]) is True
        assert ledger.delivered_units[1].rows == 10
        assert delivery.settle(Unit(2, "run-1:deliver:crm:2", 20, 30)) is False
    finally:
        delivery.close()


@pytest.mark.postgres
def test_stale_stages_are_dropped_and_their_run_cannot_publish_half(postgres_url: str) -> None:
    stale_ledger = MemoryLedger(crash_at=("sending", 3))
    with pytest.raises(SimulatedCrash):
        deliver_task(
            connector(postgres_url), context("old-run"), stale_ledger,
            table_source(people(range(30))),
        )  # fmt: skip
    run_sql(postgres_url, f"UPDATE {LOADS_TABLE} SET loaded_at = now() - interval '8 days'")
    ledger = MemoryLedger()
    deliver_task(
        connector(postgres_url), context("new-run"), ledger, table_source(people(range(5)))
    )
    assert activator_tables(postgres_url) == [LOADS_TABLE]
    assert ("stale staging tables dropped", {"tables": [STAGE_PREFIX + stage_hash("old-run")]}) in (
        ledger.events
    )

    with pytest.raises(DestinationError, match="are gone") as caught:
        deliver_task(
            connector(postgres_url), context("old-run"), stale_ledger,
            table_source(people(range(30))),
        )  # fmt: skip
    assert caught.value.attribution == "configuration"
    assert len(contents(postgres_url)) == 5


def stage_hash(run_id: str, task: str = "deliver:crm") -> str:
    import hashlib

    return hashlib.sha256(f"{run_id}\0{task}".encode()).hexdigest()[:16]


# --- checks and secrets ----------------------------------------------------------------------


@pytest.mark.postgres
def test_check_passes_for_a_privileged_user(postgres_url: str) -> None:
    create_people_table(postgres_url, range(1))
    checks = connector(postgres_url, mode="upsert", keys=["id"]).check()
    assert [(c.step, c.ok) for c in checks] == [
        ("connect", True),
        ("schema", True),
        ("schema privileges", True),
        ("table", True),
        ("table privileges", True),
        ("probe table", True),
    ]
    assert run_sql(
        postgres_url, "SELECT count(*) FROM pg_tables WHERE tablename LIKE '%probe%'"
    ) == [(0,)]


@pytest.fixture
def weak_role(postgres_url: str) -> Iterator[str]:
    """A login role with no CREATE on ``public`` and only SELECT on ``audience``."""
    role = f"weak_{uuid.uuid4().hex[:8]}"
    run_sql(postgres_url, f"CREATE ROLE {role} LOGIN")
    run_sql(postgres_url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    create_people_table(postgres_url, range(1))
    run_sql(postgres_url, f"GRANT SELECT ON audience TO {role}")
    try:
        yield role
    finally:
        run_sql(postgres_url, f"DROP OWNED BY {role}")
        run_sql(postgres_url, f"DROP ROLE {role}")


@pytest.mark.postgres
def test_check_names_the_missing_privileges(postgres_url: str, weak_role: str) -> None:
    url = postgres_url.replace("://postgres@", f"://{weak_role}@", 1)
    assert weak_role in url
    checks = {c.step: c for c in connector(url, mode="upsert", keys=["id"]).check()}
    assert checks["connect"].ok
    assert not checks["schema privileges"].ok
    assert "lacks CREATE on schema public" in checks["schema privileges"].detail
    assert f"GRANT CREATE ON SCHEMA public TO {weak_role}" in checks["schema privileges"].detail
    assert not checks["table privileges"].ok
    assert "lacks INSERT, UPDATE on public.audience" in checks["table privileges"].detail
    assert not checks["probe table"].ok
    assert "permission denied" in checks["probe table"].detail

    replace = {c.step: c for c in connector(url, mode="replace").check()}
    assert "does not own public.audience" in replace["table privileges"].detail


@pytest.mark.postgres
def test_an_unknown_database_is_a_configuration_error(postgres_url: str) -> None:
    url = postgres_url.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(DestinationError, match="no_such_db") as caught:
        connector(url).connect()
    assert caught.value.attribution == "configuration"


@pytest.mark.postgres
def test_a_missing_schema_and_table_are_reported(postgres_url: str) -> None:
    checks = connector(postgres_url, schema="nowhere").check()
    assert [(c.step, c.ok) for c in checks] == [("connect", True), ("schema", False)]
    assert "schema nowhere does not exist" in checks[1].detail
    checks = connector(postgres_url, create=False).check()
    table = next(c for c in checks if c.step == "table")
    assert not table.ok
    assert "create is false" in table.detail


def test_the_password_never_appears_in_errors() -> None:
    password = "S3cr3t-pa55-" + uuid.uuid4().hex
    with socket_closed_port() as port:
        url = f"postgresql://someone@127.0.0.1:{port}/crm"
        conn = connector(
            url, environ={"CRM_PG_PASSWORD": password},
            credentials={"password": {"env": "CRM_PG_PASSWORD"}},
        )  # fmt: skip
        checks = conn.check()
        with pytest.raises(DestinationError) as caught:
            deliver_task(conn, context(), MemoryLedger(), table_source(people(range(1))))
    assert [(c.step, c.ok) for c in checks] == [("connect", False)]
    assert f"127.0.0.1:{port}/crm" in checks[0].detail
    assert "someone@" in checks[0].detail
    assert caught.value.attribution == "platform"
    for text in (checks[0].detail, str(caught.value), repr(caught.value), repr(conn)):
        assert password not in text
    assert "cannot connect to PostgreSQL" in str(caught.value)


class socket_closed_port:
    """A loopback port nothing listens on (bound, then released)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None
