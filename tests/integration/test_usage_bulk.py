"""Issue 8 item 5 (R12, R13, R15): usage in bulk answers each event as the single-event path
would, counts each event_id once, keeps another firm's clients invisible, and alerts each quota
threshold once per period, also when batches race for the same period."""
import random
from datetime import UTC, date, datetime, time, timedelta
from threading import Barrier, Thread
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from billing.periods import paris_date
from store.models import Client, Firm, Notification, Subscription, SubscriptionPeriod, UsageEvent
from store.usage import UsageRefused, record_usage
from store.usage_bulk import UsageEventIn, UsageEventResult, record_usage_batch

pytestmark = pytest.mark.postgres

INT_MAX = 2**31 - 1  # a PostgreSQL integer
TODAY = paris_date(datetime.now(UTC))
CURRENT = (TODAY - timedelta(days=15), TODAY + timedelta(days=15))
PREVIOUS = (TODAY - timedelta(days=45), TODAY - timedelta(days=15))


def subscription_id(client_id: str) -> str:
    return f"sub-{client_id}-einvoicing"


def seed(
    factory: sessionmaker[Session], client_id: str, firm_id: str, *, quota: int = 100, payer: str = "client",
    used: int = 0, previous: str | None = None,
) -> None:
    """A client of `firm_id` (created if new) with an e-invoicing subscription whose current
    period holds today and has `used` documents; `previous` adds the period before it, "open"
    or "closed" (its overage invoiced)."""
    sub = subscription_id(client_id)
    with factory.begin() as session:
        if session.get(Firm, firm_id) is None:
            session.add(Firm(id=firm_id, name=f"Cabinet {firm_id}"))
            session.flush()
        session.add(Client(id=client_id, name=f"Client {client_id}", firm_id=firm_id))
        session.flush()
        session.add(Subscription(
            id=sub, client_id=client_id, line="einvoicing", product="einvoicing", plan_code="essentiel",
            interval="monthly", quota=quota, firm_id=firm_id, payer_kind=payer,
            payer_id=client_id if payer == "client" else firm_id, status="active", anchor=PREVIOUS[0],
            period_start=CURRENT[0], period_end=CURRENT[1], scheduled={}, started_on=PREVIOUS[0],
        ))
        session.flush()
        session.add(SubscriptionPeriod(subscription_id=sub, period_start=CURRENT[0], period_end=CURRENT[1],
                                       client_id=client_id, used=used))
        if previous is not None:
            session.add(SubscriptionPeriod(
                subscription_id=sub, period_start=PREVIOUS[0], period_end=PREVIOUS[1], client_id=client_id,
                closed_at=datetime.now(UTC) if previous == "closed" else None))


