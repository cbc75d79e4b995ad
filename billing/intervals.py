"""Billing intervals, products and subscription lines (R1, R2)."""
from enum import StrEnum


class Interval(StrEnum):
    MONTHLY = "monthly"
    ANNUAL = "annual"


class Product(StrEnum):
    EINVOICING = "einvoicing"
    PAYMENTS = "payments"
    BUNDLE = "bundle"


class Line(StrEnum):
    EINVOICING = "einvoicing"
    PAYMENTS = "payments"


def lines_occupied(product: Product) -> tuple[Line, ...]:
    """A bundle occupies both lines (R2); it is reported on `einvoicing`."""
    if product is Product.BUNDLE:
        return (Line.EINVOICING, Line.PAYMENTS)
    return (Line(product.value),)


def home_line(product: Product) -> Line:
    """The line a subscription to this product lives (and is reported) on."""
    return lines_occupied(product)[0]
