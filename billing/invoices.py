"""Invoice lines and totals (R4): fee in advance, overage in arrears, VAT 20 % half up."""
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from billing.catalog import Plan
from billing.intervals import Interval
from billing.money import Cents, vat
from billing.periods import Period
from billing.quota import Consumption


class LineKind(StrEnum):
    SUBSCRIPTION = "subscription"
    PRORATION = "proration"
    OVERAGE = "overage"


@dataclass(frozen=True)
class InvoiceLine:
    kind: LineKind
    plan: str
    period_start: date
    period_end: date
    quantity: int
    amount: Cents


@dataclass(frozen=True)
class InvoiceDraft:
    lines: tuple[InvoiceLine, ...] = field(default_factory=tuple)

    @property
    def subtotal(self) -> Cents:
        return sum(line.amount for line in self.lines)

    @property
    def tax(self) -> Cents:
        return vat(self.subtotal)

    @property
    def total(self) -> Cents:
        return self.subtotal + self.tax

    @property
    def is_empty(self) -> bool:
        return not self.lines


def subscription_line(plan: Plan, interval: Interval, period: Period) -> InvoiceLine:
    """The fee for a period, billed in advance on its first day."""
    return InvoiceLine(LineKind.SUBSCRIPTION, plan.code, period.start, period.end, 1, plan.price(interval))


def proration_line(plan: Plan, change_date: date, period_end: date, amount: Cents) -> InvoiceLine:
    """An upgrade's charge, spanning the change date to the period end."""
    return InvoiceLine(LineKind.PRORATION, plan.code, change_date, period_end, 1, amount)


def overage_line(plan: Plan, start: date, end: date, usage: Consumption) -> InvoiceLine | None:
    """Documents beyond the quota consumed in [start, end), at the plan in force's price.

    `end` is the period end, or the end date when the subscription ended early (R6). None
    when there is no overage.
    """
    if usage.over == 0:
        return None
    return InvoiceLine(LineKind.OVERAGE, plan.code, start, end, usage.over, usage.overage_amount(plan.overage))


def draft(*lines: InvoiceLine | None) -> InvoiceDraft:
    """An invoice of the given lines, skipping the absent ones (no overage, say)."""
    return InvoiceDraft(tuple(line for line in lines if line is not None))
