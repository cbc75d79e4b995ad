"""Charges at the edges, through the real system (issue 7, items 3, 6 and 9): the R16 minimum
charge and combined charges, 3-D Secure across attempts, and a request Stripe refuses (R11's
last paragraph). Real time-skipping Temporal server, PostgreSQL and localstripe; no mock."""
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date

import httpx
import pytest
from sqlalchemy import select, update
from temporalio.client import WorkflowExecutionStatus

from adapters.stripe_gateway import StripeGateway
from billing.catalog import parse_catalog
from billing.intervals import Line
from contracts.subscription import Payer
from starter.scenario import ScenarioClient, ScenarioFirm, shift
from starter.service import workflow_id
from starter.simulate import Simulation, SimulationParts, simulation
from store.models import (
    Invoice,
    Notification,
    OperatorAlert,
    PaymentAttempt,
    PaymentAttemptInvoice,
    PaymentCustomer,
    Subscription,
)
from workflows.subscription import SubscriptionWorkflow

CATALOG = parse_catalog([
    {"code": "gratuit", "product": "einvoicing", "name": "Gratuit",
     "prices": {"monthly": 0}, "quota": {"monthly": 0}, "overage": 0},
    {"code": "mini", "product": "einvoicing", "name": "Mini",
     "prices": {"monthly": 500}, "quota": {"monthly": 10}, "overage": 25},
    {"code": "essentiel", "product": "einvoicing", "name": "Essentiel",
     "prices": {"monthly": 1900}, "quota": {"monthly": 50}, "overage": 25},
])
START = date(2025, 9, 1)
GOOD_CARD, THREE_D_SECURE_CARD = "4242424242424242", "4000002500003155"
FIRM = Payer(kind="firm", id="cab-1")
MINI_FEE_TOTAL, ESSENTIEL_FEE_TOTAL = 600, 2280  # prices + 20 % VAT
SMALL_FINAL_TOTAL = 30  # one document over the quota at 25 cents + 20 % VAT: below €0.50
DEADLINE = 60  # seconds of real time: the old code hung here, it must fail instead


@dataclass(frozen=True)
class Intent:
    id: str
    status: str
    amount: int
    invoice_id: int | None


def run(parts: SimulationParts, body: Callable[[Simulation], Awaitable[None]], *,
        firm_card: str | None = None, client_card: str | None = None, clients: int = 1) -> None:
    """Firm cab-1 with clients cli-1 (… cli-N), on 1 Sep 2025; nobody subscribed yet."""
    async def main() -> None:
        async with simulation(CATALOG, parts, first_date=START) as sim:
            await sim.add_parties(
                [ScenarioFirm(id="cab-1", name="Cabinet Dupont", card=firm_card)],
                [ScenarioClient(id=f"cli-{n}", name=f"Client {n}", firm="cab-1", card=client_card)
                 for n in range(1, clients + 1)],
            )
            await sim.advance_to(START)
            await body(sim)
    asyncio.run(main())


# --- reading what happened -----------------------------------------------------------------


def intents_of(customer: str, parts: SimulationParts) -> list[Intent]:
    """The customer's PaymentIntents in localstripe."""
    gateway = StripeGateway(parts.stripe_api_key, parts.stripe_api_base)
    return [Intent(view.id, view.status, view.amount, invoice_id)
            for view, owner, invoice_id in gateway.list_intents() if owner == customer]


def stripe_customer(sim: Simulation, kind: str, payer_id: str) -> str:
    with sim.sessions() as session:
        return session.get_one(PaymentCustomer, (kind, payer_id)).stripe_customer_id


def invoices(sim: Simulation) -> list[Invoice]:
    with sim.sessions() as session:
        return list(session.scalars(select(Invoice).order_by(Invoice.number)))


def attempts_of(sim: Simulation, invoice_id: int) -> list[PaymentAttempt]:
    with sim.sessions() as session:
        return list(session.scalars(
            select(PaymentAttempt).where(PaymentAttempt.invoice_id == invoice_id).order_by(PaymentAttempt.attempt_no)))


