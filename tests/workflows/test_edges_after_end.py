"""Edges at and after a subscription's end (issue 7, items 7, 8 and 12), through the real
workflows on the time-skipping server, PostgreSQL and localstripe.

- item 8 (R10): a take-over starts the next period as the renewal would have, scheduled
  downgrade or interval switch included (also: tests/scenarios/take-over-applies-scheduled-changes.yaml);
- item 7 (R11): an invoice still declined when its subscription ends keeps its retries (3, 6,
  9 days after its first failure, at once on a new card, then uncollectible), and the line is
  free at once (also: tests/scenarios/dunning-after-the-end.yaml);
- item 12 (R11): a card update is never lost: not while a charge is in flight (the first
  one, a renewal's, or the final charge of a subscription that just ended), not on the
  renewal day.

A charge "in flight" is made deterministic with `GatedGateway`: the worker's Stripe gateway
holds the next `confirm_intent` (the card is already chosen, the decline not yet known) until
the test releases it. Time does not move meanwhile: the test server locks its clock while an
activity runs, and only `env.sleep` (or awaiting a workflow's result) skips time.

Note on the time-skipping server: once a workflow started as an abandoned child (the
dunning workflow) completes, the test server leaks a time-skipping lock and `env.sleep`
never returns. The tests that must pass on the current code therefore stop at the moment a
dunning workflow ends (they poll the database in real time instead of sleeping further);
`test_item7_simulation_goes_on_after_a_dunning_workflow_ended` shows the problem itself.
"""
import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta

from sqlalchemy import select
from temporalio.service import RPCError

from adapters.stripe_gateway import IntentView, StripeGateway
from billing.catalog import parse_catalog
from billing.periods import paris_date, paris_midnight
from contracts.subscription import Payer
from starter.scenario import ScenarioClient, ScenarioFirm, shift
from starter.simulate import Simulation, SimulationParts, simulation
from store.models import Invoice, Notification, Subscription
from worker import build_worker

CATALOG = parse_catalog([
    {"code": "essentiel", "product": "einvoicing", "name": "Essentiel",
     "prices": {"monthly": 1900, "annual": 19000}, "quota": {"monthly": 50, "annual": 600}, "overage": 25},
    {"code": "standard", "product": "einvoicing", "name": "Standard",
     "prices": {"monthly": 3900, "annual": 39000}, "quota": {"monthly": 200, "annual": 2400}, "overage": 19},
])
GOOD = "4242424242424242"
DECLINES = "4000000000000341"
CLIENT = Payer(kind="client", id="cli-1")
GATE_LIMIT = 10.0  # seconds a held charge waits at most (below the charge's 15 s heartbeat timeout)
POLL_LIMIT = 30.0  # real seconds allowed for what must happen now (no business time passes)


class GatedGateway(StripeGateway):
    """The worker's gateway: once armed, the next `confirm_intent` waits until released, so
    a test can act while that charge is in flight (its card already chosen)."""

    def __init__(self, api_key: str, api_base: str | None) -> None:
        super().__init__(api_key, api_base)
        self._guard = threading.Lock()
        self._armed = False
        self.entered = threading.Event()
        self.released = threading.Event()

    def arm(self) -> None:
        with self._guard:
            self._armed = True
            self.entered.clear()
            self.released.clear()

    def confirm_intent(self, intent_id: str) -> IntentView:
        with self._guard:
            hold, self._armed = self._armed, False
        if hold:
            self.entered.set()
            self.released.wait(GATE_LIMIT)
        return super().confirm_intent(intent_id)

    async def in_flight(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, POLL_LIMIT), "the held charge never started"

    def release(self) -> None:
        self.released.set()


