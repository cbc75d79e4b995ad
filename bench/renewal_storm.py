"""Renewal day: how fast do subscriptions whose periods end today renew, invoice issued and charged?

Figure: N subscriptions imported with a period ending today (a firm migrating on the 1st), on
the Temporal dev server, PostgreSQL and localstripe, our workers in their own processes
(`python -m starter worker`, as compose runs them: one for subscriptions and payments, one for
documents). Timed from the first import to the last
renewal invoice paid: each subscription opens (no invoice: the old tool billed its period),
renews at once (close, record, invoice: one activity), and is charged on the payments queue.
Baseline, same run, same server: N bare workflows that each run one no-op activity, started
the same way (64 at a time) on a worker in its own process. Ratio = figure / baseline.

Then, with --live M, M more subscriptions whose periods end next month are imported, and the
worker's resident memory (RSS) is read with N + M subscriptions live.

--kill-worker K SIGKILLs the worker K times during the storm (after each N/(K+1) renewals
paid; a new worker starts at once) and checks the outcome: one renewal invoice per
subscription, one succeeded PaymentIntent per invoice, invoice numbers without a gap, and
`reconcile`'s verdict.

    python bench/renewal_storm.py                 2,000 renewals, then 8,000 more live (10,000)
    python bench/renewal_storm.py --quick         200 renewals, 300 more live: under a minute
    python bench/renewal_storm.py --kill-worker 3

Prints a JSON line last: figure, baseline, ratio, unit (and the checks, the RSS).
"""
import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cpu import CpuMeter, processes  # noqa: E402  (bench/ is on the path)
from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

FIRMS = 20
CONCURRENCY = 64
PLANS = ("essentiel", "standard", "premium")


@dataclass
class Parts:
    database_url: str
    temporal_address: str
    stripe_api_base: str
    task_queue: str
    logs: Path
    payments_per_second: float = 1000.0


class WorkerProcess:
    """Our worker, as production runs it, in its own process; killed and replaced on demand.
    `queues`: its WORKER_QUEUES (compose: subscriptions,payments on `worker`, documents on
    `documents-worker`)."""

    def __init__(self, parts: Parts, queues: str) -> None:
        self.parts = parts
        self.queues = queues
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        from embedded.processes import free_port

        env = {**os.environ, "DATABASE_URL": self.parts.database_url, "TEMPORAL_ADDRESS": self.parts.temporal_address,
               "STRIPE_API_BASE": self.parts.stripe_api_base, "STRIPE_API_KEY": "sk_test_localstripe",
               "TASK_QUEUE": self.parts.task_queue, "METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
               "LOG_FORMAT": "text", "LOG_LEVEL": "WARNING",
               # localstripe has no rate limit: the storm measures our code and the engine, not
               # production's Stripe budget (PAYMENTS_PER_SECOND, 20 by default; --payments-per-second)
               "PAYMENTS_PER_SECOND": str(self.parts.payments_per_second), "WORKER_QUEUES": self.queues}
        env.pop("SMTP_URL", None)
        # Production's worker refuses to issue invoices as the demo company: a bench identity.
        env.update(SELLER_NAME="Banc d'essai SAS", SELLER_SIREN="900000076", SELLER_VAT_NUMBER="FR02900000076")
        log = open(self.parts.logs / f"worker-{self.queues.split(',')[0]}-{self.kills}.log", "wb")  # noqa: SIM115 (the child keeps it)
        self.process = subprocess.Popen([sys.executable, "-m", "starter", "worker"], cwd=ROOT, env=env,
                                        stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.kills += 1
        self.start()

    def rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def gather_bounded(jobs: list[Callable[[], Awaitable[Any]]], limit: int = CONCURRENCY) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()
    return await asyncio.gather(*(one(job) for job in jobs))


async def baseline(address: str, count: int, logs: Path, server_pid: int) -> tuple[float, dict[str, float]]:
    """Bare workflows with one no-op activity each, per second, start to completion; and the
    CPU they took, per workflow."""
    from bare_workflow import BareOnce
    from temporalio.client import Client

    queue = f"bare-{uuid.uuid4().hex[:6]}"
    worker = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bare_workflow.py"), address, queue], cwd=ROOT,
                              stdout=open(logs / "bare-worker.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    try:
        client = await Client.connect(address)
        await client.execute_workflow(BareOnce.run, -1, id=f"warm-{queue}", task_queue=queue)  # worker is up
        meter = CpuMeter(lambda: {server_pid: "temporal", worker.pid: "worker", os.getpid(): "bench"})
        meter.start()
        started = time.perf_counter()
        await gather_bounded([
            (lambda i=i: client.execute_workflow(BareOnce.run, i, id=f"{queue}-{i}", task_queue=queue))
            for i in range(count)])
        return count / (time.perf_counter() - started), meter.stop(count)
    finally:
        worker.terminate()
        worker.wait()


def seed_parties(sessions: "sessionmaker[Session]", clients: int, offset: int) -> None:
    from store.models import Client, Firm

    with sessions.begin() as session:
        if offset == 0:
            session.add_all([Firm(id=f"cab-{f}", name=f"Cabinet {f}") for f in range(FIRMS)])
            session.flush()
        session.add_all([Client(id=f"cli-{i}", name=f"Client {i}", firm_id=f"cab-{i % FIRMS}")
                         for i in range(offset, offset + clients)])


def renewals_paid(sessions: "sessionmaker[Session]", today: date) -> int:
    from store.models import Invoice

    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Invoice).where(
            Invoice.issued_on == today, Invoice.status == "paid", Invoice.idempotency_key.like("%:fee:%"))) or 0


