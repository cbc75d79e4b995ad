"""`python -m starter reconcile`: compare our invoices and payment attempts with Stripe."""
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from adapters.stripe_gateway import StripeGateway
from billing.reconciliation import Mismatch, RecordedPayment, StripeIntent, reconcile
from billing.statuses import InvoiceStatus
from store.models import Invoice, PaymentAttempt, PaymentAttemptInvoice, PaymentCustomer


def read_recorded(session: Session) -> list[RecordedPayment]:
    """Each invoice with every attempt that collects it (its own, or another's that took it
    along, R16), and what each attempt was to collect in all."""
    collects = {attempt: int(total) for attempt, total in session.execute(
        select(PaymentAttemptInvoice.attempt_id, func.sum(PaymentAttemptInvoice.amount))
        .group_by(PaymentAttemptInvoice.attempt_id)
    ).all()}
    rows = session.execute(
        select(Invoice, PaymentAttempt)
        .outerjoin(PaymentAttemptInvoice, PaymentAttemptInvoice.invoice_id == Invoice.id)
        .outerjoin(PaymentAttempt, PaymentAttempt.id == PaymentAttemptInvoice.attempt_id)
        .where(Invoice.status != InvoiceStatus.DRAFT)
        .order_by(Invoice.id, PaymentAttempt.id)
    ).all()
    return [
        RecordedPayment(
            invoice_id=inv.id, invoice_number=inv.display_number, invoice_status=inv.status,
            invoice_total=inv.total, attempt_status=att.status if att else "none",
            amount=att.amount if att else inv.total, intent_id=att.stripe_payment_intent_id if att else None,
            collects=collects.get(att.id) if att else None,
        )
        for inv, att in rows
    ]


def read_intents(session: Session, gateway: StripeGateway) -> list[StripeIntent]:
    """The intents of the customers we created (an account may hold other business too)."""
    ours = set(session.scalars(select(PaymentCustomer.stripe_customer_id)))
    return [StripeIntent(view.id, invoice_id, view.status, view.amount)
            for view, customer, invoice_id in gateway.list_intents() if customer in ours]


def find_mismatches(sessions: sessionmaker[Session], gateway: StripeGateway) -> tuple[list[Mismatch], int, int]:
    """(mismatches, payments checked, intents checked)."""
    with sessions() as session:
        recorded = read_recorded(session)
        intents = read_intents(session, gateway)
    return reconcile(recorded, intents), len(recorded), len(intents)


def report(mismatches: list[Mismatch], recorded: int, intents: int) -> str:
    if not mismatches:
        return f"all {recorded} recorded payments agree with Stripe ({intents} payment intents checked)"
    lines = [f"{len(mismatches)} mismatch(es) between our records and Stripe:"]
    lines += [f"  {m.kind:22} {m.detail}" for m in mismatches]
    return "\n".join(lines)