def collected_by(sim: Simulation, attempt_id: int) -> dict[int, int]:
    """The invoices one attempt collects, with the amount it takes for each (R16)."""
    with sim.sessions() as session:
        return dict(session.execute(select(PaymentAttemptInvoice.invoice_id, PaymentAttemptInvoice.amount)
                                    .where(PaymentAttemptInvoice.attempt_id == attempt_id)).all())


def payment_failed_notices(sim: Simulation) -> int:
    with sim.sessions() as session:
        return len(session.scalars(select(Notification.id).where(Notification.kind == "payment_failed")).all())


async def wait_until(condition: Callable[[], bool], timeout: float = DEADLINE) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.1)


async def quiet(sim: Simulation, client_id: str, timeout: float = DEADLINE) -> None:
    """Wait (real time) until the client's workflow has nothing in flight and nothing due: its
    background charges (R17) are done."""
    handle = sim.env.client.get_workflow_handle_for(SubscriptionWorkflow.run, workflow_id(client_id, Line.EINVOICING))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await handle.query(SubscriptionWorkflow.settled):
        if loop.time() > deadline:
            raise TimeoutError(f"the workflow of {client_id} did not settle in time")
        await asyncio.sleep(0.05)


async def finished(sim: Simulation, client_id: str, timeout: float = DEADLINE) -> None:
    """Wait (real time; describe() does not skip time) until an ended subscription's run completes."""
    handle = sim.env.client.get_workflow_handle(workflow_id(client_id, Line.EINVOICING))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (await handle.describe()).status != WorkflowExecutionStatus.COMPLETED:
        if loop.time() > deadline:
            raise TimeoutError(f"the workflow of {client_id} did not complete in time")
        await asyncio.sleep(0.05)


async def use(sim: Simulation, client_id: str, documents: int, event_id: str) -> None:
    await sim.service.report_usage(event_id=event_id, client_id=client_id,
                                   occurred_at=await sim.env.get_current_time(), documents=documents)


async def authenticate(parts: SimulationParts, intent_id: str) -> httpx.Response:
    """The payer completes 3-D Secure for the intent (localstripe's test endpoint)."""
    headers = {"Authorization": f"Bearer {parts.stripe_api_key}"}
    async with httpx.AsyncClient(base_url=parts.stripe_api_base or "", headers=headers, timeout=10) as http:
        intent = (await http.get(f"/v1/payment_intents/{intent_id}")).raise_for_status().json()
        return await http.post(f"/v1/payment_intents/{intent_id}/_authenticate",
                               data={"client_secret": intent["client_secret"], "success": "true"})


# --- A. Item 6, R16: the minimum charge ----------------------------------------------------------


def test_item6_r16_a_free_plan_invoice_is_paid_at_once_with_no_charge(simulation_parts: SimulationParts) -> None:
    """Issue 7 item 6, R16: an invoice whose total is 0 is issued and `paid` at once, with no
    charge (the old code hung in `subscribe`: localstripe refuses a 0-cent intent, retried for ever)."""
    async def body(sim: Simulation) -> None:
        state = await asyncio.wait_for(sim.service.subscribe(
            client_id="cli-1", plan_code="gratuit", interval="monthly", payer_kind="client"), DEADLINE)
        assert state.status.value == "active"
        await quiet(sim, "cli-1")
        (fee,) = invoices(sim)
        assert (fee.total, fee.status, fee.waiting_since) == (0, "paid", None)
        assert attempts_of(sim, fee.id) == []
        assert intents_of(stripe_customer(sim, "client", "cli-1"), simulation_parts) == []
        assert (await sim.service.state(client_id="cli-1")).status.value == "active"
    run(simulation_parts, body, client_card=GOOD_CARD)


