"""The Stripe webhook against the real localstripe and PostgreSQL: a signed event makes us
fetch the PaymentIntent again and record what Stripe says; anything unsigned changes nothing."""
import hashlib
import hmac
import json
import time
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from adapters.stripe_gateway import StripeGateway
from billing.invoices import InvoiceDraft, InvoiceLine, LineKind
from embedded.stripe_server import LOCALSTRIPE_KEY
from starter.api import create_app
from store.invoices import draft_invoice, finalize_invoice
from store.models import Client, Firm, Invoice, PaymentAttempt

pytestmark = pytest.mark.postgres
SECRET = "whsec_test_secret"


def signed(event: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    payload = json.dumps(event).encode()
    stamp = int(time.time())
    signature = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, {"stripe-signature": f"t={stamp},v1={signature}", "content-type": "application/json"}


def event(intent_id: str, status: str = "succeeded") -> dict[str, Any]:
    return {"id": "evt_1", "object": "event", "type": f"payment_intent.{status}",
            "data": {"object": {"id": intent_id, "object": "payment_intent", "status": status}}}


@pytest.fixture
def pending_charge(session_factory: sessionmaker[Session], localstripe: Any) -> tuple[StripeGateway, int, str]:
    """An open invoice whose attempt holds an unconfirmed PaymentIntent (a charge in flight)."""
    gateway = StripeGateway(LOCALSTRIPE_KEY, localstripe.api_base)
    customer = gateway.create_customer(name="Cabinet Dupont", payer_label="firm:cab-1")
    method = gateway.attach_card(customer, "4242424242424242")
    with session_factory.begin() as session:
        session.add(Firm(id="cab-1", name="Cabinet Dupont"))
        session.flush()
        session.add(Client(id="cli-1", name="Boulangerie Martin", firm_id="cab-1"))
        session.flush()
        fee = InvoiceDraft((InvoiceLine(LineKind.SUBSCRIPTION, "essentiel", date(2025, 9, 1), date(2025, 10, 1), 1, 1900),))
        invoice = draft_invoice(session, idempotency_key="k", client_id="cli-1", payer_kind="firm",
                                payer_id="cab-1", issued_on=date(2025, 9, 1), content=fee)
        finalize_invoice(session, invoice.id)
        intent = gateway.create_intent(amount=invoice.total, customer_id=customer, payment_method=method,
                                       invoice_id=invoice.id, idempotency_key="invoice-1-attempt-1")
        session.add(PaymentAttempt(invoice_id=invoice.id, attempt_no=1, idempotency_key="invoice-1-attempt-1",
                                   amount=invoice.total, status="pending", stripe_payment_intent_id=intent))
        return gateway, invoice.id, intent


def statuses(factory: sessionmaker[Session], invoice_id: int) -> tuple[str, str]:
    with factory() as session:
        invoice = session.get_one(Invoice, invoice_id)
        attempt = session.query(PaymentAttempt).filter_by(invoice_id=invoice_id).one()
        return invoice.status, attempt.status


def test_unsigned_or_badly_signed_events_are_refused_and_change_nothing(
    session_factory: sessionmaker[Session], pending_charge: tuple[StripeGateway, int, str]
) -> None:
    gateway, invoice_id, intent = pending_charge
    gateway.confirm_intent(intent)  # Stripe did charge: only a valid event may tell us
    api = TestClient(create_app(session_factory, gateway, SECRET))
    payload, headers = signed(event(intent), secret="whsec_someone_else")
    unsigned = api.post("/stripe/webhook", content=json.dumps(event(intent)), headers={"content-type": "application/json"})
    badly_signed = api.post("/stripe/webhook", content=payload, headers=headers)
    assert (unsigned.status_code, badly_signed.status_code) == (400, 400)
    assert "signature" in unsigned.json()["detail"]
    assert statuses(session_factory, invoice_id) == ("open", "pending")


def test_a_signed_event_is_checked_against_stripe_not_believed(
    session_factory: sessionmaker[Session], pending_charge: tuple[StripeGateway, int, str]
) -> None:
    gateway, invoice_id, intent = pending_charge
    settled: list[int] = []

    async def on_settled(invoice: Invoice) -> None:
        settled.append(invoice.id)

    api = TestClient(create_app(session_factory, gateway, SECRET, on_settled))
    early = api.post("/stripe/webhook", **dict(zip(("content", "headers"), signed(event(intent)), strict=True)))
    assert early.status_code == 200 and early.json()["status"] == "pending"  # Stripe says not yet
    assert statuses(session_factory, invoice_id) == ("open", "pending")

    gateway.confirm_intent(intent)
    payload, headers = signed(event(intent))
    assert api.post("/stripe/webhook", content=payload, headers=headers).json()["status"] == "newly_paid"
    assert api.post("/stripe/webhook", content=payload, headers=headers).json()["status"] == "paid"  # resent
    assert statuses(session_factory, invoice_id) == ("paid", "succeeded")
    assert settled == [invoice_id]


def test_events_for_payments_that_are_not_ours_are_ignored(
    session_factory: sessionmaker[Session], pending_charge: tuple[StripeGateway, int, str]
) -> None:
    gateway, _, _ = pending_charge
    customer = gateway.create_customer(name="Someone else", payer_label="other")
    card = gateway.attach_card(customer, "4242424242424242")
    foreign = gateway.create_intent(amount=100, customer_id=customer, payment_method=card,
                                    invoice_id=999, idempotency_key="x")
    api = TestClient(create_app(session_factory, gateway, SECRET))
    payload, headers = signed(event(foreign))
    assert api.post("/stripe/webhook", content=payload, headers=headers).json()["status"] == "ignored"


class CountingGateway(StripeGateway):
    """Our gateway to the real localstripe, counting the reads the webhook makes."""

    reads = 0

    def retrieve_intent(self, intent_id: str):  # type: ignore[no-untyped-def]
        self.reads += 1
        return super().retrieve_intent(intent_id)


def test_the_webhook_reads_stripe_only_when_an_event_may_change_our_records(
    session_factory: sessionmaker[Session], pending_charge: tuple[StripeGateway, int, str], localstripe: Any
) -> None:
    """docs/scaling.md §3: on renewal day every read counts against Stripe's limit."""
    real, invoice_id, intent = pending_charge
    gateway = CountingGateway(LOCALSTRIPE_KEY, localstripe.api_base)
    api = TestClient(create_app(session_factory, gateway, SECRET))

    def post(kind: str, intent_id: str = intent) -> dict[str, Any]:
        payload, headers = signed(event(intent_id, kind))
        answer = api.post("/stripe/webhook", content=payload, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert post("created")["status"] == "ignored" and gateway.reads == 0  # settles nothing
    assert post("succeeded", "pi_not_ours")["status"] == "ignored" and gateway.reads == 0
    assert post("succeeded")["status"] == "pending" and gateway.reads == 1  # in flight: Stripe is asked
    real.confirm_intent(intent)
    assert post("succeeded")["status"] == "newly_paid" and gateway.reads == 2
    assert post("succeeded") == {"status": "paid", "invoice": "F-00000001"} and gateway.reads == 2  # final
    assert statuses(session_factory, invoice_id) == ("paid", "succeeded")
