"""No request, signal or usage report can stall a subscription's workflow (issue 7; R17).

Real time-skipping Temporal server, PostgreSQL and localstripe; the workflow histories are
read back to show that no workflow task failed."""
import asyncio
import time
from dataclasses import replace
from datetime import date, datetime, timedelta
from datetime import time as clock

import pytest
from sqlalchemy import select, text
from temporalio.api.enums.v1 import EventType
from temporalio.client import WithStartWorkflowOperation, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from activities.records import RecordActivities
from billing.catalog import parse_catalog
from billing.intervals import Interval, Line
from billing.periods import PARIS, first_period, paris_date
from contracts.activities import OpenSubscription
from contracts.subscription import (
    ChangePlan,
    Payer,
    SubscriptionInput,
    SubscriptionState,
    SwitchInterval,
    TakeOver,
)
from settings import Settings
from starter.scenario import ScenarioClient, ScenarioFirm
from starter.simulate import Simulation, SimulationParts, simulation
from store.models import Invoice, OperatorAlert, PaymentAttempt, PaymentCustomer
from tests.tcp_proxy import TcpProxy
from tests.workflows.test_payment_resilience import intents_of
from worker import issuer_from
from workflows.subscription import SubscriptionWorkflow

CATALOG = parse_catalog([
    {"code": "essentiel", "product": "einvoicing", "name": "Essentiel",
     "prices": {"monthly": 1900, "annual": 19000}, "quota": {"monthly": 50, "annual": 600}, "overage": 25},
    {"code": "standard", "product": "einvoicing", "name": "Standard",
     "prices": {"monthly": 3900, "annual": 39000}, "quota": {"monthly": 200, "annual": 2400}, "overage": 19},
])
START = date(2025, 9, 1)
FIRM = ScenarioFirm(id="cab-1", name="Cabinet Dupont", card="4242424242424242")


def clients(n: int) -> list[ScenarioClient]:
    return [ScenarioClient(id=f"cli-{i}", name=f"Client {i}", firm="cab-1") for i in range(n)]


async def failed_tasks(handle: WorkflowHandle) -> list[str]:
    """The causes of every workflow task that failed in the run's history."""
    history = await handle.fetch_history()
    return [str(e.workflow_task_failed_event_attributes.failure.message) for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]


def continued_state(sim: Simulation, client_id: str, today: date, *, period_end: date | None = None) -> SubscriptionState:
    """The state a renewal hands to its next run (what continue-as-new carries)."""
    period = first_period(today, Interval.MONTHLY)
    return SubscriptionState(
        subscription_id=f"{client_id}.einvoicing.continued", client_id=client_id, firm_id="cab-1",
        line=Line.EINVOICING, plan=CATALOG.plan("essentiel"), interval=Interval.MONTHLY,
        payer=Payer(kind="firm", id="cab-1"), anchor=period.start, period_start=period.start,
        period_end=period_end or period.end, started_on=period.start, version=1,
    )


def recorded(sim: Simulation, state: SubscriptionState) -> SubscriptionState:
    """What the previous run left in the system of record: the subscription and its period."""
    RecordActivities(sim.sessions, issuer_from(Settings())).open_subscription(OpenSubscription(state=state))
    return state


def start_continued(sim: Simulation, state: SubscriptionState, **kwargs: object) -> WithStartWorkflowOperation:
    recorded(sim, state)
    return WithStartWorkflowOperation(
        SubscriptionWorkflow.run, SubscriptionInput(state=state), id=f"subscription:{state.client_id}:einvoicing",
        task_queue=sim.service.task_queue, id_conflict_policy=WorkflowIDConflictPolicy.FAIL, **kwargs)  # type: ignore[arg-type]


def run(parts: SimulationParts, body, n_clients: int = 1) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        async with simulation(CATALOG, parts, first_date=START) as sim:
            await sim.add_parties([FIRM], clients(n_clients))
            await sim.advance_to(START)
            await body(sim)
    asyncio.run(main())


SIGNALS = ["payment_method_updated", "payment_settled"]
UPDATES: list[tuple[str, object]] = [
    ("change_plan", ChangePlan(plan=CATALOG.plan("standard"))),
    ("switch_interval", SwitchInterval(interval=Interval.ANNUAL)),
    ("cancel", None), ("reactivate", None), ("cancel_now", None), ("stop_paying", None),
    ("take_over", TakeOver(payer=Payer(kind="client", id="cli-0"))), ("opened", None),
]