def test_item6_r16_a_final_invoice_below_the_minimum_waits_and_the_payers_next_charge_collects_it(
    simulation_parts: SimulationParts,
) -> None:
    """Issue 7 item 6, R16: a final overage of 25 cents excl. VAT (30 total) is not charged by
    itself and is no decline: it stays `open`, waiting, with no dunning. The payer's next charge
    (its new subscription's fee) collects it too: one PaymentIntent for both, both `paid`."""
    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-1", plan_code="mini", interval="monthly", payer_kind="client")
        await quiet(sim, "cli-1")
        await use(sim, "cli-1", 11, "e1")  # one document over the quota of 10
        await sim.advance_to(date(2025, 9, 10))
        ended = await asyncio.wait_for(sim.service.cancel_now(client_id="cli-1"), DEADLINE)
        await finished(sim, "cli-1")  # its final invoice's charge went on in the background, then the run ended
        first_fee, final = invoices(sim)
        assert ended.invoice_number == final.display_number
        assert (first_fee.total, first_fee.status) == (MINI_FEE_TOTAL, "paid")
        assert (final.subtotal, final.total) == (25, SMALL_FINAL_TOTAL)
        assert final.status == "open"  # not charged by itself…
        assert attempts_of(sim, final.id) == []
        customer = stripe_customer(sim, "client", "cli-1")
        assert [(i.invoice_id, i.amount) for i in intents_of(customer, simulation_parts)] == [
            (first_fee.id, MINI_FEE_TOTAL)]
        assert final.waiting_since == shift(date(2025, 9, 10), sim.years)  # …it waits for the next charge
        assert final.collecting_attempt_id is None
        # not a decline: no dunning, never past due, the payer is not told of a failure
        state = await sim.service.state(client_id="cli-1")
        assert (state.status.value, state.ended_reason.value if state.ended_reason else None) == ("ended", "canceled_now")
        assert state.dunning == [] and state.on_hold == []
        with sim.sessions() as session:
            statuses = session.scalars(select(Subscription.status).where(Subscription.client_id == "cli-1")).all()
        assert list(statuses) == ["ended"]
        assert payment_failed_notices(sim) == 0

        await sim.advance_to(date(2025, 9, 12))  # the line is free: the same payer subscribes again
        await asyncio.wait_for(sim.service.subscribe(
            client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="client"), DEADLINE)
        await quiet(sim, "cli-1")
        first_fee, final, fee = invoices(sim)
        assert fee.total == ESSENTIEL_FEE_TOTAL
        assert (final.status, final.waiting_since, final.collecting_attempt_id) == ("paid", None, None)
        assert fee.status == "paid"
        (attempt,) = attempts_of(sim, fee.id)
        assert (attempt.status, attempt.amount) == ("succeeded", ESSENTIEL_FEE_TOTAL + SMALL_FINAL_TOTAL)
        assert collected_by(sim, attempt.id) == {fee.id: ESSENTIEL_FEE_TOTAL, final.id: SMALL_FINAL_TOTAL}
        intents = intents_of(customer, simulation_parts)
        (intent,) = [i for i in intents if i.invoice_id != first_fee.id]  # one payment for both invoices
        assert (intent.id, intent.status, intent.amount, intent.invoice_id) == (
            attempt.stripe_payment_intent_id, "succeeded", ESSENTIEL_FEE_TOTAL + SMALL_FINAL_TOTAL, fee.id)
        assert len(intents) == 2
        assert (await sim.service.state(client_id="cli-1")).status.value == "active"
    run(simulation_parts, body, client_card=GOOD_CARD)