def run(parts: SimulationParts, first: date, body: Callable[[Simulation], Awaitable[None]], *,
        client_card: str | None = DECLINES, firm_card: str | None = GOOD,
        gate: GatedGateway | None = None) -> None:
    """cli-1 (its card: `client_card`) of firm cab-1, on `first`; with `gate`, the worker
    charges through it."""
    async def main() -> None:
        async with simulation(CATALOG, parts, first_date=first, task_queue=queue, worker=gate is None) as sim:
            if gate is None:
                await start(sim)
                return
            async with build_worker(sim.env.client, queue, sim.sessions, gate):
                await start(sim)

    async def start(sim: Simulation) -> None:
        await sim.add_parties([ScenarioFirm(id="cab-1", name="Cabinet Dupont", card=firm_card)],
                              [ScenarioClient(id="cli-1", name="Boulangerie Martin", firm="cab-1", card=client_card)])
        await sim.advance_to(first)
        await body(sim)

    queue = f"edges-{time.monotonic_ns()}"
    try:
        asyncio.run(main())
    finally:
        if gate is not None:
            gate.release()


def gated(parts: SimulationParts) -> GatedGateway:
    return GatedGateway(parts.stripe_api_key, parts.stripe_api_base)


def back(sim: Simulation, day: date) -> date:
    return shift(day, -sim.years)


async def today(sim: Simulation) -> date:
    return back(sim, paris_date(await sim.env.get_current_time()))


def invoices(sim: Simulation) -> list[tuple[int, date, str, int]]:
    """(id, issued on, status, total) in number order."""
    with sim.sessions() as session:
        rows = session.execute(select(Invoice.id, Invoice.issued_on, Invoice.status, Invoice.total)
                               .where(Invoice.number.is_not(None)).order_by(Invoice.number)).all()
        return [(i, back(sim, d), s, t) for i, d, s, t in rows]


def failures(sim: Simulation, invoice_id: int | None = None) -> list[date]:
    """Business dates of the payment_failed notices (of one invoice's charges, if given)."""
    with sim.sessions() as session:
        query = select(Notification.business_date, Notification.dedupe_key).where(Notification.kind == "payment_failed")
        rows = session.execute(query.order_by(Notification.business_date, Notification.id)).all()
    return [back(sim, d) for d, key in rows if invoice_id is None or key.startswith(f"payment_failed:{invoice_id}:")]


def subscriptions(sim: Simulation) -> list[tuple[str, str, str, str | None, date | None]]:
    """(payer, plan, status, ended reason, ended on) by start."""
    with sim.sessions() as session:
        rows = session.execute(select(Subscription.payer_kind, Subscription.payer_id, Subscription.plan_code,
                                      Subscription.status, Subscription.ended_reason, Subscription.ended_on)
                               .order_by(Subscription.started_on, Subscription.updated_at)).all()
    return [(f"{k}:{i}", p, s, r, None if e is None else back(sim, e)) for k, i, p, s, r, e in rows]


async def eventually(sim: Simulation, what: str, condition: Callable[[], bool]) -> None:
    """Wait in real time (business time stands still) until `condition` holds."""
    deadline = time.monotonic() + POLL_LIMIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so by {await today(sim)}; invoices {invoices(sim)}, "
                                 f"payment failures {failures(sim)}")
        await asyncio.sleep(0.1)


def status_of(sim: Simulation, invoice_id: int) -> str:
    return next(s for i, _, s, _ in invoices(sim) if i == invoice_id)


# --- item 8 (R10): a take-over applies the scheduled changes ------------------------------------


