"""What a PaymentIntent's state means for our attempt and invoice: one place, used by the
charge activity and by the Stripe webhook."""
from typing import Literal

from sqlalchemy.orm import Session

from store.models import Invoice, PaymentAttempt

DECLINED_STATES = {"requires_payment_method", "requires_action", "canceled"}
Outcome = Literal["paid", "declined", "pending"]


def apply_intent(session: Session, invoice: Invoice, attempt: PaymentAttempt, status: str,
                 failure_code: str | None = None, failure_message: str | None = None) -> Outcome:
    """Record the intent's `status` on the attempt and the invoice; idempotent."""
    if status == "succeeded":
        attempt.status = "succeeded"
        invoice.status = "paid"  # money received settles even a written-off invoice
        session.flush()
        return "paid"
    if status not in DECLINED_STATES:
        return "pending"  # processing and the like: settles later
    if attempt.status == "succeeded":
        return "paid"
    attempt.status = "requires_action" if status == "requires_action" else "declined"
    attempt.failure_code = failure_code or status
    attempt.failure_message = failure_message or (
        "the bank asks for authentication (3-D Secure)" if status == "requires_action" else "declined")
    session.flush()
    return "declined"
