"""Legal identities through the HTTP API (issue 11): a client's and the firm's legal name, SIREN,
VAT number and address, given at creation or completed later; a bad one is a 422 that names the
field and changes nothing; a firm sees and changes only its own (R15)."""
import asyncio
from typing import Any

from contracts.views import PARTY_FIELDS, ClientView, FirmView
from starter.api_schemas import LegalIdentity
from starter.keys_cli import IDENTITY_OPTIONS
from starter.simulate import SimulationParts
from store.models import Client, Firm
from tests.api.conftest import Api, api_on

IDENTITY = {"legal_name": "Fromagerie Dupont SARL", "siren": "732 829 320", "vat_number": "fr44 732829320",
            "address_line1": "3 rue des Halles", "postal_code": "69001", "city": "Lyon",
            "billing_email": "compta@fromagerie-dupont.fr"}
CANONICAL = {**IDENTITY, "siren": "732829320", "vat_number": "FR44732829320", "address_line2": None, "country": "FR"}
NO_IDENTITY = {"legal_name": None, "siren": None, "vat_number": None, "address_line1": None, "address_line2": None,
               "postal_code": None, "city": None, "country": "FR", "billing_email": None}


def identity_of(view: dict[str, Any]) -> dict[str, Any]:
    return {name: view[name] for name in NO_IDENTITY}


