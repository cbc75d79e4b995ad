"""Usage events (R12) and quota alerts (R13), written by one idempotent path.

An event counts once per `event_id`. It lands in the period of the client's e-invoicing (or
bundle) subscription that contains its Paris date, and is refused, with a sentence, when
there is no such period or that period's overage was already invoiced.
"""
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from billing.periods import paris_date
from billing.quota import thresholds_reached
from store.models import Subscription, SubscriptionPeriod, UsageEvent
from store.notifications import queue_notice
from store.subscriptions import copy_period_usage

METERED_LINE = "einvoicing"  # documents are e-invoicing usage; a bundle lives on this line too


class UsageRefused(ValueError):
    """The event cannot be counted; the message says why."""


@dataclass(frozen=True)
class UsageRecorded:
    event_id: str
    counted: bool  # False when the event_id was already counted
    subscription_id: str
    period_start: date
    used: int  # documents in the period after this event
    quota: int


MAX_EVENT_ID_LENGTH = 200  # usage_events.event_id
MAX_DOCUMENTS = 2**31 - 1  # a PostgreSQL integer: an event, and a period's total, hold at most this


def record_usage(
    session: Session, *, event_id: str, client_id: str, occurred_at: datetime, documents: int
) -> UsageRecorded:
    """Count one event, in the caller's transaction; queue quota alerts it triggers.

    The period's row is locked (FOR UPDATE) before its total is read: two reports for one
    period are counted one after the other, so each sees the other's documents and a
    threshold crossed by their sum is alerted (R13)."""
    day = check_event(event_id, client_id, occurred_at, documents)
    previous = session.get(UsageEvent, event_id)
    if previous is not None:
        return _already_counted(session, previous, client_id)
    found = session.execute(
        select(SubscriptionPeriod, Subscription)
        .join(Subscription, Subscription.id == SubscriptionPeriod.subscription_id)
        .where(
            Subscription.client_id == client_id,
            Subscription.line == METERED_LINE,
            SubscriptionPeriod.period_start <= day,
            SubscriptionPeriod.period_end > day,
        )
        .with_for_update(of=SubscriptionPeriod)
    ).first()
    if found is None:
        raise no_period(event_id, client_id, day)
    period, subscription = found
    if period.closed_at is not None:
        raise period_closed(event_id, client_id, period.period_start, period.period_end)
    before = period.used
    if before + documents > MAX_DOCUMENTS:
        raise past_the_limit(event_id, documents)
    inserted = session.execute(
        pg_insert(UsageEvent)
        .values(
            event_id=event_id, client_id=client_id, subscription_id=subscription.id,
            period_start=period.period_start, occurred_at=occurred_at, documents=documents,
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(UsageEvent.event_id)
    ).first()
    if inserted is None:  # the same event_id arrived concurrently and won
        return UsageRecorded(event_id, False, subscription.id, period.period_start, before, subscription.quota)
    period.used = before + documents
    copy_period_usage(session, subscription_id=subscription.id, period_start=period.period_start, used=period.used)
    _queue_quota_alerts(session, subscription, period.period_start, before, period.used, day)
    return UsageRecorded(event_id, True, subscription.id, period.period_start, period.used, subscription.quota)


def check_event(event_id: str, client_id: str, occurred_at: datetime, documents: int) -> date:
    """Refuse, with a sentence, what the store cannot hold or the rules cannot place; returns the
    event's Paris date (the day that places it in a period)."""
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID_LENGTH or "\x00" in event_id:
        raise UsageRefused(f"event_id must be a text of 1 to {MAX_EVENT_ID_LENGTH} characters")
    if not isinstance(client_id, str) or "\x00" in client_id:
        raise UsageRefused(f"event {event_id}: client_id must be a text")
    if not isinstance(occurred_at, datetime) or occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
        raise UsageRefused(f"event {event_id}: occurred_at must be a date and time with its time zone "
                           "(e.g. 2025-09-12T10:00:00+02:00)")
    try:
        day = paris_date(occurred_at)
    except OverflowError:
        raise UsageRefused(f"event {event_id}: occurred_at {occurred_at.isoformat()} is out of range") from None
    if isinstance(documents, bool) or not isinstance(documents, int) or not 0 < documents <= MAX_DOCUMENTS:
        raise UsageRefused(f"event {event_id}: documents must be a whole number from 1 to {MAX_DOCUMENTS}, "
                           f"not {documents}")
    return day


# The refusals both paths give (this one and store.usage_bulk), worded once.
def no_period(event_id: str, client_id: str, day: date) -> UsageRefused:
    return UsageRefused(f"event {event_id}: client {client_id} has no e-invoicing subscription period on {day}")


def period_closed(event_id: str, client_id: str, start: date, end: date) -> UsageRefused:
    return UsageRefused(f"event {event_id}: the period {start} to {end} of client {client_id} is closed "
                        "and its overage already invoiced")


def past_the_limit(event_id: str, documents: int) -> UsageRefused:
    return UsageRefused(f"event {event_id}: {documents} more documents would take the period's total past "
                        f"{MAX_DOCUMENTS}, more than can be counted")


def counted_for_another_client(event_id: str) -> UsageRefused:
    return UsageRefused(f"event {event_id} was already counted for another client")


def period_total(session: Session, subscription_id: str, period_start: date) -> int:
    return session.scalar(
        select(func.coalesce(func.sum(UsageEvent.documents), 0)).where(
            UsageEvent.subscription_id == subscription_id, UsageEvent.period_start == period_start
        )
    ) or 0


def _already_counted(session: Session, previous: UsageEvent, client_id: str) -> UsageRecorded:
    if previous.client_id != client_id:
        raise counted_for_another_client(previous.event_id)
    subscription = session.get_one(Subscription, previous.subscription_id)
    used = session.get_one(SubscriptionPeriod, (previous.subscription_id, previous.period_start)).used
    return UsageRecorded(previous.event_id, False, previous.subscription_id, previous.period_start, used, subscription.quota)


def _queue_quota_alerts(
    session: Session, subscription: Subscription, period_start: date, before: int, after: int, day: date
) -> None:
    for notice in quota_notices(subscription, period_start, before, after, day):
        queue_notice(session, **notice)


class QuotaHolder(Protocol):
    """What a quota alert names: a `Subscription`, or a row with the same fields."""

    @property
    def id(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def quota(self) -> int: ...
    @property
    def payer_kind(self) -> str: ...
    @property
    def payer_id(self) -> str: ...
    @property
    def firm_id(self) -> str: ...


def quota_notices(
    subscription: QuotaHolder, period_start: date, before: int, after: int, day: date
) -> list[dict[str, Any]]:
    """R13: payer and firm hear once per period when usage reaches 80 % and 100 % of the quota.

    The notices (`queue_notice`'s arguments) that going from `before` to `after` documents
    calls for; their dedupe keys make a threshold alert once per period and recipient."""
    reached = thresholds_reached(subscription.quota, before, after)
    if not reached:  # the common case, and a batch asks for every event: answer it cheaply
        return []
    recipients = {(subscription.payer_kind, subscription.payer_id), ("firm", subscription.firm_id)}
    return [
        dict(
            dedupe_key=f"quota:{subscription.id}:{period_start}:{pct}:{kind}:{who}",
            kind=f"quota_{pct}",
            recipient_kind=kind,
            recipient_id=who,
            subject=f"Client {subscription.client_id} has used {pct} % of its document quota",
            business_date=day,
            payload={"client": subscription.client_id, "client_id": subscription.client_id, "used": after,
                     "quota": subscription.quota, "percent": pct,
                     "period_start": period_start.isoformat()},
        )
        for pct in reached
        for kind, who in sorted(recipients)
    ]
