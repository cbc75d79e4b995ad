"""Requests and answers of the activities (one pydantic model each way)."""
from datetime import date
from typing import Literal

from pydantic import BaseModel

from billing.invoices import InvoiceLine
from workflows.models import Payer, SubscriptionState


class Notice(BaseModel):
    dedupe_key: str
    kind: str
    recipient: Payer
    subject: str
    business_date: date


class RecordState(BaseModel):
    state: SubscriptionState
    notices: list[Notice] = []


class ClosePeriod(BaseModel):
    subscription_id: str
    period_start: date
    end: date  # the period end, or the end date when the subscription ends early (R6)


class IssueInvoice(BaseModel):
    idempotency_key: str
    subscription_id: str
    client_id: str
    payer: Payer
    issued_on: date
    lines: list[InvoiceLine]


class IssuedInvoice(BaseModel):
    invoice_id: int
    number: str
    subtotal: int
    tax: int
    total: int


class ChargeInvoice(BaseModel):
    invoice_id: int
    attempt_no: int = 1
    business_date: date


class ChargeOutcome(BaseModel):
    status: Literal["paid", "declined"]
    failure_code: str | None = None
    failure_message: str | None = None

    @property
    def paid(self) -> bool:
        return self.status == "paid"
