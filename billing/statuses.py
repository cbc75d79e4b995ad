"""The words that name where things stand: one StrEnum each, used by the workflow, the
activities, the tables' CHECK constraints and the API, so a typo is an error, not a new state."""
from enum import StrEnum


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    PENDING_CANCEL = "pending_cancel"  # cancelled, or its firm stops paying: ends at the period end
    PAST_DUE = "past_due"  # an invoice is declined and being retried (R11)
    ENDED = "ended"


class EndReason(StrEnum):
    CANCELED = "canceled"
    CANCELED_NOW = "canceled_now"
    NOT_RENEWED = "not_renewed"
    UNPAID = "unpaid"


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"


class AttemptStatus(StrEnum):
    """One try at collecting invoices through one PaymentIntent."""

    PENDING = "pending"  # recorded before Stripe is called; settles to one of the others
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    REQUIRES_ACTION = "requires_action"  # 3-D Secure: the payer must authenticate
    CANCELED = "canceled"  # its intent was cancelled before a new attempt (no double charge)
    ERROR = "error"  # Stripe refused the request itself: the operator is alerted (R11)


class PayerKind(StrEnum):
    FIRM = "firm"
    CLIENT = "client"


class ChargeResult(StrEnum):
    """What one charge of an invoice came to, as the workflow sees it."""

    PAID = "paid"
    DECLINED = "declined"  # a decline: dunning (R11)
    WAITING = "waiting"  # below the minimum: collected with the payer's next charge (R16)
    ERROR = "error"  # a request error no retry cures: the operator is alerted (R11)


def check_in(column: str, enum: type[StrEnum]) -> str:
    """SQL for a CHECK constraint that `column` holds one of the enum's values."""
    return f"{column} in ({', '.join(repr(v.value) for v in enum)})"
