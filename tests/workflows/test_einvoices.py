"""Issue 11, end to end: the real workflows issue every kind of invoice (first fee, 0 €,
proration, renewal with overage, final overage); each gets its Factur-X e-invoice, rendered by
the activity beside the charge and stored once. Its XML passes the XSD and the EN 16931
schematron, the PDF carries exactly that XML, and every amount in it is our invoice's."""
import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import facturx
import pytest
from lxml import etree
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import selectinload

from billing.catalog import parse_catalog
from einvoice.cii import cii_xml
from einvoice.snapshot import document_for
from einvoice.validation import xsd_errors
from starter.scenario import ScenarioClient, ScenarioFirm
from starter.simulate import Simulation, SimulationParts, simulation
from store.invoice_documents import sha256, to_render
from store.models import Client, Firm, Invoice, InvoiceDocument
from tests.einvoice_rules import errors

CATALOG = parse_catalog([
    {"code": "essentiel", "product": "einvoicing", "name": "Essentiel",
     "prices": {"monthly": 1900, "annual": 19000}, "quota": {"monthly": 50, "annual": 600}, "overage": 25},
    {"code": "standard", "product": "einvoicing", "name": "Standard",
     "prices": {"monthly": 3900, "annual": 39000}, "quota": {"monthly": 200, "annual": 2400}, "overage": 19},
    {"code": "gratuit", "product": "einvoicing", "name": "Gratuit",
     "prices": {"monthly": 0}, "quota": {"monthly": 0}, "overage": 0},
])
PROJECT = Path(__file__).resolve().parents[2]
START = date(2025, 9, 1)
CARD = "4242424242424242"
NS = {"rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
      "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
      "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"}


async def use(sim: Simulation, client_id: str, documents: int, event_id: str) -> None:
    now = await sim.env.get_current_time()
    await sim.service.report_usage(event_id=event_id, client_id=client_id, occurred_at=now.astimezone(UTC),
                                   documents=documents)


async def first_invoice_drawn(sim: Simulation) -> None:
    """cli-1 of cab-1 subscribes (the firm pays) and its first invoice's e-invoice is stored."""
    await sim.add_parties([ScenarioFirm(id="cab-1", name="Cabinet Dupont", card=CARD)],
                          [ScenarioClient(id="cli-1", name="Boulangerie Martin", firm="cab-1")])
    await sim.advance_to(START)
    await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="firm")
    await sim.wait_for_documents()


def cents(root: etree._Element, path: str) -> int:
    found = root.findtext(path, namespaces=NS)
    assert found is not None, path
    return int(Decimal(found) * 100)


