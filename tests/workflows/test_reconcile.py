"""`reconcile` against the real localstripe and PostgreSQL after a real run: silent when all
agree, and it names every kind of disagreement an operator must act on."""
import asyncio
from datetime import date

import pytest
import stripe
from sqlalchemy import update

from billing.catalog import parse_catalog
from starter.cli import main as cli
from starter.scenario import ScenarioClient, ScenarioFirm
from starter.simulate import SimulationParts, simulation
from store.models import Invoice, PaymentAttempt, PaymentCustomer

CATALOG = parse_catalog([
    {"code": "essentiel", "product": "einvoicing", "name": "Essentiel",
     "prices": {"monthly": 1900, "annual": 19000}, "quota": {"monthly": 50, "annual": 600}, "overage": 25},
])


def test_reconcile_is_quiet_when_all_agree_and_names_each_mismatch(
    simulation_parts: SimulationParts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def main() -> None:
        async with simulation(CATALOG, simulation_parts, first_date=date(2025, 9, 1)) as sim:
            await sim.add_parties(
                [ScenarioFirm(id="cab-1", name="Cabinet Dupont", card="4242424242424242")],
                [ScenarioClient(id="cli-1", name="Boulangerie Martin", firm="cab-1", card="4000000000000341"),
                 ScenarioClient(id="cli-2", name="Garage Petit", firm="cab-1")],
            )
            await sim.advance_to(date(2025, 9, 1))
            await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="client")
            await sim.service.subscribe(client_id="cli-2", plan_code="essentiel", interval="monthly", payer_kind="firm")
            await sim.advance_to(date(2025, 10, 2))  # renewals, and cli-1's dunning

            monkeypatch.setenv("DATABASE_URL", sim.database_url)
            monkeypatch.setenv("STRIPE_API_BASE", simulation_parts.stripe_api_base or "")
            assert cli(["reconcile"]) == 0
            quiet = capsys.readouterr().out
            assert "agree with Stripe" in quiet

            with sim.sessions.begin() as session:
                firm_customer = session.get_one(PaymentCustomer, ("firm", "cab-1"))
                paid = sorted(i for i in session.query(Invoice.id).filter(Invoice.payer_id == "cab-1"))[0][0]
                # Stripe charged an invoice a second time behind our back...
                client = stripe.StripeClient(simulation_parts.stripe_api_key,
                                             base_addresses={"api": simulation_parts.stripe_api_base})
                extra = client.v1.payment_intents.create(params={
                    "amount": 2280, "currency": "eur", "customer": firm_customer.stripe_customer_id,
                    "payment_method": firm_customer.default_payment_method, "metadata": {"invoice_id": str(paid)}})
                client.v1.payment_intents.confirm(extra.id)
                # ...we lost the record that the next one was paid, and an amount was altered.
                session.execute(update(Invoice).where(Invoice.payer_id == "cab-1", Invoice.id != paid).values(status="open"))
                session.execute(update(PaymentAttempt).where(PaymentAttempt.invoice_id == paid).values(amount=2000))
            assert cli(["reconcile"]) == 1
            out = capsys.readouterr().out
            for kind in ("charged_twice", "charged_not_recorded", "amount_differs"):
                assert kind in out, out
            with capsys.disabled():
                print(f"\nreconcile, all agreeing: {quiet}reconcile, after tampering: {out}")
    asyncio.run(main())
