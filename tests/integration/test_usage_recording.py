"""R12, R13: usage is counted once per event, reports for one period are serialised, and what
the store cannot hold is refused with a sentence before anything is written (issue 7)."""
from datetime import UTC, date, datetime, timedelta
from threading import Thread

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from billing.periods import paris_date
from store.models import Client, Firm, Notification, Subscription, SubscriptionPeriod, UsageEvent
from store.usage import UsageRecorded, UsageRefused, period_total, record_usage

pytestmark = pytest.mark.postgres

SUBSCRIPTION = "sub-cli-1-einvoicing"
INT_MAX = 2**31 - 1  # a PostgreSQL integer


def seed_subscription(factory: sessionmaker[Session], *, quota: int = 100, already_used: int = 0) -> date:
    """A client paying its own e-invoicing subscription (quota `quota`) whose period covers
    today, with `already_used` documents counted; returns the period's start."""
    today = paris_date(datetime.now(UTC))
    start, end = today - timedelta(days=15), today + timedelta(days=15)
    with factory.begin() as session:
        session.add(Firm(id="cab-1", name="Cabinet Dupont"))
        session.flush()
        session.add(Client(id="cli-1", name="Boulangerie Martin", firm_id="cab-1"))
        session.flush()
        session.add(Subscription(
            id=SUBSCRIPTION, client_id="cli-1", line="einvoicing", product="einvoicing",
            plan_code="essentiel", interval="monthly", quota=quota, firm_id="cab-1",
            payer_kind="client", payer_id="cli-1", status="active", anchor=start,
            period_start=start, period_end=end, scheduled={}, started_on=start,
        ))
        session.flush()
        session.add(SubscriptionPeriod(
            subscription_id=SUBSCRIPTION, period_start=start, period_end=end, client_id="cli-1"))
        session.flush()
        if already_used:
            record_usage(session, event_id="evt-seed", client_id="cli-1", occurred_at=now(), documents=already_used)
    return start


def now() -> datetime:
    return datetime.now(UTC)


def report(factory: sessionmaker[Session], event_id: str, documents: int) -> UsageRecorded:
    with factory.begin() as session:
        return record_usage(session, event_id=event_id, client_id="cli-1", occurred_at=now(), documents=documents)


def usage_rows(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(UsageEvent)) or 0


def alerts(factory: sessionmaker[Session], kind: str) -> list[tuple[str, str]]:
    with factory() as session:
        rows = session.execute(
            select(Notification.recipient_kind, Notification.recipient_id).where(Notification.kind == kind)
        )
        return sorted((who_kind, who) for who_kind, who in rows)


def test_issue_7_item_11_two_concurrent_reports_crossing_80_percent_together_queue_the_alert(
    session_factory: sessionmaker[Session],
) -> None:
    """Issue 7 item 11 (R13): 70 of 100 used, then +5 and +6 reported at the same moment.

    Neither report alone reaches 80, their sum does: the period's row lock must make the
    second report wait for the first and see its documents, so the 80 % alert is queued.
    (Before the hardening the lock was `with_for_update(key_share=True)`, which SQLAlchemy
    renders FOR NO KEY UPDATE, not FOR KEY SHARE: it conflicts with itself, so this already
    held then; a real FOR KEY SHARE fails this test.)"""
    start = seed_subscription(session_factory, quota=100, already_used=70)
    outcome: dict[str, object] = {}

    def report_b() -> None:
        try:
            outcome["b"] = report(session_factory, "evt-b", 6)
        except BaseException as error:  # re-raised in the test's thread
            outcome["error"] = error

    with session_factory() as session_a, session_a.begin():
        recorded_a = record_usage(session_a, event_id="evt-a", client_id="cli-1", occurred_at=now(), documents=5)
        assert recorded_a.used == 75
        b = Thread(target=report_b)
        b.start()
        b.join(timeout=2)  # lets B reach the period's lock (where it must wait for A)
        # A commits here
    b.join(timeout=60)
    assert not b.is_alive()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]

    with session_factory() as session:
        assert period_total(session, SUBSCRIPTION, start) == 81
    assert alerts(session_factory, "quota_80") == [("client", "cli-1"), ("firm", "cab-1")]
    assert alerts(session_factory, "quota_100") == []


def test_issue_7_item_11_the_80_percent_alert_is_queued_once_per_recipient_whatever_follows(
    session_factory: sessionmaker[Session],
) -> None:
    """Issue 7 item 11 (R13): the same race, then more reports past 80 %: still one alert each."""
    seed_subscription(session_factory, quota=100, already_used=70)
    errors: list[BaseException] = []

    def report_b() -> None:
        try:
            report(session_factory, "evt-b", 6)
        except BaseException as error:
            errors.append(error)

    with session_factory() as session_a, session_a.begin():
        record_usage(session_a, event_id="evt-a", client_id="cli-1", occurred_at=now(), documents=5)
        b = Thread(target=report_b)
        b.start()
        b.join(timeout=2)
    b.join(timeout=60)
    assert not b.is_alive() and not errors
    report(session_factory, "evt-c", 3)  # 84: past 80 already
    report(session_factory, "evt-b", 6)  # a resent event counts once and alerts nothing
    assert alerts(session_factory, "quota_80") == [("client", "cli-1"), ("firm", "cab-1")]


