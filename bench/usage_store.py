"""How fast does the store count usage in bulk (issue 8 item 5)?

Figure: `record_usage_batch`, 10,000 events a call (20 % of them already counted: earlier in
the call or in an earlier one), each call committed, on a fresh database of 2,000 clients with
an e-invoicing subscription each, on the embedded PostgreSQL. Baseline, same run, same server:
a raw COPY of the same rows into a table with no index, 10,000 rows a transaction. The two are
timed call by call in turn, so both see the same machine.

    python bench/usage_store.py        prints a JSON line last: figure, baseline, ratio, unit
"""
import gc
import json
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import psycopg
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from billing.periods import paris_date  # noqa: E402  (the project root is on the path now)
from store.models import Client, Firm, Subscription, SubscriptionPeriod  # noqa: E402
from store.usage_bulk import UsageEventIn, record_usage_batch  # noqa: E402

CLIENTS = 2_000
FIRMS = 20
BATCH = 10_000
CALLS = 20
DUPLICATES = 0.20


def seed(factory: sessionmaker[Session]) -> None:
    today = paris_date(datetime.now(UTC))
    start, end = today - timedelta(days=15), today + timedelta(days=15)
    with factory.begin() as session:
        session.add_all([Firm(id=f"cab-{f}", name=f"Cabinet {f}") for f in range(FIRMS)])
        session.flush()
        session.add_all([Client(id=f"cli-{c}", name=f"Client {c}", firm_id=f"cab-{c % FIRMS}") for c in range(CLIENTS)])
        session.flush()
        session.add_all([Subscription(
            id=f"sub-cli-{c}-einvoicing", client_id=f"cli-{c}", line="einvoicing", product="einvoicing",
            plan_code="essentiel", interval="monthly", quota=1_000, firm_id=f"cab-{c % FIRMS}",
            payer_kind="client", payer_id=f"cli-{c}", status="active", anchor=start, period_start=start,
            period_end=end, scheduled={}, started_on=start) for c in range(CLIENTS)])
        session.flush()
        session.add_all([SubscriptionPeriod(subscription_id=f"sub-cli-{c}-einvoicing", period_start=start,
                                            period_end=end, client_id=f"cli-{c}") for c in range(CLIENTS)])
    with factory.begin() as session:
        session.connection().exec_driver_sql("ANALYZE")  # a live database has statistics


def batches() -> list[list[UsageEventIn]]:
    """CALLS batches of BATCH events; a fifth of each repeats an event sent before (same client)."""
    pick = random.Random(8)
    now = datetime.now(UTC)
    sent: list[UsageEventIn] = []
    result = []
    for _ in range(CALLS):
        fresh = [UsageEventIn(event_id=f"evt-{uuid.UUID(int=pick.getrandbits(128))}",
                              client_id=f"cli-{pick.randrange(CLIENTS)}",
                              occurred_at=now - timedelta(minutes=pick.randrange(60 * 24 * 10)),
                              documents=pick.randint(1, 5))
                 for _ in range(round(BATCH * (1 - DUPLICATES)))]
        sent += fresh
        events = fresh + pick.sample(sent, BATCH - len(fresh))
        pick.shuffle(events)
        result.append(events)
    return result


def copy_rows(factory: sessionmaker[Session], events: list[UsageEventIn]) -> None:
    with factory.begin() as session:
        connection = cast(psycopg.Connection[Any], session.connection().connection.driver_connection)
        with connection.cursor() as cursor, cursor.copy(
                "COPY usage_copy (event_id, client_id, occurred_at, documents) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "text", "timestamptz", "int4"])
            for e in events:
                copy.write_row((e.event_id, e.client_id, e.occurred_at, e.documents))


def main() -> None:
    from embedded.postgres import EmbeddedPostgres, create_database, database_url, drop_database
    from settings import PROJECT_ROOT
    from store.db import make_engine, make_session_factory
    from store.migrate import upgrade

    postgres = EmbeddedPostgres(PROJECT_ROOT / ".var" / "bench" / "postgres")
    name = f"bench_usage_{uuid.uuid4().hex[:8]}"
    create_database(postgres.url(), name)
    engine = make_engine(database_url(postgres.url(), name))
    try:
        upgrade(database_url(postgres.url(), name))
        factory = make_session_factory(engine)
        seed(factory)
        with factory.begin() as session:
            session.connection().exec_driver_sql(
                "CREATE TABLE usage_copy (event_id text, client_id text, occurred_at timestamptz, documents integer)")
        work = batches()
        gc.freeze()  # the 200,000 prepared events are the harness's, not work for the collector to scan
        figure = baseline = 0.0
        answers: dict[str, int] = {}
        for events in work:
            started = time.perf_counter()
            copy_rows(factory, events)
            baseline += time.perf_counter() - started
            started = time.perf_counter()
            with factory.begin() as session:
                results = record_usage_batch(session, events)
            figure += time.perf_counter() - started
            for result in results:
                answers[result.status] = answers.get(result.status, 0) + 1
    finally:
        engine.dispose()
        drop_database(postgres.url(), name)
        postgres.stop()
    events_count = CALLS * BATCH
    per_s, base_per_s = events_count / figure, events_count / baseline
    print(f"record_usage_batch: {CALLS} calls x {BATCH} events, {answers}, {figure:.2f} s, "
          f"{figure / CALLS * 1000:.0f} ms a call", file=sys.stderr)
    print(f"baseline: COPY of the same rows into a table with no index, {baseline:.2f} s", file=sys.stderr)
    print(json.dumps({"figure": round(per_s), "baseline": round(base_per_s), "ratio": round(per_s / base_per_s, 3),
                      "unit": "events/s",
                      "what": f"record_usage_batch, {BATCH} events a call, {DUPLICATES:.0%} duplicates, "
                              "vs raw COPY of the same rows"}))


if __name__ == "__main__":
    main()
