"""How fast is the firm overview (R14, issue 8) of a firm that pays for 10,000 clients?

Figure: p99 (and p50) of `GET /v1/firm/overview?limit=100` — the totals over all 10,000
subscriptions plus the first page of 100 rows — with the firm's own key, through the API as the
product runs it: `python -m starter api --port PORT` in its own process against the bench's
database on the embedded PostgreSQL, a real Temporal (dev server) and localstripe
(bench/usage_ingest.py's `api_server`), one client on a keep-alive connection (httpx), the time
from the first byte sent to the last byte of the answer. Baseline, same run, same server, calls
interleaved with the figure's: p99 of `GET /health`, the floor of any answer from that server.

Kept beside it, the store alone (keys `store_*`): p99 (and p50) of
`store.read_models.firm_overview(..., limit=100)`, each call in its own session, as a request
would, against the floor of reading that firm's entries at all, `SELECT count(*)` over the same
partial index; with each statement's plans (EXPLAIN, on stderr) and its time alone.

What bounds it: the totals statement, an aggregate over the firm's 10,000 live subscriptions
(a count(DISTINCT client_id), so a sort, and one probe of subscription_periods' primary key per
subscription for this period's `used`); the page itself is ~1-2 ms. Around it the request adds
the HTTP floor (the baseline) and two small look-ups (the key, the firm), each in a session of
its own on a worker thread, and the route's pydantic models and JSON for 100 rows (~36 kB).

The database also holds what makes the index earn its keep: the clients' own payments
add-ons, ended subscriptions, other firms' clients, a year of closed periods each.

    python bench/firm_overview.py            prints a JSON line last: figure, baseline, ratio, unit, …
"""
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import Engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project, when run as a script
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for usage_ingest
from usage_ingest import api_server  # noqa: E402

FIRM = "cab-bench"
CLIENTS = 10_000
OTHER_FIRMS, OTHER_CLIENTS = 9, 2_000  # per other firm
ENDED = 2_000  # the bench firm's earlier subscriptions, ended (not in the overview)
PAST_PERIODS = 11  # closed periods per live subscription
CALLS, WARMUP, PAGE = 300, 30, 100
PERIOD_START, PERIOD_END = date(2025, 9, 1), date(2025, 10, 1)
PLANS = [("essentiel", 1900, 50), ("standard", 3900, 200), ("premium", 7900, 1000)]  # code, monthly price, quota


# --- seeding: COPY, no row-by-row round trips ------------------------------------------------


def seed(url: str) -> int:
    """Fill the database; return the number of subscriptions the bench firm pays for."""
    firms = [FIRM] + [f"cab-{f}" for f in range(OTHER_FIRMS)]
    # The bench firm's client ids sort after every other firm's: the case where reading clients
    # in id order and filtering the payer (instead of using the payer's index) costs most.
    clients = [(f"cli-z-{i:05d}", FIRM) for i in range(CLIENTS)]
    clients += [(f"cli-{f}-{i:05d}", f"cab-{f}") for f in range(OTHER_FIRMS) for i in range(OTHER_CLIENTS)]
    subscriptions: list[tuple[Any, ...]] = []
    periods: list[tuple[Any, ...]] = []
    for n, (client_id, firm_id) in enumerate(clients):
        plan, _, quota = PLANS[n % 3]
        status = ("active", "active", "active", "pending_cancel", "past_due")[n % 5]
        add_subscription(subscriptions, periods, client_id, firm_id, "einvoicing", plan, quota, ("firm", firm_id),
                         status, used=(n * 37) % (quota * 2))
        if n % 2 == 0:  # Option 1: the client pays its payments add-on itself
            add_subscription(subscriptions, periods, client_id, firm_id, "payments", "paiements", 0,
                             ("client", client_id), "active", used=0)
    for n in range(ENDED):
        add_subscription(subscriptions, periods, clients[n][0], FIRM, "einvoicing", "premium", 1000, ("firm", FIRM),
                         "ended", used=50, sub_id=f"sub-{clients[n][0]}-einvoicing-ended")
    with psycopg.connect(url) as conn:
        copy(conn, "firms (id, name)", [(f, f"Cabinet {f}") for f in firms])
        copy(conn, "clients (id, name, firm_id, external_id)", [(c, f"Client {c}", f, f"ext-{c}") for c, f in clients])
        copy(conn, "subscriptions (id, client_id, line, product, plan_code, interval, quota, firm_id, payer_kind, "
                   "payer_id, status, anchor, period_start, period_end, scheduled, started_on, ended_on, version, used)",
             subscriptions)
        copy(conn, "subscription_periods (subscription_id, period_start, period_end, client_id, used, documents)", periods)
        conn.execute("analyze")
    return len([s for s in subscriptions if s[8] == "firm" and s[9] == FIRM and s[10] != "ended"])


