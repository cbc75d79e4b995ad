"""The subscriptions read model: what the workflow last said, never overwritten by an older write."""
from datetime import date
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from billing.statuses import SubscriptionStatus
from store.models import Subscription, SubscriptionPeriod


def upsert_subscription(session: Session, values: dict[str, object]) -> None:
    """Insert or update the row; a write whose `version` is older than the stored one is ignored."""
    statement = pg_insert(Subscription).values(**values)
    changed: dict[str, Any] = {k: statement.excluded[k] for k in values if k != "id"}
    # The current period's usage is the reports' to write: kept while the period stays, 0 for
    # a new one (its period row is created after this, so no report can have reached it).
    changed["used"] = case((Subscription.period_start == statement.excluded.period_start, Subscription.used), else_=0)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["id"], set_=changed, where=Subscription.version <= statement.excluded.version
        )
    )


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