def test_item8_take_over_starts_on_the_scheduled_downgrade_and_annual_interval(simulation_parts: SimulationParts) -> None:
    """Item 8: firm pays Standard monthly; Essentiel and annual are scheduled; the firm stops
    paying; the client takes over: from 1 Oct the client pays Essentiel annual, anchored on
    1 Oct (the old code started the client on Standard monthly)."""
    first = date(2025, 9, 1)

    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-1", plan_code="standard", interval="monthly", payer_kind="firm")
        await sim.advance_to(date(2025, 9, 5))
        change = await sim.service.change_plan(client_id="cli-1", plan_code="essentiel")
        assert (change.kind, back(sim, change.effective_on)) == ("downgrade", date(2025, 10, 1))
        await sim.service.switch_interval(client_id="cli-1", interval="annual")
        await sim.advance_to(date(2025, 9, 10))
        await sim.service.stop_paying(client_id="cli-1")
        taken = await sim.service.take_over(client_id="cli-1", payer_kind="client")
        assert back(sim, taken.effective_on) == date(2025, 10, 1)
        await sim.advance_to(date(2025, 10, 2))
        state = await sim.service.state(client_id="cli-1")
        assert (state.plan.code, state.interval.value, state.payer.label, state.status.value) == (
            "essentiel", "annual", "client:cli-1", "active")
        assert [back(sim, d) for d in (state.anchor, state.started_on, state.period_start, state.period_end)] == [
            date(2025, 10, 1), date(2025, 10, 1), date(2025, 10, 1), date(2026, 10, 1)]
        assert state.scheduled_plan is None and state.scheduled_interval is None
        assert [(d, s, t) for _, d, s, t in invoices(sim)] == [
            (date(2025, 9, 1), "paid", 4680),  # Standard monthly, the firm
            (date(2025, 10, 1), "paid", 22800),  # Essentiel annual (19000 + VAT), the client
        ]
        with sim.sessions() as session:
            payers = session.execute(select(Invoice.payer_kind, Invoice.payer_id).order_by(Invoice.number)).all()
        assert [f"{k}:{i}" for k, i in payers] == ["firm:cab-1", "client:cli-1"]
        assert subscriptions(sim) == [
            ("firm:cab-1", "standard", "ended", "not_renewed", date(2025, 10, 1)),
            ("client:cli-1", "essentiel", "active", None, None),
        ]
    run(simulation_parts, first, body, client_card=GOOD)


# --- item 7 (R11): an unpaid invoice keeps its retries after the end ----------------------------


def test_item7_invoice_declined_then_cancelled_now_is_retried_3_6_9_days_later_then_uncollectible(
    simulation_parts: SimulationParts,
) -> None:
    """Item 7: declined on 1 May, the subscription cancelled now on 2 May (during dunning):
    the invoice is still retried on 4, 7 and 10 May (a payment_failed notice each time), then
    uncollectible; the ended subscription keeps its reason (canceled_now). The line is free at
    once: the client subscribes again on 2 May (paid by its firm) while the old invoice is
    dunned. On the old code the invoice stayed open with no retries."""
    first = date(2025, 5, 1)

    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="client")
        await sim.settle()
        ((fee, _, _, _),) = invoices(sim)
        await sim.advance_to(date(2025, 5, 2))
        assert (await sim.service.state(client_id="cli-1")).status.value == "past_due"
        ended = await sim.service.cancel_now(client_id="cli-1")
        assert back(sim, ended.ended_on) == date(2025, 5, 2)
        again = await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly",
                                            payer_kind="firm")  # right after the end, the same day
        assert back(sim, again.started_on) == date(2025, 5, 2)
        assert (await today(sim)) == date(2025, 5, 2)
        await sim.advance_to(date(2025, 5, 5))
        assert failures(sim, fee) == [date(2025, 5, 1), date(2025, 5, 4)]
        await sim.advance_to(date(2025, 5, 8))
        assert failures(sim, fee) == [date(2025, 5, 1), date(2025, 5, 4), date(2025, 5, 7)]
        assert status_of(sim, fee) == "open"
        # The last retry falls due a moment after noon on 10 May: no sleeping past it (see the
        # module's note on the test server), the test waits for it in real time.
        await sim.advance_to(date(2025, 5, 10))
        await eventually(sim, "the fee written off after its third retry", lambda: status_of(sim, fee) == "uncollectible")
        assert failures(sim, fee) == [date(2025, 5, 1), date(2025, 5, 4), date(2025, 5, 7), date(2025, 5, 10)]
        assert subscriptions(sim) == [
            ("client:cli-1", "essentiel", "ended", "canceled_now", date(2025, 5, 2)),
            ("firm:cab-1", "essentiel", "active", None, None),
        ]
        assert [(d, s) for _, d, s, _ in invoices(sim)] == [(date(2025, 5, 1), "uncollectible"), (date(2025, 5, 2), "paid")]
    run(simulation_parts, first, body)


