"""Production draws e-invoices on workers of their own (`WORKER_QUEUES=documents`, compose's
documents-worker): the subscription workers bill and charge without drawing, and a real
`python -m starter worker` that polls only the documents queue, with neither Stripe nor our
identity in its environment, draws what they issued. Real dev server, PostgreSQL, localstripe."""
import asyncio
import os
import signal
import uuid
from contextlib import suppress
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from adapters.stripe_gateway import StripeGateway
from billing.catalog import parse_catalog
from billing.intervals import Line
from contracts.subscription import Payer
from settings import Settings
from starter.scenario import ScenarioClient, ScenarioFirm
from starter.service import SubscriptionService, workflow_id
from starter.simulate import SimulationParts, documents_worker_process, simulation
from store.db import make_engine, make_session_factory
from store.models import Client, Firm, Invoice, InvoiceDocument
from tests.waiting import wait_until
from worker import WorkerTuning, build_worker, connect
from workflows.subscription import RENDER_ACTIVITY

CATALOG = parse_catalog([
    {"code": "essentiel", "product": "einvoicing", "name": "Essentiel",
     "prices": {"monthly": 1900, "annual": 19000}, "quota": {"monthly": 50, "annual": 600}, "overage": 25},
])


async def render_workers(temporal: Any, client_id: str) -> list[str]:
    """The identities (pid@host) of the workers that started each e-invoice drawing of the
    client's subscription, read from its workflow history."""
    history = await temporal.get_workflow_handle(workflow_id(client_id, Line.EINVOICING)).fetch_history()
    renders = {event.event_id for event in history.events
               if event.activity_task_scheduled_event_attributes.activity_type.name == RENDER_ACTIVITY}
    return [event.activity_task_started_event_attributes.identity for event in history.events
            if event.activity_task_started_event_attributes.scheduled_event_id in renders]


def test_subscription_workers_bill_and_charge_and_a_documents_only_worker_draws_the_e_invoice(
    simulation_parts: SimulationParts, dev_server: object, database_url: str, tmp_path: Path,
) -> None:
    address = dev_server.address  # type: ignore[attr-defined]
    client_id = f"cli-{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        queue = f"queues-{uuid.uuid4().hex[:8]}"
        sessions = make_session_factory(make_engine(database_url))
        gateway = StripeGateway(simulation_parts.stripe_api_key, simulation_parts.stripe_api_base)
        temporal = await connect(address)
        service = SubscriptionService(temporal, sessions, CATALOG, gateway, queue)
        with sessions.begin() as session:
            session.add(Firm(id="cab-1", name="Cabinet Dupont"))
            session.flush()
            session.add(Client(id=client_id, name="Boulangerie Martin", firm_id="cab-1"))
        await service.register_card(payer=Payer(kind="firm", id="cab-1"), card="4242424242424242")

        def paid() -> bool:
            with sessions() as session:
                return session.scalars(select(Invoice.status)).all() == ["paid"]

        def drawn() -> list[int]:
            with sessions() as session:
                return list(session.scalars(select(InvoiceDocument.invoice_id)))

        billing_only = replace(WorkerTuning(), payments_per_second=1000.0, queues=("subscriptions", "payments"))
        drawer = None
        try:
            async with build_worker(temporal, queue, sessions, gateway, tuning=billing_only):
                await service.subscribe(client_id=client_id, plan_code="essentiel", interval="monthly",
                                        payer_kind="firm")
                await wait_until(paid)  # billed and charged with no documents worker at all
                assert drawn() == []
                drawer = documents_worker_process(database_url, address, "default", queue,
                                                  tmp_path / "documents-worker.log")
                await wait_until(lambda: len(drawn()) == 1 or drawer.poll() is not None)
                assert drawer.poll() is None, (tmp_path / "documents-worker.log").read_text()
            with sessions() as session:
                invoice = session.scalars(select(Invoice)).one()
                document = session.get_one(InvoiceDocument, invoice.id)
            assert document.pdf.startswith(b"%PDF-") and b"CrossIndustryInvoice" in document.xml
            assert [who.split("@")[0] for who in await render_workers(temporal, client_id)] == [str(drawer.pid)]
            drawer.send_signal(signal.SIGTERM)  # as `docker stop`: it stops cleanly
            assert drawer.wait(30) == 0, (tmp_path / "documents-worker.log").read_text()
        finally:
            with suppress(Exception):
                await temporal.get_workflow_handle(workflow_id(client_id, Line.EINVOICING)).terminate("test over")
            if drawer is not None and drawer.poll() is None:
                drawer.kill()
                drawer.wait()

    asyncio.run(main())


def test_a_simulation_drawing_apart_draws_every_invoice_in_its_documents_process(
    simulation_parts: SimulationParts,
) -> None:
    """`python -m starter simulate` and bench/simulate_year.py draw in a process of their own."""
    async def main() -> None:
        queue = f"apart-{uuid.uuid4().hex[:8]}"
        log = Settings().data_dir / "logs" / f"documents-worker-{queue}.log"
        async with simulation(CATALOG, simulation_parts, first_date=date(2025, 9, 1), task_queue=queue,
                              drawing_apart=True) as sim:
            await sim.add_parties([ScenarioFirm(id="cab-1", name="Cabinet Dupont", card="4242424242424242")],
                                  [ScenarioClient(id="cli-1", name="Boulangerie Martin", firm="cab-1")])
            await sim.advance_to(date(2025, 9, 1))
            await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly",
                                        payer_kind="firm")
            await sim.advance_to(date(2025, 10, 2))  # the renewal
            await sim.wait_for_documents()
            with sim.sessions() as session:
                drawn = session.scalars(select(InvoiceDocument.invoice_id).order_by(InvoiceDocument.invoice_id)).all()
            assert drawn == [1, 2]
            drawers = await render_workers(sim.env.client, "cli-1")
            assert len(drawers) == 2 and not any(who.startswith(f"{os.getpid()}@") for who in drawers), drawers
            assert f"worker polling {queue} (documents)" in log.read_text()  # the other process drew them

    asyncio.run(main())