async def refused(api: Api, who: str, method: str, path: str, body: object) -> str:
    answer = await api.call(who, method, path, body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    return str(answer.json()["detail"])


def test_the_api_the_cli_the_views_and_the_tables_name_the_same_identity_fields() -> None:
    assert list(LegalIdentity.model_fields) == list(PARTY_FIELDS) == list(IDENTITY_OPTIONS) == list(NO_IDENTITY)
    for has_them in (ClientView.model_fields, FirmView.model_fields, Firm.__table__.columns, Client.__table__.columns):
        assert set(PARTY_FIELDS) <= set(has_them.keys())


def test_a_client_is_created_with_its_legal_identity_or_completed_later(simulation_parts: SimulationParts) -> None:
    async def main() -> None:
        async with api_on(simulation_parts) as api:
            created = await api.call("cab-a", "POST", "/v1/clients", {"name": "Fromagerie Dupont", **IDENTITY})
            assert created.status_code == 201, created.text
            assert identity_of(created.json()) == CANONICAL
            got = await api.call("cab-a", "GET", f"/v1/clients/{created.json()['id']}")
            assert identity_of(got.json()) == CANONICAL

            bare = (await api.call("cab-a", "POST", "/v1/clients", {"name": "Boulangerie Martin"})).json()
            assert identity_of(bare) == NO_IDENTITY
            path = f"/v1/clients/{bare['id']}"
            completed = await api.call("cab-a", "PATCH", path, {"siren": "552100554", "city": "Tours"})
            assert completed.status_code == 200, completed.text
            assert identity_of(completed.json()) == {**NO_IDENTITY, "siren": "552100554", "city": "Tours"}
            # Only what is sent changes; null clears; the VAT number of the SIREN on record is taken.
            changed = await api.call("cab-a", "PATCH", path, {"vat_number": "FR96552100554", "city": None,
                                                              "country": "be"})
            assert identity_of(changed.json()) == {**NO_IDENTITY, "siren": "552100554",
                                                   "vat_number": "FR96552100554", "country": "BE"}
            assert (changed.json()["name"], changed.json()["firm_id"]) == ("Boulangerie Martin", "cab-a")
            listed = {c["id"]: c for c in (await api.call("cab-a", "GET", "/v1/clients")).json()["items"]}
            assert listed[bare["id"]]["vat_number"] == "FR96552100554"
            tab = (await api.call("cab-a", "GET", f"{path}/subscriptions")).json()
            assert tab["client"]["siren"] == "552100554"
            # The operator changes any firm's client; both SIREN and VAT number at once.
            both = await api.call("operator", "PATCH", path, {"siren": "732829320", "vat_number": "FR44732829320"})
            assert both.status_code == 200 and both.json()["vat_number"] == "FR44732829320"
    asyncio.run(main())


def test_a_bad_identity_is_a_422_naming_the_field_and_changes_nothing(simulation_parts: SimulationParts) -> None:
    async def main() -> None:
        async with api_on(simulation_parts) as api:
            client = (await api.call("cab-a", "POST", "/v1/clients",
                                     {"name": "Fromagerie Dupont", "siren": "552100554"})).json()["id"]
            path = f"/v1/clients/{client}"
            before = api.snapshot()
            new = {"name": "Client X"}
            assert await refused(api, "cab-a", "POST", "/v1/clients", {**new, "siren": "123456788"}) == \
                "siren: SIREN 123456788 fails its check digit (Luhn)"
            assert await refused(api, "cab-a", "POST", "/v1/clients", {**new, "siren": "12345"}) == \
                "siren: SIREN must be 9 digits, not '12345'"
            assert await refused(api, "cab-a", "POST", "/v1/clients", {**new, "vat_number": "FR45732829320"}) == \
                "vat_number: VAT number FR45732829320 has the key 45, but SIREN 732829320 gives 44"
            assert await refused(api, "cab-a", "POST", "/v1/clients", {**new, "vat_number": "DE123456789"}) == \
                "vat_number: only French VAT numbers (FR…) are accepted, not 'DE123456789'"
            assert await refused(api, "cab-a", "POST", "/v1/clients",
                                 {**new, "siren": "552100554", "vat_number": "FR44732829320"}) == (
                "vat_number: VAT number FR44732829320 is not that of SIREN 552100554: it holds SIREN 732829320")
            assert (await refused(api, "cab-a", "POST", "/v1/clients", {**new, "country": "France"})).startswith(
                "country: country must be an ISO 3166-1 code of 2 letters")
            assert await refused(api, "cab-a", "POST", "/v1/clients", {**new, "billing_email": "compta"}) == \
                "billing_email: must be an address like compta@cabinet.fr"
            # Against what is on record: the client's SIREN is 552100554.
            assert await refused(api, "cab-a", "PATCH", path, {"vat_number": "FR44732829320"}) == (
                "vat_number: VAT number FR44732829320 holds SIREN 732829320, not the client's SIREN 552100554 on "
                "record (send the new SIREN with it to change both)")
            assert await refused(api, "cab-a", "PATCH", path, {"siren": "123456788", "city": "Lyon"}) == \
                "siren: SIREN 123456788 fails its check digit (Luhn)"
            assert await refused(api, "cab-a", "PATCH", path, {"country": None}) == \
                "country: Input should be a valid string"
            assert (await refused(api, "cab-a", "PATCH", path, {"name": "Renamed"})).startswith("name: Extra inputs")
            # Another firm's client reads exactly like one that does not exist (R15).
            as_b = await api.call("cab-b", "PATCH", path, {"city": "Lyon"})
            missing = await api.call("cab-b", "PATCH", "/v1/clients/cli_doesnotexist", {"city": "Lyon"})
            assert (as_b.status_code, missing.status_code) == (404, 404)
            assert as_b.json()["detail"].replace(client, "?") == missing.json()["detail"].replace("cli_doesnotexist", "?")
            assert api.snapshot() == before
            # With a VAT number on record, a SIREN alone that is not its SIREN is refused too.
            assert (await api.call("cab-a", "PATCH", path, {"vat_number": "FR96552100554"})).status_code == 200
            assert await refused(api, "cab-a", "PATCH", path, {"siren": "732829320"}) == (
                "siren: SIREN 732829320 is not the one in the client's VAT number FR96552100554 on record "
                "(send the matching VAT number with it, or clear that one)")
            assert (await api.call("cab-a", "GET", path)).json()["siren"] == "552100554"
    asyncio.run(main())


def test_a_firm_reads_and_completes_its_own_identity_and_the_operator_names_the_firm(
        simulation_parts: SimulationParts) -> None:
    async def main() -> None:
        async with api_on(simulation_parts) as api:
            firm = await api.call("cab-a", "GET", "/v1/firm")
            assert firm.status_code == 200, firm.text
            assert firm.json() == {"id": "cab-a", "name": "Cabinet A", "email": None, **NO_IDENTITY}
            patched = await api.call("cab-a", "PATCH", "/v1/firm", IDENTITY)
            assert patched.status_code == 200, patched.text
            assert identity_of(patched.json()) == CANONICAL
            assert identity_of((await api.call("cab-a", "GET", "/v1/firm")).json()) == CANONICAL
            assert identity_of((await api.call("cab-b", "GET", "/v1/firm")).json()) == NO_IDENTITY

            assert await refused(api, "cab-a", "PATCH", "/v1/firm", {"siren": "732829321", "city": "Paris"}) == \
                "siren: SIREN 732829321 fails its check digit (Luhn)"
            assert await refused(api, "cab-a", "PATCH", "/v1/firm", {"vat_number": "FR96552100554"}) == (
                "vat_number: VAT number FR96552100554 holds SIREN 552100554, not the firm's SIREN 732829320 on "
                "record (send the new SIREN with it to change both)")
            assert identity_of((await api.call("cab-a", "GET", "/v1/firm")).json()) == CANONICAL  # unchanged

            assert await refused(api, "operator", "GET", "/v1/firm", None) == "the operator must name the firm (firm_id)"
            assert await refused(api, "operator", "PATCH", "/v1/firm", {"city": "Lyon"}) == \
                "the operator must name the firm (firm_id)"
            by_operator = await api.call("operator", "PATCH", "/v1/firm?firm_id=cab-b", {"legal_name": "Cabinet B SAS"})
            assert by_operator.status_code == 200 and by_operator.json()["legal_name"] == "Cabinet B SAS"
            assert (await api.call("operator", "GET", "/v1/firm?firm_id=cab-b")).json()["legal_name"] == "Cabinet B SAS"
            assert (await api.call("operator", "GET", "/v1/firm?firm_id=nobody")).status_code == 404
            # A firm naming another firm gets a 404, and changes nothing.
            assert (await api.call("cab-a", "GET", "/v1/firm?firm_id=cab-b")).status_code == 404
            assert (await api.call("cab-a", "PATCH", "/v1/firm?firm_id=cab-b", {"city": "Lyon"})).status_code == 404
            assert (await api.call("cab-b", "GET", "/v1/firm")).json()["city"] is None
    asyncio.run(main())


def test_a_vat_number_alone_gives_the_siren_and_the_siren_cannot_be_cleared_under_it(
        simulation_parts: SimulationParts) -> None:
    async def main() -> None:
        async with api_on(simulation_parts) as api:
            created = await api.call("cab-a", "POST", "/v1/clients", {"name": "Fromagerie", "vat_number": "FR75900000068"})
            assert created.status_code == 201, created.text
            assert created.json()["siren"] == "900000068"
            client = created.json()["id"]
            before = api.snapshot()
            cleared = await api.call("cab-a", "PATCH", f"/v1/clients/{client}", {"siren": None})
            assert cleared.status_code == 422
            assert cleared.json()["detail"].startswith("siren: cannot be cleared while the VAT number FR75900000068")
            assert api.snapshot() == before
            both = await api.call("cab-a", "PATCH", f"/v1/clients/{client}", {"siren": None, "vat_number": None})
            assert both.status_code == 200 and (both.json()["siren"], both.json()["vat_number"]) == (None, None)
            bad_name = await api.call("cab-a", "PATCH", f"/v1/clients/{client}", {"legal_name": "Fromagerie\nSARL"})
            assert bad_name.status_code == 422 and bad_name.json()["detail"].startswith("legal_name: must be one line")

    asyncio.run(main())
