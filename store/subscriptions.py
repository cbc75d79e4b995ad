"""The subscriptions read model: what the workflow last said, never overwritten by an older write."""
from datetime import date
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, case, select, update
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from billing.statuses import SubscriptionStatus
from store.models import Subscription, SubscriptionPeriod

# Core, not ORM: the statement is built once and its parameters are given by column.
SUBSCRIPTIONS = cast(Table, Subscription.__table__)


def upsert_subscription(session: Session, values: dict[str, object]) -> None:
    """Insert or update the row; a write whose `version` is older than the stored one is ignored."""
    session.execute(_upsert_statement(frozenset(values)), values)


@cache
def _upsert_statement(columns: frozenset[str]) -> Insert:
    """Built once per set of columns: building it (the `excluded` proxies) and its cache key
    took about a tenth of the worker's CPU in a renewal storm (bench/renewal_storm.py, py-spy)."""
    statement = pg_insert(SUBSCRIPTIONS)
    changed: dict[str, Any] = {k: statement.excluded[k] for k in sorted(columns) if k != "id"}
    # The current period's usage is the reports' to write: kept while the period stays, 0 for
    # a new one (its period row is created after this, so no report can have reached it).
    changed["used"] = case((Subscription.period_start == statement.excluded.period_start, Subscription.used), else_=0)
    return statement.on_conflict_do_update(
        index_elements=["id"], set_=changed, where=Subscription.version <= statement.excluded.version)


def copy_period_usage(session: Session, *, subscription_id: str, period_start: date, used: int) -> None:
    """Keep the subscription row's `used` equal to its current period's (same transaction)."""
    session.execute(update(Subscription)
                    .where(Subscription.id == subscription_id, Subscription.period_start == period_start)
                    .values(used=used))


def ensure_period(session: Session, *, subscription_id: str, client_id: str, start: date, end: date) -> None:
    session.execute(
        pg_insert(SubscriptionPeriod)
        .values(subscription_id=subscription_id, client_id=client_id, period_start=start, period_end=end)
        .on_conflict_do_nothing()
    )


def live_subscriptions(session: Session, client_id: str) -> list[Subscription]:
    return list(session.scalars(
        select(Subscription).where(Subscription.client_id == client_id, Subscription.status != SubscriptionStatus.ENDED)
    ))
