"""R2 under concurrency (issue 7 item 10): a bundle occupies both lines, so a bundle and a
payments add-on subscribed at the same moment for one client cannot both start billing."""
import asyncio
from datetime import date

from sqlalchemy import select

from billing.catalog import parse_catalog
from billing.rules import Refused
from starter.scenario import ScenarioClient, ScenarioFirm
from starter.simulate import SimulationParts, simulation
from store.models import Invoice, LineReservation

CATALOG = parse_catalog([
    {"code": "paiements", "product": "payments", "name": "Paiements",
     "prices": {"monthly": 900}, "quota": {"monthly": 0}},
    {"code": "pack", "product": "bundle", "name": "Pack", "prices": {"monthly": 2500}, "quota": {"monthly": 50},
     "overage": 25},
])
START = date(2025, 9, 1)


def test_item10_a_bundle_and_a_payments_add_on_racing_for_one_client_bill_one_of_them(
        simulation_parts: SimulationParts) -> None:
    async def main() -> None:
        async with simulation(CATALOG, simulation_parts, first_date=START) as sim:
            await sim.add_parties([ScenarioFirm(id="cab-1", name="Cabinet")],
                                  [ScenarioClient(id=f"cli-{i}", name=f"Client {i}", firm="cab-1", card="4242424242424242")
                                   for i in range(5)])
            await sim.advance_to(START)
            for i in range(5):  # five clients, five races: the read-then-start check alone let both through
                client = f"cli-{i}"
                results = await asyncio.gather(
                    sim.service.subscribe(client_id=client, plan_code="pack", interval="monthly", payer_kind="client"),
                    sim.service.subscribe(client_id=client, plan_code="paiements", interval="monthly",
                                          payer_kind="client"),
                    return_exceptions=True)
                refused = [r for r in results if isinstance(r, Refused)]
                assert len(refused) == 1, results
                assert "already has a live subscription on the payments line" in str(refused[0])
            await sim.settle()
            with sim.sessions() as session:
                for i in range(5):
                    invoices = session.scalars(select(Invoice).where(Invoice.client_id == f"cli-{i}")).all()
                    assert len(invoices) == 1  # one fee billed: the winner's
                    holders = set(session.scalars(select(LineReservation.subscription_id)
                                                  .where(LineReservation.client_id == f"cli-{i}")))
                    assert holders == {invoices[0].subscription_id}
    asyncio.run(main())
