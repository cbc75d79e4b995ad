"""What the firm's screens read (R14), as the HTTP API returns it: built from the read model
in PostgreSQL (store/read_models.py), never from workflow queries (issue 8, item 4).

Money is integer cents excluding VAT unless named otherwise; dates are calendar dates.
"""
from datetime import date
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from billing.intervals import Interval, Line
from billing.money import Cents
from billing.quota import Consumption
from billing.statuses import InvoiceStatus, SubscriptionStatus
from contracts.subscription import Payer

T = TypeVar("T")


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class Page(View, Generic[T]):
    """One page of a list; `next_cursor` fetches the next one, None on the last page."""

    items: list[T]
    next_cursor: str | None = None


# The legal identity of a firm or a client, as its e-invoices name it (issue 11): the columns
# of both tables, the fields of both views, and what `PATCH` changes.
PARTY_FIELDS = ("legal_name", "siren", "vat_number", "address_line1", "address_line2", "postal_code", "city",
                "country", "billing_email")


class ClientView(View):
    id: str
    external_id: str | None = None  # the firm's own reference, unique within the firm
    name: str
    email: str | None = None  # where its notices go
    firm_id: str
    legal_name: str | None = None  # None: its invoices name it by `name`
    siren: str | None = None  # 9 digits
    vat_number: str | None = None  # FR + 2-digit key + SIREN
    address_line1: str | None = None
    address_line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country: str = "FR"  # ISO 3166-1 alpha-2
    billing_email: str | None = None  # where its invoices go, when not `email`


class FirmView(View):
    """The firm itself: its name, where its notices go and its legal identity (issue 11)."""

    id: str
    name: str
    email: str | None = None
    legal_name: str | None = None
    siren: str | None = None
    vat_number: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country: str = "FR"
    billing_email: str | None = None


class PlanRef(View):
    code: str
    name: str


class ConsumptionView(View):
    """This period's documents against the quota in force (R7, R12), and the overage so far."""

    quota: int
    used: int
    left: int
    overage_documents: int
    overage_amount: Cents  # so far, billed in arrears (R4)
    overage_price: Cents  # per document beyond the quota

    @classmethod
    def of(cls, *, quota: int, used: int, overage_price: Cents) -> "ConsumptionView":
        # The maths stays in billing.quota: the same rules the invoice applies.
        usage = Consumption(quota=quota, used=used)
        return cls(quota=quota, used=used, left=usage.left, overage_documents=usage.over,
                   overage_amount=usage.overage_amount(overage_price), overage_price=overage_price)


class ScheduledChanges(View):
    """What happens at the period end: a downgrade (R8), an interval switch (R9), the end of a
    cancelled or no longer paid subscription (R5, R10) and who takes over from then (R10)."""

    plan: PlanRef | None = None
    interval: Interval | None = None
    ends_on: date | None = None
    end_reason: str | None = None  # "canceled" or "not_renewed"
    take_over: Payer | None = None


class SubscriptionView(View):
    line: Line
    subscription_id: str
    plan: PlanRef
    interval: Interval
    payer: Payer
    status: SubscriptionStatus
    period_start: date
    period_end: date  # excluded: the period is [start, end) (R3)
    next_renewal: date | None  # None when it is not renewed (pending_cancel)
    ends_on: date | None  # set when it ends at the period end
    scheduled: ScheduledChanges
    consumption: ConsumptionView | None  # None for an unmetered line (payments, quota 0)


class ClientTab(View):
    """The client's "Abonnement" tab (R14): its live subscriptions, one per line at most."""

    client: ClientView
    subscriptions: list[SubscriptionView]


class InvoiceLineView(View):
    position: int
    kind: str  # subscription, proration or overage
    plan_code: str
    period_start: date
    period_end: date
    quantity: int
    amount: Cents


class InvoiceView(View):
    number: str  # "F-00000042"
    issued_on: date
    status: InvoiceStatus
    subtotal: Cents
    tax: Cents
    total: Cents  # VAT included
    currency: str
    payer: Payer
    client_id: str
    subscription_id: str | None = None
    lines: list[InvoiceLineView]


class FirmOverviewRow(View):
    """A subscription the firm pays for, with this period's cost so far (fee + overage)."""

    client_id: str
    external_id: str | None = None
    client_name: str
    subscription_id: str
    line: Line
    plan: PlanRef
    interval: Interval
    status: SubscriptionStatus
    period_start: date
    period_end: date
    quota: int
    used: int
    fee: Cents  # the plan's price for its interval
    overage: Cents  # so far this period
    cost: Cents  # fee + overage


class FirmOverviewTotals(View):
    """Over every live subscription the firm pays for, not just the page."""

    clients: int
    subscriptions: int
    fees: Cents
    overage: Cents
    cost: Cents


class FirmOverview(View):
    firm_id: str
    totals: FirmOverviewTotals
    items: list[FirmOverviewRow]
    next_cursor: str | None = None
