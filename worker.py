"""Composition root: settings -> Temporal client -> activity objects -> Worker.

    python worker.py          run the worker against TEMPORAL_ADDRESS / DATABASE_URL / Stripe
"""
import asyncio
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.dunning import DunningActivities
from activities.payments import DEFAULT_MINIMUM_CHARGE, PaymentActivities
from activities.records import Issuer, RecordActivities
from adapters.stripe_gateway import StripeGateway
from billing.catalog import DEFAULT_CATALOG_PATH, Catalog, load_catalog
from observability.metrics import install_runtime
from settings import QUEUES, Queue, Settings
from workflows.calls import documents_task_queue, payments_task_queue
from workflows.dunning import InvoiceDunningWorkflow
from workflows.subscription import SubscriptionWorkflow


@dataclass(frozen=True)
class WorkerTuning:
    """The worker's settings, explicit (docs/scaling.md tells how they were chosen).

    activity_threads: database activities at once (each holds a pooled connection);
    payment_threads: charges at once (each waits on Stripe, ~0.1-1 s);
    document_threads: e-invoices drawn at once (issue 11), on their own task queue;
    payments_per_second: charges started per second across ALL workers of the payments queue
      (the server enforces it). Stripe allows 100 requests a second in live mode and 25 a second
      on any one endpoint; a first charge makes one create and one confirm, and the webhook
      reads the intent only if the charge has not recorded it as paid first; a decline reads it
      twice (docs/scaling.md §3): 20 charges/s keeps each POST endpoint at 20/s, the reads
      under 25/s while fewer than about 60 % of charges are declined;
    max_cached_workflows: subscription workflows kept in memory (sticky): a renewal storm of
      more than this replays histories from the server instead. Measured (bench/renewal_storm.py,
      10,001 live subscriptions): RSS 253.0 MB at 1,000, 357.0 MB at 2,000, before e-invoices;
      302.8 MB at 1,000 with 8,301 live when the same process drew e-invoices (the drawing
      libraries add about 35 MB); 268.1 MB at 1,000 without the documents queue (compose's
      worker), the documents worker 180.0 MB;
    queues: the task queues this process polls (WORKER_QUEUES)."""

    activity_threads: int = 16
    payment_threads: int = 8
    document_threads: int = 2  # e-invoices drawn at once (CPU: ~0.1 s each; more workers, not threads)
    payments_per_second: float = 20.0
    max_cached_workflows: int = 1000
    queues: tuple[Queue, ...] = QUEUES

    @property
    def database_connections(self) -> int:
        threads = {"subscriptions": self.activity_threads, "payments": self.payment_threads,
                   "documents": self.document_threads}
        return sum(threads[queue] for queue in self.queues)


GRACEFUL_SHUTDOWN = timedelta(seconds=20)


def forward_core_logs(level: int = logging.WARNING) -> None:
    """Send the SDK core's logs to Python logging (stderr), never to stdout; no metrics."""
    install_runtime(None, level)


async def connect(address: str, namespace: str = "default") -> Client:
    return await Client.connect(address, namespace=namespace, data_converter=pydantic_data_converter)