def test_item1_a_continued_run_takes_every_signal_and_update_in_its_first_activation(
        simulation_parts: SimulationParts) -> None:
    """Issue 7 item 1: handlers run before `run`; the state is built in @workflow.init."""
    async def body(sim: Simulation) -> None:
        today = paris_date(await sim.env.get_current_time())
        handles = []
        for i, name in enumerate(SIGNALS):
            state = recorded(sim, continued_state(sim, f"cli-{i}", today))
            handles.append(await sim.env.client.start_workflow(
                SubscriptionWorkflow.run, SubscriptionInput(state=state), id=f"subscription:{state.client_id}:einvoicing",
                task_queue=sim.service.task_queue, start_signal=name))
        for i, (name, arg) in enumerate(UPDATES, start=len(SIGNALS)):
            state = continued_state(sim, f"cli-{i}", today)
            start = start_continued(sim, state)
            update = getattr(SubscriptionWorkflow, name)
            args = [] if arg is None else [arg]
            try:
                await asyncio.wait_for(sim.env.client.execute_update_with_start_workflow(
                    update, *args, start_workflow_operation=start), 60)
            except WorkflowUpdateFailedError as exc:  # a refusal is an answer (reactivate: nothing to reactivate)
                assert isinstance(exc.cause, ApplicationError) and exc.cause.type == "Refused", exc
            handles.append(await start.workflow_handle())
        await sim.settle()
        for handle in handles:
            assert await failed_tasks(handle) == [], handle.id
            assert (await handle.query(SubscriptionWorkflow.current)).subscription_id.endswith(".continued")
    run(simulation_parts, body, n_clients=len(SIGNALS) + len(UPDATES))


def test_item1_a_signal_or_update_with_malformed_arguments_is_dropped_not_a_task_failure(
        simulation_parts: SimulationParts) -> None:
    """Issue 7: anyone with access to the namespace can send a signal; a bad one is dropped."""
    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-0", plan_code="essentiel", interval="monthly", payer_kind="firm")
        handle = sim.env.client.get_workflow_handle("subscription:cli-0:einvoicing")
        await handle.signal("payment_method_updated", "an unexpected argument")
        await handle.signal("payment_settled", args=[{"not": "expected"}, 42])
        await handle.signal("no_such_signal", 1)
        with pytest.raises(WorkflowUpdateFailedError):
            await asyncio.wait_for(handle.execute_update("change_plan", {"plan": "not a plan"}), 60)
        with pytest.raises(WorkflowUpdateFailedError):
            await asyncio.wait_for(handle.execute_update("switch_interval", {"interval": "weekly"}), 60)
        assert (await sim.service.change_plan(client_id="cli-0", plan_code="standard")).kind == "upgrade"
        await sim.settle()
        assert await failed_tasks(handle) == []
    run(simulation_parts, body)


def test_item4_an_upgrade_at_the_renewal_instant_renews_first_then_prorates_on_the_new_period(
        simulation_parts: SimulationParts) -> None:
    """Issue 7 item 4: the update and the renewal fall in one activation (the renewal was due
    when the run started): the period renews, then the upgrade applies to the new period."""
    async def body(sim: Simulation) -> None:
        today = paris_date(await sim.env.get_current_time())
        state = continued_state(sim, "cli-0", today.replace(month=today.month - 1))  # 1 Aug to 1 Sep
        assert state.period_end == today
        start = start_continued(sim, state)
        change = await asyncio.wait_for(sim.env.client.execute_update_with_start_workflow(
            SubscriptionWorkflow.change_plan, ChangePlan(plan=CATALOG.plan("standard")),
            start_workflow_operation=start), 60)
        handle = await start.workflow_handle()
        assert await failed_tasks(handle) == []
        assert change.kind == "upgrade"
        assert change.amount == 2000  # 3900 - 1900 over the whole new period: days_left == period_days
        current = await handle.query(SubscriptionWorkflow.current)
        assert (current.period_start, current.plan.code) == (today, "standard")
    run(simulation_parts, body)


def test_item2_twenty_thousand_usage_reports_in_one_period_leave_the_history_small(
        simulation_parts: SimulationParts) -> None:
    """Issue 7 item 2: PostgreSQL is the record of usage; no signal per report. 20,000 reports
    (each counted once, the overage billed at renewal) leave fewer than 2,000 history events."""
    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-0", plan_code="essentiel", interval="monthly", payer_kind="firm")
        occurred = datetime.combine(paris_date(await sim.env.get_current_time()), clock(12), tzinfo=PARIS)
        for i in range(20_000):
            await sim.service.report_usage(event_id=f"e{i}", client_id="cli-0", occurred_at=occurred, documents=1)
        assert await sim.service.used_this_period(client_id="cli-0") == 20_000
        handle = sim.env.client.get_workflow_handle("subscription:cli-0:einvoicing")
        history = await handle.fetch_history()
        print(f"history after 20,000 usage reports: {len(history.events)} events")  # shown with -rP
        assert len(history.events) < 2_000
        await sim.advance_to(date(2025, 10, 2))  # renewal: the overage of 19,950 documents is billed
        with sim.sessions() as session:
            renewal = session.scalars(select(Invoice).where(Invoice.number == 2)).one()
            assert renewal.subtotal == 1900 + 19_950 * 25
    run(simulation_parts, body)


