"""Billing periods (R3): `[start, end)` calendar dates in Europe/Paris, counted from an anchor.

Each period boundary is computed from the anchor, never from the previous boundary, so a
clamped month end does not drift: anchor 31 Jan -> 28/29 Feb -> 31 Mar -> 30 Apr.
"""
import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from billing.intervals import Interval

PARIS = ZoneInfo("Europe/Paris")


@dataclass(frozen=True, order=True)
class Period:
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"a period must end after it starts: {self.start} .. {self.end}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def contains(self, day: date) -> bool:
        return self.start <= day < self.end

    def days_left(self, day: date) -> int:
        """Days from `day` (included) to the period end (excluded)."""
        if not self.contains(day):
            raise ValueError(f"{day} is outside the period {self.start} .. {self.end}")
        return (self.end - day).days


def add_months(anchor: date, months: int) -> date:
    """The anchor's day `months` later, clamped to the last day of the target month."""
    index = anchor.year * 12 + (anchor.month - 1) + months
    year, month0 = divmod(index, 12)
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(anchor.day, last_day))


def boundary(anchor: date, interval: Interval, n: int) -> date:
    """The start of the n-th period (n = 0 is the anchor itself)."""
    step = 1 if interval is Interval.MONTHLY else 12
    return add_months(anchor, n * step)


def nth_period(anchor: date, interval: Interval, n: int) -> Period:
    if n < 0:
        raise ValueError("period index must be >= 0")
    return Period(boundary(anchor, interval, n), boundary(anchor, interval, n + 1))


def period_containing(anchor: date, interval: Interval, day: date) -> Period:
    """The period of the schedule anchored at `anchor` that contains `day` (day >= anchor)."""
    if day < anchor:
        raise ValueError(f"{day} is before the anchor {anchor}")
    months = (day.year - anchor.year) * 12 + (day.month - anchor.month)
    n = months if interval is Interval.MONTHLY else months // 12
    # The estimate is exact or one too high (when day's day-of-month is before the anchor's).
    while n > 0 and boundary(anchor, interval, n) > day:
        n -= 1
    return nth_period(anchor, interval, n)


def first_period(anchor: date, interval: Interval) -> Period:
    return nth_period(anchor, interval, 0)


def next_period(anchor: date, interval: Interval, current: Period) -> Period:
    """The period that follows `current` on the schedule anchored at `anchor`."""
    following = period_containing(anchor, interval, current.end)
    if following.start != current.end:
        raise ValueError(f"{current} is not on the schedule anchored at {anchor}")
    return following


def anchor_for(start: date, end: date, interval: Interval) -> date | None:
    """An anchor whose schedule has [start, end) as one of its periods (a subscription imported
    mid-life), or None. `start` itself; else, for a period cut short at a month's end (28 Feb
    -> 31 Mar), the day of `end` one period before `start` (31 Jan)."""
    if end <= start:
        return None
    months = 1 if interval is Interval.MONTHLY else 12
    earlier = add_months(date(start.year, start.month, 1), -months)
    clamped = min(end.day, calendar.monthrange(earlier.year, earlier.month)[1])
    for anchor in (start, earlier.replace(day=clamped)):
        if anchor <= start and period_containing(anchor, interval, start) == Period(start, end):
            return anchor
    return None


def paris_date(instant: datetime) -> date:
    """The calendar date in Paris at an aware instant (business dates are Paris dates)."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(PARIS).date()


def paris_midnight(day: date) -> datetime:
    """The instant (UTC) at which `day` starts in Paris: where renewal timers fire."""
    return datetime.combine(day, time(0), tzinfo=PARIS).astimezone(UTC)
