"""What a PaymentIntent's state means for our attempt and the invoices it collects: one place,
used by the charge activity and by the Stripe webhook."""
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.statuses import AttemptStatus, InvoiceStatus
from store.models import Invoice, PaymentAttempt, PaymentAttemptInvoice

DECLINED_STATES = {"requires_payment_method", "requires_action", "canceled"}
Outcome = Literal["paid", "declined", "pending"]


def invoices_of(session: Session, attempt: PaymentAttempt) -> list[Invoice]:
    """The invoices the attempt collects, locked, its own first (R16: it may take others along)."""
    ids = list(session.scalars(
        select(PaymentAttemptInvoice.invoice_id).where(PaymentAttemptInvoice.attempt_id == attempt.id)
    )) or [attempt.invoice_id]
    invoices = session.scalars(
        select(Invoice).where(Invoice.id.in_(ids)).order_by(Invoice.id).with_for_update()
    ).all()
    return sorted(invoices, key=lambda i: i.id != attempt.invoice_id)


def apply_intent(session: Session, attempt: PaymentAttempt, status: str,
                 failure_code: str | None = None, failure_message: str | None = None) -> Outcome:
    """Record the intent's `status` on the attempt and every invoice it collects; idempotent."""
    invoices = invoices_of(session, attempt)
    if status == "succeeded":
        attempt.status = AttemptStatus.SUCCEEDED
        for invoice in invoices:
            invoice.status = InvoiceStatus.PAID  # money received settles even a written-off invoice
            invoice.waiting_since = None
        _release(invoices, attempt)
        session.flush()
        return "paid"
    if status not in DECLINED_STATES:
        return "pending"  # processing and the like: settles later
    if attempt.status == AttemptStatus.SUCCEEDED:
        return "paid"
    attempt.status = AttemptStatus.REQUIRES_ACTION if status == "requires_action" else AttemptStatus.DECLINED
    attempt.failure_code = failure_code or status
    attempt.failure_message = failure_message or (
        "the bank asks for authentication (3-D Secure)" if status == "requires_action" else "declined")
    if status != "requires_action":
        _release(invoices, attempt)  # the waiting ones it took along wait for the next charge (R16)
    # An intent waiting for 3-D Secure may still be paid: the invoices it took along stay with
    # it (no other charge takes them) until it succeeds or the next attempt cancels it.
    session.flush()
    return "declined"


def end_attempt(session: Session, attempt: PaymentAttempt, status: AttemptStatus,
                code: str | None = None, message: str | None = None) -> None:
    """Close an attempt that charged nothing (cancelled, or refused by Stripe): its invoices
    are free for the next charge."""
    attempt.status = status
    attempt.failure_code, attempt.failure_message = code, message
    _release(invoices_of(session, attempt), attempt)
    session.flush()


def _release(invoices: list[Invoice], attempt: PaymentAttempt) -> None:
    for invoice in invoices:
        if invoice.collecting_attempt_id == attempt.id:
            invoice.collecting_attempt_id = None