def test_item6_r16_waiting_invoices_whose_sum_reaches_the_minimum_are_charged_together_at_once(
    simulation_parts: SimulationParts,
) -> None:
    """Issue 7 item 6, R16: the firm's first small invoice (30) waits; its second (30) brings
    the sum to 60, at or above the minimum: both are charged together at once, in one payment."""
    async def body(sim: Simulation) -> None:
        for client in ("cli-1", "cli-2"):
            await sim.service.subscribe(client_id=client, plan_code="mini", interval="monthly", payer_kind="firm")
            await quiet(sim, client)
            await use(sim, client, 11, f"{client}-e1")
        customer = stripe_customer(sim, "firm", "cab-1")
        fees = {i.id for i in invoices(sim)}
        assert len(fees) == 2 and all(i.status == "paid" for i in invoices(sim))

        def small() -> list[Intent]:
            return [i for i in intents_of(customer, simulation_parts) if i.invoice_id not in fees]

        await sim.advance_to(date(2025, 9, 10))
        await asyncio.wait_for(sim.service.cancel_now(client_id="cli-1"), DEADLINE)
        await finished(sim, "cli-1")
        (first,) = [i for i in invoices(sim) if i.id not in fees]
        assert (first.client_id, first.total, first.status) == ("cli-1", SMALL_FINAL_TOTAL, "open")
        assert small() == []
        assert first.waiting_since is not None

        await sim.advance_to(date(2025, 9, 11))
        await asyncio.wait_for(sim.service.cancel_now(client_id="cli-2"), DEADLINE)
        await finished(sim, "cli-2")
        first, second = [i for i in invoices(sim) if i.id not in fees]
        assert (second.client_id, second.total) == ("cli-2", SMALL_FINAL_TOTAL)
        assert (first.status, second.status) == ("paid", "paid")
        (intent,) = small()  # one payment for both
        assert (intent.status, intent.amount, intent.invoice_id) == ("succeeded", 2 * SMALL_FINAL_TOTAL, second.id)
        assert (first.waiting_since, second.waiting_since) == (None, None)
        (attempt,) = attempts_of(sim, second.id)
        assert attempts_of(sim, first.id) == []  # taken along by the second's attempt
        assert (attempt.status, attempt.amount) == ("succeeded", 2 * SMALL_FINAL_TOTAL)
        assert collected_by(sim, attempt.id) == {first.id: SMALL_FINAL_TOTAL, second.id: SMALL_FINAL_TOTAL}
        assert payment_failed_notices(sim) == 0
    run(simulation_parts, body, firm_card=GOOD_CARD, clients=2)


# --- B. Item 9: 3-D Secure across attempts --------------------------------------------------------


async def subscribed_with_3ds_pending(sim: Simulation, parts: SimulationParts) -> tuple[Invoice, PaymentAttempt]:
    """cli-1 on Essentiel paid by the firm, whose card asks for 3-D Secure: the first charge's
    intent waits for the payer (`requires_action`), the invoice stays open, the subscription
    is past due (R11)."""
    await sim.service.subscribe(client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="firm")
    await quiet(sim, "cli-1")
    (fee,) = invoices(sim)
    (first,) = attempts_of(sim, fee.id)
    assert (fee.status, first.status) == ("open", "requires_action")
    assert first.stripe_payment_intent_id is not None
    customer = stripe_customer(sim, "firm", "cab-1")
    assert [(i.id, i.status) for i in intents_of(customer, parts)] == [
        (first.stripe_payment_intent_id, "requires_action")]
    assert (await sim.service.state(client_id="cli-1")).status.value == "past_due"
    return fee, first


