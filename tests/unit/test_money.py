from fractions import Fraction

import pytest

from billing.money import format_eur, round_half_up, vat


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Fraction(0), 0),
        (Fraction(1, 2), 1),
        (Fraction(3, 2), 2),
        (Fraction(5, 2), 3),
        (Fraction(49, 100), 0),
        (Fraction(2000 * 21, 31), 1355),  # 1354.838… (upgrade worked example)
        (Fraction(-3, 2), -2),
    ],
)
def test_round_half_up(value: Fraction, expected: int) -> None:
    assert round_half_up(value) == expected


@pytest.mark.parametrize(
    ("subtotal", "tax"),
    [
        (1900, 380),
        (1355, 271),
        (4090, 818),
        (250, 50),
        (2, 0),  # 0.4 cent rounds down
        (3, 1),  # 0.6 cent rounds up
        (1, 0),  # 0.2
        (5, 1),  # exactly 1.0
        (0, 0),
    ],
)
def test_vat_is_twenty_percent_rounded_half_up(subtotal: int, tax: int) -> None:
    assert vat(subtotal) == tax


def test_vat_rounds_an_exact_half_cent_up() -> None:
    # 20 % never lands on a half cent of an integer subtotal; the rounding rule is the same one.
    assert round_half_up(Fraction(25, 10)) == 3


def test_format_eur() -> None:
    assert format_eur(1355) == "13.55 EUR"
    assert format_eur(5) == "0.05 EUR"
