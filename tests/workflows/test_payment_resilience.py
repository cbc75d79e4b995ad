"""Exactly one charge per invoice, whatever crashes (R4, R11): the worker process is killed
(SIGKILL) at each step of a charge and restarted; Stripe is cut off during a renewal and
comes back. Real localstripe, PostgreSQL, time-skipping server; no mock."""
import asyncio
import os
import subprocess
import sys
import uuid
from contextlib import suppress
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from adapters.stripe_gateway import StripeGateway
from billing.catalog import parse_catalog
from billing.intervals import Line
from billing.invoices import InvoiceLine, LineKind, draft
from contracts.subscription import Payer
from settings import PROJECT_ROOT
from starter.scenario import ScenarioClient, ScenarioFirm
from starter.service import SubscriptionService, workflow_id
from starter.simulate import Simulation, SimulationParts, simulation
from store.db import make_engine, make_session_factory
from store.invoices import draft_invoice, finalize_invoice
from store.models import Client, Firm, Invoice, PaymentAttempt, PaymentAttemptInvoice, PaymentCustomer
from tests.tcp_proxy import TcpProxy
from tests.waiting import wait_until
from worker import connect

CATALOG = parse_catalog([
    {"code": "essentiel", "product": "einvoicing", "name": "Essentiel",
     "prices": {"monthly": 1900, "annual": 19000}, "quota": {"monthly": 50, "annual": 600}, "overage": 25},
])
START = date(2025, 9, 1)
FIRM = ScenarioFirm(id="cab-1", name="Cabinet Dupont", card="4242424242424242")
CLIENT = ScenarioClient(id="cli-1", name="Boulangerie Martin", firm="cab-1")


def intents_of(customer: str, parts: SimulationParts) -> dict[str, list[str]]:
    """The customer's PaymentIntents in localstripe, by invoice id: their statuses."""
    by_invoice: dict[str, list[str]] = {}
    for view, owner, invoice_id in StripeGateway(parts.stripe_api_key, parts.stripe_api_base).list_intents():
        if owner == customer:
            by_invoice.setdefault(str(invoice_id), []).append(view.status)
    return by_invoice


def attempts_and_status(sim: Simulation, invoice_id: int) -> tuple[list[str], str]:
    with sim.sessions() as session:
        attempts = session.scalars(select(PaymentAttempt.status).where(PaymentAttempt.invoice_id == invoice_id)).all()
        return list(attempts), session.get_one(Invoice, invoice_id).status


def invoice_statuses(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(Invoice.status).order_by(Invoice.id)))