def test_item7_invoice_declined_before_a_cancellation_is_retried_after_the_period_end(
    simulation_parts: SimulationParts,
) -> None:
    """Item 7: the client's new card declines its upgrade on 26 May; it cancels on 27 May,
    so the subscription ends on 1 Jun. The upgrade's invoice is retried on 29 May (still
    live), 1 Jun and 4 Jun (ended), then uncollectible; the subscription stays `canceled`."""
    first = date(2025, 5, 1)

    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="client")
        await sim.advance_to(date(2025, 5, 20))
        await sim.service.register_card(payer=CLIENT, card=DECLINES)
        await sim.advance_to(date(2025, 5, 26))
        change = await sim.service.change_plan(client_id="cli-1", plan_code="standard")
        assert (change.kind, change.amount) == ("upgrade", 387)  # 2000 * 6 / 31
        await sim.settle()
        upgrade = invoices(sim)[-1][0]
        await sim.advance_to(date(2025, 5, 27))
        await sim.service.cancel(client_id="cli-1")
        await sim.advance_to(date(2025, 6, 2))
        assert subscriptions(sim) == [("client:cli-1", "standard", "ended", "canceled", date(2025, 6, 1))]
        assert failures(sim, upgrade) == [date(2025, 5, 26), date(2025, 5, 29), date(2025, 6, 1)]
        assert status_of(sim, upgrade) == "open"
        await sim.advance_to(date(2025, 6, 4))
        await eventually(sim, "the upgrade written off after its third retry",
                         lambda: status_of(sim, upgrade) == "uncollectible")
        assert failures(sim, upgrade) == [date(2025, 5, 26), date(2025, 5, 29), date(2025, 6, 1), date(2025, 6, 4)]
        assert subscriptions(sim) == [("client:cli-1", "standard", "ended", "canceled", date(2025, 6, 1))]
    run(simulation_parts, first, body, client_card=GOOD)


def test_item7_card_update_after_the_end_retries_the_declined_invoice_at_once(simulation_parts: SimulationParts) -> None:
    """Item 7: declined on 1 May, cancelled now on 2 May, retried (declined) on 4 May; the
    client registers a good card at noon on 5 May: the invoice is paid that very day, with no
    further failure. On the old code nothing was retried after the end."""
    first = date(2025, 5, 1)

    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="client")
        await sim.advance_to(date(2025, 5, 2))
        await sim.service.cancel_now(client_id="cli-1")
        await sim.advance_to(date(2025, 5, 5))
        ((fee, _, status, _),) = invoices(sim)
        assert (status, failures(sim, fee)) == ("open", [date(2025, 5, 1), date(2025, 5, 4)])
        await sim.service.register_card(payer=CLIENT, card=GOOD)
        await eventually(sim, "the invoice paid at once on the new card", lambda: status_of(sim, fee) == "paid")
        assert await today(sim) == date(2025, 5, 5)
        assert failures(sim, fee) == [date(2025, 5, 1), date(2025, 5, 4)]
        assert subscriptions(sim) == [("client:cli-1", "essentiel", "ended", "canceled_now", date(2025, 5, 2))]
    run(simulation_parts, first, body)