def test_item9_3ds_intent_of_attempt_1_is_cancelled_before_attempt_2_and_authenticating_it_later_charges_nothing(
    simulation_parts: SimulationParts,
) -> None:
    """Issue 7 item 9 (R11, R4: never charge twice): before attempt 2 (the payer gives a card,
    again one that asks for 3-D Secure), attempt 1's intent is cancelled; the payer completing
    attempt 1's authentication afterwards charges nothing. Attempt 2's intent, authenticated,
    is found paid by the scheduled retry: one succeeded intent for the invoice, no more."""
    async def body(sim: Simulation) -> None:
        fee, first = await subscribed_with_3ds_pending(sim, simulation_parts)
        customer = stripe_customer(sim, "firm", "cab-1")

        await sim.service.register_card(payer=FIRM, card=THREE_D_SECURE_CARD)  # attempt 2, at once
        await wait_until(lambda: len(attempts_of(sim, fee.id)) == 2 and attempts_of(sim, fee.id)[1].status != "pending")
        await quiet(sim, "cli-1")
        first, second = attempts_of(sim, fee.id)
        assert (first.status, second.status) == ("canceled", "requires_action")
        assert first.updated_at < second.created_at  # attempt 1 was closed before attempt 2 was recorded
        statuses = {i.id: i.status for i in intents_of(customer, simulation_parts)}
        assert statuses == {first.stripe_payment_intent_id: "canceled", second.stripe_payment_intent_id: "requires_action"}
        assert (await sim.service.state(client_id="cli-1")).status.value == "past_due"

        late = await authenticate(simulation_parts, first.stripe_payment_intent_id or "")
        assert late.status_code >= 400, late.text  # a cancelled intent cannot be authenticated
        statuses = {i.id: i.status for i in intents_of(customer, simulation_parts)}
        assert statuses[first.stripe_payment_intent_id] == "canceled"
        assert "succeeded" not in statuses.values()
        assert next(i for i in invoices(sim) if i.id == fee.id).status == "open"

        now = await authenticate(simulation_parts, second.stripe_payment_intent_id or "")
        assert now.status_code == 200 and now.json()["status"] == "succeeded", now.text
        await sim.advance_to(date(2025, 9, 5))  # the retry 3 days after the first failure finds it paid
        await wait_until(lambda: next(i for i in invoices(sim) if i.id == fee.id).status == "paid")
        await quiet(sim, "cli-1")
        intents = intents_of(customer, simulation_parts)
        assert sorted(i.status for i in intents if i.invoice_id == fee.id) == ["canceled", "succeeded"]
        assert [i.amount for i in intents if i.status == "succeeded"] == [ESSENTIEL_FEE_TOTAL]
        assert [a.status for a in attempts_of(sim, fee.id)] == ["canceled", "succeeded"]  # no new attempt 3
        assert (await sim.service.state(client_id="cli-1")).status.value == "active"
    run(simulation_parts, body, firm_card=THREE_D_SECURE_CARD)


def test_item9_3ds_authenticated_before_attempt_2_pays_the_invoice_with_no_new_intent(
    simulation_parts: SimulationParts,
) -> None:
    """Issue 7 item 9: the payer completes attempt 1's 3-D Secure before attempt 2 (the retry
    3 days later): attempt 2 finds that intent succeeded, marks the invoice paid, and creates
    no new intent."""
    async def body(sim: Simulation) -> None:
        fee, first = await subscribed_with_3ds_pending(sim, simulation_parts)
        customer = stripe_customer(sim, "firm", "cab-1")
        done = await authenticate(simulation_parts, first.stripe_payment_intent_id or "")
        assert done.status_code == 200 and done.json()["status"] == "succeeded", done.text

        await sim.advance_to(date(2025, 9, 5))
        await wait_until(lambda: next(i for i in invoices(sim) if i.id == fee.id).status == "paid")
        await quiet(sim, "cli-1")
        intents = intents_of(customer, simulation_parts)
        assert [(i.id, i.status, i.amount) for i in intents] == [
            (first.stripe_payment_intent_id, "succeeded", ESSENTIEL_FEE_TOTAL)]
        assert [a.status for a in attempts_of(sim, fee.id)] == ["succeeded"]
        state = await sim.service.state(client_id="cli-1")
        assert (state.status.value, state.dunning) == ("active", [])
    run(simulation_parts, body, firm_card=THREE_D_SECURE_CARD)


def test_item9_r16_an_invoice_taken_along_by_an_attempt_waiting_for_3ds_is_never_collected_twice(
    simulation_parts: SimulationParts,
) -> None:
    """Issue 7 items 6 and 9 (R16 with R4, "never charges twice"): the firm's small invoice (30)
    waits; its next charge (cli-2's fee) takes it along and waits for 3-D Secure; a third charge
    (cli-3's fee) must not take it along too. Once the payer has authenticated every intent it
    was asked to, the money collected is exactly what was invoiced."""
    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-1", plan_code="mini", interval="monthly", payer_kind="firm")
        await quiet(sim, "cli-1")
        await use(sim, "cli-1", 11, "e1")
        await sim.advance_to(date(2025, 9, 10))
        await asyncio.wait_for(sim.service.cancel_now(client_id="cli-1"), DEADLINE)
        await finished(sim, "cli-1")
        small = invoices(sim)[-1]
        assert (small.total, small.status) == (SMALL_FINAL_TOTAL, "open") and small.waiting_since is not None

        await sim.service.register_card(payer=FIRM, card=THREE_D_SECURE_CARD)
        for client in ("cli-2", "cli-3"):
            await asyncio.wait_for(sim.service.subscribe(
                client_id=client, plan_code="essentiel", interval="monthly", payer_kind="firm"), DEADLINE)
            await quiet(sim, client)
        customer = stripe_customer(sim, "firm", "cab-1")
        for intent in intents_of(customer, simulation_parts):
            if intent.status == "requires_action":  # the payer authenticates every prompt it gets
                done = await authenticate(simulation_parts, intent.id)
                assert done.status_code == 200, done.text
        await sim.advance_to(date(2025, 9, 14))  # the retries, 3 days on, find the intents succeeded
        await wait_until(lambda: all(i.status == "paid" for i in invoices(sim)))
        for client in ("cli-2", "cli-3"):
            await quiet(sim, client)
        charged = sum(i.amount for i in intents_of(customer, simulation_parts) if i.status == "succeeded")
        assert charged == sum(i.total for i in invoices(sim)), "an invoice was collected twice"
    run(simulation_parts, body, firm_card=GOOD_CARD, clients=3)


