"""Usage in bulk (R12, R13; issue 8 item 5): the set-based twin of `store.usage.record_usage`.

A batch is answered event by event exactly as `record_usage` would answer the same events
reported one by one in input order, but in a constant number of round trips whatever its
size: the events are COPied into a temporary stage, the periods they land in are locked in
one ordered `SELECT … FOR UPDATE`, the events already counted are found in one query, the
counting itself runs in Python over those rows, and the accepted events, the periods' totals
and the quota alerts are written with one statement each, in the caller's transaction.
"""
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, NamedTuple, cast

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from store.models import SubscriptionPeriod
from store.usage import (
    MAX_DOCUMENTS,
    METERED_LINE,
    UsageRefused,
    check_event,
    counted_for_another_client,
    no_period,
    past_the_limit,
    period_closed,
    quota_notices,
)


@dataclass(frozen=True)
class UsageEventIn:
    event_id: str
    client_id: str
    occurred_at: datetime
    documents: int


@dataclass(frozen=True)
class UsageEventResult:
    event_id: str
    status: Literal["accepted", "duplicate", "refused"]
    reason: str | None = None  # a person's sentence, when refused


class _Subscription(NamedTuple):
    """The subscription fields a quota alert names (a `store.usage.QuotaHolder`)."""

    id: str
    client_id: str
    quota: int
    payer_kind: str
    payer_id: str
    firm_id: str


class _Period(NamedTuple):
    """A period row, locked, with its subscription."""

    subscription: _Subscription
    start: date
    end: date
    used: int
    closed: bool

    @property
    def key(self) -> tuple[str, date]:
        return self.subscription.id, self.start


class _Staged(NamedTuple):
    position: int  # in the caller's batch
    event: UsageEventIn
    day: date  # Paris date of occurred_at, as check_event gives it


# ON COMMIT DROP: the stage never outlives the transaction (nor a pooled connection's next user);
# IF NOT EXISTS + TRUNCATE: a second batch in the same transaction reuses it.
_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS usage_stage (
    position integer PRIMARY KEY, event_id text NOT NULL, client_id text NOT NULL,
    occurred_at timestamptz NOT NULL, documents integer NOT NULL, day date NOT NULL
) ON COMMIT DROP;
TRUNCATE usage_stage
"""
_COPY = "COPY usage_stage (position, event_id, client_id, occurred_at, documents, day) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = ["int4", "text", "text", "timestamptz", "int4", "date"]

# A client the caller may report for: any for the operator (firm NULL), its own for a firm (R15).
_VISIBLE = "(c.id IS NOT NULL AND (%(firm)s::text IS NULL OR c.firm_id = %(firm)s::text))"

# The periods the stage's events may land in: for each client, those overlapping its events'
# days (one join, driven by the stage, whatever the size of the tables). Locked in (subscription,
# start) order, so that concurrent batches take their locks in the same order and never
# deadlock; each report for a period reads and writes `used` under this lock (as record_usage).
_LOCK_PERIODS = f"""
SELECT p.subscription_id, p.period_start, p.period_end, p.used, p.closed_at IS NOT NULL,
       s.client_id, s.quota, s.payer_kind, s.payer_id, s.firm_id
FROM (SELECT client_id, min(day) AS first_day, max(day) AS last_day FROM usage_stage GROUP BY client_id) st
JOIN clients c ON c.id = st.client_id
JOIN subscriptions s ON s.client_id = st.client_id AND s.line = %(line)s
JOIN subscription_periods p
  ON p.subscription_id = s.id AND p.period_start <= st.last_day AND p.period_end > st.first_day