def test_item7_simulation_goes_on_after_a_dunning_workflow_ended(simulation_parts: SimulationParts) -> None:
    """Item 7: once an invoice dunned after its subscription's end is settled (here: paid on a
    new card), the simulation must still move on. Fails on the current code: the dunning
    workflow is an abandoned child of the ended subscription's run, and the time-skipping test
    server leaks a time lock when such a child completes, so `env.sleep` never returns (every
    scenario where a post-end dunning ends before `until` hangs, `simulate` included)."""
    first = date(2025, 5, 1)

    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="client")
        await sim.advance_to(date(2025, 5, 2))
        await sim.service.cancel_now(client_id="cli-1")
        await sim.advance_to(date(2025, 5, 3))  # the ended run has handed the invoice to its dunning workflow
        await sim.service.register_card(payer=CLIENT, card=GOOD)
        ((fee, _, _, _),) = invoices(sim)
        await eventually(sim, "the invoice paid at once on the new card", lambda: status_of(sim, fee) == "paid")
        try:
            await asyncio.wait_for(sim.advance_to(date(2025, 5, 4)), POLL_LIMIT)
        except (TimeoutError, RPCError):  # the test server answers a sleep it cannot end with a timeout
            raise AssertionError("the simulation cannot advance one day after a dunning workflow ended "
                                 "(time-skipping lock leaked by the completed abandoned child)") from None
        assert await today(sim) == date(2025, 5, 4)
        assert failures(sim, fee) == [date(2025, 5, 1)]
    run(simulation_parts, first, body)


# --- item 12 (R11): a card update is never lost -------------------------------------------------


def test_item12a_card_update_while_the_first_charge_is_in_flight_retries_at_once(simulation_parts: SimulationParts) -> None:
    """Item 12 (a), deterministic: the first charge (declining card) is held in flight; the
    client registers a good card meanwhile; when the charge comes back declined, the invoice is
    retried at once and paid the same day (not on the retry 3 days later)."""
    first = date(2025, 5, 1)
    gate = gated(simulation_parts)

    async def body(sim: Simulation) -> None:
        gate.arm()
        subscribing = asyncio.create_task(sim.service.subscribe(
            client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="client"))
        await gate.in_flight()  # the charge has chosen the declining card and waits
        await sim.service.register_card(payer=CLIENT, card=GOOD)
        gate.release()
        await asyncio.wait_for(subscribing, POLL_LIMIT)
        ((fee, _, _, _),) = invoices(sim)
        await eventually(sim, "the invoice paid at once on the new card", lambda: status_of(sim, fee) == "paid")
        await sim.settle()
        assert await today(sim) == first
        assert failures(sim, fee) == [first]  # the held charge's decline, and no other
        state = await sim.service.state(client_id="cli-1")
        assert (state.status.value, state.dunning) == ("active", [])
    run(simulation_parts, first, body, gate=gate)


def test_item12a_card_update_right_after_subscribe_pays_the_same_day(simulation_parts: SimulationParts) -> None:
    """Item 12 (a), as a caller would do it: a good card right after `subscribe` answers
    (the declined first charge may still be running, or be done): paid the same day either way."""
    first = date(2025, 5, 1)

    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="client")
        await sim.service.register_card(payer=CLIENT, card=GOOD)
        ((fee, _, _, _),) = invoices(sim)
        await eventually(sim, "the invoice paid the same day", lambda: status_of(sim, fee) == "paid")
        await sim.settle()
        assert await today(sim) == first
        assert failures(sim, fee) in ([], [first])  # declined once at most, before the new card
        assert (await sim.service.state(client_id="cli-1")).status.value == "active"
    run(simulation_parts, first, body)


def test_item12b_card_update_on_the_renewal_day_pays_the_renewal_that_day(simulation_parts: SimulationParts) -> None:
    """Item 12 (b): the renewal of 1 Oct is declined at midnight; the client registers a good
    card at noon that day: the renewal is paid on 1 Oct."""
    first = date(2025, 9, 1)

    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="client")
        await sim.advance_to(date(2025, 9, 20))
        await sim.service.register_card(payer=CLIENT, card=DECLINES)
        await sim.advance_to(date(2025, 10, 1))
        renewal, issued, status, _ = invoices(sim)[-1]
        assert (issued, status, failures(sim, renewal)) == (date(2025, 10, 1), "open", [date(2025, 10, 1)])
        await sim.service.register_card(payer=CLIENT, card=GOOD)
        await eventually(sim, "the renewal paid on the renewal day", lambda: status_of(sim, renewal) == "paid")
        await sim.settle()
        assert await today(sim) == date(2025, 10, 1)
        assert failures(sim, renewal) == [date(2025, 10, 1)]
        assert (await sim.service.state(client_id="cli-1")).status.value == "active"
    run(simulation_parts, first, body, client_card=GOOD)