def stripe_requests_per_charge(logs: Path, charges: int) -> dict[str, float]:
    """PaymentIntent requests a charge made, read from localstripe's access log (docs/scaling.md
    §3: Stripe's limits are per request, 25/s on an endpoint, 100/s in all)."""
    import re

    kinds = {"create": re.compile(r'"POST /v1/payment_intents HTTP'),
             "read": re.compile(r'"GET /v1/payment_intents/pi_\w+ HTTP'),
             "confirm": re.compile(r'"POST /v1/payment_intents/pi_\w+/confirm HTTP')}
    text_ = (logs / "localstripe.log").read_text(errors="replace")
    return {kind: round(len(pattern.findall(text_)) / charges, 3) for kind, pattern in kinds.items()}


def documents_drawn(sessions: "sessionmaker[Session]") -> int:
    """E-invoices drawn by the documents worker when the figure is read: drawing lags behind
    billing on renewal day (it is off the path the figure measures, and on a CPU of its own in
    production)."""
    with sessions() as session:
        return session.scalar(text("select count(*) from invoice_documents")) or 0


def stages(sessions: "sessionmaker[Session]", today: date) -> dict[str, list[float]]:
    """When each stage of the storm ran, in seconds from the first subscription opened: where
    the time goes (opened: recorded; invoiced: the renewal's transaction; charged: paid)."""
    queries = {
        "opened": "select min(reserved_at), max(reserved_at) from line_reservations",
        "invoiced": "select min(finalized_at), max(finalized_at) from invoices where idempotency_key like '%:fee:%'",
        "charged": "select min(updated_at), max(updated_at) from payment_attempts where status = 'succeeded'",
    }
    with sessions() as session:
        origin = session.scalar(text("select min(reserved_at) from line_reservations"))
        out = {}
        for name, sql in queries.items():
            first, last = session.execute(text(sql)).one()
            out[name] = [round((first - origin).total_seconds(), 2), round((last - origin).total_seconds(), 2)]
        return out


def invoice_numbers(session: Session) -> dict[str, int | None]:
    """How many invoices are numbered, from which number to which, and the gaps between."""
    count, low, high = session.execute(text("select count(number), min(number), max(number) from invoices "
                                            "where number is not null")).one()
    return {"count": count, "min": low, "max": high, "gaps": (high - low + 1 - count) if count else 0}


