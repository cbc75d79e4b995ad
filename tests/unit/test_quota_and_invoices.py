from datetime import date

import pytest

from billing.catalog import parse_catalog
from billing.intervals import Interval
from billing.invoices import LineKind, draft, overage_line, proration_line, subscription_line
from billing.periods import Period
from billing.quota import Consumption, thresholds_reached

CATALOG = parse_catalog([
    {"code": "essentiel", "product": "einvoicing", "name": "Essentiel",
     "prices": {"monthly": 1900, "annual": 19000}, "quota": {"monthly": 50, "annual": 600}, "overage": 25},
    {"code": "standard", "product": "einvoicing", "name": "Standard",
     "prices": {"monthly": 3900, "annual": 39000}, "quota": {"monthly": 200, "annual": 2400}, "overage": 19},
    {"code": "paiements", "product": "payments", "name": "Paiements",
     "prices": {"monthly": 900}, "quota": {"monthly": 0}, "overage": 0},
])
ESSENTIEL, STANDARD = CATALOG.plan("essentiel"), CATALOG.plan("standard")
MARCH = Period(date(2025, 3, 1), date(2025, 4, 1))
APRIL = Period(date(2025, 4, 1), date(2025, 5, 1))
SEPTEMBER = Period(date(2025, 9, 1), date(2025, 10, 1))


def test_usage_carries_onto_the_new_plans_full_quota() -> None:
    # R7: 80 used of 100, upgrade to a 500 plan: 80 used of 500.
    assert Consumption(quota=500, used=80).left == 420
    # Worked example: 40 + 170 documents against Standard's 200 -> 10 over.
    assert Consumption(quota=STANDARD.quota_for(Interval.MONTHLY), used=210).over == 10


@pytest.mark.parametrize(
    ("quota", "used", "left", "over"),
    [(50, 0, 50, 0), (50, 50, 0, 0), (50, 60, 0, 10), (0, 900, 0, 0)],
)
def test_consumption(quota: int, used: int, left: int, over: int) -> None:
    usage = Consumption(quota=quota, used=used)
    assert (usage.left, usage.over) == (left, over)


@pytest.mark.parametrize(
    ("quota", "before", "after", "crossed"),
    [
        (50, 0, 39, []),
        (50, 0, 40, [80]),
        (50, 39, 60, [80, 100]),
        (50, 40, 49, []),
        (50, 45, 50, [100]),
        (50, 60, 70, []),
        (200, 40, 210, [80, 100]),
        (0, 0, 100, []),
        (3, 2, 3, [80, 100]),  # 2/3 = 66 % -> 3/3 = 100 %
    ],
)
def test_quota_alerts_fire_once_when_crossing_80_and_100_percent(
        quota: int, before: int, after: int, crossed: list[int]) -> None:
    assert thresholds_reached(quota, before, after) == crossed


def test_seed_example_invoices() -> None:
    opening = draft(subscription_line(ESSENTIEL, Interval.MONTHLY, SEPTEMBER))
    assert (opening.subtotal, opening.tax, opening.total) == (1900, 380, 2280)
    final = draft(overage_line(ESSENTIEL, SEPTEMBER.start, SEPTEMBER.end, Consumption(quota=50, used=60)))
    (line,) = final.lines
    assert (line.kind, line.quantity, line.amount) == (LineKind.OVERAGE, 10, 250)
    assert (final.subtotal, final.tax, final.total) == (250, 50, 300)


def test_upgrade_example_invoices() -> None:
    proration = draft(proration_line(STANDARD, date(2025, 3, 11), MARCH.end, 1355))
    assert (proration.subtotal, proration.tax, proration.total) == (1355, 271, 1626)
    renewal = draft(
        subscription_line(STANDARD, Interval.MONTHLY, APRIL),
        overage_line(STANDARD, MARCH.start, MARCH.end, Consumption(quota=200, used=210)),
    )
    assert [l.amount for l in renewal.lines] == [3900, 190]
    assert (renewal.subtotal, renewal.tax, renewal.total) == (4090, 818, 4908)


def test_no_overage_line_within_quota() -> None:
    assert overage_line(ESSENTIEL, MARCH.start, MARCH.end, Consumption(quota=50, used=50)) is None
    assert draft(None).is_empty