def test_item12b_card_update_while_the_renewal_charge_is_in_flight_retries_at_once(
    simulation_parts: SimulationParts,
) -> None:
    """Item 12 (b), deterministic: the renewal's charge (declining card) is held in flight at
    00:00 on 1 Oct; the client registers a good card meanwhile: the renewal is paid on 1 Oct."""
    first = date(2025, 9, 1)
    gate = gated(simulation_parts)

    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="client")
        await sim.advance_to(date(2025, 9, 20))
        await sim.service.register_card(payer=CLIENT, card=DECLINES)
        gate.arm()
        renewal_at = paris_midnight(shift(date(2025, 10, 1), sim.years)) + timedelta(seconds=1)
        await sim.env.sleep(renewal_at - await sim.env.get_current_time())
        await gate.in_flight()  # the renewal's charge has chosen the declining card and waits
        await sim.service.register_card(payer=CLIENT, card=GOOD)
        gate.release()
        renewal = None

        def renewal_paid() -> bool:
            nonlocal renewal
            renewal = next((i for i, d, _, _ in invoices(sim) if d == date(2025, 10, 1)), None)
            return renewal is not None and status_of(sim, renewal) == "paid"
        await eventually(sim, "the renewal paid at once on the new card", renewal_paid)
        await sim.settle()
        assert await today(sim) == date(2025, 10, 1)
        assert failures(sim, renewal) == [date(2025, 10, 1)]
        assert (await sim.service.state(client_id="cli-1")).status.value == "active"
    run(simulation_parts, first, body, client_card=GOOD, gate=gate)


def test_item12_item7_card_update_while_the_final_charge_runs_after_the_end_retries_at_once(
    simulation_parts: SimulationParts,
) -> None:
    """Items 12 and 7: the fee of 1 May is declined; on 2 May the client cancels now, which
    issues a final overage invoice whose charge is held in flight; the subscription is ended
    (and recorded so) before that charge answers. The client registers a good card meanwhile:
    both invoices are retried at once and paid on 2 May. Fails on the current code:
    `register_card` signals only the dunning workflows of an ended subscription's invoices,
    which the ended run starts only once its last charge answered, so the signal is lost and
    the invoices wait for their scheduled retries (4 and 5 May)."""
    first = date(2025, 5, 1)
    gate = gated(simulation_parts)

    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="client")
        now = await sim.env.get_current_time()
        await sim.service.report_usage(event_id="e1", client_id="cli-1", occurred_at=now, documents=60)
        await sim.advance_to(date(2025, 5, 2))
        gate.arm()
        ended = await sim.service.cancel_now(client_id="cli-1")
        assert ended.invoice_number is not None  # 10 documents over the quota: 250 + VAT
        await gate.in_flight()  # the final invoice's charge has chosen the declining card and waits
        assert subscriptions(sim)[0][2] == "ended"
        await sim.service.register_card(payer=CLIENT, card=GOOD)
        gate.release()
        fee, final = (i for i, _, _, _ in invoices(sim))
        await eventually(sim, "both invoices paid at once on the new card",
                         lambda: (status_of(sim, fee), status_of(sim, final)) == ("paid", "paid"))
        assert await today(sim) == date(2025, 5, 2)
        assert failures(sim, fee) == [date(2025, 5, 1)]
        assert failures(sim, final) == [date(2025, 5, 2)]
    run(simulation_parts, first, body, gate=gate)
