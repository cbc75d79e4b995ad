"""What a renewal costs the server (issue 10): a run lives through renewal after renewal, and
continues as new only once its history is long; a renewal that changes no search attribute
upserts none. The state after each renewal is the one a new run would have started with."""
import asyncio
from collections.abc import Awaitable, Callable
from datetime import date

import pytest
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

import workflows.subscription as subscription_module
from billing.catalog import parse_catalog
from billing.intervals import Line
from contracts import search_attributes as sa
from starter.scenario import ScenarioClient, ScenarioFirm, shift
from starter.service import workflow_id
from starter.simulate import Simulation, SimulationParts, simulation
from store.models import Invoice

CATALOG = parse_catalog([
    {"code": "essentiel", "product": "einvoicing", "name": "Essentiel",
     "prices": {"monthly": 1900, "annual": 19000}, "quota": {"monthly": 50, "annual": 600}, "overage": 25},
])
START = date(2025, 9, 1)
RENEWALS = [date(2025, 10, 1), date(2025, 11, 1), date(2025, 12, 1)]
OUR_ATTRIBUTES = {key.name for key in (sa.FIRM_ID, sa.CLIENT_ID, sa.PLAN_CODE, sa.SUBSCRIPTION_STATUS,
                                       sa.BILLING_INTERVAL, sa.PAYER_KIND)}


def run(parts: SimulationParts, body: Callable[[Simulation, WorkflowHandle], Awaitable[None]]) -> None:
    """cli-1 of firm cab-1 on Essentiel monthly from 1 Sep 2025, paid by the firm."""
    async def main() -> None:
        async with simulation(CATALOG, parts, first_date=START) as sim:
            await sim.add_parties([ScenarioFirm(id="cab-1", name="Cabinet Dupont", card="4242424242424242")],
                                  [ScenarioClient(id="cli-1", name="Boulangerie Martin", firm="cab-1")])
            await sim.advance_to(START)
            await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="firm")
            await body(sim, sim.env.client.get_workflow_handle(workflow_id("cli-1", Line.EINVOICING)))
    asyncio.run(main())


def fee_invoices(sim: Simulation) -> list[tuple[date, str, int]]:
    with sim.sessions() as session:
        rows = session.execute(select(Invoice.issued_on, Invoice.status, Invoice.total)
                               .where(Invoice.idempotency_key.like("%:fee:%")).order_by(Invoice.issued_on)).all()
    return [(shift(issued_on, -sim.years), status, total) for issued_on, status, total in rows]


async def runs(sim: Simulation, handle: WorkflowHandle) -> list[str]:
    """The run ids of the subscription's workflow, oldest first (each run names the one it continues)."""
    found = [(await handle.describe()).run_id]
    while True:
        run = sim.env.client.get_workflow_handle(handle.id, run_id=found[0])
        started = (await run.fetch_history()).events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            return found
        found.insert(0, started.continued_execution_run_id)


async def our_upserts(handle: WorkflowHandle) -> list[dict[str, str]]:
    """Every upsert of our search attributes in the current run (not the SDK's own ones for patches)."""
    upserts = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            if OUR_ATTRIBUTES & set(fields):
                upserts.append({name: payload.data.decode() for name, payload in fields.items()})
    return upserts


def test_three_renewals_stay_in_one_run_and_each_leaves_the_state_a_new_run_would_have(
        simulation_parts: SimulationParts) -> None:
    async def body(sim: Simulation, handle: WorkflowHandle) -> None:
        first_run = (await handle.describe()).run_id
        previous_version = (await sim.service.state(client_id="cli-1")).version
        for month, renewal in enumerate(RENEWALS):
            await sim.service.report_usage(event_id=f"e{month}", client_id="cli-1", documents=60 + month,
                                           occurred_at=await sim.env.get_current_time())
            await sim.advance_to(renewal)
            state = await sim.service.state(client_id="cli-1")
            assert (shift(state.period_start, -sim.years), shift(state.period_end, -sim.years)) == (
                renewal, RENEWALS[month + 1] if month + 1 < len(RENEWALS) else date(2026, 1, 1))
            assert state.version == previous_version + 1  # one recorded version per renewal
            previous_version = state.version
            assert (state.dunning, state.on_hold, state.alerts) == ([], [], [])
            assert await sim.service.used_this_period(client_id="cli-1") == 0  # the new period counts from 0
            assert (await handle.describe()).run_id == first_run  # no continue-as-new
        # Fee in advance, and the closed period's overage (60, 61, 62 documents of 50) at 0.25 € each.
        assert fee_invoices(sim) == [(START, "paid", 2280), (RENEWALS[0], "paid", 2580),
                                     (RENEWALS[1], "paid", 2610), (RENEWALS[2], "paid", 2640)]
        assert await runs(sim, handle) == [first_run]
    run(simulation_parts, body)


def test_a_renewal_that_changes_no_search_attribute_upserts_none(simulation_parts: SimulationParts) -> None:
    async def body(sim: Simulation, handle: WorkflowHandle) -> None:
        for renewal in RENEWALS:
            await sim.advance_to(renewal)
        assert await our_upserts(handle) == []  # the attributes set at start still hold
        await sim.service.cancel(client_id="cli-1")
        assert [u[sa.SUBSCRIPTION_STATUS.name] for u in await our_upserts(handle)] == ['"pending_cancel"']
        attributes = (await handle.describe()).typed_search_attributes
        assert (attributes.get(sa.SUBSCRIPTION_STATUS), attributes.get(sa.PLAN_CODE)) == ("pending_cancel", "essentiel")
    run(simulation_parts, body)


def test_a_run_whose_history_is_long_continues_as_new_with_its_state(
        simulation_parts: SimulationParts, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscription_module, "RUN_HISTORY_EVENTS", 40)  # about one renewal's worth

    async def body(sim: Simulation, handle: WorkflowHandle) -> None:
        for renewal in RENEWALS:
            await sim.advance_to(renewal)
        assert len(await runs(sim, handle)) > 1
        state = await sim.service.state(client_id="cli-1")
        assert (shift(state.period_start, -sim.years), shift(state.period_end, -sim.years)) == (
            RENEWALS[2], date(2026, 1, 1))
        assert [(on, status) for on, status, _ in fee_invoices(sim)] == [
            (START, "paid"), *((renewal, "paid") for renewal in RENEWALS)]
    run(simulation_parts, body)
