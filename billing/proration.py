"""Plan changes: upgrade now with a prorated charge (R7), downgrade at renewal (R8)."""
from datetime import date
from enum import StrEnum
from fractions import Fraction

from billing.money import Cents, round_half_up
from billing.periods import Period


class ChangeKind(StrEnum):
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"


def classify_change(old_price: Cents, new_price: Cents) -> ChangeKind:
    """Higher price for the current interval is an upgrade; lower or equal is a downgrade."""
    return ChangeKind.UPGRADE if new_price > old_price else ChangeKind.DOWNGRADE


def prorated_upgrade(old_price: Cents, new_price: Cents, period: Period, change_date: date) -> Cents:
    """round_half_up((new - old) * days_left / period_days), computed exactly, rounded once."""
    if new_price <= old_price:
        raise ValueError("only an upgrade (a higher price) is prorated")
    days_left = period.days_left(change_date)
    return round_half_up(Fraction((new_price - old_price) * days_left, period.days))
