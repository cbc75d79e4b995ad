"""Shared fixtures: one real PostgreSQL per test session, a fresh database per test that wants one.

PostgreSQL is the embedded server (one for the whole session, shared by the xdist workers)
unless DATABASE_URL names another server, whose role may create databases. Each worker
migrates a template database once through Alembic; a test's database is a copy of it.
"""
import os
import uuid
from collections.abc import Iterator

import hypothesis  # noqa: F401  imported now: its plugin imports it at session end otherwise, which

# CPython 3.11.7 can fail to compile while Temporal's sandbox threads are still winding down
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
def template_database(postgres_admin_url: str, worker_id: str) -> Iterator[str]:
    from embedded.postgres import create_database, database_url
    from store.migrate import upgrade

    # Unique per run: two test runs on one machine never drop each other's template.
    name = f"billing_template_{worker_id}_{uuid.uuid4().hex[:8]}"
    create_database(postgres_admin_url, name, drop_existing=True)
    upgrade(database_url(postgres_admin_url, name))
    yield name
    from embedded.postgres import drop_database

    drop_database(postgres_admin_url, name)


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


@pytest.fixture(scope="session")
def localstripe(worker_id: str) -> Iterator[object]:
    """A real localstripe on loopback for this test process."""
    from embedded.stripe_server import start_localstripe

    server = start_localstripe(TEST_DATA_DIR / "logs" / worker_id)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def simulation_parts(postgres_admin_url: str, template_database: str, localstripe: object) -> object:
    """The real parts a simulation runs on: each run gets its own database and test server."""
    from embedded.stripe_server import LOCALSTRIPE_KEY
    from embedded.temporal import test_server_path
    from starter.simulate import SimulationParts

    return SimulationParts(
        postgres_admin_url=postgres_admin_url, stripe_api_key=LOCALSTRIPE_KEY,
        stripe_api_base=localstripe.api_base,  # type: ignore[attr-defined]
        test_server_path=test_server_path(), template_database=template_database,
    )


@pytest.fixture(scope="session")
def dev_server(worker_id: str) -> Iterator[object]:
    """A real Temporal dev server (real time) for tests that kill and restart workers."""
    from embedded.temporal import start_dev_server

    data = TEST_DATA_DIR / worker_id / "temporal"
    if data.exists():
        import shutil

        shutil.rmtree(data)
    from embedded.processes import free_port

    server = start_dev_server(data, ui_port=free_port())
    yield server
    server.stop()

