from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.intervals import Interval
from billing.periods import (
    Period,
    add_months,
    anchor_for,
    boundary,
    next_period,
    nth_period,
    paris_date,
    paris_midnight,
    period_containing,
)

M, A = Interval.MONTHLY, Interval.ANNUAL

dates = st.dates(min_value=date(1901, 1, 1), max_value=date(2097, 12, 31))


@pytest.mark.parametrize(
    ("anchor", "interval", "n", "start", "end"),
    [
        # R3: anchor 31 Jan -> 28/29 Feb -> 31 Mar -> 30 Apr
        (date(2025, 1, 31), M, 0, date(2025, 1, 31), date(2025, 2, 28)),
        (date(2025, 1, 31), M, 1, date(2025, 2, 28), date(2025, 3, 31)),
        (date(2025, 1, 31), M, 2, date(2025, 3, 31), date(2025, 4, 30)),
        (date(2025, 1, 31), M, 3, date(2025, 4, 30), date(2025, 5, 31)),
        (date(2024, 1, 31), M, 0, date(2024, 1, 31), date(2024, 2, 29)),
        (date(2025, 1, 30), M, 0, date(2025, 1, 30), date(2025, 2, 28)),
        (date(2025, 1, 30), M, 1, date(2025, 2, 28), date(2025, 3, 30)),
        (date(2025, 9, 1), M, 0, date(2025, 9, 1), date(2025, 10, 1)),   # seed example (R5)
        (date(2025, 3, 1), M, 0, date(2025, 3, 1), date(2025, 4, 1)),    # upgrade example (R7)
        (date(2025, 12, 15), M, 0, date(2025, 12, 15), date(2026, 1, 15)),
        # annual: 29 Feb -> 28 Feb, and back to 29 Feb in the next leap year
        (date(2024, 2, 29), A, 0, date(2024, 2, 29), date(2025, 2, 28)),
        (date(2024, 2, 29), A, 3, date(2027, 2, 28), date(2028, 2, 29)),
        (date(2024, 2, 29), A, 4, date(2028, 2, 29), date(2029, 2, 28)),
        (date(1900 + 96, 2, 29), A, 4, date(2000, 2, 29), date(2001, 2, 28)),  # 2000 is leap
        (date(2025, 6, 10), A, 1, date(2026, 6, 10), date(2027, 6, 10)),
    ],
)
def test_nth_period_from_anchor(anchor: date, interval: Interval, n: int, start: date, end: date) -> None:
    assert nth_period(anchor, interval, n) == Period(start, end)


@pytest.mark.parametrize(
    ("anchor", "day", "expected_start"),
    [
        (date(2025, 1, 31), date(2025, 3, 30), date(2025, 2, 28)),
        (date(2025, 1, 31), date(2025, 3, 31), date(2025, 3, 31)),
        (date(2025, 9, 1), date(2025, 9, 12), date(2025, 9, 1)),
        (date(2025, 9, 1), date(2025, 10, 1), date(2025, 10, 1)),
        (date(2025, 9, 15), date(2025, 10, 14), date(2025, 9, 15)),
    ],
)
def test_period_containing_a_day(anchor: date, day: date, expected_start: date) -> None:
    period = period_containing(anchor, M, day)
    assert period.start == expected_start
    assert period.contains(day)


def test_period_days_and_days_left() -> None:
    march = Period(date(2025, 3, 1), date(2025, 4, 1))
    assert march.days == 31
    assert march.days_left(date(2025, 3, 11)) == 21
    with pytest.raises(ValueError, match="outside"):
        march.days_left(date(2025, 4, 1))


def test_day_before_anchor_is_refused() -> None:
    with pytest.raises(ValueError, match="before the anchor"):
        period_containing(date(2025, 3, 1), M, date(2025, 2, 28))


def test_paris_dates_and_midnight() -> None:
    # 23:30 UTC on 31 March 2025 is already 1 April in Paris (summer time, UTC+2).
    assert paris_date(datetime(2025, 3, 31, 23, 30, tzinfo=UTC)) == date(2025, 4, 1)
    assert paris_midnight(date(2025, 4, 1)) == datetime(2025, 3, 31, 22, 0, tzinfo=UTC)
    assert paris_midnight(date(2025, 1, 1)) == datetime(2024, 12, 31, 23, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        paris_date(datetime(2025, 1, 1))


@given(anchor=dates, interval=st.sampled_from(list(Interval)), count=st.integers(1, 40))
def test_consecutive_periods_tile_time(anchor: date, interval: Interval, count: int) -> None:
    periods = [nth_period(anchor, interval, 0)]
    for _ in range(count):
        periods.append(next_period(anchor, interval, periods[-1]))
    assert periods[0].start == anchor
    for before, after in zip(periods, periods[1:], strict=False):
        assert before.end == after.start  # no gap, no overlap
    assert sum(p.days for p in periods) == (periods[-1].end - anchor).days


@given(anchor=dates, months=st.integers(0, 24 * 12))
def test_anchor_day_comes_back_whenever_the_month_has_it(anchor: date, months: int) -> None:
    day = add_months(anchor, months)
    try:
        same_day = day.replace(day=anchor.day)
    except ValueError:  # month too short: clamped to its last day
        assert (day + timedelta(days=1)).day == 1
        assert day.day < anchor.day
    else:
        assert day == same_day


@given(anchor=dates, day_offset=st.integers(0, 3000), interval=st.sampled_from(list(Interval)))
def test_every_day_after_the_anchor_falls_in_exactly_one_period(anchor: date, day_offset: int, interval: Interval) -> None:
    day = anchor + timedelta(days=day_offset)
    period = period_containing(anchor, interval, day)
    assert period.contains(day)
    n = next(k for k in range(0, 3000) if boundary(anchor, interval, k) == period.start)
    assert nth_period(anchor, interval, n) == period


@pytest.mark.parametrize(("start", "end", "interval", "anchor"), [
    (date(2025, 11, 15), date(2025, 12, 15), Interval.MONTHLY, date(2025, 11, 15)),
    (date(2025, 2, 28), date(2025, 3, 31), Interval.MONTHLY, date(2025, 1, 31)),  # clamped at February's end
    (date(2025, 4, 30), date(2025, 5, 30), Interval.MONTHLY, date(2025, 4, 30)),
    (date(2025, 3, 1), date(2026, 3, 1), Interval.ANNUAL, date(2025, 3, 1)),
    (date(2025, 2, 28), date(2026, 2, 28), Interval.ANNUAL, date(2025, 2, 28)),
])
def test_an_imported_period_finds_the_anchor_of_its_schedule(start: date, end: date, interval: Interval,
                                                             anchor: date) -> None:
    assert anchor_for(start, end, interval) == anchor


@pytest.mark.parametrize(("start", "end", "interval"), [
    (date(2025, 11, 15), date(2025, 12, 14), Interval.MONTHLY),  # a day short
    (date(2025, 11, 15), date(2026, 1, 15), Interval.MONTHLY),  # two months
    (date(2025, 11, 15), date(2025, 12, 15), Interval.ANNUAL),
    (date(2025, 11, 15), date(2025, 11, 15), Interval.MONTHLY),
])
def test_a_period_no_schedule_has_is_refused(start: date, end: date, interval: Interval) -> None:
    assert anchor_for(start, end, interval) is None