def checks(sessions: "sessionmaker[Session]", gateway: Any, today: date, storm: int) -> dict[str, Any]:
    """One renewal invoice per subscription, one succeeded PaymentIntent per invoice, no gap."""
    from starter.reconcile import find_mismatches
    from store.models import Invoice

    with sessions() as session:
        renewal = session.execute(select(Invoice.subscription_id, Invoice.id).where(
            Invoice.issued_on == today, Invoice.idempotency_key.like("%:fee:%"))).all()
        numbers = invoice_numbers(session)
    per_subscription = Counter(sub for sub, _ in renewal)
    succeeded = Counter(invoice for view, _, invoice in gateway.list_intents() if view.status == "succeeded")
    per_invoice = Counter(succeeded.get(invoice_id, 0) for _, invoice_id in renewal)
    mismatches, _, _ = find_mismatches(sessions, gateway)
    return {
        "subscriptions_renewed": len(per_subscription),
        "missing_renewals": storm - len(per_subscription),
        "subscriptions_with_two_renewal_invoices": sum(1 for n in per_subscription.values() if n > 1),
        "invoices_by_succeeded_intents": {str(k): v for k, v in sorted(per_invoice.items())},
        "invoice_numbers": numbers,
        "reconcile": "all agree" if not mismatches else [str(m) for m in mismatches[:10]],
    }


