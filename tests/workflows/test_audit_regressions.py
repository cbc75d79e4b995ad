"""Defects an audit of issue 7's hardening found, each shown by a test first (real parts)."""
import asyncio
from dataclasses import replace
from datetime import date, timedelta

from sqlalchemy import select, update

from starter.simulate import Simulation, SimulationParts
from store.models import OperatorAlert, PaymentCustomer
from tests.tcp_proxy import TcpProxy
from tests.workflows import test_charge_edges as charges
from tests.workflows import test_edges_after_end as after_end
from tests.workflows import test_no_stall as no_stall


def test_r11_a_retry_after_the_end_that_stripe_refuses_waits_for_a_new_card_then_pays(
        simulation_parts: SimulationParts) -> None:
    """The dunning workflow of an ended subscription meets a request error (unknown customer):
    it does not give the invoice up; the payer's new card retries it at once."""
    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="client")
        await sim.advance_to(date(2025, 5, 2))
        await sim.service.cancel_now(client_id="cli-1")
        await sim.advance_to(date(2025, 5, 3))
        ((fee, _, _, _),) = after_end.invoices(sim)
        with sim.sessions.begin() as session:
            session.execute(update(PaymentCustomer).where(PaymentCustomer.payer_id == "cli-1")
                            .values(stripe_customer_id="cus_doesnotexist"))
        await sim.advance_to(date(2025, 5, 4))  # the 3-day retry: Stripe refuses the request

        def alerted() -> bool:
            with sim.sessions() as session:
                return session.scalar(select(OperatorAlert.id).where(OperatorAlert.invoice_id == fee)) is not None
        await after_end.eventually(sim, "the refused retry is alerted", alerted)
        await sim.service.register_card(payer=after_end.CLIENT, card=after_end.GOOD)
        await after_end.eventually(sim, "the new card pays it", lambda: after_end.status_of(sim, fee) == "paid")
    after_end.run(simulation_parts, date(2025, 5, 1), body)


def test_r16_a_waiting_invoice_held_by_a_last_3ds_attempt_is_collected_by_the_next_charge(
        simulation_parts: SimulationParts) -> None:
    """A 0.30 € invoice taken along by a charge whose every attempt waits for 3-D Secure (its
    own invoice ends written off) is not pinned for ever: the payer's next charge cancels that
    intent and collects it."""
    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-1", plan_code="mini", interval="monthly", payer_kind="firm")
        await charges.quiet(sim, "cli-1")
        await charges.use(sim, "cli-1", 11, "e1")
        await sim.advance_to(date(2025, 9, 2))
        await asyncio.wait_for(sim.service.cancel_now(client_id="cli-1"), charges.DEADLINE)
        await charges.finished(sim, "cli-1")
        small = charges.invoices(sim)[-1]
        assert (small.total, small.status) == (charges.SMALL_FINAL_TOTAL, "open") and small.waiting_since is not None
        await sim.service.register_card(payer=charges.FIRM, card=charges.THREE_D_SECURE_CARD)
        await asyncio.wait_for(sim.service.subscribe(
            client_id="cli-2", plan_code="essentiel", interval="monthly", payer_kind="firm"), charges.DEADLINE)
        await charges.quiet(sim, "cli-2")
        fee2 = charges.invoices(sim)[-1]
        for day in (5, 8, 11, 12):  # retries 3, 6 and 9 days on: each asks for 3-D Secure again
            await sim.advance_to(date(2025, 9, day))
        await charges.wait_until(lambda: next(i for i in charges.invoices(sim) if i.id == fee2.id).status
                                 == "uncollectible")
        await sim.service.register_card(payer=charges.FIRM, card=charges.GOOD_CARD)
        await asyncio.wait_for(sim.service.subscribe(
            client_id="cli-3", plan_code="essentiel", interval="monthly", payer_kind="firm"), charges.DEADLINE)
        await charges.quiet(sim, "cli-3")
        fee3 = charges.invoices(sim)[-1]
        (a3,) = charges.attempts_of(sim, fee3.id)
        assert small.id in charges.collected_by(sim, a3.id)
        assert next(i for i in charges.invoices(sim) if i.id == small.id).status == "paid"
    charges.run(simulation_parts, body, firm_card=charges.GOOD_CARD, clients=3)


def test_r10_a_take_over_starts_on_the_period_end_even_when_the_last_charge_runs_late(
        simulation_parts: SimulationParts, localstripe: object) -> None:
    """The old run waits for its final charge (Stripe down past midnight for two days): the
    new payer's subscription still starts on the period end, with no gap."""
    proxy = TcpProxy(localstripe.port)  # type: ignore[attr-defined]
    parts = replace(simulation_parts, stripe_api_base=proxy.url)

    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-0", plan_code="essentiel", interval="monthly", payer_kind="firm")
        await sim.settle()
        await sim.service.report_usage(event_id="u1", client_id="cli-0", documents=60,
                                       occurred_at=await sim.env.get_current_time())
        await sim.service.stop_paying(client_id="cli-0")
        await sim.service.take_over(client_id="cli-0", payer_kind="client")
        await sim.advance_to(date(2025, 9, 30))
        proxy.cut()
        for _ in range(60):
            await asyncio.wait_for(sim.env.sleep(timedelta(hours=1)), 120)
        proxy.heal()
        await sim.env.sleep(timedelta(minutes=5))
        await sim.settle()
        state = await sim.service.state(client_id="cli-0")
        assert state.payer.label == "client:cli-0"
        assert after_end.back(sim, state.period_start) == date(2025, 10, 1)
        assert after_end.back(sim, state.period_end) == date(2025, 11, 1)
    try:
        no_stall.run(parts, body)
    finally:
        proxy.cut()