def on(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


def event(event_id: str, client_id: str = "cli-1", documents: int = 1, day: date = TODAY) -> UsageEventIn:
    return UsageEventIn(event_id=event_id, client_id=client_id, occurred_at=on(day), documents=documents)


def batch(factory: sessionmaker[Session], events: list[UsageEventIn], firm_id: str | None = None
          ) -> list[UsageEventResult]:
    with factory.begin() as session:
        return record_usage_batch(session, events, firm_id=firm_id)


def statuses(results: list[UsageEventResult]) -> list[tuple[str, str]]:
    return [(result.event_id, result.status) for result in results]


def used(factory: sessionmaker[Session], client_id: str = "cli-1", start: date = CURRENT[0]) -> int:
    with factory() as session:
        return session.get_one(SubscriptionPeriod, (subscription_id(client_id), start)).used


def usage_rows(factory: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    with factory() as session:
        return [tuple(row) for row in session.execute(
            select(UsageEvent.event_id, UsageEvent.client_id, UsageEvent.subscription_id, UsageEvent.period_start,
                   UsageEvent.occurred_at, UsageEvent.documents).order_by(UsageEvent.event_id))]


def period_totals(factory: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    with factory() as session:
        return [tuple(row) for row in session.execute(
            select(SubscriptionPeriod.subscription_id, SubscriptionPeriod.period_start, SubscriptionPeriod.used)
            .order_by(SubscriptionPeriod.subscription_id, SubscriptionPeriod.period_start))]


def notices(factory: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    with factory() as session:
        return [tuple(row) for row in session.execute(
            select(Notification.dedupe_key, Notification.kind, Notification.recipient_kind, Notification.recipient_id,
                   Notification.subject, Notification.business_date, Notification.payload)
            .order_by(Notification.dedupe_key))]


def alerts(factory: sessionmaker[Session], kind: str) -> list[tuple[str, str]]:
    with factory() as session:
        rows = session.execute(
            select(Notification.recipient_kind, Notification.recipient_id).where(Notification.kind == kind))
        return sorted((who_kind, who) for who_kind, who in rows)


def single_reason(factory: sessionmaker[Session], one: UsageEventIn) -> str:
    """The sentence record_usage refuses `one` with."""
    with factory.begin() as session, pytest.raises(UsageRefused) as refused:
        record_usage(session, event_id=one.event_id, client_id=one.client_id, occurred_at=one.occurred_at,
                     documents=one.documents)
    return str(refused.value)


def test_a_mixed_batch_is_answered_event_by_event_in_input_order(session_factory: sessionmaker[Session]) -> None:
    seed(session_factory, "cli-1", "cab-1")
    seed(session_factory, "cli-2", "cab-1")
    batch(session_factory, [event("evt-old"), event("evt-theirs", "cli-2")])

    results = batch(session_factory, [
        event("evt-1", documents=3),
        event("evt-zero", documents=0),
        event("evt-old"),
        event("evt-2", "cli-nobody"),
        event("evt-1", documents=3),
        event("evt-theirs"),
        event("evt-future", day=CURRENT[1] + timedelta(days=1)),
        event("evt-3", documents=4),
    ])

    assert statuses(results) == [
        ("evt-1", "accepted"), ("evt-zero", "refused"), ("evt-old", "duplicate"), ("evt-2", "refused"),
        ("evt-1", "duplicate"), ("evt-theirs", "refused"), ("evt-future", "refused"), ("evt-3", "accepted"),
    ]
    reasons = [result.reason for result in results]
    assert reasons[0] is reasons[2] is reasons[4] is reasons[7] is None
    assert reasons[1] == "event evt-zero: documents must be a whole number from 1 to 2147483647, not 0"
    assert reasons[3] == "event evt-2: there is no client 'cli-nobody'"
    assert reasons[5] == "event evt-theirs was already counted for another client"
    assert reasons[6] == (f"event evt-future: client cli-1 has no e-invoicing subscription period on "
                          f"{CURRENT[1] + timedelta(days=1)}")
    assert used(session_factory) == 1 + 3 + 4
    assert [row[0] for row in usage_rows(session_factory)] == ["evt-1", "evt-3", "evt-old", "evt-theirs"]


def test_an_empty_batch_answers_nothing(session_factory: sessionmaker[Session]) -> None:
    assert batch(session_factory, []) == []


def test_an_event_id_counts_once_within_a_batch_and_across_batches(session_factory: sessionmaker[Session]) -> None:
    seed(session_factory, "cli-1", "cab-1")

    first = batch(session_factory, [event("evt-a", documents=2), event("evt-a", documents=5), event("evt-b")])
    second = batch(session_factory, [event("evt-b"), event("evt-c"), event("evt-a", documents=2)])

    assert statuses(first) == [("evt-a", "accepted"), ("evt-a", "duplicate"), ("evt-b", "accepted")]
    assert statuses(second) == [("evt-b", "duplicate"), ("evt-c", "accepted"), ("evt-a", "duplicate")]
    assert used(session_factory) == 2 + 1 + 1  # the first occurrence of evt-a won, with its 2 documents
    assert [(row[0], row[5]) for row in usage_rows(session_factory)] == [("evt-a", 2), ("evt-b", 1), ("evt-c", 1)]


def test_an_event_refused_first_in_a_batch_may_be_counted_by_its_later_occurrence(
    session_factory: sessionmaker[Session],
) -> None:
    """As when resent one by one: a refused event was not counted, so the next copy is judged afresh."""
    seed(session_factory, "cli-1", "cab-1", previous="closed")

    results = batch(session_factory, [event("evt-a", day=PREVIOUS[0]), event("evt-a"), event("evt-a")])

    assert statuses(results) == [("evt-a", "refused"), ("evt-a", "accepted"), ("evt-a", "duplicate")]
    assert used(session_factory) == 1


def test_another_firms_client_is_refused_exactly_like_an_unknown_one_and_nothing_is_written(
    session_factory: sessionmaker[Session],
) -> None:
    seed(session_factory, "cli-1", "cab-1")
    seed(session_factory, "cli-2", "cab-2", quota=10)
    batch(session_factory, [event("evt-counted", "cli-2")])
    before = (usage_rows(session_factory), period_totals(session_factory), notices(session_factory))

    theirs = batch(session_factory, [event("evt-1", "cli-2", documents=9), event("evt-counted", "cli-2")],
                   firm_id="cab-1")
    nobodys = batch(session_factory, [event("evt-1", "cli-9", documents=9), event("evt-counted", "cli-9")],
                    firm_id="cab-1")

    assert statuses(theirs) == statuses(nobodys) == [("evt-1", "refused"), ("evt-counted", "refused")]
    assert [result.reason for result in theirs] == [
        (result.reason or "").replace("cli-9", "cli-2") for result in nobodys]
    assert theirs[0].reason == "event evt-1: there is no client 'cli-2'"
    assert (usage_rows(session_factory), period_totals(session_factory), notices(session_factory)) == before
    # the operator reports for any client; a firm for its own
    assert statuses(batch(session_factory, [event("evt-1", "cli-2", documents=9)])) == [("evt-1", "accepted")]
    assert statuses(batch(session_factory, [event("evt-2", "cli-2")], firm_id="cab-2")) == [("evt-2", "accepted")]


def test_an_event_of_a_closed_period_is_refused_with_record_usages_sentence(
    session_factory: sessionmaker[Session],
) -> None:
    seed(session_factory, "cli-1", "cab-1", previous="closed")
    late = event("evt-late", day=PREVIOUS[0] + timedelta(days=3))

    [result] = batch(session_factory, [late])

    assert result.status == "refused"
    assert result.reason == single_reason(session_factory, late)
    assert "is closed and its overage already invoiced" in result.reason
    assert usage_rows(session_factory) == [] and used(session_factory, start=PREVIOUS[0]) == 0


def test_events_past_the_integer_limit_are_refused_and_later_smaller_ones_still_fit(
    session_factory: sessionmaker[Session],
) -> None:
    seed(session_factory, "cli-1", "cab-1", used=INT_MAX - 10)

    results = batch(session_factory, [
        event("evt-11", documents=11), event("evt-5", documents=5), event("evt-6", documents=6),
        event("evt-5b", documents=5), event("evt-1", documents=1),
    ])

    assert statuses(results) == [("evt-11", "refused"), ("evt-5", "accepted"), ("evt-6", "refused"),
                                 ("evt-5b", "accepted"), ("evt-1", "refused")]
    assert results[0].reason == ("event evt-11: 11 more documents would take the period's total past 2147483647, "
                                 "more than can be counted")
    assert used(session_factory) == INT_MAX
    assert [row[0] for row in usage_rows(session_factory)] == ["evt-5", "evt-5b"]


def test_one_batch_crossing_80_and_100_percent_alerts_each_once_and_the_next_batch_not_again(
    session_factory: sessionmaker[Session],
) -> None:
    seed(session_factory, "cli-1", "cab-1", quota=100, used=30)

    batch(session_factory, [event(f"evt-{i}", documents=10) for i in range(8)])  # 40, 50, … 110

    assert alerts(session_factory, "quota_80") == alerts(session_factory, "quota_100") == [
        ("client", "cli-1"), ("firm", "cab-1")]
    payloads = {(row[1], row[2]): (row[5], row[6]["used"]) for row in notices(session_factory)}
    assert payloads[("quota_80", "client")] == (TODAY, 80)  # the event that crossed it, as record_usage says
    assert payloads[("quota_100", "firm")] == (TODAY, 100)

    batch(session_factory, [event("evt-more", documents=50)])
    assert len(notices(session_factory)) == 4
    assert used(session_factory) == 160


def test_a_single_event_crossing_both_thresholds_alerts_both_and_a_firm_payer_hears_once(
    session_factory: sessionmaker[Session],
) -> None:
    seed(session_factory, "cli-1", "cab-1", quota=100, payer="firm")

    batch(session_factory, [event("evt-all", documents=100)])

    assert alerts(session_factory, "quota_80") == alerts(session_factory, "quota_100") == [("firm", "cab-1")]


def test_two_concurrent_batches_on_the_same_periods_end_with_the_right_totals_and_one_alert_per_threshold(
    session_factory: sessionmaker[Session],
) -> None:
    """Both batches touch two periods, in opposite input orders, and share 100 event ids: the
    ordered locks serialise them without deadlock, and each shared id counts in one of them."""
    seed(session_factory, "cli-1", "cab-1", quota=1000)
    seed(session_factory, "cli-3", "cab-1", quota=1000)
    shared = [event(f"evt-shared-{i}") for i in range(100)]
    mine = {name: [event(f"evt-{name}-{client}-{i}", client) for i in range(450) for client in ("cli-1", "cli-3")]
            for name in ("a", "b")}
    batches = {"a": shared + mine["a"], "b": list(reversed(mine["b"])) + shared}
    barrier = Barrier(2)
    results: dict[str, list[UsageEventResult]] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            with session_factory.begin() as session:
                barrier.wait(timeout=30)
                results[name] = record_usage_batch(session, batches[name])
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)

    threads = [Thread(target=run, args=(name,)) for name in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(thread.is_alive() for thread in threads)

    assert used(session_factory, "cli-1") == 100 + 450 + 450 and used(session_factory, "cli-3") == 900
    shared_answers = [
        sorted(r.status for name in results for r in results[name] if r.event_id == e.event_id) for e in shared]
    assert shared_answers == [["accepted", "duplicate"]] * 100
    for client in ("cli-1", "cli-3"):
        for kind in ("quota_80", "quota_100") if client == "cli-1" else ("quota_80",):
            assert alerts(session_factory, kind).count(("client", client)) == 1
    assert alerts(session_factory, "quota_100") == [("client", "cli-1"), ("firm", "cab-1")]
    assert len(alerts(session_factory, "quota_80")) == 4  # two clients, each to itself and the firm


def test_two_concurrent_batches_sending_the_same_ids_into_different_periods_count_each_once_without_deadlock(
    session_factory: sessionmaker[Session],
) -> None:
    """The batches lock different periods, so only the insert meets them: one waits for the other
    (ids inserted in one order by both), and the ids it finds counted are duplicates."""
    seed(session_factory, "cli-1", "cab-1", previous="open")
    ids = [f"evt-{i:03}" for i in range(300)]
    batches = {"current": [event(i) for i in ids],
               "previous": [event(i, day=PREVIOUS[0]) for i in reversed(ids)]}
    barrier = Barrier(2)
    results: dict[str, list[UsageEventResult]] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            with session_factory.begin() as session:
                barrier.wait(timeout=30)
                results[name] = record_usage_batch(session, batches[name])
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)

    threads = [Thread(target=run, args=(name,)) for name in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(thread.is_alive() for thread in threads)

    answers = {e: sorted(r.status for name in results for r in results[name] if r.event_id == e) for e in ids}
    assert set(map(tuple, answers.values())) == {("accepted", "duplicate")}
    assert used(session_factory, start=CURRENT[0]) + used(session_factory, start=PREVIOUS[0]) == 300
    assert len(usage_rows(session_factory)) == 300


def test_record_usage_after_a_batch_in_the_same_session_counts_on_the_batchs_total(
    session_factory: sessionmaker[Session],
) -> None:
    """The batch writes `used` in SQL: a period the session already holds must not keep the old total."""
    seed(session_factory, "cli-1", "cab-1")
    with session_factory.begin() as session:
        period = session.get_one(SubscriptionPeriod, (subscription_id("cli-1"), CURRENT[0]))  # the caller holds it
        record_usage(session, event_id="evt-1", client_id="cli-1", occurred_at=on(TODAY), documents=10)
        record_usage_batch(session, [event("evt-2", documents=5)])
        assert period.used == 15
        assert record_usage(session, event_id="evt-3", client_id="cli-1", occurred_at=on(TODAY),
                            documents=1).used == 16
    assert used(session_factory) == 16


def test_the_same_events_one_by_one_and_in_batches_give_the_same_answers_rows_totals_and_notifications(
    session_factory: sessionmaker[Session],
) -> None:
    seed(session_factory, "cli-1", "cab-1", quota=40, previous="closed")
    seed(session_factory, "cli-2", "cab-1", quota=60, payer="firm", previous="open")
    seed(session_factory, "cli-3", "cab-2", quota=5, used=INT_MAX - 40)
    days = [PREVIOUS[0], PREVIOUS[0] + timedelta(days=20), TODAY - timedelta(days=3), TODAY,
            CURRENT[1] - timedelta(days=1), CURRENT[1] + timedelta(days=2)]
    pick = random.Random(8)
    events = [
        UsageEventIn(event_id=f"evt-{pick.randrange(220)}", client_id=pick.choice(["cli-1", "cli-2", "cli-3"]),
                     occurred_at=on(pick.choice(days)) + timedelta(hours=pick.choice([0, 11, -12])),
                     documents=pick.choice([0, 1, 2, 3, 5, 8, 13]))
        for _ in range(400)
    ]
    initial = period_totals(session_factory)

    one_by_one: list[tuple[str, str | None]] = []
    for one in events:
        with session_factory() as session, session.begin():
            try:
                recorded = record_usage(session, event_id=one.event_id, client_id=one.client_id,
                                        occurred_at=one.occurred_at, documents=one.documents)
            except UsageRefused as refusal:
                one_by_one.append(("refused", str(refusal)))
            else:
                one_by_one.append(("accepted" if recorded.counted else "duplicate", None))
    single = (usage_rows(session_factory), period_totals(session_factory), notices(session_factory))

    with session_factory.begin() as session:  # back to the start
        session.execute(delete(UsageEvent))
        session.execute(delete(Notification))
        for sub, start, total in initial:
            session.execute(update(SubscriptionPeriod).where(
                SubscriptionPeriod.subscription_id == sub, SubscriptionPeriod.period_start == start).values(used=total))
    in_batches = batch(session_factory, events[:150]) + batch(session_factory, events[150:])
    bulk = (usage_rows(session_factory), period_totals(session_factory), notices(session_factory))

    assert [(result.status, result.reason) for result in in_batches] == one_by_one
    assert bulk == single
    outcomes = {status for status, _ in one_by_one}
    reasons = " ".join(reason or "" for _, reason in one_by_one)
    assert outcomes == {"accepted", "duplicate", "refused"}  # the mix exercises every case:
    for case in ("another client", "closed", "no e-invoicing subscription period", "past 2147483647",
                 "documents must be"):
        assert case in reasons
    assert {row[1] for row in single[2]} == {"quota_80", "quota_100"}


def test_both_paths_keep_the_subscription_rows_copy_of_this_periods_usage(session_factory: sessionmaker[Session]) -> None:
    """The firm overview reads `subscriptions.used`: each report, single or in bulk, keeps it
    equal to the current period's total in the same transaction."""
    seed(session_factory, "cli-1", "cab-1")
    with session_factory.begin() as session:
        record_usage(session, event_id="one", client_id="cli-1", occurred_at=on(TODAY), documents=7)
    batch(session_factory, [event(f"b{i}", documents=5) for i in range(3)])
    with session_factory() as session:
        row = session.get_one(Subscription, subscription_id("cli-1"))
        assert row.used == used(session_factory) == 22
