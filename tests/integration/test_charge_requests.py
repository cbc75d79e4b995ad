"""The charge activity's requests to Stripe (docs/scaling.md §3): a first attempt creates and
confirms its PaymentIntent, nothing more; an intent confirmed meanwhile by another execution
(one that outlived its timeout) is read and recorded, never charged twice. Real localstripe and
PostgreSQL; the activity runs in the SDK's ActivityEnvironment (its context, no server)."""
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.payments import PaymentActivities
from adapters.stripe_gateway import IntentView, StripeGateway
from billing.invoices import InvoiceDraft, InvoiceLine, LineKind
from billing.statuses import ChargeResult
from contracts.activities import ChargeInvoice
from embedded.stripe_server import LOCALSTRIPE_KEY
from store.invoices import draft_invoice, finalize_invoice
from store.models import Client, Firm, Invoice, PaymentAttempt, PaymentAttemptInvoice, PaymentCustomer

pytestmark = pytest.mark.postgres


class CountingGateway(StripeGateway):
    """Our gateway to the real localstripe, counting requests by kind; with `racing`, another
    execution confirms the intent just before this one does (a stand-in for that execution)."""

    def __init__(self, api_base: str, racing: bool = False) -> None:
        super().__init__(LOCALSTRIPE_KEY, api_base)
        self.other_execution = StripeGateway(LOCALSTRIPE_KEY, api_base)
        self.requests: list[str] = []
        self.racing = racing

    def create_intent(self, **kwargs: Any) -> str:
        self.requests.append("create")
        return super().create_intent(**kwargs)

    def retrieve_intent(self, intent_id: str) -> IntentView:
        self.requests.append("read")
        return super().retrieve_intent(intent_id)

    def confirm_intent(self, intent_id: str) -> IntentView:
        if self.racing:
            self.racing = False
            self.other_execution.confirm_intent(intent_id)
        self.requests.append("confirm")
        return super().confirm_intent(intent_id)


def open_invoice(sessions: sessionmaker[Session], gateway: StripeGateway) -> tuple[int, str]:
    """An open 22.80 € invoice of cab-1, whose Stripe customer (returned) has a card."""
    customer = gateway.create_customer(name="Cabinet Dupont", payer_label="firm:cab-1")
    method = gateway.attach_card(customer, "4242424242424242")
    with sessions.begin() as session:
        session.add(Firm(id="cab-1", name="Cabinet Dupont"))
        session.flush()
        session.add(Client(id="cli-1", name="Boulangerie Martin", firm_id="cab-1"))
        session.add(PaymentCustomer(payer_kind="firm", payer_id="cab-1", stripe_customer_id=customer,
                                    default_payment_method=method))
        fee = InvoiceDraft((InvoiceLine(LineKind.SUBSCRIPTION, "essentiel", date(2025, 9, 1), date(2025, 10, 1), 1, 1900),))
        invoice = draft_invoice(session, idempotency_key="k", client_id="cli-1", payer_kind="firm",
                                payer_id="cab-1", issued_on=date(2025, 9, 1), content=fee)
        return finalize_invoice(session, invoice.id).id, customer


def succeeded_intents(gateway: StripeGateway, customer: str) -> int:
    return sum(1 for view, owner, _ in gateway.list_intents() if owner == customer and view.status == "succeeded")


@pytest.mark.parametrize("racing", [False, True], ids=["alone", "confirmed-meanwhile"])
def test_a_first_charge_creates_and_confirms_its_intent_and_nothing_more(
    session_factory: sessionmaker[Session], localstripe: Any, racing: bool
) -> None:
    gateway = CountingGateway(localstripe.api_base, racing)
    invoice_id, customer = open_invoice(session_factory, gateway)
    gateway.requests.clear()
    charge = PaymentActivities(session_factory, gateway).charge_invoice
    outcome = ActivityEnvironment().run(charge, ChargeInvoice(invoice_id=invoice_id, business_date=date(2025, 9, 1)))
    assert outcome.status == ChargeResult.PAID
    # Refused as already confirmed, the intent is read to learn what the other execution did.
    assert gateway.requests == (["create", "confirm", "read"] if racing else ["create", "confirm"])
    with session_factory() as session:
        assert session.get_one(Invoice, invoice_id).status == "paid"
        assert session.scalars(select(PaymentAttempt.status)).all() == ["succeeded"]
    assert succeeded_intents(gateway, customer) == 1


def test_a_retry_whose_intent_another_execution_confirms_between_its_read_and_its_confirm_records_the_payment(
    session_factory: sessionmaker[Session], localstripe: Any
) -> None:
    """Execution A created and stored the intent, then outlived its timeout; the retry B reads it
    unconfirmed, A's confirm lands, B's confirm is refused: B records the payment (not an error
    that would put a paid invoice on hold), and nothing is charged twice."""
    gateway = CountingGateway(localstripe.api_base, racing=True)
    invoice_id, customer = open_invoice(session_factory, gateway)
    with session_factory.begin() as session:
        payer = session.get_one(PaymentCustomer, ("firm", "cab-1"))
        assert payer.default_payment_method is not None
        intent = gateway.create_intent(amount=2280, customer_id=customer, payment_method=payer.default_payment_method,
                                       invoice_id=invoice_id, idempotency_key=f"invoice-{invoice_id}-attempt-1")
        attempt = PaymentAttempt(invoice_id=invoice_id, attempt_no=1, idempotency_key=f"invoice-{invoice_id}-attempt-1",
                                 amount=2280, status="pending", stripe_payment_intent_id=intent)
        session.add(attempt)
        session.flush()
        session.add(PaymentAttemptInvoice(attempt_id=attempt.id, invoice_id=invoice_id, amount=2280))
        session.get_one(Invoice, invoice_id).collecting_attempt_id = attempt.id
    gateway.requests.clear()
    charge = PaymentActivities(session_factory, gateway).charge_invoice
    outcome = ActivityEnvironment().run(charge, ChargeInvoice(invoice_id=invoice_id, business_date=date(2025, 9, 1)))
    assert outcome.status == ChargeResult.PAID
    assert gateway.requests == ["read", "confirm", "read"]
    with session_factory() as session:
        assert session.get_one(Invoice, invoice_id).status == "paid"
        assert session.scalars(select(PaymentAttempt.status)).all() == ["succeeded"]
    assert succeeded_intents(gateway, customer) == 1