def spawn_worker(database_url: str, temporal_address: str, parts: SimulationParts, queue: str,
                 crash_at: str, marker: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, DATABASE_URL=database_url, TEMPORAL_ADDRESS=temporal_address,
               STRIPE_API_KEY=parts.stripe_api_key, STRIPE_API_BASE=parts.stripe_api_base or "")
    log = open(marker.parent / f"worker-{crash_at}.log", "ab")  # noqa: SIM115  (kept by the child)
    return subprocess.Popen([sys.executable, "-m", "tests.crash_worker", queue, crash_at, str(marker)],
                            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def waiting_invoice(sessions: sessionmaker[Session], client_id: str) -> int:
    """R16: an earlier final overage of one document (0.25 € + VAT = 0.30 €), below the minimum
    charge: open, waiting for the firm's next charge."""
    with sessions.begin() as session:
        line = InvoiceLine(LineKind.OVERAGE, "essentiel", date(2025, 8, 1), date(2025, 9, 1), 1, 25)
        invoice = draft_invoice(session, idempotency_key="earlier-final-overage", client_id=client_id,
                                payer_kind="firm", payer_id="cab-1", issued_on=date(2025, 9, 1), content=draft(line))
        invoice = finalize_invoice(session, invoice.id)
        invoice.waiting_since = date(2025, 9, 1)
        return invoice.id


@pytest.mark.parametrize("combined", [False, True], ids=["alone", "combined"])
@pytest.mark.parametrize("crash_at", ["before_create", "after_create", "after_store", "after_confirm"])
def test_worker_killed_at_each_step_of_a_charge_charges_exactly_once(
    crash_at: str, combined: bool, simulation_parts: SimulationParts, dev_server: object, database_url: str,
    tmp_path: Path,
) -> None:
    """On the real dev server (real time): a dead worker's charge is retried once its heartbeat
    times out (15 s), by the restarted worker. `combined` (issue 7 item 6, R16): the charge also
    collects the firm's waiting 0.30 € invoice, in the same PaymentIntent, exactly once."""
    address = dev_server.address  # type: ignore[attr-defined]
    client_id = f"cli-{uuid.uuid4().hex[:8]}"  # workflow ids are per client: one per test

    async def main() -> None:
        queue = f"kill-{uuid.uuid4().hex[:8]}"
        sessions = make_session_factory(make_engine(database_url))
        gateway = StripeGateway(simulation_parts.stripe_api_key, simulation_parts.stripe_api_base)
        temporal = await connect(address)
        service = SubscriptionService(temporal, sessions, CATALOG, gateway, queue)
        with sessions.begin() as session:
            session.add(Firm(id="cab-1", name="Cabinet Dupont"))
            session.flush()
            session.add(Client(id=client_id, name="Boulangerie Martin", firm_id="cab-1"))
        waiting = waiting_invoice(sessions, client_id) if combined else None
        await service.register_card(payer=Payer(kind="firm", id="cab-1"), card="4242424242424242")
        marker = tmp_path / "killed"
        first = spawn_worker(database_url, address, simulation_parts, queue, crash_at, marker)
        second = None
        subscribing = asyncio.create_task(service.subscribe(
            client_id=client_id, plan_code="essentiel", interval="monthly", payer_kind="firm"))
        try:
            await wait_until(lambda: first.poll() is not None)
            assert first.returncode == -9 and marker.read_text() == crash_at  # it died where we said
            second = spawn_worker(database_url, address, simulation_parts, queue, "none", marker)
            await wait_until(lambda: invoice_statuses(sessions) == ["paid"] * (2 if combined else 1))
            state = await asyncio.wait_for(subscribing, timeout=120)  # the caller gets its answer too
        finally:
            subscribing.cancel()
            with suppress(BaseException):
                await subscribing
            with suppress(Exception):
                await temporal.get_workflow_handle(workflow_id(client_id, Line.EINVOICING)).terminate("test over")
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()
        assert state.status.value == "active"
        with sessions() as session:
            (invoice_id,) = session.scalars(select(Invoice.id).where(Invoice.id != waiting)).all()
            attempts = session.scalars(select(PaymentAttempt).where(PaymentAttempt.invoice_id == invoice_id)).all()
            assert [a.status for a in attempts] == ["succeeded"]
            collected = session.scalars(select(PaymentAttemptInvoice.invoice_id)
                                        .where(PaymentAttemptInvoice.attempt_id == attempts[0].id)).all()
            assert sorted(collected) == sorted([invoice_id] + ([waiting] if waiting else []))
            amount = sum(session.get_one(Invoice, i).total for i in collected)
            assert attempts[0].amount == amount == (2280 + 30 if combined else 2280)
            customer = session.get_one(PaymentCustomer, ("firm", "cab-1")).stripe_customer_id
        ours = [(v, inv) for v, owner, inv in StripeGateway(
            simulation_parts.stripe_api_key, simulation_parts.stripe_api_base).list_intents() if owner == customer]
        statuses = [v.status for v, inv in ours if inv == invoice_id]
        print(f"killed {crash_at}{' (combined)' if combined else ''}: intents of the charge {statuses}")  # -rP
        assert statuses.count("succeeded") == 1, statuses  # one charge; at most an unconfirmed orphan
        assert set(statuses) <= {"succeeded", "requires_confirmation", "canceled"}
        assert [v.amount for v, inv in ours if inv == invoice_id and v.status == "succeeded"] == [amount]
        assert [inv for _, inv in ours if inv != invoice_id] == []  # the waiting invoice was never charged alone
    asyncio.run(main())


@pytest.mark.parametrize("outage", ["connection refused", "503", "429"])
def test_stripe_down_during_a_renewal_is_retried_until_it_answers_and_charges_once(
    outage: str, simulation_parts: SimulationParts, localstripe: object
) -> None:
    proxy = TcpProxy(localstripe.port)  # type: ignore[attr-defined]
    parts = replace(simulation_parts, stripe_api_base=proxy.url)

    async def main() -> None:
        async with simulation(CATALOG, parts, first_date=START) as sim:
            await sim.add_parties([FIRM], [CLIENT])
            await sim.advance_to(START)
            await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="firm")
            await sim.settle()  # the first fee is charged (after subscribe answered, R17) before the outage
            if outage == "connection refused":
                proxy.cut()
            else:
                proxy.answer_errors(int(outage))
            now = await sim.env.get_current_time()
            await sim.env.sleep(timedelta(days=30, hours=13) - (now - now.replace(hour=0, minute=0)))
            with sim.sessions() as session:
                renewal = session.scalars(select(Invoice).where(Invoice.number == 2)).one()
            assert renewal.status == "open"  # issued, its charge still failing against a dead Stripe
            proxy.heal()
            await sim.env.sleep(timedelta(minutes=5))  # the next retry finds Stripe back
            await sim.settle()
            attempts, status = attempts_and_status(sim, renewal.id)
            assert (attempts, status) == (["succeeded"], "paid")
            with sim.sessions() as session:
                customer = session.get_one(PaymentCustomer, ("firm", "cab-1")).stripe_customer_id
            assert intents_of(customer, parts)[str(renewal.id)].count("succeeded") == 1
            attempts_seen = [e.activity_task_started_event_attributes.attempt
                             for h in await sim.histories() for e in h.events
                             if e.HasField("activity_task_started_event_attributes")]
            assert max(attempts_seen) > 1  # the charge did fail against the dead Stripe, and was retried
            report = sim.report()
            assert [i["status"] for i in report["invoices"]] == ["paid", "paid"]
            assert report["subscriptions"][0]["status"] == "active"
    try:
        asyncio.run(main())
    finally:
        proxy.cut()
