"""`python -m starter firms create|update` with the firm's legal identity (issue 11): checked as
the API checks it; a bad one is one sentence naming the option, exit 2, and nothing written."""
import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store.models import Firm
from tests.cli_runs import cli_database, run  # noqa: F401  (cli_database: an autouse fixture)

pytestmark = pytest.mark.postgres

IDENTITY = ("--legal-name", "Cabinet Roux SAS", "--siren", "732 829 320", "--vat-number", "fr44732829320",
            "--address-line1", "12 quai de Saône", "--postal-code", "69002", "--city", "Lyon",
            "--billing-email", "factures@cabinet-roux.fr")


def identity(session_factory: sessionmaker[Session], firm_id: str) -> dict[str, object]:
    with session_factory() as session:
        firm = session.get_one(Firm, firm_id)
        return {name: getattr(firm, name) for name in ("name", "email", "legal_name", "siren", "vat_number",
                                                       "address_line1", "address_line2", "postal_code", "city",
                                                       "country", "billing_email")}


def test_a_firm_is_created_with_its_legal_identity_and_updated_option_by_option(
        capsys: pytest.CaptureFixture[str], session_factory: sessionmaker[Session]) -> None:
    code, out, _ = run(capsys, "firms", "create", "--name", "Cabinet Roux", *IDENTITY)
    assert code == 0 and json.loads(out)["id"] == "cabinet-roux"
    created = {"name": "Cabinet Roux", "email": None, "legal_name": "Cabinet Roux SAS", "siren": "732829320",
               "vat_number": "FR44732829320", "address_line1": "12 quai de Saône", "address_line2": None,
               "postal_code": "69002", "city": "Lyon", "country": "FR", "billing_email": "factures@cabinet-roux.fr"}
    assert identity(session_factory, "cabinet-roux") == created

    code, out, err = run(capsys, "firms", "update", "cabinet-roux", "--address-line2", "Bâtiment B",
                         "--city", "Lyon 2e", "--billing-email", "", "--email", "compta@cabinet-roux.fr")
    assert (code, err) == (0, "")
    updated = {**created, "address_line2": "Bâtiment B", "city": "Lyon 2e", "billing_email": None,
               "email": "compta@cabinet-roux.fr"}
    assert identity(session_factory, "cabinet-roux") == updated
    assert json.loads(out) == {"id": "cabinet-roux", **updated}

    code, _, _ = run(capsys, "firms", "update", "cabinet-roux", "--siren", "552100554", "--vat-number", "FR96552100554")
    assert code == 0 and identity(session_factory, "cabinet-roux")["vat_number"] == "FR96552100554"


@pytest.mark.parametrize(("argv", "says"), [
    (("firms", "create", "--name", "Cabinet Roux", "--siren", "123456788"),
     "--siren: SIREN 123456788 fails its check digit (Luhn)"),
    (("firms", "create", "--name", "Cabinet Roux", "--vat-number", "DE123456789"),
     "--vat-number: only French VAT numbers (FR…) are accepted, not 'DE123456789'"),
    (("firms", "create", "--name", "Cabinet Roux", "--siren", "552100554", "--vat-number", "FR44732829320"),
     "--vat-number: VAT number FR44732829320 is not that of SIREN 552100554: it holds SIREN 732829320"),
    (("firms", "create", "--name", "Cabinet Roux", "--country", "France"),
     "--country: country must be an ISO 3166-1 code of 2 letters (e.g. FR), not 'France'"),
    (("firms", "create", "--name", "Cabinet Roux", "--billing-email", "nobody"),
     "--billing-email: must be an address like compta@cabinet.fr"),
    (("firms", "update", "nobody", "--city", "Lyon"), "there is no firm 'nobody'"),
])
def test_a_bad_identity_is_one_sentence_naming_the_option_exit_2_and_nothing_written(
        capsys: pytest.CaptureFixture[str], session_factory: sessionmaker[Session], argv: tuple[str, ...],
        says: str) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith(says) and len(err.strip().splitlines()) == 1, err
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Firm)) == 0


def test_an_update_is_checked_against_the_identity_on_record_and_a_refused_one_writes_nothing(
        capsys: pytest.CaptureFixture[str], session_factory: sessionmaker[Session]) -> None:
    assert run(capsys, "firms", "create", "--name", "Cabinet Roux", *IDENTITY)[0] == 0
    before = identity(session_factory, "cabinet-roux")
    for argv, says in [
        (("--city", "Paris", "--siren", "732829321"), "--siren: SIREN 732829321 fails its check digit (Luhn)\n"),
        (("--city", "Paris", "--vat-number", "FR96552100554"),
         "--vat-number: VAT number FR96552100554 holds SIREN 552100554, not the firm's SIREN 732829320 on record "
         "(send the new SIREN with it to change both)\n"),
        (("--name", "Cabinet Blanc", "--siren", "552100554"),
         "--siren: SIREN 552100554 is not the one in the firm's VAT number FR44732829320 on record "
         "(send the matching VAT number with it, or clear that one)\n"),
        (("--name", " "), "--name must have 1 to 200 characters\n"),
    ]:
        assert run(capsys, "firms", "update", "cabinet-roux", *argv) == (2, "", says)
    assert identity(session_factory, "cabinet-roux") == before


def test_a_client_is_created_by_the_operator_and_its_identity_completed(
        capsys: pytest.CaptureFixture[str], session_factory: sessionmaker[Session]) -> None:
    from store.models import Client

    assert run(capsys, "firms", "create", "--name", "Cabinet Roux")[0] == 0
    code, out, err = run(capsys, "clients", "create", "--firm", "cabinet-roux", "--name", "Fromagerie Dupont",
                         "--external-id", "FD-1", "--vat-number", "FR75900000068")
    assert (code, err) == (0, "")
    created = json.loads(out)
    assert (created["firm_id"], created["siren"], created["vat_number"]) == ("cabinet-roux", "900000068", "FR75900000068")
    code, out, err = run(capsys, "clients", "update", created["id"], "--legal-name", "Fromagerie Dupont SARL",
                         "--postal-code", "69001", "--city", "Lyon")
    assert (code, err) == (0, "") and json.loads(out)["legal_name"] == "Fromagerie Dupont SARL"
    code, _, err = run(capsys, "clients", "update", created["id"], "--siren", "552100554")
    assert code == 2 and err.startswith("--siren: SIREN 552100554 is not the one in the client's VAT number")
    code, _, err = run(capsys, "clients", "create", "--firm", "nobody", "--name", "X")
    assert code == 2 and "there is no firm 'nobody'" in err
    with session_factory() as session:
        [client] = session.scalars(select(Client)).all()
        assert (client.siren, client.city) == ("900000068", "Lyon")
