"""French legal identifiers an e-invoice names its parties by (EN 16931 BT-30/BT-31, BT-47/BT-48).

Pure functions: each returns the identifier in its canonical form (no spaces, upper case) or
raises `ValueError` with one sentence saying what is wrong.
"""
import re

# La Poste's SIREN fails the Luhn check: INSEE's one documented exception.
LUHN_EXCEPTIONS = frozenset({"356000000"})
_SHOWN = 20  # characters of a bad value quoted back


def siren(value: str) -> str:
    """A SIREN: 9 digits (spaces allowed, as in "900 000 050") with a valid Luhn check digit."""
    digits = _compact(value)
    if not re.fullmatch(r"[0-9]{9}", digits):
        raise ValueError(f"SIREN must be 9 digits, not {_quoted(value)}")
    if not luhn_valid(digits) and digits not in LUHN_EXCEPTIONS:
        raise ValueError(f"SIREN {digits} fails its check digit (Luhn)")
    return digits


def vat_number(value: str, *, siren: str | None = None) -> str:
    """A French intra-EU VAT number: FR, a 2-digit key, then the SIREN the key is computed from.

    With `siren`, the number must also be that SIREN's."""
    number = _compact(value).upper()
    if re.fullmatch(r"[A-Z]{2}.*", number) and not number.startswith("FR"):
        raise ValueError(f"only French VAT numbers (FR…) are accepted, not {_quoted(value)}")
    if not re.fullmatch(r"FR[0-9]{11}", number):
        raise ValueError(f"VAT number must be FR, a 2-digit key and the 9-digit SIREN "
                         f"(e.g. FR21900000050), not {_quoted(value)}")
    key, inner = number[2:4], number[4:]
    try:
        _siren(inner)
    except ValueError as exc:
        raise ValueError(f"VAT number {number} does not hold a valid SIREN: {exc}") from None
    if int(key) != vat_key(inner):
        raise ValueError(f"VAT number {number} has the key {key}, but SIREN {inner} gives {vat_key(inner):02d}")
    if siren is not None and inner != _compact(siren):
        raise ValueError(f"VAT number {number} is not that of SIREN {_compact(siren)}: it holds SIREN {inner}")
    return number


_siren = siren  # `vat_number`'s keyword hides the function inside it


def country_code(value: str) -> str:
    """An ISO 3166-1 alpha-2 country code (EN 16931 BT-40/BT-55), upper-cased: "FR", "BE"."""
    code = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", code):
        raise ValueError(f"country must be an ISO 3166-1 code of 2 letters (e.g. FR), not {_quoted(value)}")
    return code


def vat_key(siren_digits: str) -> int:
    """The French VAT key of a SIREN: (12 + 3 × (SIREN mod 97)) mod 97."""
    return (12 + 3 * (int(siren_digits) % 97)) % 97


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum: every second digit from the right doubled (minus 9 above 9); the sum ends in 0."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char) * (2 if position % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


def _compact(value: str) -> str:
    return "".join(value.split())  # spaces, including the non-breaking ones of "900 000 050"


def _quoted(value: str) -> str:
    """The value as sent, escaped (no control character in a one-line message) and cut short."""
    return repr(value) if len(value) <= _SHOWN else f"{value[:_SHOWN]!r}…"
