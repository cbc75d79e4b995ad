"""How fast does the HTTP API count usage in bulk (issue 8, item 5 and "Done when")?

Figure: events/s through `POST /v1/usage-events`, 10,000 events a call, a fifth of them already
counted (earlier in the same call or in an earlier one), counted over every event sent
(accepted + duplicates + refused), one client sending call after call on a keep-alive
connection. The API runs as the product runs it: `python -m starter api --port PORT` in its own
process, against a fresh database on the embedded PostgreSQL (2,000 clients with an e-invoicing
subscription each, seeded by bench/usage_store.py), a real Temporal (the dev server) and
localstripe, called with an operator key (`Authorization: Bearer …`). The call is timed from
the first byte sent to the last byte of the answer; the client's own JSON encoding and
decoding are reported apart. Baseline, same run, same server: a raw COPY of the same rows into
a table with no index, 10,000 rows a transaction (bench/usage_store.py's `copy_rows`). The
three are timed call by call in turn, with the store alone (`record_usage_batch` on a twin
database, same batches, same order) so that the time of a call splits into store and
HTTP + JSON.

What bounds it: the store first, then Python around it, one call at a time. On the shared
2-CPU machine it was written on, `record_usage_batch` alone takes 65-80 % of a call (520-700 ms
for 10,000 events). About half of that is the set-based INSERT into usage_events (8,000 rows:
heap, the primary key on a random text id and the by-period index, then two foreign-key checks
a row, the RI triggers, ~80 ms each per call); the rest is Python per event (the Paris date of
each event, answering in input order, quota thresholds) and the other four statements. The
remaining 150-350 ms is the one uvicorn process: json.loads of 1.5 MB and pydantic validation
of 10,000 events, 10,000 answers built, validated and dumped to JSON, the bodies read and sent.
The COPY baseline pays none of that: no index, no constraint, no per-event Python.

    python bench/usage_ingest.py                 prints a JSON line last: figure, baseline, ratio, unit
    python bench/usage_ingest.py --composite-fk  EXPERIMENT: the same, after replacing on the bench's
        own databases usage_events' two foreign keys (client_id -> clients, subscription_id ->
        subscriptions) by one composite key (subscription_id, period_start) -> subscription_periods;
        the store alone is then timed both ways in the same run (store_* and store_as_is_*).
        The schema of the product (store/models.py, migrations) is not changed.

The API subprocess helper (`api_server`) is also used by bench/firm_overview.py.
"""
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project, when run as a script
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for usage_store
from usage_store import BATCH, CALLS, DUPLICATES, batches, copy_rows, seed  # noqa: E402

from store.usage_bulk import UsageEventIn, UsageEventResult, record_usage_batch  # noqa: E402

WARMUP = 1  # calls before timing: connection, the server's caches, PostgreSQL's plans
COPY_TABLE = "CREATE TABLE usage_copy (event_id text, client_id text, occurred_at timestamptz, documents integer)"
COMPOSITE_FK = ("ALTER TABLE usage_events ADD CONSTRAINT usage_events_period_fkey FOREIGN KEY "
                "(subscription_id, period_start) REFERENCES subscription_periods (subscription_id, period_start)")


# --- the API as the product runs it -----------------------------------------------------------


