from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.intervals import Interval
from billing.periods import Period, period_containing
from billing.proration import ChangeKind, classify_change, prorated_upgrade

MARCH_2025 = Period(date(2025, 3, 1), date(2025, 4, 1))


@pytest.mark.parametrize(
    ("old", "new", "period", "change", "expected"),
    [
        (1900, 3900, MARCH_2025, date(2025, 3, 11), 1355),   # worked example: 2000 * 21 / 31
        (1900, 3900, MARCH_2025, date(2025, 3, 1), 2000),    # first day: the whole difference
        (1900, 3900, MARCH_2025, date(2025, 3, 31), 65),     # last day: 2000 / 31 = 64.5 -> 65
        (3900, 7900, Period(date(2024, 2, 1), date(2024, 3, 1)), date(2024, 2, 15), 2069),  # 4000*15/29
        (19000, 39000, Period(date(2025, 1, 1), date(2026, 1, 1)), date(2025, 7, 2), 10027),  # 20000*183/365 = 10027.4
        (100, 101, Period(date(2025, 1, 1), date(2025, 1, 3)), date(2025, 1, 2), 1),  # 0.5 -> 1
    ],
)
def test_upgrade_prorates_on_days_left(old: int, new: int, period: Period, change: date, expected: int) -> None:
    assert prorated_upgrade(old, new, period, change) == expected


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [(1900, 3900, ChangeKind.UPGRADE), (3900, 1900, ChangeKind.DOWNGRADE), (1900, 1900, ChangeKind.DOWNGRADE)],
)
def test_higher_price_is_upgrade_lower_or_equal_is_downgrade(old: int, new: int, kind: ChangeKind) -> None:
    assert classify_change(old, new) is kind


def test_downgrade_is_not_prorated() -> None:
    with pytest.raises(ValueError, match="only an upgrade"):
        prorated_upgrade(3900, 1900, MARCH_2025, date(2025, 3, 11))


def test_change_outside_the_period_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        prorated_upgrade(1900, 3900, MARCH_2025, date(2025, 4, 1))


prices = st.integers(0, 10_000_000)


@given(
    anchor=st.dates(min_value=date(1901, 1, 1), max_value=date(2097, 12, 31)),
    interval=st.sampled_from(list(Interval)),
    old=prices, extra=st.integers(1, 10_000_000), offset=st.integers(0, 400),
)
def test_proration_lies_between_zero_and_the_difference_and_grows_with_days_left(
    anchor: date, interval: Interval, old: int, extra: int, offset: int
) -> None:
    period = period_containing(anchor, interval, anchor)
    change = period.start + timedelta(days=offset % period.days)
    amount = prorated_upgrade(old, old + extra, period, change)
    assert 0 <= amount <= extra
    if change > period.start:  # a day earlier leaves one more day, never a smaller charge
        assert prorated_upgrade(old, old + extra, period, change - timedelta(days=1)) >= amount