def test_every_kind_of_invoice_gets_a_valid_factur_x_whose_amounts_are_ours(simulation_parts: SimulationParts) -> None:
    async def main() -> tuple[list[Invoice], dict[int, InvoiceDocument], list[bool]]:
        async with simulation(CATALOG, simulation_parts, first_date=START) as sim:
            await sim.add_parties([ScenarioFirm(id="cab-1", name="Cabinet Dupont", card=CARD)],
                                  [ScenarioClient(id="cli-1", name="Boulangerie Martin", firm="cab-1"),
                                   ScenarioClient(id="cli-2", name="Pharmacie Roux", firm="cab-1")])
            with sim.sessions.begin() as session:
                firm = session.get_one(Firm, "cab-1")
                firm.legal_name, firm.siren, firm.vat_number = "Cabinet Dupont SARL", "552100554", "FR96552100554"
                firm.address_line1, firm.postal_code, firm.city = "1 place Bellecour", "69002", "Lyon"
            await sim.advance_to(START)
            await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="firm")
            await sim.service.subscribe(client_id="cli-2", plan_code="gratuit", interval="monthly", payer_kind="client")
            await sim.advance_to(START + timedelta(days=15))
            await sim.service.change_plan(client_id="cli-1", plan_code="standard")  # proration
            await use(sim, "cli-1", 260, "e-1")  # 60 beyond Standard's 200: billed at the renewal
            await sim.advance_to(date(2025, 10, 2))
            await use(sim, "cli-1", 230, "e-2")  # 30 beyond: billed in the final invoice
            await sim.service.cancel(client_id="cli-1")
            await sim.advance_to(date(2025, 11, 2))
            await sim.wait_for_documents()
            with sim.sessions.begin() as session:
                # A later move of the firm changes nothing in what was issued.
                session.get_one(Firm, "cab-1").city = "Villeurbanne"
            with sim.sessions() as session:
                invoices = list(session.scalars(select(Invoice).options(selectinload(Invoice.lines))
                                                .where(Invoice.number.is_not(None)).order_by(Invoice.number)))
                documents = {d.invoice_id: d for d in session.scalars(select(InvoiceDocument))}
                rendered_again = []
                for invoice in invoices:
                    source = to_render(session, invoice.id)
                    assert source is not None
                    rendered_again.append(cii_xml(document_for(source.invoice, source.parties))
                                          == documents[invoice.id].xml)
                session.expunge_all()
            return invoices, documents, rendered_again

    invoices, documents, rendered_again = asyncio.run(main())
    kinds = [tuple(line.kind for line in i.lines) for i in invoices]
    # cli-1: first fee, proration, renewal with overage, final overage; cli-2: three 0 € fees
    # (on a renewal day the two renew in either order).
    assert sorted(kinds) == sorted([("subscription",), ("proration",), ("subscription", "overage"), ("overage",),
                                    ("subscription",), ("subscription",), ("subscription",)])
    assert any(i.total == 0 for i in invoices)
    assert set(documents) == {i.id for i in invoices}  # one e-invoice each, no more
    assert all(rendered_again)  # from the snapshot: the same XML, whatever changed since

    for invoice in invoices:
        document = documents[invoice.id]
        assert document.xml_sha256 == sha256(document.xml) and document.pdf_sha256 == sha256(document.pdf)
        assert xsd_errors(document.xml) == [], invoice.display_number
        assert errors(document.xml) == [], invoice.display_number
        assert facturx.get_xml_from_pdf(document.pdf, check_xsd=True)[1] == document.xml
        root = etree.fromstring(document.xml)
        assert root.findtext("rsm:ExchangedDocument/ram:ID", namespaces=NS) == invoice.display_number
        assert root.findtext(".//ram:IssueDateTime/udt:DateTimeString", namespaces=NS) == f"{invoice.issued_on:%Y%m%d}"
        totals = ".//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:"
        assert cents(root, totals + "LineTotalAmount") == invoice.subtotal
        assert cents(root, totals + "TaxTotalAmount") == invoice.tax
        assert cents(root, totals + "GrandTotalAmount") == invoice.total
        assert cents(root, totals + "DuePayableAmount") == invoice.total  # paid later by card; 0 € is 0
        items = root.findall(".//ram:IncludedSupplyChainTradeLineItem", NS)
        assert [cents(item, ".//ram:LineTotalAmount") for item in items] == [line.amount for line in invoice.lines]
        buyer = root.findtext(".//ram:BuyerTradeParty/ram:Name", namespaces=NS)
        if invoice.payer_kind == "firm":
            assert buyer == "Cabinet Dupont SARL"
            assert root.findtext(".//ram:BuyerTradeParty//ram:CityName", namespaces=NS) == "Lyon"
        else:
            assert buyer == "Pharmacie Roux"


def test_an_issued_e_invoice_cannot_be_altered_nor_deleted(simulation_parts: SimulationParts) -> None:
    async def main() -> None:
        async with simulation(CATALOG, simulation_parts, first_date=START) as sim:
            await first_invoice_drawn(sim)
            for statement in ("update invoice_documents set xml = 'x'", "delete from invoice_documents",
                              "truncate invoice_documents", "update invoices set parties = '{}'::jsonb"):
                with pytest.raises(DBAPIError, match="cannot be"), sim.sessions.begin() as session:
                    session.execute(text(statement))
            with sim.sessions() as session:
                assert session.scalar(select(InvoiceDocument.xml_sha256)) is not None
                client = session.get_one(Client, "cli-1")
                assert client.name == "Boulangerie Martin"

    asyncio.run(main())


def test_rendering_is_idempotent_and_an_invoice_from_before_e_invoicing_has_none(
        simulation_parts: SimulationParts) -> None:
    from activities.documents import DocumentActivities
    from contracts.activities import RenderDocument

    async def main() -> None:
        async with simulation(CATALOG, simulation_parts, first_date=START) as sim:
            await first_invoice_drawn(sim)
            with sim.sessions() as session:
                invoice = session.scalars(select(Invoice)).one()
                invoice_id, number, stored_at = invoice.id, invoice.display_number, session.scalars(
                    select(InvoiceDocument.rendered_at)).one()
            activities = DocumentActivities(sim.sessions)
            first = await asyncio.to_thread(activities.render_invoice_document,
                                            RenderDocument(invoice_id=invoice_id, number=number or ""))
            assert first is not None
            with sim.sessions() as session:
                assert session.scalars(select(InvoiceDocument.rendered_at)).one() == stored_at  # found, not redrawn
            with sim.sessions.begin() as session:  # as numbered before e-invoicing: no snapshot
                session.execute(text("delete from notifications"))
                invoice = session.get_one(Invoice, invoice_id)
                twin = Invoice(idempotency_key="old", series="F", number=999, client_id=invoice.client_id,
                               payer_kind=invoice.payer_kind, payer_id=invoice.payer_id, issued_on=invoice.issued_on,
                               status="open", subtotal=0, tax=0, total=0, finalized_at=datetime.now(UTC))
                session.add(twin)
                session.flush()
                old_id = twin.id
            assert await asyncio.to_thread(activities.render_invoice_document,
                                           RenderDocument(invoice_id=old_id, number="F-00000999")) is None

    asyncio.run(main())


