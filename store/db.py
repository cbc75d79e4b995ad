"""Engine and session factory; one place that turns a URL into sessions."""
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from settings import normalise_database_url


def make_engine(database_url: str, **kwargs: object) -> Engine:
    return create_engine(normalise_database_url(database_url), pool_pre_ping=True, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
