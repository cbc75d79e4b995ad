"""SIREN and French VAT numbers (issue 11): canonical form back, or one sentence saying what is wrong."""
import pytest

from einvoice.identifiers import country_code, luhn_valid, siren, vat_key, vat_number


@pytest.mark.parametrize(("given", "canonical"), [
    ("732829320", "732829320"),
    ("732 829 320", "732829320"),
    ("732\u00a0829\u00a0320", "732829320"),  # non-breaking spaces, as word processors write it
    (" 552100554 ", "552100554"),
    ("356000000", "356000000"),  # La Poste: fails Luhn, valid all the same
])
def test_a_valid_siren_comes_back_as_its_nine_digits(given: str, canonical: str) -> None:
    assert siren(given) == canonical


@pytest.mark.parametrize(("given", "message"), [
    ("73282932", "SIREN must be 9 digits, not '73282932'"),
    ("7328293200", "SIREN must be 9 digits"),
    ("", "SIREN must be 9 digits"),
    ("73282932A", "SIREN must be 9 digits"),
    ("732-829-320", "SIREN must be 9 digits"),
    ("７３２８２９３２０", "SIREN must be 9 digits"),  # full-width digits are not digits here
    ("123456788", r"SIREN 123456788 fails its check digit \(Luhn\)"),
    ("732829321", r"SIREN 732829321 fails its check digit \(Luhn\)"),
])
def test_a_bad_siren_is_refused_with_a_sentence(given: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        siren(given)


def test_a_long_or_multiline_value_is_quoted_back_short_and_on_one_line() -> None:
    with pytest.raises(ValueError) as raised:
        siren("1\n" + "2" * 40)
    assert "\n" not in str(raised.value) and str(raised.value).endswith("…")


@pytest.mark.parametrize(("digits", "valid"), [
    ("732829320", True), ("552100554", True), ("123456782", True), ("123456788", False), ("0", True),
])
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(("siren_digits", "key"), [("732829320", 44), ("552100554", 96), ("356000000", 39)])
def test_the_vat_key_is_12_plus_3_times_the_siren_mod_97_mod_97(siren_digits: str, key: int) -> None:
    assert vat_key(siren_digits) == key


@pytest.mark.parametrize(("given", "canonical"), [
    ("FR44732829320", "FR44732829320"),
    ("fr 44 732 829 320", "FR44732829320"),
    ("FR96552100554", "FR96552100554"),
    ("FR39356000000", "FR39356000000"),  # La Poste's SIREN inside
])
def test_a_valid_french_vat_number_comes_back_compact_and_upper_case(given: str, canonical: str) -> None:
    assert vat_number(given) == canonical


@pytest.mark.parametrize(("given", "message"), [
    ("FR4473282932", "VAT number must be FR, a 2-digit key and the 9-digit SIREN"),
    ("FR447328293200", "VAT number must be FR, a 2-digit key and the 9-digit SIREN"),
    ("FRXX732829320", "VAT number must be FR, a 2-digit key and the 9-digit SIREN"),
    ("44732829320", "VAT number must be FR, a 2-digit key and the 9-digit SIREN"),
    ("FR11123456788", r"VAT number FR11123456788 does not hold a valid SIREN: SIREN 123456788 fails its check digit"),
    ("FR45732829320", "VAT number FR45732829320 has the key 45, but SIREN 732829320 gives 44"),
    ("DE123456789", r"only French VAT numbers \(FR…\) are accepted, not 'DE123456789'"),
    ("BE0403170701", r"only French VAT numbers \(FR…\) are accepted"),
])
def test_a_bad_vat_number_is_refused_with_a_sentence(given: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        vat_number(given)


def test_a_vat_number_given_with_a_siren_must_hold_that_siren() -> None:
    assert vat_number("FR44732829320", siren="732 829 320") == "FR44732829320"
    with pytest.raises(ValueError, match="VAT number FR44732829320 is not that of SIREN 552100554: "
                                         "it holds SIREN 732829320"):
        vat_number("FR44732829320", siren="552100554")


@pytest.mark.parametrize(("given", "code"), [("FR", "FR"), (" be ", "BE"), ("de", "DE")])
def test_a_country_is_two_letters_upper_cased(given: str, code: str) -> None:
    assert country_code(given) == code


@pytest.mark.parametrize("given", ["France", "F", "", "F1", "FRA"])
def test_anything_else_is_not_a_country_code(given: str) -> None:
    with pytest.raises(ValueError, match="country must be an ISO 3166-1 code of 2 letters"):
        country_code(given)