WHERE {_VISIBLE}
ORDER BY p.subscription_id, p.period_start
FOR UPDATE OF p
"""

# Only the exceptions: events whose client the caller may not see, and events already counted.
# Read after the locks: every earlier report into a locked period has committed by now.
_KNOWN = f"""
SELECT st.position, {_VISIBLE}, ue.client_id
FROM usage_stage st
LEFT JOIN clients c ON c.id = st.client_id
LEFT JOIN usage_events ue ON ue.event_id = st.event_id
WHERE NOT {_VISIBLE} OR ue.event_id IS NOT NULL
"""

# In event_id order: two batches inserting some same ids wait for each other, never deadlock.
# A concurrent report may have counted an id since _KNOWN: it is not returned (a duplicate).
_INSERT = """
INSERT INTO usage_events (event_id, client_id, subscription_id, period_start, occurred_at, documents)
SELECT st.event_id, st.client_id, a.subscription_id, a.period_start, st.occurred_at, st.documents
FROM unnest(%b::integer[], %b::text[], %b::date[]) AS a(position, subscription_id, period_start)
JOIN usage_stage st ON st.position = a.position
ORDER BY st.event_id
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""

_SET_TOTALS = """
UPDATE subscription_periods p SET used = t.used
FROM unnest(%b::text[], %b::date[], %b::bigint[]) AS t(subscription_id, period_start, used)
WHERE p.subscription_id = t.subscription_id AND p.period_start = t.period_start
"""

_COPY_TOTALS = """
UPDATE subscriptions s SET used = t.used
FROM unnest(%b::text[], %b::date[], %b::bigint[]) AS t(subscription_id, period_start, used)
WHERE s.id = t.subscription_id AND s.period_start = t.period_start
"""

_QUEUE_NOTICES = """
INSERT INTO notifications (dedupe_key, kind, recipient_kind, recipient_id, subject, business_date, payload)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::date[], %b::jsonb[])
ON CONFLICT (dedupe_key) DO NOTHING
"""


def record_usage_batch(
    session: Session, events: Sequence[UsageEventIn], *, firm_id: str | None = None
) -> list[UsageEventResult]:
    """Count a batch of events in the caller's transaction; one answer per event, in input order.

    `accepted`: counted now. `duplicate`: its event_id was already counted for this client
    (earlier, or earlier in this batch: the first occurrence wins). `refused`: with the sentence
    record_usage gives. With `firm_id` (a firm's key), a client of another firm is refused
    exactly like a client that does not exist (R15); without it (the operator), any client."""
    answers: dict[int, UsageEventResult] = {}
    staged: list[_Staged] = []
    for position, event in enumerate(events):
        try:
            day = check_event(event.event_id, event.client_id, event.occurred_at, event.documents)
        except UsageRefused as refusal:
            answers[position] = _refused(event, refusal)
        else:
            staged.append(_Staged(position, event, day))
    if staged:
        answers.update(_count(session, staged, firm_id))
    return [answers[position] for position in range(len(events))]


def _count(session: Session, staged: list[_Staged], firm_id: str | None) -> dict[int, UsageEventResult]:
    session.flush()  # rows the caller added through the ORM must be seen by the SQL below
    connection = cast(psycopg.Connection[Any], session.connection().connection.driver_connection)
    names = {"firm": firm_id, "line": METERED_LINE}
    with connection.cursor() as cursor:
        cursor.execute(_STAGE)
        with cursor.copy(_COPY) as copy:
            copy.set_types(_COPY_TYPES)
            for position, event, day in staged:
                copy.write_row((position, event.event_id, event.client_id, event.occurred_at, event.documents, day))
        periods = [_period(row) for row in cursor.execute(_LOCK_PERIODS, names)]
        hidden: set[int] = set()
        counted_for: dict[int, str] = {}  # position -> the client its event_id was already counted for
        for position, visible, counted_client in cursor.execute(_KNOWN, names):
            if not visible:
                hidden.add(position)
            elif counted_client is not None:
                counted_for[position] = counted_client
        answers, planned = _plan(staged, periods, hidden, counted_for)
        if not planned:
            return answers
        cursor.execute(_INSERT, (
            [s.position for s, _ in planned], [p.subscription.id for _, p in planned], [p.start for _, p in planned]))
        inserted = {event_id for (event_id,) in cursor.fetchall()}
        totals, notices = _settle(planned, inserted, answers)
        if totals:
            arrays = ([key[0] for key in totals], [key[1] for key in totals], list(totals.values()))
            cursor.execute(_SET_TOTALS, arrays)
            cursor.execute(_COPY_TOTALS, arrays)
        if notices:
            columns = ("dedupe_key", "kind", "recipient_kind", "recipient_id", "subject", "business_date")
            cursor.execute(_QUEUE_NOTICES, [[notice[column] for notice in notices] for column in columns]
                           + [[Jsonb(notice["payload"]) for notice in notices]])
    # `used` was written behind the ORM's back: a period it holds must be read again
    for key in totals:
        period = session.identity_map.get(identity_key(SubscriptionPeriod, key))
        if period is not None:
            session.expire(period, ["used"])
    return answers


