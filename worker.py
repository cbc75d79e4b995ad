"""Composition root: settings -> Temporal client -> activity objects -> Worker.

    python worker.py          run the worker against TEMPORAL_ADDRESS / DATABASE_URL / Stripe
"""
import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.worker import Worker

from activities.dunning import DunningActivities
from activities.payments import DEFAULT_MINIMUM_CHARGE, PaymentActivities
from activities.records import RecordActivities
from adapters.stripe_gateway import StripeGateway
from settings import Settings
from workflows.dunning import InvoiceDunningWorkflow
from workflows.subscription import SubscriptionWorkflow

ACTIVITY_THREADS = 16


def forward_core_logs(level: int = logging.WARNING) -> None:
    """Send the SDK core's logs to Python logging (stderr), never to stdout."""
    logger = logging.getLogger("temporalio.core")
    logger.setLevel(level)
    runtime = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logger),
    )))
    Runtime.set_default(runtime, error_if_already_set=False)


async def connect(address: str, namespace: str = "default") -> Client:
    return await Client.connect(address, namespace=namespace, data_converter=pydantic_data_converter)


def build_worker(client: Client, task_queue: str, sessions: sessionmaker[Session], gateway: StripeGateway,
                 minimum_charge: int = DEFAULT_MINIMUM_CHARGE) -> Worker:
    records = RecordActivities(sessions)
    payments = PaymentActivities(sessions, gateway, minimum_charge)
    dunning = DunningActivities(client, task_queue)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[SubscriptionWorkflow, InvoiceDunningWorkflow],
        activities=[records.open_subscription, records.record_state, records.free_lines, records.close_period,
                    records.issue_invoice, records.mark_uncollectible, records.raise_alert, payments.charge_invoice,
                    dunning.start_dunning],
        # Activities are synchronous (SQLAlchemy, Stripe SDK): they run on these threads.
        activity_executor=ThreadPoolExecutor(ACTIVITY_THREADS),
        max_concurrent_activities=ACTIVITY_THREADS,
    )


async def main() -> None:
    from store.db import make_engine, make_session_factory

    forward_core_logs()
    settings = Settings()
    if not (settings.database_url and settings.temporal_address and (settings.stripe_api_key or settings.stripe_api_base)):
        raise SystemExit("worker.py needs DATABASE_URL, TEMPORAL_ADDRESS and STRIPE_API_KEY "
                         "(or STRIPE_API_BASE); `python -m starter run` starts an embedded stack instead")
    client = await connect(settings.temporal_address, settings.temporal_namespace)
    gateway = StripeGateway(settings.stripe_api_key or "sk_test_localstripe", settings.stripe_api_base)
    sessions = make_session_factory(make_engine(settings.database_url))
    await build_worker(client, settings.task_queue, sessions, gateway, settings.minimum_charge).run()


if __name__ == "__main__":
    asyncio.run(main())
