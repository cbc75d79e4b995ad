"""Money is integer euro cents; fractions appear only inside a computation and are rounded once."""
from fractions import Fraction
from typing import TypeAlias

Cents: TypeAlias = int
CURRENCY = "eur"
VAT_RATE = Fraction(20, 100)


def round_half_up(value: Fraction) -> int:
    """Round to the nearest integer, halves away from zero (1.5 -> 2, -1.5 -> -2)."""
    magnitude = (abs(value.numerator) * 2 + value.denominator) // (2 * value.denominator)
    return magnitude if value >= 0 else -magnitude


def vat(subtotal: Cents) -> Cents:
    """French VAT at 20 % of the subtotal, rounded half up to the cent (R4)."""
    return round_half_up(subtotal * VAT_RATE)


NBSP = "\u00a0"  # French typography: no line break inside an amount, nor before the €


def format_eur_fr(amount: Cents) -> str:
    """1234567 -> '12 345,67 €' (no-break spaces): amounts as French readers write them."""
    sign = "-" if amount < 0 else ""
    euros, cents = divmod(abs(amount), 100)
    return f"{sign}{euros:,}".replace(",", NBSP) + f",{cents:02d}{NBSP}€"


def format_eur(amount: Cents) -> str:
    """1355 -> '13.55 EUR' for notices; never parsed back."""
    sign = "-" if amount < 0 else ""
    euros, cents = divmod(abs(amount), 100)
    return f"{sign}{euros}.{cents:02d} EUR"