# --- C. Item 3: an error no retry cures (R11, last paragraph) --------------------------------------


def bogus_customer(sim: Simulation) -> None:
    """Stripe will refuse the request itself: the payer's customer is unknown to it."""
    with sim.sessions.begin() as session:
        session.execute(update(PaymentCustomer).where(PaymentCustomer.payer_kind == "firm",
                                                      PaymentCustomer.payer_id == "cab-1")
                        .values(stripe_customer_id="cus_doesnotexist"))


@pytest.mark.parametrize("when", ["renewal", "subscribe"])
def test_item3_r11_a_charge_stripe_refuses_leaves_the_invoice_open_alerts_the_operator_and_the_workflow_answers(
    when: str, simulation_parts: SimulationParts,
) -> None:
    """Issue 7 item 3, R11's last paragraph: Stripe refuses the charge request (unknown
    customer). It is neither a decline nor an outage: the invoice stays `open`, an operator
    alert names it, the attempt is `error`, the subscription is not past due, and its workflow
    goes on answering (the old code retried the charge for ever, holding the workflow's lock)."""
    async def body(sim: Simulation) -> None:
        if when == "subscribe":
            bogus_customer(sim)
        await asyncio.wait_for(sim.service.subscribe(
            client_id="cli-1", plan_code="essentiel", interval="monthly", payer_kind="firm"), DEADLINE)
        if when == "renewal":
            await quiet(sim, "cli-1")
            assert [i.status for i in invoices(sim)] == ["paid"]
            bogus_customer(sim)
            await asyncio.wait_for(sim.advance_to(date(2025, 10, 2)), DEADLINE)
        await wait_until(lambda: bool(attempts_of(sim, invoices(sim)[-1].id))
                         and attempts_of(sim, invoices(sim)[-1].id)[0].status != "pending")
        await asyncio.wait_for(quiet(sim, "cli-1"), DEADLINE)
        refused = invoices(sim)[-1]
        assert refused.status == "open"
        (attempt,) = attempts_of(sim, refused.id)
        assert attempt.status == "error"
        with sim.sessions() as session:
            alerts = session.scalars(select(OperatorAlert).where(OperatorAlert.invoice_id == refused.id)).all()
        assert len(alerts) == 1 and refused.display_number in alerts[0].error, [a.error for a in alerts]
        state = await sim.service.state(client_id="cli-1")
        assert state.status.value == "active"  # not past due: no dunning for a refused request
        assert state.dunning == []
        assert [d.invoice_id for d in state.on_hold] == [refused.id]
        assert any(refused.display_number in a.error for a in state.alerts)
        assert payment_failed_notices(sim) == 0

        ended = await asyncio.wait_for(sim.service.cancel_now(client_id="cli-1"), DEADLINE)  # still answers
        assert ended.ended_on == shift(date(2025, 10, 2) if when == "renewal" else START, sim.years)
        await finished(sim, "cli-1")
        assert next(i for i in invoices(sim) if i.id == refused.id).status == "open"
    run(simulation_parts, body, firm_card=GOOD_CARD)
