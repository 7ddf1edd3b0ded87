import psycopg
import pytest


@pytest.mark.postgres
def test_postgres_fixture_gives_an_empty_database(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)
