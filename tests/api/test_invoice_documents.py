"""Issue 11 through the HTTP API and the CLI: an invoice's Factur-X PDF and its XML, with the
invoice's own access rules (R15), and "not rendered yet" said as such."""
import asyncio
import subprocess
import sys
from pathlib import Path

import facturx
from sqlalchemy import select

from starter.simulate import SimulationParts
from store.models import Invoice, InvoiceDocument
from tests.api.conftest import GOOD_CARD, Api, api_on

PROJECT = Path(__file__).resolve().parents[2]


async def invoiced_client(api: Api, firm: str) -> str:
    created = await api.call(firm, "POST", "/v1/clients", {"name": "Boulangerie Martin", "card": GOOD_CARD})
    assert created.status_code == 201, created.text
    client = created.json()["id"]
    subscribed = await api.call(firm, "POST", f"/v1/clients/{client}/subscriptions",
                                {"plan": "essentiel", "interval": "monthly", "payer": "client"})
    assert subscribed.status_code == 201, subscribed.text
    await api.sim.wait_for_documents()
    invoices = (await api.call(firm, "GET", f"/v1/clients/{client}/invoices")).json()["items"]
    return str(invoices[0]["number"])


def test_the_pdf_and_the_xml_of_an_invoice_for_its_firm_and_the_operator_only(
        simulation_parts: SimulationParts, tmp_path: Path) -> None:
    async def main() -> None:
        async with api_on(simulation_parts) as api:
            number = await invoiced_client(api, "cab-a")
            pdf = await api.call("cab-a", "GET", f"/v1/invoices/{number}/pdf")
            assert pdf.status_code == 200, pdf.text
            assert pdf.headers["content-type"] == "application/pdf"
            assert pdf.content.startswith(b"%PDF-")
            xml = await api.call("operator", "GET", f"/v1/invoices/{number}/xml")
            assert xml.status_code == 200 and xml.headers["content-type"].startswith("application/xml")
            assert facturx.get_xml_from_pdf(pdf.content, check_xsd=False)[1] == xml.content
            assert number.encode() in xml.content
            for path in (f"/v1/invoices/{number}/pdf", f"/v1/invoices/{number}/xml"):
                other = await api.call("cab-b", "GET", path)  # R15: as if it did not exist
                assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json"
                assert (await api.call("cab-a", "GET", path.replace(number, "F-99999999"))).status_code == 404
            # The operator's CLI writes the same bytes.
            with api.sim.sessions() as session:
                stored = session.scalars(select(InvoiceDocument)).one()
            out = tmp_path / "facture.pdf"
            done = subprocess.run([sys.executable, "-m", "starter", "invoices", "pdf", number, "-o", str(out)],
                                  cwd=PROJECT, env=_env(api), capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            assert out.read_bytes() == stored.pdf == pdf.content
            assert stored.pdf_sha256 in done.stdout
            missing = subprocess.run([sys.executable, "-m", "starter", "invoices", "xml", "F-99999999", "-o",
                                      str(tmp_path / "x.xml")], cwd=PROJECT, env=_env(api), capture_output=True,
                                     text=True, timeout=120)
            assert missing.returncode == 2 and "there is no invoice 'F-99999999'" in missing.stderr
            assert not (tmp_path / "x.xml").exists()

    asyncio.run(main())


def test_an_invoice_not_rendered_yet_answers_503_with_retry_after(simulation_parts: SimulationParts) -> None:
    async def main() -> None:
        async with api_on(simulation_parts) as api:
            await invoiced_client(api, "cab-a")
            # An invoice is numbered a moment before its e-invoice is stored: that moment, held
            # still by an invoice of the same client with its snapshot and no document yet.
            with api.sim.sessions.begin() as session:
                first = session.scalars(select(Invoice)).one()
                session.add(Invoice(idempotency_key="pending", series="F", number=first.number + 1000,
                                    client_id=first.client_id, payer_kind=first.payer_kind, payer_id=first.payer_id,
                                    issued_on=first.issued_on, status="open", subtotal=0, tax=0, total=0,
                                    parties=first.parties))
            pending = f"F-{(first.number or 0) + 1000:08d}"
            answer = await api.call("cab-a", "GET", f"/v1/invoices/{pending}/pdf")
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "5"
            assert "is being rendered" in answer.json()["detail"]

    asyncio.run(main())


def _env(api: Api) -> dict[str, str]:
    import os

    return {**os.environ, "DATABASE_URL": api.sim.database_url, "PYTHONPATH": str(PROJECT)}
