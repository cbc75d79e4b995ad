"""`python -m starter reconcile`: compare our invoices and payment attempts with Stripe."""
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.stripe_gateway import StripeGateway
from billing.reconciliation import Mismatch, RecordedPayment, StripeIntent, reconcile
from store.models import Invoice, PaymentAttempt, PaymentCustomer


def read_recorded(session: Session) -> list[RecordedPayment]:
    rows = session.execute(
        select(Invoice, PaymentAttempt)
        .outerjoin(PaymentAttempt, PaymentAttempt.invoice_id == Invoice.id)
        .where(Invoice.status != "draft")
        .order_by(Invoice.id, PaymentAttempt.attempt_no)
    ).all()
    return [
        RecordedPayment(
            invoice_id=inv.id, invoice_number=inv.display_number, invoice_status=inv.status,
            invoice_total=inv.total, attempt_status=att.status if att else "none",
            amount=att.amount if att else inv.total, intent_id=att.stripe_payment_intent_id if att else None,
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
