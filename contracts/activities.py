"""Requests and answers of the activities (one pydantic model each way)."""
from datetime import date

from pydantic import BaseModel

from billing.catalog import Plan
from billing.invoices import InvoiceLine
from billing.statuses import ChargeResult, InvoiceStatus
from contracts.subscription import Payer, SubscriptionState


class Notice(BaseModel):
    """A notice to queue in the outbox. `subject` is the operator's one-line summary; the
    e-mail is written from `kind` and `facts` (plan, dates, amounts in cents) when it is sent."""

    dedupe_key: str
    kind: str
    recipient: Payer
    subject: str
    business_date: date
    facts: dict[str, str | int] = {}


class RecordState(BaseModel):
    state: SubscriptionState
    notices: list[Notice] = []


class FreeLines(BaseModel):
    """An ended subscription frees its lines (R2), or passes them to the one that takes it
    over (R10), in one transaction: there is no moment where they are free."""

    subscription_id: str
    successor_id: str | None = None


class OpenSubscription(BaseModel):
    """Reserve every line the plan occupies (R2), then record the state: one transaction."""

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
    issued_on: date  # the business date, or later when numbering must stay chronological (R4)
    subtotal: int
    tax: int
    total: int
    status: InvoiceStatus  # `paid` at once for a total of 0 (R16)


class ChargeInvoice(BaseModel):
    invoice_id: int
    attempt_no: int = 1
    business_date: date


class ChargeOutcome(BaseModel):
    status: ChargeResult
    failure_code: str | None = None
    failure_message: str | None = None

    @property
    def paid(self) -> bool:
        return self.status is ChargeResult.PAID


class RaiseAlert(BaseModel):
    """An error no retry cures, for the operator (R11): stored once per key, logged."""

    dedupe_key: str
    subscription_id: str | None
    invoice_id: int | None = None
    step: str
    error: str


class Renew(BaseModel):
    """A renewal's database work in one transaction (R4): close the ending period to usage,
    record the renewed state with its notices, and issue the invoice of the new fee with the
    closed period's overage (at the plan and quota in force when it was used)."""

    subscription_id: str
    closing_start: date
    closing_end: date
    closing_plan: Plan
    closing_quota: int
    state: SubscriptionState  # already renewed: new period, scheduled changes applied
    notices: list[Notice] = []
    invoice_key: str
    fee: InvoiceLine


class Renewed(BaseModel):
    used: int  # documents in the closed period
    invoice: IssuedInvoice


class MarkUncollectible(BaseModel):
    invoice_ids: list[int]
    business_date: date | None = None  # the payer's notice's date; None from runs older than it


class RenderDocument(BaseModel):
    """Issue 11: render a numbered invoice's Factur-X e-invoice (once; a retry finds it)."""

    invoice_id: int
    number: str


class RenderedDocument(BaseModel):
    xml_sha256: str
    pdf_sha256: str