def add_subscription(subscriptions: list[tuple[Any, ...]], periods: list[tuple[Any, ...]], client_id: str,
                     firm_id: str, line: str, plan: str, quota: int, payer: tuple[str, str], status: str, *,
                     used: int, sub_id: str | None = None) -> None:
    sub_id = sub_id or f"sub-{client_id}-{line}"
    product = "payments" if line == "payments" else "einvoicing"
    ended_on = PERIOD_START if status == "ended" else None
    subscriptions.append((sub_id, client_id, line, product, plan, "monthly", quota, firm_id, payer[0], payer[1], status,
                          date(2024, 10, 1), PERIOD_START, PERIOD_END, "{}", date(2024, 10, 1), ended_on, 1, used))
    for months_back in range(1, PAST_PERIODS + 1):  # a year of closed periods: the join must not scan them
        start = date(2025 - (months_back >= 9), (9 - months_back - 1) % 12 + 1, 1)
        end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        periods.append((sub_id, start, end, client_id, used, used))
    if status != "ended":
        periods.append((sub_id, PERIOD_START, PERIOD_END, client_id, used, None))


def copy(conn: psycopg.Connection[Any], target: str, rows: list[tuple[Any, ...]]) -> None:
    with conn.cursor() as cur, cur.copy(f"copy {target} from stdin") as out:
        for row in rows:
            out.write_row(row)


# --- measuring --------------------------------------------------------------------------------


@contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and their parameters) the engine sends while in the block."""
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def timings(call: Callable[[], object], calls: int, warmup: int) -> list[float]:
    for _ in range(warmup):  # connection pool, prepared statements, caches
        call()
    spent = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        spent.append((time.perf_counter() - started) * 1000)
    return spent


def http_timings(client: httpx.Client, paths: list[str], calls: int, warmup: int,
                 check: Callable[[str, httpx.Response], None]) -> list[list[float]]:
    """Milliseconds of each GET, per path; the paths are called in turn, so all see the same moments."""
    spent: list[list[float]] = [[] for _ in paths]
    for n in range(warmup + calls):
        for path, times in zip(paths, spent, strict=True):
            started = time.perf_counter()
            response = client.get(path)
            elapsed = (time.perf_counter() - started) * 1000
            check(path, response)
            if n >= warmup:
                times.append(elapsed)
    return spent


def p(values: list[float], pct: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def explain(factory: sessionmaker[Session], statements: list[tuple[str, Any]]) -> list[str]:
    """Each statement's plan twice: EXPLAIN ANALYZE with its values (a custom plan) and the
    generic plan PostgreSQL may switch to once psycopg prepares the statement (PG 16+)."""
    plans = []
    with factory() as session:
        raw = session.connection().connection.driver_connection
        assert raw is not None
        for statement, parameters in statements:
            for options, params in (("analyze, buffers", parameters), ("generic_plan", None)):
                sql = statement if params is not None else numbered(statement, parameters)
                rows = raw.execute(f"explain ({options}) {sql}", params).fetchall()
                plans.append("\n".join(r[0] for r in rows))
    return plans


def replay(factory: sessionmaker[Session], captured: tuple[str, Any]) -> Callable[[], object]:
    """One of the overview's statements alone, as sent, to tell where the time goes."""
    statement, parameters = captured

    def run() -> object:
        with factory() as session:
            raw = session.connection().connection.driver_connection
            assert raw is not None
            return raw.execute(statement, parameters).fetchall()
    return run


def numbered(statement: str, parameters: dict[str, Any]) -> str:
    """`%(name)s` placeholders as `$1`, `$2`…, for EXPLAIN (GENERIC_PLAN), which takes no values."""
    order = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
    return re.sub(r"%\((\w+)\)s", lambda m: f"${order.index(m.group(1)) + 1}", statement).replace("%%", "%")