async def storm_and_live(parts: Parts, storm: int, live: int, kills: int,
                         others: dict[int, str]) -> dict[str, Any]:
    from adapters.stripe_gateway import StripeGateway
    from billing.catalog import DEFAULT_CATALOG_PATH, load_catalog
    from billing.periods import add_months, paris_date
    from contracts.subscription import Payer
    from starter.service import NoAnswer, SubscriptionService
    from store.db import make_engine, make_session_factory
    from worker import connect

    asyncio.get_running_loop().set_exception_handler(quiet_abandoned_answers)

    sessions = make_session_factory(make_engine(parts.database_url, pool_size=CONCURRENCY, max_overflow=8))
    gateway = StripeGateway("sk_test_localstripe", parts.stripe_api_base)
    client = await connect(parts.temporal_address)
    service = SubscriptionService(client, sessions, load_catalog(DEFAULT_CATALOG_PATH), gateway, parts.task_queue)
    seed_parties(sessions, storm, 0)
    for f in range(FIRMS):
        await service.register_card(payer=Payer(kind="firm", id=f"cab-{f}"), card="4242424242424242")
    worker = WorkerProcess(parts, "subscriptions,payments")
    drawer = WorkerProcess(parts, "documents")
    worker.start()
    drawer.start()
    try:
        today = paris_date(utc_now())

        def importer(i: int, start: date, end: date) -> Callable[[], Awaitable[Any]]:
            async def one() -> None:
                try:
                    await service.subscribe(client_id=f"cli-{i}", plan_code=PLANS[i % 3], interval="monthly",
                                            payer_kind="firm", imported=(start, end))
                except NoAnswer:
                    pass  # started, not answered in 20 s under the storm: the workflow goes on (counted below)
            return one

        # The worker polls before the clock starts: one subscription that renews next month.
        seed_parties(sessions, 1, storm + live)
        await importer(storm + live, today, add_months(today, 1))()
        def groups() -> dict[int, str]:
            pids = {**others, os.getpid(): "bench", **processes({})}
            for process, name in ((worker.process, "worker"), (drawer.process, "documents_worker")):
                if process is not None:
                    pids[process.pid] = name
            return pids

        meter = CpuMeter(groups)
        meter.start()
        started = time.perf_counter()
        importing = asyncio.create_task(gather_bounded(
            [importer(i, add_months(today, -1), today) for i in range(storm)]))
        next_kill = [storm * (k + 1) // (kills + 1) for k in range(kills)]
        # The count runs on a thread: a query on the event loop would starve the imports.
        while (paid := await asyncio.to_thread(renewals_paid, sessions, today)) < storm:
            if next_kill and paid >= next_kill[0]:
                next_kill.pop(0)
                worker.kill()  # SIGKILL mid-storm; a new worker starts at once
            if importing.done() and importing.exception() is not None:
                raise importing.exception()  # type: ignore[misc]
            if time.perf_counter() - started > 1800:
                raise TimeoutError(f"{paid} of {storm} renewals paid after 30 minutes")
            await asyncio.sleep(0.5)
        elapsed = time.perf_counter() - started
        cpu = meter.stop(storm)
        await importing
        result: dict[str, Any] = {"renewals": storm, "seconds": round(elapsed, 2), "kills": worker.kills,
                                  "stages": stages(sessions, today), "cpu_ms_per_renewal": cpu,
                                  "checks": checks(sessions, gateway, today, storm)}
        if live:
            seed_parties(sessions, live, storm)
            live_started = time.perf_counter()
            await gather_bounded([importer(i, today, add_months(today, 1)) for i in range(storm, storm + live)])
            await asyncio.sleep(5)  # let the worker settle
            result["live_subscriptions"] = storm + live + 1
            result["live_import_per_second"] = round(live / (time.perf_counter() - live_started), 1)
            result["worker_rss_mb"] = round(worker.rss_mb(), 1)
            result["documents_worker_rss_mb"] = round(drawer.rss_mb(), 1)
        result["documents_drawn"] = documents_drawn(sessions)
        result["stripe_requests_per_charge"] = stripe_requests_per_charge(parts.logs, storm)
        return result
    finally:
        worker.stop()
        drawer.stop()


def utc_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def quiet_abandoned_answers(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The service gives up on an answer after its deadline and asks again; the Temporal client
    then reports the abandoned call's future as never retrieved. Expected under a storm: not shown."""
    from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

    if isinstance(context.get("exception"), (asyncio.CancelledError, WorkflowUpdateRPCTimeoutOrCancelledError)):
        return
    loop.default_exception_handler(context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 renewals, 300 more live: under a minute")
    parser.add_argument("--storm", type=int, help="subscriptions renewing today (default 2000; 200 with --quick)")
    parser.add_argument("--live", type=int, help="more subscriptions imported live for the RSS reading "
                                                 "(default 8000; 300 with --quick; 0: none)")
    parser.add_argument("--kill-worker", type=int, default=0, metavar="K", help="SIGKILL the worker K times")
    parser.add_argument("--payments-per-second", type=float, default=1000.0,
                        help="the payments queue's rate limit (default 1000: localstripe has none; production: 20)")
    parser.add_argument("--on-disk", action="store_true", help="the dev server keeps its state in a SQLite file "
                                                                "(fsync on every write) instead of in memory")
    args = parser.parse_args()
    storm = args.storm or (200 if args.quick else 2000)
    live = args.live if args.live is not None else (300 if args.quick else 8000)

    from embedded.postgres import EmbeddedPostgres, create_database, database_url
    from embedded.stripe_server import start_localstripe
    from embedded.temporal import start_dev_server
    from store.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="renewal-storm-") as tmp:
        base = Path(tmp)
        logs = ROOT / ".var" / "bench" / "renewal_storm"  # kept after the run, to read
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir(parents=True)
        postgres = EmbeddedPostgres(base / "postgres")
        stripe = start_localstripe(logs)
        temporal = start_dev_server(base / "temporal", in_memory=not args.on_disk)
        try:
            create_database(postgres.url(), "storm")
            url = database_url(postgres.url(), "storm")
            upgrade(url)
            parts = Parts(url, temporal.address, stripe.api_base, f"storm-{uuid.uuid4().hex[:6]}", logs,
                          args.payments_per_second)
            floor, floor_cpu = asyncio.run(baseline(temporal.address, storm, logs, temporal.process.pid))
            result = asyncio.run(storm_and_live(parts, storm, live, args.kill_worker,
                                                {temporal.process.pid: "temporal", stripe.process.pid: "localstripe"}))
            result["baseline_cpu_ms_per_workflow"] = floor_cpu
        finally:
            temporal.stop()
            stripe.stop()
            postgres.stop()
    figure = result["renewals"] / result["seconds"]
    print(json.dumps({
        "figure": round(figure, 2), "baseline": round(floor, 2), "ratio": round(figure / floor, 3),
        "unit": "renewals/s (invoice issued and charged) vs bare workflows with one activity/s",
        **result,
    }))


if __name__ == "__main__":
    main()
