"""Collecting an invoice through Stripe, exactly once whatever crashes (R4, R11).

The attempt is recorded before Stripe is called; the PaymentIntent is created unconfirmed and
its id stored before it is confirmed; a retry reads the stored intent before doing anything.
So a crash at any step leaves at most an unconfirmed intent, never a second charge, even on
a Stripe-compatible server that ignores idempotency keys.
"""
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.models import ChargeInvoice, ChargeOutcome
from activities.stripe_gateway import IntentView, StripeGateway
from billing.money import format_eur
from store.models import Invoice, PaymentAttempt, PaymentCustomer
from store.notifications import queue_notice
from store.payments import apply_intent

class PaymentActivities:
    def __init__(self, session_factory: sessionmaker[Session], gateway: StripeGateway) -> None:
        self._sessions = session_factory
        self._gateway = gateway

    @activity.defn
    def charge_invoice(self, request: ChargeInvoice) -> ChargeOutcome:
        attempt_key = f"invoice-{request.invoice_id}-attempt-{request.attempt_no}"
        with self._sessions.begin() as session:
            invoice = session.get_one(Invoice, request.invoice_id)
            if invoice.status == "paid":
                return ChargeOutcome(status="paid")
            attempt = _attempt(session, invoice, request.attempt_no, attempt_key)
            if attempt.status == "succeeded":
                return ChargeOutcome(status="paid")
            if attempt.status in ("declined", "requires_action"):
                return ChargeOutcome(status="declined", failure_code=attempt.failure_code,
                                     failure_message=attempt.failure_message)
            customer = session.get(PaymentCustomer, (invoice.payer_kind, invoice.payer_id))
            if customer is None or customer.default_payment_method is None:
                return self._settle(session, invoice, attempt, request, IntentView(
                    "", "requires_payment_method", invoice.total, "no_card", "no card on file"))
            attempt.stripe_customer_id = customer.stripe_customer_id
            intent_id = attempt.stripe_payment_intent_id
            amount, customer_id, method = invoice.total, customer.stripe_customer_id, customer.default_payment_method

        if intent_id is None:
            activity.heartbeat("creating the payment intent")
            created = self._gateway.create_intent(
                amount=amount, customer_id=customer_id, payment_method=method,
                invoice_id=request.invoice_id, idempotency_key=attempt_key,
            )
            intent_id = self._store_intent(attempt.id, created)
            if intent_id != created:  # a concurrent execution stored its own first: ours never runs
                self._gateway.cancel_intent(created)

        activity.heartbeat(f"confirming {intent_id}")
        view = self._gateway.retrieve_intent(intent_id)
        if view.status == "requires_confirmation":
            view = self._gateway.confirm_intent(intent_id)
        with self._sessions.begin() as session:
            invoice = session.get_one(Invoice, request.invoice_id, with_for_update=True)
            return self._settle(session, invoice, session.get_one(PaymentAttempt, attempt.id), request, view)

    def _store_intent(self, attempt_id: int, intent_id: str) -> str:
        """Store the intent's id unless one is stored already; return the one that counts."""
        with self._sessions.begin() as session:
            session.execute(
                update(PaymentAttempt)
                .where(PaymentAttempt.id == attempt_id, PaymentAttempt.stripe_payment_intent_id.is_(None))
                .values(stripe_payment_intent_id=intent_id)
            )
            stored = session.get_one(PaymentAttempt, attempt_id, populate_existing=True).stripe_payment_intent_id
            assert stored is not None
            return stored

    def _settle(self, session: Session, invoice: Invoice, attempt: PaymentAttempt,
                request: ChargeInvoice, view: IntentView) -> ChargeOutcome:
        outcome = apply_intent(session, invoice, attempt, view.status, view.failure_code, view.failure_message)
        if outcome == "paid":
            return ChargeOutcome(status="paid")
        if outcome == "pending":
            # processing and the like settle later (webhook); the activity is retried meanwhile
            raise RuntimeError(f"payment intent {view.id} is {view.status}: not settled yet")
        queue_notice(
            session, dedupe_key=f"payment_failed:{invoice.id}:{request.attempt_no}", kind="payment_failed",
            recipient_kind=invoice.payer_kind, recipient_id=invoice.payer_id,
            subject=f"Payment of {format_eur(invoice.total)} for invoice {invoice.display_number} failed: "
                    f"{attempt.failure_message}",
            business_date=request.business_date,
        )
        return ChargeOutcome(status="declined", failure_code=attempt.failure_code,
                             failure_message=attempt.failure_message)


def _attempt(session: Session, invoice: Invoice, attempt_no: int, key: str) -> PaymentAttempt:
    attempt = session.scalars(
        select(PaymentAttempt).where(PaymentAttempt.idempotency_key == key).with_for_update()
    ).one_or_none()
    if attempt is None:
        attempt = PaymentAttempt(invoice_id=invoice.id, attempt_no=attempt_no, idempotency_key=key,
                                 amount=invoice.total, currency=invoice.currency, status="pending")
        session.add(attempt)
        session.flush()
    return attempt
