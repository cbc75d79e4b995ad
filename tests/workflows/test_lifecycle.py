"""Rules checked through the real workflow where the report alone does not show them:
quota alerts (R13), usage for a closed period (R12), the query's state, search attributes."""
import asyncio
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time

import pytest
from sqlalchemy import select

from billing.catalog import parse_catalog
from billing.intervals import Line
from billing.periods import PARIS
from billing.rules import Refused
from contracts import search_attributes as sa
from starter.scenario import ScenarioClient, ScenarioFirm, shift
from starter.service import workflow_id
from starter.simulate import Simulation, SimulationParts, simulation
from store.models import Notification

CATALOG = parse_catalog([
    {"code": "essentiel", "product": "einvoicing", "name": "Essentiel",
     "prices": {"monthly": 1900, "annual": 19000}, "quota": {"monthly": 50, "annual": 600}, "overage": 25},
    {"code": "standard", "product": "einvoicing", "name": "Standard",
     "prices": {"monthly": 3900, "annual": 39000}, "quota": {"monthly": 200, "annual": 2400}, "overage": 19},
])
START = date(2025, 9, 1)


def run(parts: SimulationParts, body: Callable[[Simulation], Awaitable[None]], *, subscribed: bool = True,
        firm_card: str = "4242424242424242") -> None:
    """cli-1 of firm cab-1 on 1 Sep 2025, on Essentiel monthly paid by the firm if `subscribed`."""
    async def main() -> None:
        async with simulation(CATALOG, parts, first_date=START) as sim:
            await sim.add_parties(
                [ScenarioFirm(id="cab-1", name="Cabinet Dupont", card=firm_card)],
                [ScenarioClient(id="cli-1", name="Boulangerie Martin", firm="cab-1")],
            )
            await sim.advance_to(START)
            if subscribed:
                await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="firm")
            await body(sim)
    asyncio.run(main())


async def usage(sim: Simulation, documents: int, event_id: str, on: date | None = None) -> None:
    if on is None:
        occurred = await sim.env.get_current_time()
    else:
        occurred = datetime.combine(shift(on, sim.years), time(12), tzinfo=PARIS)
    await sim.service.report_usage(event_id=event_id, client_id="cli-1", occurred_at=occurred, documents=documents)


def quota_notices(sim: Simulation) -> list[tuple[str, str, str]]:
    with sim.sessions() as session:
        rows = session.scalars(select(Notification).where(Notification.kind.like("quota_%")).order_by(Notification.id))
        return [(n.kind, f"{n.recipient_kind}:{n.recipient_id}", n.payload["period_start"]) for n in rows]


def test_quota_alerts_fire_once_per_period_at_80_and_100_percent(simulation_parts: SimulationParts) -> None:
    async def body(sim: Simulation) -> None:
        september = shift(START, sim.years).isoformat()
        await usage(sim, 39, "e1")
        assert quota_notices(sim) == []
        await usage(sim, 1, "e2")  # 40 of 50 = 80 %
        await usage(sim, 5, "e3")
        await usage(sim, 1, "e2")  # resent: counts once, alerts once
        assert quota_notices(sim) == [("quota_80", "firm:cab-1", september)]
        await usage(sim, 20, "e4")  # 65 of 50
        await usage(sim, 20, "e5")
        assert quota_notices(sim) == [("quota_80", "firm:cab-1", september), ("quota_100", "firm:cab-1", september)]
        await sim.advance_to(date(2025, 10, 2))
        await usage(sim, 50, "e6")  # a new period alerts again, both thresholds at once
        october = shift(date(2025, 10, 1), sim.years).isoformat()
        assert quota_notices(sim)[2:] == [("quota_80", "firm:cab-1", october), ("quota_100", "firm:cab-1", october)]
    run(simulation_parts, body)


def test_usage_for_a_period_already_invoiced_is_refused(simulation_parts: SimulationParts) -> None:
    async def body(sim: Simulation) -> None:
        await usage(sim, 10, "before")
        await sim.advance_to(date(2025, 10, 3))
        with pytest.raises(Refused, match="closed and its overage already invoiced"):
            await usage(sim, 5, "late", on=date(2025, 9, 20))
        with pytest.raises(Refused, match="no e-invoicing subscription period"):
            await usage(sim, 5, "before-start", on=date(2025, 8, 20))
        await usage(sim, 5, "october")  # the open period still takes usage
    run(simulation_parts, body)


