"""Tables in the workspace's engine: modes, types, crashes and resumes, atomic replace.

Every test runs on the DuckDB engine (a database file) and on the PostgreSQL engine (a real
server), through the runner loop; crashes are simulated by the memory ledger, then the engine
is closed and opened again, as a new process would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pydantic import TypeAdapter, ValidationError

from activator.definitions.config import DuckDBEngineConfig
from activator.definitions.destination import DestinationDefinition
from activator.definitions.table import EngineTableDestination
from activator.destinations.base import DeliveryContext, Unit
from activator.engines.base import Engine
from activator.engines.registry import open_engine
from activator.engines.spark import SparkEngine
from activator.errors import DestinationError
from activator.runtime.delivery import deliver_task
from activator.runtime.engine_table import LOADS_TABLE, STAGE_PREFIX, EngineTableConnector
from tests.fixtures.engines import empty_engine
from tests.fixtures.ledger import MemoryLedger, SimulatedCrash, table_source

AS_OF = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
DUCKDB = DuckDBEngineConfig(path="engine.duckdb")


class Place:
    """The engine a test delivers into; ``reopen`` is what a new process would see."""

    def __init__(self, kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.kind = kind
        self._open: Callable[[], Engine] = lambda: empty_engine(
            kind, request, tmp_path, duckdb=DUCKDB
        )
        self.engine = self._open()
        self.url: str | None = (
            request.getfixturevalue("postgres_url") if kind == "postgres" else None
        )

    def reopen(self) -> None:
        self.engine.close()
        self.engine = self._open()

    def run(self, statement: str) -> None:
        self.engine._execute_ddl(statement)

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        table = self.engine.backend.sql(query).to_pyarrow()
        return [tuple(row.values()) for row in table.to_pylist()]

    def contents(self, table: str = "audience") -> list[tuple[Any, ...]]:
        schema, _, name = table.rpartition(".")
        width = len(self.engine.backend.table(name, database=schema or None).schema())
        order = ", ".join(str(i) for i in range(1, min(width, 3) + 1))
        return self.rows(f"SELECT * FROM {table} ORDER BY {order}")

    def plane(self) -> list[str]:
        return self.engine.list_dataplane_tables()

    def markers(self) -> list[tuple[Any, ...]]:
        return self.rows(f"SELECT unit_id, rows FROM activator.{LOADS_TABLE} ORDER BY unit_id")

    def connector(self, *, batch_rows: int = 10, **settings: Any) -> EngineTableConnector:
        return EngineTableConnector(definition(**settings), self.engine, batch_rows=batch_rows)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place]:
    found = Place(request.param, request, tmp_path)
    try:
        yield found
    finally:
        found.engine.close()


def definition(**settings: Any) -> EngineTableDestination:
    return EngineTableDestination.model_validate(
        {"name": "warehouse", "type": "engine", "table": "audience", **settings}
    )


def context(run_id: str = "run-1", task: str = "deliver:warehouse") -> DeliveryContext:
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


def create_people(place: Place, ids: range, *, tag: str = "old", extra: str = "") -> None:
    place.run(f"CREATE TABLE audience (id BIGINT, email TEXT, tag TEXT{extra})")
    if len(ids):
        place.run(
            "INSERT INTO audience (id, email, tag) VALUES "
            + ", ".join(f"({i}, 'p{i}@example.com', '{tag}')" for i in ids)
        )


# --- definition -------------------------------------------------------------------------------


def test_the_definition_reads_as_a_destination_and_upsert_needs_keys() -> None:
    read = TypeAdapter(DestinationDefinition).validate_python(
        {"name": "w", "type": "engine", "schema": "marts", "table": "aud", "mode": "replace"}
    )
    assert isinstance(read, EngineTableDestination)
    assert (read.schema_, read.table, read.mode, read.create) == ("marts", "aud", "replace", True)
    assert definition().schema_ is None
    with pytest.raises(ValidationError, match="mode upsert needs keys"):
        definition(mode="upsert")
    with pytest.raises(ValidationError, match="name a column twice"):
        definition(mode="upsert", keys=["id", "id"])
    with pytest.raises(ValidationError, match="table"):
        definition(table='audience"; DROP TABLE x; --')
    with pytest.raises(ValidationError, match="url"):
        definition(url="postgresql://db/x")  # extra keys are refused


# --- modes ------------------------------------------------------------------------------------


def test_append_adds_the_rows_and_cleans_up(place: Place) -> None:
    create_people(place, range(100, 102))
    ledger = MemoryLedger()
    result = deliver_task(place.connector(), context(), ledger, table_source(people(range(25))))
    assert [u.rows for u in result.units] == [10, 10, 5]
    assert result.published == {
        "table": ("main" if place.kind == "duckdb" else "public") + ".audience",
        "mode": "append",
        "rows": 25,
        "affected": 25,
        "created": False,
    }
    expected = [(i, f"p{i}@example.com", "new") for i in range(25)]
    expected += [(i, f"p{i}@example.com", "old") for i in range(100, 102)]
    assert place.contents() == expected
    # The stage is gone; only the publish marker remains, in the data plane.
    assert place.plane() == [LOADS_TABLE]
    assert place.markers() == [("run-1:deliver:warehouse:-1", 25)]
    assert "audience" in place.engine.list_tables()


def test_a_missing_table_is_created_in_the_customer_schema_with_the_rows(place: Place) -> None:
    result = deliver_task(
        place.connector(), context(), MemoryLedger(), table_source(people(range(3)))
    )
    assert result.published["created"] is True
    assert place.engine.list_tables() == ["audience"]
    assert place.contents() == [(i, f"p{i}@example.com", "new") for i in range(3)]


def test_an_explicit_schema_is_used(place: Place) -> None:
    place.run("CREATE SCHEMA marts")
    deliver_task(
        place.connector(schema="marts"), context(), MemoryLedger(), table_source(people(range(2)))
    )
    assert place.contents("marts.audience") == [(i, f"p{i}@example.com", "new") for i in range(2)]
    assert place.engine.list_tables() == []


def test_a_missing_table_without_create_is_a_configuration_error(place: Place) -> None:
    with pytest.raises(DestinationError, match="does not exist") as caught:
        deliver_task(
            place.connector(create=False), context(), MemoryLedger(),
            table_source(people(range(3))),
        )  # fmt: skip
    assert caught.value.attribution == "configuration"
    assert "create: true" in str(caught.value)
    assert place.plane() == [LOADS_TABLE]  # no stage was left behind


def test_columns_missing_from_the_target_are_named(place: Place) -> None:
    place.run("CREATE TABLE audience (id BIGINT)")
    with pytest.raises(DestinationError, match=r"has no columns \['email', 'tag'\]") as caught:
        deliver_task(place.connector(), context(), MemoryLedger(), table_source(people(range(3))))
    assert caught.value.attribution == "configuration"
    assert place.contents() == []


def test_a_bad_value_for_the_targets_type_fails_the_unit_as_configuration(place: Place) -> None:
    place.run("CREATE TABLE audience (id BIGINT, email TEXT, tag DATE)")
    with pytest.raises(DestinationError, match="loading unit 0 failed") as caught:
        deliver_task(place.connector(), context(), MemoryLedger(), table_source(people(range(3))))
    assert caught.value.attribution == "configuration"
    assert place.contents() == []


def test_types_round_trip(place: Place) -> None:
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
            "counter": pa.array([2**64 - 1, 0, None, 1, 2, 3, 4, 5], pa.uint64()),
            "nothing": pa.nulls(n),
        }
    )
    deliver_task(place.connector(batch_rows=3), context(), MemoryLedger(), table_source(table))
    got = place.engine.backend.sql("SELECT * FROM audience ORDER BY id").to_pyarrow()
    assert got.column_names == table.column_names
    assert got.to_pylist() == table.to_pylist()
    types = place.engine.backend.table("audience").schema()
    assert str(types["amount"]) == "decimal(12, 2)"
    assert str(types["counter"]) == "decimal(20, 0)"  # unsigned 64-bit widened, not truncated
    assert types["seen_at"].timezone is not None
    assert types["local_at"].timezone is None
    assert str(types["born"]) == "date"
    assert str(types["small"]) == "int16"
    assert str(types["nothing"]) == "string"  # an all-null column becomes text


def test_upsert_updates_delivered_keys_keeps_other_columns_and_inserts_new_ones(
    place: Place,
) -> None:
    create_people(place, range(5), extra=", note TEXT DEFAULT 'default'")
    place.run("UPDATE audience SET note = 'kept'")
    delivered = pa.concat_tables([people(range(3, 12)), people(range(7, 8), tag="last")])
    result = deliver_task(
        place.connector(mode="upsert", keys=["id"]), context(), MemoryLedger(),
        table_source(delivered),
    )  # fmt: skip
    expected = [(i, f"p{i}@example.com", "old", "kept") for i in range(3)]
    expected += [
        (i, f"p{i}@example.com", "last" if i == 7 else "new", "kept" if i < 5 else "default")
        for i in range(3, 12)
    ]
    assert place.contents() == expected
    assert result.published["rows"] == 10
    assert result.published["affected"] == 9  # 2 updates and 7 inserts; key 7 once


def test_upsert_on_two_keys_with_the_last_row_winning_across_units(place: Place) -> None:
    # The table is created by the upsert: key (1, "y") once, with its last row.
    first = pa.table({"a": [1, 1, 2, 1], "b": ["x", "y", "x", "y"], "v": [1, 0, 3, 2]})
    created = deliver_task(
        place.connector(mode="upsert", keys=["a", "b"]), context("run-1"), MemoryLedger(),
        table_source(first),
    )  # fmt: skip
    assert created.published["affected"] == 3
    assert place.rows("SELECT a, b, v FROM audience ORDER BY a, b") == [
        (1, "x", 1), (1, "y", 2), (2, "x", 3),
    ]  # fmt: skip
    # Key (1, "x") comes three times, in three units of one row: the last one wins.
    second = pa.table({"a": [1, 2, 1, 1], "b": ["x", "y", "x", "x"], "v": [10, 20, 11, 12]})
    deliver_task(
        place.connector(mode="upsert", keys=["a", "b"], batch_rows=1), context("run-2"),
        MemoryLedger(), table_source(second),
    )  # fmt: skip
    assert place.rows("SELECT a, b, v FROM audience ORDER BY a, b") == [
        (1, "x", 12), (1, "y", 2), (2, "x", 3), (2, "y", 20),
    ]  # fmt: skip


def test_upsert_refuses_null_keys_and_missing_key_columns(place: Place) -> None:
    delivered = pa.table({"id": pa.array([1, None], pa.int64()), "tag": ["a", "b"]})
    with pytest.raises(DestinationError, match="1 delivered rows have no value in key column") as c:
        deliver_task(
            place.connector(mode="upsert", keys=["id"]), context(), MemoryLedger(),
            table_source(delivered),
        )  # fmt: skip
    assert c.value.attribution == "configuration"
    with pytest.raises(DestinationError, match=r"keys \['code'\] are not among"):
        deliver_task(
            place.connector(mode="upsert", keys=["code"]), context(), MemoryLedger(),
            table_source(delivered),
        )  # fmt: skip
    assert place.engine.list_tables() == []


def test_replace_swaps_atomically_under_a_concurrent_reader(place: Place) -> None:
    create_people(place, range(1000))
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            with reader(place) as count:
                while not stop.is_set():
                    seen.append(count())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        while not seen and thread.is_alive():
            time.sleep(0.01)
        result = deliver_task(
            place.connector(mode="replace", batch_rows=1000), context(), MemoryLedger(),
            table_source(people(range(3000))),
        )  # fmt: skip
        after_publish = len(seen)
        while len(seen) < after_publish + 5 and thread.is_alive():
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()

    assert errors == []
    assert set(seen) == {1000, 3000}  # the old table, then the new one; nothing between
    assert seen[0] == 1000
    assert 1000 not in seen[seen.index(3000) :]
    assert result.published["affected"] == 3000
    assert place.contents()[0] == (0, "p0@example.com", "new")
    assert place.plane() == [LOADS_TABLE]
    assert place.engine.list_tables() == ["audience"]  # no new/old table left beside it


@contextmanager
def reader(place: Place) -> Iterator[Callable[[], int]]:
    """``count(*)`` of the target from a second connection (its own transactions)."""
    if place.kind == "postgres":
        import psycopg

        assert place.url is not None
        with psycopg.connect(place.url, autocommit=True) as conn:

            def count_pg() -> int:
                row = conn.execute("SELECT count(*) FROM audience").fetchone()
                assert row is not None
                return int(row[0])

            yield count_pg
        return
    # A DuckDB cursor is a separate connection to the same database.
    cursor = place.engine.backend.con.cursor()
    try:
        yield lambda: int(cursor.execute("SELECT count(*) FROM audience").fetchone()[0])
    finally:
        cursor.close()


def test_replace_keeps_the_targets_columns_and_types(place: Place) -> None:
    place.run(
        "CREATE TABLE audience (id INTEGER, email VARCHAR(40), tag TEXT, score DOUBLE PRECISION)"
    )
    place.run("INSERT INTO audience VALUES (9, 'old@example.com', 'old', 1.5)")
    table = pa.table({"email": ["a@example.com"], "id": pa.array([1], pa.int64())})
    deliver_task(place.connector(mode="replace"), context(), MemoryLedger(), table_source(table))
    assert place.contents() == [(1, "a@example.com", None, None)]
    schema = place.engine.backend.table("audience").schema()
    assert list(schema.names) == ["id", "email", "tag", "score"]
    assert str(schema["id"]) == "int32"


def test_replace_that_the_engine_cannot_swap_leaves_the_table_untouched(place: Place) -> None:
    create_people(place, range(3))
    if place.kind == "postgres":
        place.run("CREATE VIEW emails AS SELECT email FROM audience")  # the DROP would break it
    else:
        place.run("CREATE INDEX audience_email ON audience (email)")  # DuckDB cannot rename it
    with pytest.raises(DestinationError, match="publishing failed") as caught:
        deliver_task(
            place.connector(mode="replace"), context(), MemoryLedger(),
            table_source(people(range(5))),
        )  # fmt: skip
    assert caught.value.attribution == "configuration"
    assert place.contents() == [(i, f"p{i}@example.com", "old") for i in range(3)]
    assert place.engine.list_tables() in (["audience"], ["audience", "emails"])


def test_replace_with_no_rows_empties_the_table(place: Place) -> None:
    create_people(place, range(3))
    result = deliver_task(
        place.connector(mode="replace"), context(), MemoryLedger(), table_source(people(range(0)))
    )
    assert result.published["rows"] == 0
    assert place.contents() == []
    assert list(place.engine.backend.table("audience").schema().names) == ["id", "email", "tag"]


def test_replace_creates_a_missing_table(place: Place) -> None:
    deliver_task(
        place.connector(mode="replace"), context(), MemoryLedger(),
        table_source(people(range(12))),
    )  # fmt: skip
    assert place.contents() == [(i, f"p{i}@example.com", "new") for i in range(12)]


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


@pytest.mark.parametrize("mode", ["append", "upsert", "replace"])
@pytest.mark.parametrize(("what", "n"), CRASH_POINTS)
def test_a_crash_anywhere_then_resume_loads_exactly_once(
    place: Place, mode: str, what: str, n: int
) -> None:
    create_people(place, range(30))
    source = table_source(people(range(20, 20 + ROWS)))
    settings: dict[str, Any] = {"mode": mode, "keys": ["id"] if mode == "upsert" else []}
    ledger = MemoryLedger(crash_at=(what, n))
    with pytest.raises(SimulatedCrash):
        deliver_task(place.connector(**settings), context(), ledger, source)
    place.reopen()  # a new process: whatever was not committed is gone
    if (what, n) != ("delivered", 5):  # until the publish commits, the target is untouched
        assert place.contents() == [(i, f"p{i}@example.com", "old") for i in range(30)]

    result = deliver_task(place.connector(**settings), context(), ledger, source)

    assert place.contents() == expected_after(mode)  # ids repeat in append
    assert [(u.first_row, u.end_row, u.rows) for u in ledger.units() if u.index >= 0] == [
        (0, 10, 10), (10, 20, 10), (20, 30, 10), (30, 35, 5),
    ]  # fmt: skip
    assert ledger.pending() == []
    assert result.published["rows"] == ROWS
    assert place.plane() == [LOADS_TABLE]
    assert place.markers() == [("run-1:deliver:warehouse:-1", ROWS)]


def test_a_crash_after_the_publish_committed_does_not_insert_twice(place: Place) -> None:
    ledger = MemoryLedger(crash_at=("delivered", 3))  # units 1 and 2, then the publish
    source = table_source(people(range(20)))
    with pytest.raises(SimulatedCrash):
        deliver_task(place.connector(), context(), ledger, source)
    place.reopen()
    assert len(place.contents()) == 20
    assert [u.index for u in ledger.pending()] == [-1]

    result = deliver_task(place.connector(), context(), ledger, source)

    assert result.published == {
        "table": ("main" if place.kind == "duckdb" else "public") + ".audience",
        "mode": "append",
        "rows": 20,
        "already_published": True,
    }
    assert place.contents() == [(i, f"p{i}@example.com", "new") for i in range(20)]
    # Publishing the same task yet again (say, a retried service call) changes nothing.
    delivery = place.connector().open(context(), ledger)
    assert delivery.publish(ledger.units())["already_published"] is True
    assert len(place.contents()) == 20


def test_a_crash_before_commit_leaves_no_rows_and_settles_by_asking_the_engine(
    place: Place,
) -> None:
    ledger = MemoryLedger(crash_at=("delivered", 2))  # unit 1 committed, the ledger missed it
    with pytest.raises(SimulatedCrash):
        deliver_task(place.connector(), context(), ledger, table_source(people(range(30))))
    place.reopen()
    assert [u.index for u in ledger.pending()] == [1]
    [stage] = [t for t in place.plane() if t.startswith(STAGE_PREFIX)]
    assert place.rows(f"SELECT count(*) FROM activator.{stage}") == [(20,)]
    assert place.engine.list_tables() == []  # nothing published, nothing created

    delivery = place.connector().open(context(), ledger)
    try:
        assert delivery.settle(ledger.pending()[0]) is True
        assert ledger.delivered_units[1].rows == 10
        assert delivery.settle(Unit(2, "run-1:deliver:warehouse:2", 20, 30)) is False
    finally:
        delivery.close()


def test_a_dropped_stage_stops_the_publish_instead_of_publishing_half(place: Place) -> None:
    ledger = MemoryLedger(crash_at=("sending", 3))
    source = table_source(people(range(30)))
    with pytest.raises(SimulatedCrash):
        deliver_task(place.connector(), context(), ledger, source)
    place.reopen()
    [stage] = [t for t in place.plane() if t.startswith(STAGE_PREFIX)]
    place.run(f"DROP TABLE activator.{stage}")
    with pytest.raises(DestinationError, match="is gone") as caught:
        deliver_task(place.connector(), context(), ledger, source)
    assert caught.value.attribution == "configuration"
    assert place.engine.list_tables() == []

    # Every unit loaded, then rows vanished from the stage: the publish refuses too.
    ledger = MemoryLedger(crash_at=("sending", 4))  # 3 units, then the publish
    with pytest.raises(SimulatedCrash):
        deliver_task(place.connector(), context("run-2"), ledger, source)
    place.reopen()
    [stage] = [t for t in place.plane() if t.startswith(STAGE_PREFIX)]
    place.run(f"DELETE FROM activator.{stage} WHERE id < 5")
    with pytest.raises(DestinationError, match="holds 25 rows, not the 30") as caught:
        deliver_task(place.connector(), context("run-2"), ledger, source)
    assert place.engine.list_tables() == []


# --- capabilities and checks ------------------------------------------------------------------


def test_an_engine_without_transactions_is_refused_naming_the_capability(tmp_path: Path) -> None:
    # The capability is a class attribute: read it from an unconnected SparkEngine, so no
    # Spark session is started.
    spark = SparkEngine.__new__(SparkEngine)
    connector = EngineTableConnector(definition(), spark)
    checks = connector.check()
    assert [(c.step, c.ok) for c in checks] == [("engine", False)]
    assert "the spark engine has no transactions: engine tables need them" in checks[0].detail
    assert "use a file or PostgreSQL destination" in checks[0].detail
    with pytest.raises(DestinationError, match="the spark engine has no transactions") as caught:
        deliver_task(connector, context(), MemoryLedger(), table_source(people(range(3))))
    assert caught.value.attribution == "configuration"
    assert caught.value.hint == "use a file or PostgreSQL destination"


def test_check_passes_and_leaves_nothing_behind(place: Place) -> None:
    create_people(place, range(1))
    checks = place.connector(mode="upsert", keys=["id"]).check()
    assert [(c.step, c.ok) for c in checks] == [
        ("engine", True),
        ("data plane", True),
        ("schema", True),
        ("table", True),
        ("probe table", True),
    ]
    assert place.plane() == []  # the probe was rolled back
    assert place.contents() == [(0, "p0@example.com", "old")]


def test_check_names_what_is_wrong(place: Place) -> None:
    checks = place.connector(schema="nowhere").check()
    assert [(c.step, c.ok) for c in checks][-1] == ("schema", False)
    assert "schema nowhere does not exist" in checks[-1].detail
    table = next(c for c in place.connector(create=False).check() if c.step == "table")
    assert not table.ok
    assert "create is false" in table.detail
    place.run("CREATE VIEW audience AS SELECT 1 AS id")
    table = next(c for c in place.connector().check() if c.step == "table")
    assert not table.ok
    assert "is not a table (view)" in table.detail
    with pytest.raises(DestinationError, match=r"is not a table \(view\)"):
        deliver_task(place.connector(), context(), MemoryLedger(), table_source(people(range(1))))


def test_a_read_only_engine_is_refused_with_the_reason(tmp_path: Path) -> None:
    open_engine(DUCKDB, workspace_root=tmp_path).close()  # the database file now exists
    with open_engine(DUCKDB, workspace_root=tmp_path, read_only=True) as engine:
        with pytest.raises(DestinationError, match="opened read-only") as caught:
            EngineTableConnector(definition(), engine).open(context(), MemoryLedger())
        assert caught.value.attribution == "configuration"
        checks = EngineTableConnector(definition(), engine).check()
        assert [(c.step, c.ok) for c in checks] == [("engine", True), ("data plane", False)]
