"""Shared fixtures: one real PostgreSQL per test session, a fresh database per test that wants one.

PostgreSQL is the embedded server (one for the whole session, shared by the xdist workers)
unless DATABASE_URL names another server, whose role may create databases. Each worker
migrates a template database once through Alembic; a test's database is a copy of it.
"""
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from settings import PROJECT_ROOT
from store.db import make_engine, make_session_factory

TEST_DATA_DIR = PROJECT_ROOT / ".var" / "test"


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A URL on the server where tests may create and drop databases."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    from embedded.postgres import EmbeddedPostgres

    server = EmbeddedPostgres(TEST_DATA_DIR / "postgres")
    yield server.url()
    server.stop()


@pytest.fixture(scope="session")
def template_database(postgres_admin_url: str, worker_id: str) -> str:
    from embedded.postgres import create_database, database_url
    from store.migrate import upgrade

    name = f"billing_template_{worker_id}"
    create_database(postgres_admin_url, name, drop_existing=True)
    upgrade(database_url(postgres_admin_url, name))
    return name


@pytest.fixture
def database_url(postgres_admin_url: str, template_database: str) -> Iterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    from embedded.postgres import create_database, database_url, drop_database

    name = f"billing_test_{uuid.uuid4().hex[:12]}"
    create_database(postgres_admin_url, name, template=template_database)
    yield database_url(postgres_admin_url, name)
    drop_database(postgres_admin_url, name)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=20, max_overflow=40)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    """xdist's worker name ('gw0'…), or 'main' when tests run in one process."""
    return getattr(request.config, "workerinput", {}).get("workerid", "main")