def test_query_returns_the_whole_state_with_this_periods_usage(simulation_parts: SimulationParts) -> None:
    async def body(sim: Simulation) -> None:
        await usage(sim, 40, "e1")
        await sim.advance_to(date(2025, 9, 11))
        change = await sim.service.change_plan(client_id="cli-1", plan_code="standard")
        assert (change.kind, change.amount) == ("upgrade", 1333)  # 2000 * 20 / 30
        await sim.service.cancel(client_id="cli-1")
        state = await sim.service.state(client_id="cli-1")
        assert (state.plan.code, state.interval.value, state.payer.label) == ("standard", "monthly", "firm:cab-1")
        assert state.status.value == "pending_cancel"
        assert (shift(state.period_start, -sim.years), shift(state.period_end, -sim.years)) == (START, date(2025, 10, 1))
        assert state.quota == 200  # R7: 40 used of the new plan's 200
        assert await sim.service.used_this_period(client_id="cli-1") == 40
    run(simulation_parts, body)


def test_search_attributes_follow_every_change(simulation_parts: SimulationParts) -> None:
    async def body(sim: Simulation) -> None:
        handle = sim.env.client.get_workflow_handle(workflow_id("cli-1", Line.EINVOICING))
        await sim.service.cancel(client_id="cli-1")
        attributes = (await handle.describe()).typed_search_attributes
        assert attributes.get(sa.FIRM_ID) == "cab-1"
        assert attributes.get(sa.CLIENT_ID) == "cli-1"
        assert attributes.get(sa.PLAN_CODE) == "essentiel"
        assert attributes.get(sa.SUBSCRIPTION_STATUS) == "pending_cancel"
        assert attributes.get(sa.BILLING_INTERVAL) == "monthly"
        assert attributes.get(sa.PAYER_KIND) == "firm"
    run(simulation_parts, body)


def test_concurrent_changes_are_applied_one_at_a_time(simulation_parts: SimulationParts) -> None:
    async def body(sim: Simulation) -> None:
        results = await asyncio.gather(
            sim.service.change_plan(client_id="cli-1", plan_code="standard"),
            sim.service.cancel(client_id="cli-1"),
            return_exceptions=True,
        )
        state = await sim.service.state(client_id="cli-1")
        # Either order is valid; what matters is that the second saw the first's result.
        upgraded = not isinstance(results[0], Exception)
        cancelled = not isinstance(results[1], Exception)
        assert cancelled
        assert state.cancel_requested
        assert (state.plan.code == "standard") == upgraded
        if not upgraded:
            assert isinstance(results[0], Refused) and "reactivate" in str(results[0])
    run(simulation_parts, body)


def test_two_subscriptions_racing_for_one_line_leave_one_live(simulation_parts: SimulationParts) -> None:
    async def body(sim: Simulation) -> None:
        results = await asyncio.gather(*(
            sim.service.subscribe(client_id="cli-1", plan_code=plan, interval="monthly", payer_kind="firm")
            for plan in ("essentiel", "standard")
        ), return_exceptions=True)
        refused = [r for r in results if isinstance(r, Refused)]
        assert len(refused) == 1, results
        assert "already has a live subscription on the einvoicing line" in str(refused[0])
        report = sim.report()
        assert len(report["subscriptions"]) == 1
        assert len(report["invoices"]) == 1
    run(simulation_parts, body, subscribed=False)


def test_declined_charge_is_retried_3_6_and_9_days_later_notifying_each_failure(simulation_parts: SimulationParts) -> None:
    async def body(sim: Simulation) -> None:
        await sim.settle()  # the first charge runs after subscribe answered (R17)
        assert (await sim.service.state(client_id="cli-1")).status.value == "past_due"
        await sim.advance_to(date(2025, 9, 20))
        with sim.sessions() as session:
            failures = session.execute(
                select(Notification.business_date, Notification.recipient_kind, Notification.recipient_id)
                .where(Notification.kind == "payment_failed").order_by(Notification.business_date)
            ).all()
        assert [(shift(d, -sim.years), f"{k}:{i}") for d, k, i in failures] == [
            (date(2025, 9, 1), "firm:cab-1"), (date(2025, 9, 4), "firm:cab-1"),
            (date(2025, 9, 7), "firm:cab-1"), (date(2025, 9, 10), "firm:cab-1"),
        ]
        report = sim.report()
        assert report["subscriptions"][0]["status"] == "ended"
        assert report["subscriptions"][0]["ended_reason"] == "unpaid"
        assert report["subscriptions"][0]["ended_on"] == "2025-09-10"
        assert report["invoices"][0]["status"] == "uncollectible"
    run(simulation_parts, body, firm_card="4000000000000341")