def _plan(
    staged: list[_Staged], periods: list[_Period], hidden: set[int], counted_for: dict[int, str]
) -> tuple[dict[int, UsageEventResult], list[tuple[_Staged, _Period]]]:
    """Answer each event as record_usage would, in input order, over the locked periods; returns
    the answers so far and the events to insert (answered once the insert says which landed)."""
    periods_of: dict[str, list[_Period]] = {}
    for locked in periods:  # in (subscription, start) order: an event takes the first that holds its day
        periods_of.setdefault(locked.subscription.client_id, []).append(locked)
    totals = {locked.key: locked.used for locked in periods}
    counted = {staged_event.event.event_id: counted_for[staged_event.position]
               for staged_event in staged if staged_event.position in counted_for}
    answers: dict[int, UsageEventResult] = {}
    planned: list[tuple[_Staged, _Period]] = []
    for staged_event in staged:
        position, event, day = staged_event
        if position in hidden:
            answers[position] = _refused(event, _no_client(event))
            continue
        earlier_client = counted.get(event.event_id)
        if earlier_client is not None:
            answers[position] = (UsageEventResult(event.event_id, "duplicate") if earlier_client == event.client_id
                            else _refused(event, counted_for_another_client(event.event_id)))
            continue
        period = next((p for p in periods_of.get(event.client_id, ()) if p.start <= day < p.end), None)
        if period is None:
            answers[position] = _refused(event, no_period(event.event_id, event.client_id, day))
        elif period.closed:
            answers[position] = _refused(event, period_closed(event.event_id, event.client_id, period.start, period.end))
        elif totals[period.key] + event.documents > MAX_DOCUMENTS:
            answers[position] = _refused(event, past_the_limit(event.event_id, event.documents))
        else:
            totals[period.key] += event.documents
            counted[event.event_id] = event.client_id
            planned.append((staged_event, period))
    return answers, planned


def _settle(
    planned: list[tuple[_Staged, _Period]], inserted: set[str], answers: dict[int, UsageEventResult]
) -> tuple[dict[tuple[str, date], int], list[dict[str, Any]]]:
    """Answer the planned events and total what landed, event by event in input order, so that
    each threshold is alerted by the event that crossed it, with the same notice record_usage
    queues; returns the new totals of the periods that grew and the notices."""
    totals: dict[tuple[str, date], int] = {}
    notices: list[dict[str, Any]] = []
    for (position, event, day), period in planned:
        if event.event_id not in inserted:  # counted by a concurrent report since we looked
            answers[position] = UsageEventResult(event.event_id, "duplicate")
            continue
        before = totals.get(period.key, period.used)
        totals[period.key] = before + event.documents
        notices += quota_notices(period.subscription, period.start, before, totals[period.key], day)
        answers[position] = UsageEventResult(event.event_id, "accepted")
    return totals, notices


def _period(row: tuple[Any, ...]) -> _Period:
    subscription_id, start, end, used, closed, client_id, quota, payer_kind, payer_id, firm_id = row
    return _Period(_Subscription(subscription_id, client_id, quota, payer_kind, payer_id, firm_id),
                   start, end, used, closed)


def _no_client(event: UsageEventIn) -> UsageRefused:
    """Unknown, or another firm's (R15: the same sentence, so nothing tells them apart)."""
    return UsageRefused(f"event {event.event_id}: there is no client '{event.client_id}'")


def _refused(event: UsageEventIn, refusal: UsageRefused) -> UsageEventResult:
    return UsageEventResult(event.event_id, "refused", str(refusal))
