"""Us as the seller (issue 11): a demo identity by default, checked like any party's; a bad
SIREN or VAT number is the bad-settings path: one sentence naming the setting, exit 2."""
import pytest
from pydantic import ValidationError

from einvoice.document import PostalAddress, Seller
from settings import Settings
from starter.cli import main


@pytest.fixture(autouse=True)
def no_env_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")  # no .env file from the work tree


def test_the_default_seller_is_a_demo_identity_whose_numbers_are_valid() -> None:
    seller = Settings().seller()
    assert "démo" in seller.name
    assert (seller.siren, seller.vat_number) == ("900000050", "FR21900000050")


def test_the_seller_is_read_from_the_environment_in_canonical_form(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"SELLER_NAME": "Cabinet Billing SAS", "SELLER_SIREN": "552 100 554",
                        "SELLER_VAT_NUMBER": "fr 96 552100554", "SELLER_ADDRESS_LINE1": "5 rue de la Paix",
                        "SELLER_ADDRESS_LINE2": "", "SELLER_POSTAL_CODE": "75002", "SELLER_CITY": "Paris",
                        "SELLER_COUNTRY": "fr", "SELLER_EMAIL": "facturation@example.fr",
                        "SELLER_LEGAL_MENTIONS": "SAS au capital de 10 000 € — RCS Paris 552 100 554"}.items():
        monkeypatch.setenv(name, value)
    assert Settings().seller() == Seller(
        name="Cabinet Billing SAS", siren="552100554", vat_number="FR96552100554",
        address=PostalAddress(line1="5 rue de la Paix", postal_code="75002", city="Paris", country="FR"),
        email="facturation@example.fr", legal_mentions="SAS au capital de 10 000 € — RCS Paris 552 100 554")


@pytest.mark.parametrize(("env", "says"), [
    ({"SELLER_SIREN": "123456788"}, "SELLER_SIREN: SIREN 123456788 fails its check digit (Luhn)"),
    ({"SELLER_VAT_NUMBER": "FR45732829320"},
     "SELLER_VAT_NUMBER: VAT number FR45732829320 has the key 45, but SIREN 732829320 gives 44"),
    ({"SELLER_SIREN": "552100554"},  # the demo VAT number left with another SIREN
     "SELLER_VAT_NUMBER: VAT number FR21900000050 is not that of SIREN 552100554: it holds SIREN 900000050"),
    ({"SELLER_VAT_NUMBER": "BE0403170701"},
     "SELLER_VAT_NUMBER: only French VAT numbers (FR…) are accepted, not 'BE0403170701'"),
])
def test_a_bad_seller_setting_is_one_sentence_and_exit_2(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                         says: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
    assert main(["check-catalog"]) == 2
    assert capsys.readouterr().err == says + "\n"