@contextmanager
def api_server(database_url: str, work_dir: Path) -> Iterator[str]:
    """`python -m starter api --port PORT` in its own process against `database_url`, with a
    Temporal dev server and localstripe started here (logs in work_dir); yields the base URL
    once GET /health answers; stops all three on the way out."""
    from embedded.processes import free_port, stop_process
    from embedded.stripe_server import LOCALSTRIPE_KEY, start_localstripe
    from embedded.temporal import start_dev_server
    from settings import PROJECT_ROOT

    temporal = start_dev_server(work_dir / "temporal", ui_port=free_port())
    try:
        stripe = start_localstripe(work_dir)
        try:
            port = free_port()
            env = {**os.environ, "DATABASE_URL": database_url, "TEMPORAL_ADDRESS": temporal.address,
                   "STRIPE_API_BASE": stripe.api_base, "STRIPE_API_KEY": LOCALSTRIPE_KEY, "API_HOST": "127.0.0.1"}
            log = work_dir / "api.log"
            with open(log, "ab") as out:
                api = subprocess.Popen([sys.executable, "-m", "starter", "api", "--port", str(port)], cwd=PROJECT_ROOT,
                                       env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
            try:
                base = f"http://127.0.0.1:{port}"
                wait_for_health(base, api, log)
                yield base
            finally:
                stop_process(api)
        finally:
            stripe.stop()
    finally:
        temporal.stop()


def wait_for_health(base: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the API did not answer GET /health within {timeout:.0f} s; see {log}")


# --- measuring ----------------------------------------------------------------------------------


def body_of(events: list[UsageEventIn]) -> bytes:
    return json.dumps({"events": [{"event_id": e.event_id, "client_id": e.client_id,
                                   "occurred_at": e.occurred_at.isoformat(), "documents": e.documents}
                                  for e in events]}).encode()


def server_codec(body: bytes, results: list[UsageEventResult]) -> tuple[float, float]:
    """Seconds the route's own Python takes around the store, replayed here: FastAPI's
    `request.json()` and the body's validation; the answers built, validated and dumped to JSON
    (its fast path for a response_model). An estimate: it leaves out uvicorn, the middleware."""
    from pydantic import TypeAdapter

    from starter.api_schemas import UsageAnswer, UsageBatch, UsageBatchAnswer

    started = time.perf_counter()
    batch = TypeAdapter(UsageBatch).validate_python(json.loads(body))
    _ = [UsageEventIn(e.event_id, e.client_id, e.occurred_at, e.documents) for e in batch.events]
    parsed = time.perf_counter() - started
    started = time.perf_counter()
    answers = [UsageAnswer(event_id=r.event_id, status=r.status, reason=r.reason) for r in results]
    answer = UsageBatchAnswer(accepted=sum(a.status == "accepted" for a in answers),
                              duplicates=sum(a.status == "duplicate" for a in answers),
                              refused=sum(a.status == "refused" for a in answers), results=answers)
    adapter = TypeAdapter(UsageBatchAnswer)
    adapter.dump_json(adapter.validate_python(answer))
    return parsed, time.perf_counter() - started


def composite_fk(factory: sessionmaker[Session]) -> list[str]:
    """EXPERIMENT: usage_events' foreign keys replaced by (subscription_id, period_start) ->
    subscription_periods; returns the definitions dropped."""
    with factory.begin() as session:
        connection = session.connection()
        dropped = connection.exec_driver_sql(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'usage_events'::regclass AND contype = 'f' ORDER BY conname").all()
        for name, _ in dropped:
            connection.exec_driver_sql(f'ALTER TABLE usage_events DROP CONSTRAINT "{name}"')
        connection.exec_driver_sql(COMPOSITE_FK)
    return [f"{name}: {definition}" for name, definition in dropped]


def timed_store(factory: sessionmaker[Session], events: list[UsageEventIn]) -> tuple[float, list[UsageEventResult]]:
    started = time.perf_counter()
    with factory.begin() as session:
        results = record_usage_batch(session, events)
    return time.perf_counter() - started, results


def ms(seconds: list[float]) -> float:
    """The median, in milliseconds."""
    return round(statistics.median(seconds) * 1000, 1)


def counts(statuses: list[str]) -> dict[str, int]:
    return {s: statuses.count(s) for s in ("accepted", "duplicate", "refused")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--composite-fk", action="store_true",
                        help="EXPERIMENT: one composite foreign key to subscription_periods instead of two")
    experiment = parser.parse_args().composite_fk

    from embedded.postgres import EmbeddedPostgres, create_database, database_url, drop_database
    from settings import PROJECT_ROOT
    from store.api_keys import new_key
    from store.db import make_engine, make_session_factory
    from store.migrate import upgrade

    postgres = EmbeddedPostgres(PROJECT_ROOT / ".var" / "bench" / "postgres")
    admin = postgres.url()
    tag = uuid.uuid4().hex[:8]
    # api: the API's database; store: its twin, for the store alone; as_is: the schema unchanged
    # when the experiment alters the other two.
    names = {"api": f"bench_ingest_{tag}", "store": f"bench_ingest_{tag}_store"}
    if experiment:
        names["as_is"] = f"bench_ingest_{tag}_as_is"
    engines = {}
    scratch = tempfile.TemporaryDirectory(prefix="bench-ingest-")  # the servers' state and logs
    work_dir = Path(scratch.name)
    try:
        create_database(admin, names["api"])
        upgrade(database_url(admin, names["api"]))
        seeding = make_engine(database_url(admin, names["api"]))
        seed(make_session_factory(seeding))
        seeding.dispose()  # a template must have no one connected
        for role, name in names.items():
            if role != "api":
                create_database(admin, name, template=names["api"])
        engines = {role: make_engine(database_url(admin, name)) for role, name in names.items()}
        factories = {role: make_session_factory(engine) for role, engine in engines.items()}
        dropped: list[str] = []
        if experiment:
            dropped = composite_fk(factories["api"])
            composite_fk(factories["store"])
            print("EXPERIMENT --composite-fk: dropped " + "; ".join(dropped) + f"; added {COMPOSITE_FK}",
                  file=sys.stderr)
        with factories["api"].begin() as session:
            session.connection().exec_driver_sql(COPY_TABLE)
            key = new_key(session, firm_id=None, label="bench")  # the operator's: every client is visible

        work = batches()
        bodies = []
        encode: list[float] = []
        for events in work:
            started = time.perf_counter()
            bodies.append(body_of(events))
            encode.append(time.perf_counter() - started)
        gc.freeze()  # the prepared events and bodies are the harness's, not work for the collector

        with api_server(database_url(admin, names["api"]), work_dir) as base, httpx.Client(
                base_url=base, timeout=300, headers={"Authorization": f"Bearer {key}",
                                                      "Content-Type": "application/json"}) as client:
            http: list[float] = []
            copy: list[float] = []
            store: dict[str, list[float]] = {role: [] for role in names if role != "api"}
            decode: list[float] = []
            parse: list[float] = []
            build: list[float] = []
            answered: dict[str, int] = {"accepted": 0, "duplicate": 0, "refused": 0}
            for n, (events, body) in enumerate(zip(work, bodies, strict=True)):
                started = time.perf_counter()
                copy_rows(factories["api"], events)
                copy_s = time.perf_counter() - started

                started = time.perf_counter()
                response = client.post("/v1/usage-events", content=body)
                http_s = time.perf_counter() - started
                assert response.status_code == 200, f"{response.status_code}: {response.text[:500]}"
                started = time.perf_counter()
                answer = response.json()
                decode_s = time.perf_counter() - started

                store_s = {}
                for role in (list(store) if n % 2 else list(reversed(store))):  # the experiment: turns about
                    store_s[role], results = timed_store(factories[role], events)
                    assert counts([r.status for r in results]) == counts([r["status"] for r in answer["results"]]), \
                        f"{role}: the store alone answered otherwise than the API"
                parse_s, build_s = server_codec(body, results)
                if n < WARMUP:
                    continue
                http.append(http_s)
                copy.append(copy_s)
                decode.append(decode_s)
                parse.append(parse_s)
                build.append(build_s)
                for role, seconds in store_s.items():
                    store[role].append(seconds)
                for result in answer["results"]:
                    answered[result["status"]] += 1
                assert (answer["accepted"], answer["duplicates"], answer["refused"]) == (
                    sum(r["status"] == "accepted" for r in answer["results"]),
                    sum(r["status"] == "duplicate" for r in answer["results"]),
                    sum(r["status"] == "refused" for r in answer["results"]))
    finally:
        for engine in engines.values():
            engine.dispose()
        for name in names.values():
            drop_database(admin, name)
        postgres.stop()
        scratch.cleanup()

    timed = CALLS - WARMUP
    sent = timed * BATCH
    figure, baseline = sent / sum(http), sent / sum(copy)
    store_per_s = {role: sent / sum(seconds) for role, seconds in store.items()}
    http_p50, store_p50 = ms(http), ms(store["store"])
    print(f"POST /v1/usage-events: {timed} calls x {BATCH} events (after {WARMUP} warm-up), {answered}, "
          f"{sum(http):.2f} s, p50 {http_p50} ms a call ({len(bodies[0]) / 1e6:.2f} MB in)", file=sys.stderr)
    schemas = {"store": "composite FK, EXPERIMENT" if experiment else "schema as is", "as_is": "schema as is"}
    for role, seconds in store.items():
        print(f"record_usage_batch alone ({schemas[role]}): {sum(seconds):.2f} s, p50 {ms(seconds)} ms a call",
              file=sys.stderr)
    print(f"  HTTP + JSON around the store: p50 {http_p50 - store_p50:.1f} ms a call; of which, replayed here: "
          f"body json.loads + validation {ms(parse)} ms, answers built + validated + dumped {ms(build)} ms; "
          f"client side (not in the figure): encode {ms(encode)} ms, decode {ms(decode)} ms", file=sys.stderr)
    print(f"baseline: COPY of the same rows into a table with no index, {sum(copy):.2f} s, p50 {ms(copy)} ms",
          file=sys.stderr)
    line: dict[str, Any] = {
        "figure": round(figure), "baseline": round(baseline), "ratio": round(figure / baseline, 3), "unit": "events/s",
        "accepted": answered["accepted"], "duplicates": answered["duplicate"], "refused": answered["refused"],
        "calls": timed, "events_per_call": BATCH,
        "p50_call_ms": http_p50,  # client clock: first byte sent .. last byte of the answer
        "store_events_per_s": round(store_per_s["store"]),  # record_usage_batch alone, same batches, twin database
        "store_p50_ms": store_p50,
        "http_json_p50_ms": round(http_p50 - store_p50, 1),  # the call minus the store: HTTP, JSON, pydantic
        "server_parse_validate_p50_ms": ms(parse),  # replayed in the bench process (estimate)
        "server_answer_build_dump_p50_ms": ms(build),  # replayed in the bench process (estimate)
        "client_encode_p50_ms": ms(encode), "client_decode_p50_ms": ms(decode),  # not in the figure
        "what": f"POST /v1/usage-events through `python -m starter api`, {BATCH} events a call, {DUPLICATES:.0%} "
                "duplicates, vs raw COPY of the same rows",
    }
    if experiment:
        line["experiment"] = ("composite FK (subscription_id, period_start) -> subscription_periods instead of "
                              "client_id -> clients and subscription_id -> subscriptions (API and store_* databases)")
        line["store_as_is_events_per_s"] = round(store_per_s["as_is"])
        line["store_as_is_p50_ms"] = ms(store["as_is"])
        line["store_ratio_composite_vs_as_is"] = round(store_per_s["store"] / store_per_s["as_is"], 3)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
