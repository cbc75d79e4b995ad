"""The schema is Alembic's: upgrade from empty, down to nothing and back, and it matches the models."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from store.db import make_engine
from store.migrate import downgrade, upgrade
from store.models import Base

pytestmark = pytest.mark.postgres


@pytest.fixture
def empty_database_url(postgres_admin_url: str) -> str:  # type: ignore[misc]
    import uuid

    from embedded.postgres import create_database, database_url, drop_database

    name = f"billing_empty_{uuid.uuid4().hex[:12]}"
    create_database(postgres_admin_url, name)
    yield database_url(postgres_admin_url, name)
    drop_database(postgres_admin_url, name)


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_every_table(empty_database_url: str) -> None:
    assert table_names(empty_database_url) == set()
    upgrade(empty_database_url)
    assert table_names(empty_database_url) == set(Base.metadata.tables) | {"alembic_version"}


def test_migrations_match_the_models(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_downgrade_to_nothing_and_upgrade_again(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    downgrade(empty_database_url, "base")
    assert table_names(empty_database_url) == {"alembic_version"}
    upgrade(empty_database_url)
    assert "invoices" in table_names(empty_database_url)