def main() -> None:
    from billing.catalog import load_catalog
    from contracts.views import FirmOverview
    from embedded.postgres import EmbeddedPostgres, create_database, database_url, drop_database
    from settings import PROJECT_ROOT
    from store.api_keys import new_key
    from store.db import make_engine, make_session_factory
    from store.migrate import upgrade
    from store.read_models import firm_overview

    postgres = EmbeddedPostgres(PROJECT_ROOT / ".var" / "bench" / "postgres")
    name = f"bench_overview_{uuid.uuid4().hex[:8]}"
    admin = postgres.url()
    create_database(admin, name)
    url = database_url(admin, name)
    engine = make_engine(url)
    try:
        upgrade(url)
        started = time.perf_counter()
        paid = seed(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
        print(f"seeded in {time.perf_counter() - started:.1f} s: {paid} subscriptions paid by {FIRM}", file=sys.stderr)

        factory = make_session_factory(engine)
        catalog = load_catalog()

        def overview() -> FirmOverview:
            with factory() as session:
                return firm_overview(session, catalog, firm_id=FIRM, cursor=None, limit=PAGE)

        def count_over_index() -> object:
            with factory() as session:
                return session.execute(text(
                    "select count(*) from subscriptions "
                    "where payer_kind = 'firm' and payer_id = :firm and status <> 'ended'"), {"firm": FIRM}).scalar()

        def select_one() -> object:
            with factory() as session:
                return session.execute(text("select 1")).scalar()

        with captured(engine) as statements:
            first = overview()
        assert first.totals.subscriptions == paid and len(first.items) == PAGE
        for plan in explain(factory, statements):
            uses = "live_by_payer" in plan
            print(f"--- plan ({'uses' if uses else 'DOES NOT USE'} live_by_payer)\n{plan}", file=sys.stderr)

        spent = timings(overview, CALLS, WARMUP)
        per_statement = [timings(replay(factory, statement), CALLS // 3, 5) for statement in statements]
        floor = timings(count_over_index, CALLS, WARMUP)
        round_trip = timings(select_one, CALLS, WARMUP)

        # The same overview through the HTTP API, as the firm's back end calls it.
        with factory.begin() as session:
            key = new_key(session, firm_id=FIRM, label="bench")
        overview_path = f"/v1/firm/overview?limit={PAGE}"
        sizes: list[int] = []

        def check(path: str, response: httpx.Response) -> None:
            assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:300]}"
            if path == overview_path and not sizes:
                body = response.json()
                assert body["totals"]["subscriptions"] == paid and len(body["items"]) == PAGE, body["totals"]
                sizes.append(len(response.content))

        with tempfile.TemporaryDirectory(prefix="bench-overview-") as work_dir, \
                api_server(url, Path(work_dir)) as base, \
                httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
            http_spent, health = http_timings(client, [overview_path, "/health"], CALLS, WARMUP, check)
    finally:
        engine.dispose()
        drop_database(admin, name)
        postgres.stop()

    print(f"overview: {len(statements)} queries per call; p50 {p(spent, 50):.2f} ms, p99 {p(spent, 99):.2f} ms",
          file=sys.stderr)
    for (statement, _), spent_alone in zip(statements, per_statement, strict=True):
        print(f"  alone, p50 {p(spent_alone, 50):.2f} ms: {' '.join(statement.split())[:80]}…", file=sys.stderr)
    print(f"count(*) over live_by_payer: p50 {p(floor, 50):.2f} ms, p99 {p(floor, 99):.2f} ms; "
          f"select 1: p50 {p(round_trip, 50):.2f} ms, p99 {p(round_trip, 99):.2f} ms", file=sys.stderr)
    print(f"GET {overview_path} ({sizes[0] / 1000:.0f} kB): p50 {p(http_spent, 50):.2f} ms, "
          f"p99 {p(http_spent, 99):.2f} ms; GET /health: p50 {p(health, 50):.2f} ms, p99 {p(health, 99):.2f} ms "
          f"({CALLS} calls each, interleaved, after {WARMUP} warm-up)", file=sys.stderr)
    figure, baseline = p(http_spent, 99), p(health, 99)
    print(json.dumps({"figure": round(figure, 2), "p50_ms": round(p(http_spent, 50), 2), "baseline": round(baseline, 2),
                      "ratio": round(figure / baseline, 2), "unit": "ms",
                      "health_p50_ms": round(p(health, 50), 2), "response_bytes": sizes[0],
                      "store_p99_ms": round(p(spent, 99), 2), "store_p50_ms": round(p(spent, 50), 2),
                      "store_count_p99_ms": round(p(floor, 99), 2),
                      "store_ratio": round(p(spent, 99) / p(floor, 99), 2),
                      "select1_p99_ms": round(p(round_trip, 99), 2), "queries_per_call": len(statements),
                      "per_query_p50_ms": [round(p(t, 50), 2) for t in per_statement],
                      "what": f"GET {overview_path} (totals + first page of {PAGE}) through `python -m starter api`, "
                              f"firm paying {paid} subscriptions, p99 vs p99 of GET /health on the same server; "
                              "store_*: firm_overview alone vs count(*) over the same index"}))


if __name__ == "__main__":
    main()