REFUSED = [
    pytest.param(dict(occurred_at=datetime(2025, 9, 12, 10, 0)), "occurred_at", id="naive-occurred_at"),
    pytest.param(dict(documents=2**31), "documents", id="documents-2**31"),
    pytest.param(dict(event_id="e" * 300), "event_id", id="event_id-300-chars"),
    pytest.param(dict(event_id=""), "event_id", id="event_id-empty"),
]
REFUSED_BEFORE = [  # already refused by the old code: kept as regression tests
    pytest.param(dict(documents=0), "documents", id="documents-0"),
    pytest.param(dict(documents=-3), "documents", id="documents-negative"),
]


@pytest.mark.parametrize(("change", "field"), REFUSED + REFUSED_BEFORE)
def test_issue_7_item_15_record_usage_refuses_what_the_store_cannot_hold_and_writes_nothing(
    session_factory: sessionmaker[Session], change: dict[str, object], field: str,
) -> None:
    """Issue 7 item 15: a sentence naming the field, and no row written (the caller may go on
    and commit its transaction)."""
    seed_subscription(session_factory, already_used=1)
    event: dict[str, object] = dict(event_id="evt-bad", client_id="cli-1", occurred_at=now(), documents=1)
    event.update(change)
    before = usage_rows(session_factory)
    with session_factory() as session, session.begin(), pytest.raises(UsageRefused) as refused:
        record_usage(session, **event)  # type: ignore[arg-type]
        # the caller caught the refusal and committed: the refusal itself wrote nothing
    message = str(refused.value)
    assert field in message
    assert message[0].isalnum() and "\n" not in message
    assert usage_rows(session_factory) == before == 1
    assert alerts(session_factory, "quota_80") == alerts(session_factory, "quota_100") == []


def test_issue_7_item_15_a_period_total_past_the_integer_limit_is_refused_and_writes_nothing(
    session_factory: sessionmaker[Session],
) -> None:
    """Issue 7 item 15: the period's total stays countable (at most 2**31 - 1 documents)."""
    start = seed_subscription(session_factory, quota=100)
    report(session_factory, "evt-huge", INT_MAX - 10)

    with session_factory() as session, session.begin(), pytest.raises(UsageRefused) as refused:
        record_usage(session, event_id="evt-11", client_id="cli-1", occurred_at=now(), documents=11)
    assert "documents" in str(refused.value) and "total" in str(refused.value)
    assert usage_rows(session_factory) == 1

    assert report(session_factory, "evt-10", 10).used == INT_MAX  # exactly the limit is fine
    assert usage_rows(session_factory) == 2
    with session_factory() as session:
        assert period_total(session, SUBSCRIPTION, start) == INT_MAX


def test_closing_a_period_bills_exactly_the_documents_its_events_carry(session_factory: sessionmaker[Session]) -> None:
    """R4/R12: the close reads the running total the reports keep (one by one and in bulk, under
    the period's lock) instead of summing the events again; both must agree, and a report
    after the close is refused, so the billed count is final."""
    from temporalio.testing import ActivityEnvironment

    from activities.records import Issuer, RecordActivities
    from contracts.activities import ClosePeriod
    from settings import Settings
    from store.usage_bulk import UsageEventIn, record_usage_batch

    start = seed_subscription(session_factory, already_used=7)
    report(session_factory, "evt-1", 5)
    report(session_factory, "evt-1", 5)  # a resend counts once
    with session_factory.begin() as session:
        answers = record_usage_batch(session, [
            UsageEventIn(event_id=f"bulk-{i}", client_id="cli-1", occurred_at=now(), documents=i) for i in range(1, 5)
        ] + [UsageEventIn(event_id="evt-1", client_id="cli-1", occurred_at=now(), documents=5)])
    assert [a.status for a in answers] == ["accepted"] * 4 + ["duplicate"]
    records = RecordActivities(session_factory, Issuer(seller=Settings().seller(), plan_names={}))
    closing = ClosePeriod(subscription_id=SUBSCRIPTION, period_start=start, end=start + timedelta(days=30))
    billed = ActivityEnvironment().run(records.close_period, closing)
    with session_factory() as session:
        assert billed == period_total(session, SUBSCRIPTION, start) == 7 + 5 + (1 + 2 + 3 + 4)
    with pytest.raises(UsageRefused, match="closed"):
        report(session_factory, "evt-late", 1)
    assert ActivityEnvironment().run(records.close_period, closing) == billed  # a retry answers the same
