"""Document quota, usage and overage (R7, R12, R13)."""
from dataclasses import dataclass

from billing.money import Cents

ALERT_THRESHOLDS = (80, 100)  # percent of the quota (R13)


@dataclass(frozen=True)
class Consumption:
    """Documents used in a period against the quota in force (the current plan's, R7)."""

    quota: int
    used: int

    def __post_init__(self) -> None:
        if self.quota < 0 or self.used < 0:
            raise ValueError("quota and usage cannot be negative")

    @property
    def metered(self) -> bool:
        return self.quota > 0

    @property
    def left(self) -> int:
        return max(self.quota - self.used, 0)

    @property
    def over(self) -> int:
        """Documents beyond the quota; a plan with quota 0 is not metered and has none."""
        return max(self.used - self.quota, 0) if self.metered else 0

    def overage_amount(self, price_per_document: Cents) -> Cents:
        return self.over * price_per_document


def thresholds_reached(quota: int, used_before: int, used_after: int) -> list[int]:
    """The alert thresholds (percent) crossed by going from `used_before` to `used_after`."""
    if quota <= 0:
        return []
    return [
        pct
        for pct in ALERT_THRESHOLDS
        if used_before * 100 < pct * quota <= used_after * 100
    ]

