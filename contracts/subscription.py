"""Everything that crosses the workflow boundary: its input, state, updates and answers.

Pydantic models, carried by `pydantic_data_converter`, so dates and plans round-trip.
"""
from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from billing.catalog import Plan
from billing.intervals import Interval, Line
from billing.periods import Period
from billing.statuses import EndReason, SubscriptionStatus

Status = SubscriptionStatus  # the name the workflow and the callers use
__all__ = ["EndReason", "Status"]


class Payer(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["firm", "client"]
    id: str = Field(min_length=1, max_length=64)

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.id}"


DEFAULT_RETRY_DAYS = [3, 6, 9]  # R11: retries after the first failure, in days


class Dunning(BaseModel):
    """An invoice whose charge was declined, and where its retries stand (R11)."""

    invoice_id: int
    number: str
    first_failed_at: datetime
    total: int | None = None  # cents; for operators' summaries (None in runs older than it)
    scheduled_done: int = 0  # scheduled retries made so far
    attempts: int = 1  # charge attempts so far; the next one is attempts + 1

    def next_retry_at(self, retry_days: list[int]) -> datetime | None:
        if self.scheduled_done >= len(retry_days):
            return None
        return self.first_failed_at + timedelta(days=retry_days[self.scheduled_done])


class Alert(BaseModel):
    """An error no retry cures (R11's last paragraph): the workflow went on without it."""

    at: datetime
    step: str
    error: str


MAX_ALERTS = 10  # the state keeps the latest ones; every alert is also in operator_alerts


class SubscriptionState(BaseModel):
    """The whole state of one subscription, carried through continue-as-new each period."""

    subscription_id: str
    client_id: str
    firm_id: str  # the firm that manages the client (for operators' filters and notices)
    line: Line
    plan: Plan
    interval: Interval
    payer: Payer
    anchor: date
    period_start: date
    period_end: date
    started_on: date
    scheduled_plan: Plan | None = None
    scheduled_interval: Interval | None = None
    cancel_requested: bool = False  # R5
    stop_paying: bool = False  # R10
    take_over: Payer | None = None  # R10: who pays from the end date on
    dunning: list[Dunning] = []  # declined invoices being retried (R11)
    # Charges Stripe refused as requests (R11's last paragraph): open, the operator alerted,
    # retried when the payer gives a new card; no scheduled retries, not past due.
    on_hold: list[Dunning] = []
    retry_days: list[int] = DEFAULT_RETRY_DAYS
    # R11: the payer gave a new card (or a payment settled elsewhere): retry open invoices at
    # once. Kept in the state, so it survives continue-as-new; `card_version` counts card
    # updates, so a charge already in flight when the card changed is retried at once too.
    retry_now: bool = False
    card_version: int = 0
    alerts: list[Alert] = []  # errors no retry cures, for the operator (the latest few)
    ended_on: date | None = None
    ended_reason: EndReason | None = None
    version: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> Status:
        if self.ended_on is not None:
            return Status.ENDED
        if self.dunning:
            return Status.PAST_DUE
        if self.cancel_requested or self.stop_paying:
            return Status.PENDING_CANCEL
        return Status.ACTIVE

    @property
    def period(self) -> Period:
        return Period(self.period_start, self.period_end)

    @property
    def ending(self) -> bool:
        """Not renewed at the period end (cancelled, or the firm stopped paying)."""
        return self.cancel_requested or self.stop_paying

    @property
    def quota(self) -> int:
        return self.plan.quota_for(self.interval)


class ImportedPeriod(BaseModel):
    anchor: date  # billing.periods.anchor_for(start, end, interval)
    start: date
    end: date


class NewSubscription(BaseModel):
    """What a caller asks for; the workflow dates it (anchor = its own today)."""

    subscription_id: str
    client_id: str
    firm_id: str
    line: Line
    plan: Plan
    interval: Interval
    payer: Payer
    retry_days: list[int] = DEFAULT_RETRY_DAYS
    # R10: a take-over starts on the old period's end, even if the run that opens it starts
    # later (it waits for the old payer's last charge to settle). None: the workflow's today.
    starts_on: date | None = None
    # Imported from a firm's old tool: this period, already billed there; the first invoice
    # is the renewal at its end (at once when that is past).
    imported: ImportedPeriod | None = None



class SubscriptionInput(BaseModel):
    """Exactly one of the two: a subscription to open, or the state of a renewed one."""

    new: NewSubscription | None = None
    state: SubscriptionState | None = None


class SubscriptionOutcome(BaseModel):
    subscription_id: str
    ended_on: date | None = None
    ended_reason: EndReason | None = None
    refused: str | None = None  # the subscription never opened (a line it needs was taken, R2)


# --- updates: one model in, one model out -----------------------------------------------


class ChangePlan(BaseModel):
    plan: Plan  # resolved from the catalogue by the caller: the price charged is in history


class ChangeResult(BaseModel):
    kind: Literal["upgrade", "downgrade", "withdrawn"]
    plan: str
    effective_on: date
    amount: int | None = None  # the prorated charge of an upgrade, excl. VAT
    invoice_number: str | None = None


class SwitchInterval(BaseModel):
    interval: Interval


class TakeOver(BaseModel):
    payer: Payer


class Scheduled(BaseModel):
    """The answer to a change that takes effect later."""

    effective_on: date
    detail: str


class Ended(BaseModel):
    ended_on: date
    invoice_number: str | None = None


DUNNING_WORKFLOW = "InvoiceDunningWorkflow"


def dunning_workflow_id(invoice_id: int) -> str:
    """The workflow that keeps an invoice's retries after its subscription ended (R11)."""
    return f"invoice-dunning:{invoice_id}"


class DunningInput(BaseModel):
    """An invoice still unpaid when its subscription ended: it keeps its retries (R11)."""

    subscription_id: str
    client_id: str
    firm_id: str
    payer: Payer
    dunning: Dunning
    retry_days: list[int] = DEFAULT_RETRY_DAYS
    retry_now: bool = False
    # A charge Stripe refused as a request (R11's last paragraph): no scheduled retries, it
    # waits for the payer's next card; declined then, it is dunned from that day.
    on_hold: bool = False


class DunningOutcome(BaseModel):
    invoice_id: int
    status: Literal["paid", "waiting", "uncollectible"]  # waiting: below the minimum (R16)