def test_r17_with_stripe_cut_off_changes_answer_and_charges_complete_once_stripe_is_back(
        simulation_parts: SimulationParts, localstripe: object) -> None:
    """Issue 7 item 5 / R17: the lock is not held across a charge. With Stripe unreachable,
    change_plan, cancel and cancel_now answer (their invoices issued in the answer); once
    Stripe is back each charge completes, once."""
    proxy = TcpProxy(localstripe.port)  # type: ignore[attr-defined]
    parts = replace(simulation_parts, stripe_api_base=proxy.url)

    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-0", plan_code="essentiel", interval="monthly", payer_kind="firm")
        await sim.settle()
        await sim.service.report_usage(event_id="u1", client_id="cli-0", documents=60,
                                       occurred_at=await sim.env.get_current_time())
        proxy.cut()
        answered: dict[str, float] = {}

        async def timed(name: str, call):  # type: ignore[no-untyped-def]
            began = time.monotonic()
            result = await asyncio.wait_for(call, 60)  # the old code never answered: its lock was held
            answered[name] = time.monotonic() - began
            return result
        upgrade = await timed("change_plan", sim.service.change_plan(client_id="cli-0", plan_code="standard"))
        await timed("cancel", sim.service.cancel(client_id="cli-0"))
        ended = await timed("cancel_now", sim.service.cancel_now(client_id="cli-0"))
        print(f"answered with Stripe cut off, seconds: {answered}")  # shown with -rP: figures for the note
        assert upgrade.invoice_number is not None and ended.invoice_number is None  # 60 of 200: no overage
        with sim.sessions() as session:
            assert session.scalars(select(Invoice.status).order_by(Invoice.id)).all() == ["paid", "open"]
        proxy.heal()
        await sim.env.sleep(timedelta(minutes=5))  # the charge's next retry finds Stripe back
        await sim.settle()
        handle = sim.env.client.get_workflow_handle("subscription:cli-0:einvoicing")
        await asyncio.wait_for(handle.result(), 60)
        with sim.sessions() as session:
            invoices = session.scalars(select(Invoice).order_by(Invoice.id)).all()
            assert [i.status for i in invoices] == ["paid", "paid"]
            attempts = session.scalars(
                select(PaymentAttempt.status).where(PaymentAttempt.invoice_id == invoices[1].id)).all()
            assert list(attempts) == ["succeeded"]
            customer = session.get_one(PaymentCustomer, ("firm", "cab-1")).stripe_customer_id
        assert intents_of(customer, parts)[str(invoices[1].id)].count("succeeded") == 1
    try:
        run(parts, body)
    finally:
        proxy.cut()


def test_item3_a_database_error_no_retry_cures_is_alerted_and_the_workflow_goes_on(
        simulation_parts: SimulationParts) -> None:
    """Issue 7 item 3 (R11's last paragraph): a write the database refuses for good (here a
    constraint an operator added, refusing the cancel notice) is not retried for ever under
    the lock: the operator is alerted, the change answers, the next change answers too."""
    async def body(sim: Simulation) -> None:
        await sim.service.subscribe(client_id="cli-0", plan_code="essentiel", interval="monthly", payer_kind="firm")
        await sim.settle()
        with sim.sessions.begin() as session:
            session.execute(text("alter table notifications add constraint no_cancel_notices "
                                 "check (kind <> 'cancel_scheduled')"))
        scheduled = await asyncio.wait_for(sim.service.cancel(client_id="cli-0"), 60)
        assert scheduled.detail == "ends at the period end"
        state = await sim.service.state(client_id="cli-0")
        assert [a.step for a in state.alerts] == ["record"]
        assert "no_cancel_notices" in state.alerts[0].error
        with sim.sessions() as session:
            alerts = session.scalars(select(OperatorAlert)).all()
            assert [(a.step, a.subscription_id) for a in alerts] == [("record", state.subscription_id)]
        ended = await asyncio.wait_for(sim.service.cancel_now(client_id="cli-0"), 60)
        assert ended.invoice_number is None
        handle = sim.env.client.get_workflow_handle_for(SubscriptionWorkflow.run, "subscription:cli-0:einvoicing")
        assert (await asyncio.wait_for(handle.result(), 60)).ended_reason == "canceled_now"
        assert await failed_tasks(handle) == []
    run(simulation_parts, body)
