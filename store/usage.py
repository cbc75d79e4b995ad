"""Usage events (R12) and quota alerts (R13), written by one idempotent path.

An event counts once per `event_id`. It lands in the period of the client's e-invoicing (or
bundle) subscription that contains its Paris date, and is refused, with a sentence, when
there is no such period or that period's overage was already invoiced.
"""
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from billing.periods import paris_date
from billing.quota import thresholds_reached
from store.models import Subscription, SubscriptionPeriod, UsageEvent
from store.notifications import queue_notice

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
    _check(event_id, client_id, occurred_at, documents)
    previous = session.get(UsageEvent, event_id)
    if previous is not None:
        return _already_counted(session, previous, client_id)
    day = paris_date(occurred_at)
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
        raise UsageRefused(
            f"event {event_id}: client {client_id} has no e-invoicing subscription period on {day}"
        )
    period, subscription = found
    if period.closed_at is not None:
        raise UsageRefused(
            f"event {event_id}: the period {period.period_start} to {period.period_end} of client "
            f"{client_id} is closed and its overage already invoiced"
        )
    before = period.used
    if before + documents > MAX_DOCUMENTS:
        raise UsageRefused(
            f"event {event_id}: {documents} more documents would take the period's total past "
            f"{MAX_DOCUMENTS}, more than can be counted")
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
    _queue_quota_alerts(session, subscription, period.period_start, before, period.used, day)
    return UsageRecorded(event_id, True, subscription.id, period.period_start, period.used, subscription.quota)


def _check(event_id: str, client_id: str, occurred_at: datetime, documents: int) -> None:
    """Refuse, with a sentence, what the store cannot hold or the rules cannot place."""
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID_LENGTH or "\x00" in event_id:
        raise UsageRefused(f"event_id must be a text of 1 to {MAX_EVENT_ID_LENGTH} characters")
    if not isinstance(client_id, str) or "\x00" in client_id:
        raise UsageRefused(f"event {event_id}: client_id must be a text")
    if not isinstance(occurred_at, datetime) or occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
        raise UsageRefused(f"event {event_id}: occurred_at must be a date and time with its time zone "
                           "(e.g. 2025-09-12T10:00:00+02:00)")
    try:
        paris_date(occurred_at)
    except OverflowError:
        raise UsageRefused(f"event {event_id}: occurred_at {occurred_at.isoformat()} is out of range") from None
    if isinstance(documents, bool) or not isinstance(documents, int) or not 0 < documents <= MAX_DOCUMENTS:
        raise UsageRefused(f"event {event_id}: documents must be a whole number from 1 to {MAX_DOCUMENTS}, "
                           f"not {documents}")


def period_total(session: Session, subscription_id: str, period_start: date) -> int:
    return session.scalar(
        select(func.coalesce(func.sum(UsageEvent.documents), 0)).where(
            UsageEvent.subscription_id == subscription_id, UsageEvent.period_start == period_start
        )
    ) or 0


def _already_counted(session: Session, previous: UsageEvent, client_id: str) -> UsageRecorded:
    if previous.client_id != client_id:
        raise UsageRefused(f"event {previous.event_id} was already counted for another client")
    subscription = session.get_one(Subscription, previous.subscription_id)
    used = session.get_one(SubscriptionPeriod, (previous.subscription_id, previous.period_start)).used
    return UsageRecorded(previous.event_id, False, previous.subscription_id, previous.period_start, used, subscription.quota)


def _queue_quota_alerts(
    session: Session, subscription: Subscription, period_start: date, before: int, after: int, day: date
) -> None:
    """R13: payer and firm hear once per period when usage reaches 80 % and 100 % of the quota."""
    recipients = {(subscription.payer_kind, subscription.payer_id), ("firm", subscription.firm_id)}
    for pct in thresholds_reached(subscription.quota, before, after):
        for kind, who in sorted(recipients):
            queue_notice(
                session,
                dedupe_key=f"quota:{subscription.id}:{period_start}:{pct}:{kind}:{who}",
                kind=f"quota_{pct}",
                recipient_kind=kind,
                recipient_id=who,
                subject=f"Client {subscription.client_id} has used {pct} % of its document quota",
                business_date=day,
                payload={"client": subscription.client_id, "used": after, "quota": subscription.quota,
                         "period_start": period_start.isoformat()},
            )