class BillingWorker:
    """Up to three Temporal workers in one process (`WORKER_QUEUES`): workflows and database
    activities on the task queue; charges on its `-payments` queue, rate-limited under Stripe's
    limit (issue 10); e-invoices drawn on its `-documents` queue (issue 11)."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self._running = AsyncExitStack()

    async def __aenter__(self) -> "BillingWorker":
        async with AsyncExitStack() as starting:  # one that fails to start stops those started
            for worker in self.workers:
                await starting.enter_async_context(worker)
            self._running = starting.pop_all()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._running.aclose()  # the last started stops first

    async def run(self) -> None:
        await asyncio.gather(*(worker.run() for worker in self.workers))


def issuer_from(settings: Settings, catalog: Catalog | None = None) -> Issuer:
    """Our identity (SELLER_* settings) and the catalogue's plan names, for the invoices' e-invoices."""
    plans = catalog if catalog is not None else load_catalog(settings.catalog_path or DEFAULT_CATALOG_PATH)
    return Issuer(seller=settings.seller(), plan_names={plan.code: plan.name for plan in plans})


def build_worker(client: Client, task_queue: str, sessions: sessionmaker[Session], gateway: StripeGateway,
                 minimum_charge: int = DEFAULT_MINIMUM_CHARGE, tuning: WorkerTuning = WorkerTuning(),
                 issuer: Issuer | None = None, renderer: Callable[..., Any] | None = None) -> BillingWorker:
    """The workers of `tuning.queues`. `issuer` None: the one the environment's settings give
    (tests, benches). `renderer`: the activity that draws e-invoices, when not ours (a test
    stands a failing one in)."""
    workers: list[Worker] = []
    payments = PaymentActivities(sessions, gateway, minimum_charge)
    if "subscriptions" in tuning.queues:
        records = RecordActivities(sessions, issuer or issuer_from(Settings()))
        dunning = DunningActivities(client, task_queue)
        workers.append(Worker(
            client,
            task_queue=task_queue,
            workflows=[SubscriptionWorkflow, InvoiceDunningWorkflow],
            # charge_invoice stays here too: runs started before the payments queue charge here.
            activities=[records.open_subscription, records.record_state, records.free_lines, records.close_period,
                        records.issue_invoice, records.renew, records.mark_uncollectible, records.raise_alert,
                        payments.charge_invoice, dunning.start_dunning],
            # Activities are synchronous (SQLAlchemy, Stripe SDK): they run on these threads.
            activity_executor=ThreadPoolExecutor(tuning.activity_threads),
            max_concurrent_activities=tuning.activity_threads,
            max_cached_workflows=tuning.max_cached_workflows,
            # The sandbox still refuses non-deterministic calls at run time, but imports each module
            # once per process instead of once per workflow run: measured, re-importing the workflow
            # modules for every run (every renewal continues as new) was a quarter of the worker's time.
            workflow_runner=SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_all_modules()),
            # On SIGTERM, activities in hand get this long to finish (compose waits 30 s) before they
            # are cancelled; a charge cut short is resumed by another worker from its recorded attempt.
            graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        ))
    if "payments" in tuning.queues:
        workers.append(Worker(
            client,
            task_queue=payments_task_queue(task_queue),
            activities=[payments.charge_invoice],
            activity_executor=ThreadPoolExecutor(tuning.payment_threads),
            max_concurrent_activities=tuning.payment_threads,
            max_task_queue_activities_per_second=tuning.payments_per_second,
            graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        ))
    if "documents" in tuning.queues:
        if renderer is None:
            # Imported here: the drawing libraries (fpdf2, fontTools, pypdf, factur-x) cost about
            # 40 MB of memory, which a worker that never draws (WORKER_QUEUES without documents)
            # does not pay.
            from activities.documents import DocumentActivities

            renderer = DocumentActivities(sessions).render_invoice_document
        workers.append(Worker(
            client,
            task_queue=documents_task_queue(task_queue),
            activities=[renderer],
            activity_executor=ThreadPoolExecutor(tuning.document_threads),
            max_concurrent_activities=tuning.document_threads,
            graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        ))
    return BillingWorker(workers)


DEFAULT_METRICS_ADDRESS = "127.0.0.1:9464"


def missing_settings(settings: Settings) -> str | None:
    """Why the production worker cannot start with these settings, in one sentence; None if it can.
    Only what the queues it polls need: a documents-only worker draws from each invoice's
    snapshot, without Stripe or our identity."""
    queues = settings.worker_queues
    charges = queues != ("documents",)  # the subscriptions queue charges too (runs from before issue 10)
    if not (settings.database_url and settings.temporal_address
            and (settings.stripe_api_key or settings.stripe_api_base or not charges)):
        needs = "DATABASE_URL, TEMPORAL_ADDRESS and STRIPE_API_KEY (or STRIPE_API_BASE)" if charges else \
            "DATABASE_URL and TEMPORAL_ADDRESS"
        return f"the worker needs {needs}; `python -m starter run` starts an embedded stack instead"
    if "subscriptions" in queues and not {"seller_name", "seller_siren", "seller_vat_number"} <= settings.model_fields_set:
        return ("the worker needs our identity for the invoices: SELLER_NAME, SELLER_SIREN and "
                "SELLER_VAT_NUMBER (and SELLER_ADDRESS_LINE1, …): the demo company is for `run` only")
    return None


async def main() -> None:
    """The production worker: workflows, activities and the mail dispatcher, one process."""
    from notices.dispatcher import MailDispatcher, dispatch_forever
    from notices.smtp import SmtpServer
    from observability.logs import configure_logging
    from store.db import make_engine, make_session_factory

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    tuning = settings.worker_tuning()
    if (missing := missing_settings(settings)) is not None:
        raise SystemExit(missing)
    assert settings.database_url and settings.temporal_address  # checked just above
    smtp = SmtpServer.from_url(settings.smtp_url) if settings.smtp_url else None
    metrics_address = settings.metrics_address or DEFAULT_METRICS_ADDRESS
    install_runtime(metrics_address)
    client = await connect(settings.temporal_address, settings.temporal_namespace)
    gateway = StripeGateway(settings.stripe_api_key or "sk_test_localstripe", settings.stripe_api_base)
    sessions = make_session_factory(make_engine(settings.database_url, pool_size=tuning.database_connections,
                                                max_overflow=4))
    log = logging.getLogger("worker")
    log.info("worker polling %s (%s) on %s; metrics on http://%s/metrics", settings.task_queue,
             ", ".join(tuning.queues), settings.temporal_address, metrics_address)
    mailer = None
    if smtp is None and "subscriptions" in tuning.queues:
        log.warning("SMTP_URL is unset: notices stay in the outbox until a worker with SMTP_URL sends them")
    elif smtp is not None:
        log.info("sending e-mail through %s", smtp.describe())
        mailer = asyncio.create_task(dispatch_forever(MailDispatcher(sessions, smtp, settings.mail_from)))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # `docker stop`: finish the tasks in hand, then leave
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        issuer = issuer_from(settings) if "subscriptions" in tuning.queues else None
        async with build_worker(client, settings.task_queue, sessions, gateway, settings.minimum_charge, tuning,
                                issuer):
            await stop.wait()
            log.info("stopping: finishing the tasks in hand")
    finally:
        if mailer is not None:
            mailer.cancel()


if __name__ == "__main__":
    asyncio.run(main())