def test_a_renderer_that_fails_never_blocks_billing_nor_charging(simulation_parts: SimulationParts) -> None:
    """The documents queue's renderer fails for now (retried): the first invoice and the
    upgrade's are billed and charged meanwhile, and drawn once it is back. Then it fails for
    good: the renewal is billed and charged, the operator alerted. (The failures are stood in
    front of our own drawing activity, named as such; Temporal, PostgreSQL and Stripe are real.)"""
    import time

    from temporalio import activity
    from temporalio.exceptions import ApplicationError

    from activities.documents import DocumentActivities
    from activities.errors import UNRECOVERABLE
    from adapters.stripe_gateway import StripeGateway
    from contracts.activities import RenderDocument, RenderedDocument
    from store.models import OperatorAlert
    from worker import build_worker

    mode = "down"
    attempts: set[int] = set()
    queue = f"documents-{time.monotonic_ns()}"

    async def main() -> None:
        nonlocal mode
        async with simulation(CATALOG, simulation_parts, first_date=START, task_queue=queue, worker=False) as sim:
            ours = DocumentActivities(sim.sessions)

            @activity.defn(name="render_invoice_document")
            def failing_renderer(request: RenderDocument) -> RenderedDocument | None:  # the stand-in
                attempts.add(request.invoice_id)
                if mode == "down":
                    raise RuntimeError("the drawing service is away")  # retried
                if mode == "broken":
                    raise ApplicationError("KeyError: 'font'", type=UNRECOVERABLE, non_retryable=True)
                return ours.render_invoice_document(request)

            gateway = StripeGateway(simulation_parts.stripe_api_key, simulation_parts.stripe_api_base)
            await sim.add_parties([ScenarioFirm(id="cab-1", name="Cabinet Dupont", card=CARD)],
                                  [ScenarioClient(id="cli-1", name="Boulangerie Martin", firm="cab-1")])
            async with build_worker(sim.env.client, queue, sim.sessions, gateway, renderer=failing_renderer):
                await sim.advance_to(START)
                await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly",
                                            payer_kind="firm")
                await sim.service.change_plan(client_id="cli-1", plan_code="standard")
                await until(lambda: paid(sim) == 2 and len(attempts) == 2)
                assert documents(sim) == 0
                mode = "back"
                await sim.wait_for_documents()  # retried: both drawn
                assert documents(sim) == 2
                mode = "broken"
                await sim.advance_to(date(2025, 10, 2))  # the renewal, billed and charged all the same
                await until(lambda: paid(sim) == 3 and bool(alerts(sim)))
                assert documents(sim) == 2
                assert alerts(sim) == ["invoice F-00000003: KeyError: 'font'"]
            # The operator draws what was given up, once the cause is fixed.
            env = {**os.environ, "DATABASE_URL": sim.database_url, "PYTHONPATH": str(PROJECT)}
            done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "starter", "invoices", "render-missing"],
                                           cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            assert "F-00000003: rendered" in done.stdout and "1 of 1 e-invoices rendered" in done.stdout
            assert documents(sim) == 3

    def paid(sim: Simulation) -> int:
        with sim.sessions() as session:
            return len(session.scalars(select(Invoice.id).where(Invoice.status == "paid")).all())

    def documents(sim: Simulation) -> int:
        with sim.sessions() as session:
            return len(session.scalars(select(InvoiceDocument.invoice_id)).all())

    def alerts(sim: Simulation) -> list[str]:
        with sim.sessions() as session:
            return list(session.scalars(select(OperatorAlert.error).where(OperatorAlert.step == "render_document")))

    async def until(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(120):  # a hang guard, not a timing
            while not await asyncio.to_thread(condition):
                await asyncio.sleep(0.05)

    asyncio.run(main())
