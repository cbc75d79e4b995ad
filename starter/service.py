"""The operations backend services and operators call: start and change subscriptions, report
usage, register cards. It gathers facts (database, catalogue), asks the pure rules, and
talks to the workflows; the rules themselves live in `billing` and in the workflow validators.

Every refusal is a `Refused` whose message is a sentence for a person; nothing is half-done.
"""
import asyncio
import uuid
from collections.abc import Awaitable
from contextlib import suppress
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.stripe_gateway import CardRefused, StripeGateway
from billing.catalog import Catalog, Plan, UnknownPlan
from billing.intervals import Interval, Line, Product, home_line, lines_occupied
from billing.periods import anchor_for
from billing.rules import Refused, check_new_subscription
from billing.statuses import InvoiceStatus, SubscriptionStatus
from contracts import search_attributes as sa
from contracts.subscription import (
    DEFAULT_RETRY_DAYS,
    ChangePlan,
    ChangeResult,
    Ended,
    ImportedPeriod,
    NewSubscription,
    Payer,
    Scheduled,
    SubscriptionInput,
    SubscriptionState,
    SwitchInterval,
    TakeOver,
    dunning_workflow_id,
)
from starter.access import OPERATOR, Actor, NotFound
from store.models import Client as ClientRow
from store.models import Firm, PaymentCustomer, Subscription
from store.models import Invoice as InvoiceRow
from store.subscriptions import live_subscriptions
from store.usage import UsageRecorded, UsageRefused, period_total, record_usage
from workflows.details import start_details, start_summary
from workflows.dunning import InvoiceDunningWorkflow
from workflows.subscription import SubscriptionWorkflow

# R17: a change answers in seconds (charges run after the answer). A caller never waits longer
# than this for a workflow; past it, it is told so and may ask for the state.
ANSWER_DEADLINE = timedelta(seconds=20)


class NoAnswer(Exception):
    """The workflow did not answer within the deadline; the change may still be applied."""

T = TypeVar("T")


def _imported_period(start: date, end: date, interval: Interval) -> ImportedPeriod:
    anchor = anchor_for(start, end, interval)
    if anchor is None:
        raise Refused(f"{start} → {end} is not one {interval.value} period (e.g. 2025-01-15 → 2025-02-15)")
    return ImportedPeriod(anchor=anchor, start=start, end=end)


def workflow_id(client_id: str, line: Line) -> str:
    """One workflow id per client and line: Temporal itself refuses a second live one (R2)."""
    return f"subscription:{client_id}:{line.value}"


class SubscriptionService:
    def __init__(self, temporal: Client, sessions: sessionmaker[Session], catalog: Catalog,
                 gateway: StripeGateway, task_queue: str, retry_days: list[int] | None = None) -> None:
        self.retry_days = retry_days or list(DEFAULT_RETRY_DAYS)
        self.temporal = temporal
        self.sessions = sessions
        self.catalog = catalog
        self.gateway = gateway
        self.task_queue = task_queue

    # --- subscribing --------------------------------------------------------------------

    async def subscribe(self, *, client_id: str, plan_code: str, interval: str, payer_kind: str,
                        actor: Actor = OPERATOR, imported: tuple[date, date] | None = None) -> SubscriptionState:
        """Start a subscription today; or, with `imported` = (period_start, period_end), one whose
        current period a firm's old tool already billed: no invoice now, the renewal at its end
        (at once when that is past) is the first we issue."""
        plan = self._plan(plan_code)
        interval_ = _interval(interval)
        client = await asyncio.to_thread(self.visible_client, client_id, actor)
        occupied = await asyncio.to_thread(self._occupied_lines, client_id)
        check_new_subscription(plan, interval_, payer_kind, occupied)
        line = home_line(plan.product)
        payer = Payer(kind="firm", id=client.firm_id) if payer_kind == "firm" else Payer(kind="client", id=client_id)
        new = NewSubscription(
            subscription_id=f"{client_id}.{line.value}.{uuid.uuid4().hex[:12]}", client_id=client_id,
            firm_id=client.firm_id, line=line, plan=plan, interval=interval_, payer=payer,
            retry_days=self.retry_days,
            imported=None if imported is None else _imported_period(*imported, interval_),
        )
        return await self._start(new)

    async def _start(self, new: NewSubscription) -> SubscriptionState:
        """Start the workflow and wait until it has recorded and billed the first period."""
        attributes = TypedSearchAttributes([
            SearchAttributePair(sa.FIRM_ID, new.firm_id), SearchAttributePair(sa.CLIENT_ID, new.client_id),
            SearchAttributePair(sa.PLAN_CODE, new.plan.code),
            SearchAttributePair(sa.SUBSCRIPTION_STATUS, "active"),
            SearchAttributePair(sa.BILLING_INTERVAL, new.interval.value),
            SearchAttributePair(sa.PAYER_KIND, new.payer.kind),
        ])
        wf_id = workflow_id(new.client_id, new.line)
        try:
            return await asyncio.wait_for(self._start_once_free(new, wf_id, attributes), ANSWER_DEADLINE.total_seconds())
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):  # ours, or the server's long poll
            raise NoAnswer(f"the subscription of client {new.client_id} did not answer within "
                           f"{ANSWER_DEADLINE.total_seconds():.0f} s: it may still be opening; ask for its state") from None

    async def _start_once_free(self, new: NewSubscription, wf_id: str,
                               attributes: TypedSearchAttributes) -> SubscriptionState:
        for _ in range(2):
            start = WithStartWorkflowOperation(
                SubscriptionWorkflow.run, SubscriptionInput(new=new), id=wf_id,
                task_queue=self.task_queue, search_attributes=attributes,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                static_summary=start_summary(new), static_details=start_details(new),
            )
            try:
                return await asyncio.wait_for(
                    self.temporal.execute_update_with_start_workflow(
                        SubscriptionWorkflow.opened, start_workflow_operation=start),
                    ANSWER_DEADLINE.total_seconds() / 2)
            except TimeoutError:
                # Seen when a worker died during the opening: the workflow went on and
                # completed the update, but this call's answer never came. Ask it again.
                handle = self.temporal.get_workflow_handle_for(SubscriptionWorkflow.run, wf_id)
                return await self._answer(handle.execute_update(SubscriptionWorkflow.opened))
            except WorkflowUpdateFailedError as exc:
                raise _refusal(exc) from None
            except (WorkflowAlreadyStartedError, RPCError) as exc:
                if isinstance(exc, RPCError) and exc.status != RPCStatusCode.ALREADY_EXISTS:
                    raise
                with suppress(WorkflowAlreadyStartedError, RPCError):
                    await start.workflow_handle()  # the start's own copy of the error, consumed
                # The previous subscription on this line may have ended a moment ago and be
                # finishing its run: wait for it, then start. A live one is a refusal.
                previous = self.temporal.get_workflow_handle_for(SubscriptionWorkflow.run, wf_id)
                state = await previous.query(SubscriptionWorkflow.current)
                if state.ended_on is None:
                    raise Refused(f"the client already has a live subscription on the {new.line.value} line") from None
                await previous.result()
        raise Refused(f"the client already has a live subscription on the {new.line.value} line")

    # --- changes (Workflow Updates) ---------------------------------------------------------

    async def change_plan(self, *, client_id: str, plan_code: str, line: str | None = None,
                          actor: Actor = OPERATOR) -> ChangeResult:
        plan = self._plan(plan_code)
        line_ = _line(line) if line else home_line(plan.product)
        return await self._update(actor, client_id, line_, SubscriptionWorkflow.change_plan, ChangePlan(plan=plan))

    async def preview_change_plan(self, *, client_id: str, plan_code: str, actor: Actor = OPERATOR,
                                  line: str | None = None) -> ChangeResult:
        """What change_plan would charge today (R7), changing nothing."""
        plan = self._plan(plan_code)
        line_ = _line(line) if line else home_line(plan.product)
        return await self._update(actor, client_id, line_, SubscriptionWorkflow.preview_change_plan,
                                  ChangePlan(plan=plan))

    async def switch_interval(self, *, client_id: str, interval: str, line: str | None = None,
                              actor: Actor = OPERATOR) -> Scheduled:
        return await self._update(actor, client_id, _line(line), SubscriptionWorkflow.switch_interval,
                                  SwitchInterval(interval=_interval(interval)))

    async def cancel(self, *, client_id: str, actor: Actor = OPERATOR, line: str | None = None) -> Scheduled:
        return await self._update(actor, client_id, _line(line), SubscriptionWorkflow.cancel)

    async def reactivate(self, *, client_id: str, actor: Actor = OPERATOR, line: str | None = None) -> Scheduled:
        return await self._update(actor, client_id, _line(line), SubscriptionWorkflow.reactivate)

    async def cancel_now(self, *, client_id: str, actor: Actor = OPERATOR, line: str | None = None) -> Ended:
        return await self._update(actor, client_id, _line(line), SubscriptionWorkflow.cancel_now)

    async def stop_paying(self, *, client_id: str, actor: Actor = OPERATOR, line: str | None = None) -> Scheduled:
        return await self._update(actor, client_id, _line(line), SubscriptionWorkflow.stop_paying)

    async def take_over(self, *, client_id: str, payer_kind: str, line: str | None = None,
                        actor: Actor = OPERATOR) -> Scheduled:
        client = await asyncio.to_thread(self.visible_client, client_id, actor)
        if payer_kind not in ("firm", "client"):
            raise Refused(f"payer must be 'firm' or 'client', not '{payer_kind}'")
        payer = Payer(kind="firm", id=client.firm_id) if payer_kind == "firm" else Payer(kind="client", id=client_id)
        return await self._update(actor, client_id, _line(line), SubscriptionWorkflow.take_over, TakeOver(payer=payer))

    async def state(self, *, client_id: str, actor: Actor = OPERATOR, line: str | None = None) -> SubscriptionState:
        await asyncio.to_thread(self.visible_client, client_id, actor)
        handle = self.temporal.get_workflow_handle_for(SubscriptionWorkflow.run, workflow_id(client_id, _line(line)))
        try:
            return await handle.query(SubscriptionWorkflow.current)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise Refused(f"client {client_id} has no subscription on the {_line(line).value} line") from None
            raise

    async def _update(self, actor: Actor, client_id: str, line: Line, update: Any, *args: Any) -> Any:
        await asyncio.to_thread(self.visible_client, client_id, actor)  # R15: another firm's client is not found
        handle = self.temporal.get_workflow_handle(workflow_id(client_id, line))
        try:
            return await asyncio.wait_for(handle.execute_update(update, *args), ANSWER_DEADLINE.total_seconds())
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):  # ours, or the server's long poll
            raise NoAnswer(f"the subscription of client {client_id} on the {line.value} line did not answer within "
                           f"{ANSWER_DEADLINE.total_seconds():.0f} s; the change may still be applied: "
                           "ask for its state before trying again") from None
        except WorkflowUpdateFailedError as exc:
            raise _refusal(exc) from None
        except RPCError as exc:
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                raise Refused(f"client {client_id} has no live subscription on the {line.value} line") from None
            raise

    # --- usage (R12) ----------------------------------------------------------------------

    async def report_usage(self, *, event_id: str, client_id: str, occurred_at: datetime, documents: int) -> UsageRecorded:
        """Count one event (R12) in PostgreSQL, the record of usage. No workflow is signalled:
        it reads the period's total when it bills, so usage never grows its history."""
        def write() -> UsageRecorded:
            with self.sessions.begin() as session:
                return record_usage(session, event_id=event_id, client_id=client_id,
                                    occurred_at=occurred_at, documents=documents)
        try:
            return await asyncio.to_thread(write)
        except UsageRefused as exc:
            raise Refused(str(exc)) from None

    async def used_this_period(self, *, client_id: str) -> int:
        """Documents counted so far in the current period of the client's e-invoicing line."""
        state = await self.state(client_id=client_id)
        def read() -> int:
            with self.sessions() as session:
                return period_total(session, state.subscription_id, state.period_start)
        return await asyncio.to_thread(read)

    # --- payers and cards -------------------------------------------------------------------

    async def register_card(self, *, payer: Payer, card: str) -> None:
        """Attach the card as the payer's default; its open invoices are retried at once (R11):
        those of live subscriptions (declined, or whose charge is in flight right now) and
        those that keep their retries after their subscription ended."""
        await asyncio.to_thread(self._register_card, payer, card)
        lines, ended_invoices, ended_lines = await asyncio.to_thread(self._open_invoices_of, payer)
        # An ended run may still be finishing (a final charge in flight): it hands the card
        # update on to the dunning workflows it starts, so it hears of it too.
        for client_id, line in [*lines, *ended_lines]:
            handle = self.temporal.get_workflow_handle(workflow_id(client_id, Line(line)))
            with suppress(RPCError):  # ended meanwhile: its invoices went to a dunning workflow
                await handle.signal(SubscriptionWorkflow.payment_method_updated)
        for invoice_id in ended_invoices:
            dunning = self.temporal.get_workflow_handle_for(InvoiceDunningWorkflow.run, dunning_workflow_id(invoice_id))
            with suppress(RPCError):  # paid, written off, or never declined: nothing to retry
                await dunning.signal(InvoiceDunningWorkflow.payment_method_updated)

    async def payment_settled(self, invoice: InvoiceRow) -> None:
        """A payment settled outside a charge (webhook): its subscription looks again now."""
        def line_of() -> tuple[str, str] | None:
            with self.sessions() as session:
                sub = session.get(Subscription, invoice.subscription_id) if invoice.subscription_id else None
                return (sub.client_id, sub.line) if sub else None
        found = await asyncio.to_thread(line_of)
        if found is not None:
            with suppress(RPCError):
                await self.temporal.get_workflow_handle(workflow_id(found[0], Line(found[1]))).signal(
                    SubscriptionWorkflow.payment_settled)

    def _open_invoices_of(self, payer: Payer) -> tuple[list[tuple[str, str]], list[int], list[tuple[str, str]]]:
        """The live lines with an open invoice of `payer`; its open invoices of ended
        subscriptions, and their lines."""
        with self.sessions() as session:
            rows = session.execute(
                select(InvoiceRow.id, Subscription.client_id, Subscription.line, Subscription.status)
                .join(Subscription, Subscription.id == InvoiceRow.subscription_id)
                .where(InvoiceRow.payer_kind == payer.kind, InvoiceRow.payer_id == payer.id,
                       InvoiceRow.status == InvoiceStatus.OPEN)
            ).all()
        lines = sorted({(c, l) for _, c, l, status in rows if status != SubscriptionStatus.ENDED})
        ended = [(i, c, l) for i, c, l, status in rows if status == SubscriptionStatus.ENDED]
        return lines, [i for i, _, _ in ended], sorted({(c, l) for _, c, l in ended} - set(lines))

    async def _answer(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except WorkflowUpdateFailedError as exc:
            raise _refusal(exc) from None

    def _register_card(self, payer: Payer, card: str) -> None:
        with self.sessions() as session:
            name = self._payer_name(session, payer)
            customer = session.get(PaymentCustomer, (payer.kind, payer.id))
            if customer is not None and not self.gateway.customer_exists(customer.stripe_customer_id):
                # deleted in Stripe (or a local Stripe that restarted empty): make a new one
                session.delete(customer)
                session.flush()
                customer = None
            if customer is None:
                customer = PaymentCustomer(payer_kind=payer.kind, payer_id=payer.id,
                                           stripe_customer_id=self.gateway.create_customer(
                                               name=name, payer_label=payer.label))
                session.add(customer)
                session.commit()
            try:
                method = self.gateway.attach_card(customer.stripe_customer_id, card)
            except CardRefused as exc:
                raise Refused(f"the card of {payer.label} was refused: {exc}") from None
            customer.default_payment_method = method
            session.commit()

    # --- facts ------------------------------------------------------------------------------

    def _plan(self, code: str) -> Plan:
        try:
            return self.catalog.plan(code)
        except UnknownPlan as exc:
            raise Refused(str(exc)) from None

    def visible_client(self, client_id: str, actor: Actor = OPERATOR) -> ClientRow:
        """The client, if `actor` may see it (R15); else NotFound, worded as for a missing id."""
        with self.sessions() as session:
            client = session.get(ClientRow, client_id)
            if client is None or not actor.may_see(client.firm_id):
                raise NotFound(f"there is no client '{client_id}'")
            return client

    def _occupied_lines(self, client_id: str) -> set[Line]:
        with self.sessions() as session:
            occupied: set[Line] = set()
            for sub in live_subscriptions(session, client_id):
                occupied.update(lines_occupied(Product(sub.product)))
            return occupied

    @staticmethod
    def _payer_name(session: Session, payer: Payer) -> str:
        row: Firm | ClientRow | None = (
            session.get(Firm, payer.id) if payer.kind == "firm" else session.get(ClientRow, payer.id))
        if row is None:
            raise Refused(f"there is no {payer.kind} '{payer.id}'")
        return row.name


def _refusal(exc: WorkflowUpdateFailedError) -> Exception:
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.type == "Refused":
        return Refused(cause.message)
    return exc


def _interval(value: str) -> Interval:
    try:
        return Interval(value)
    except ValueError:
        raise Refused(f"interval must be 'monthly' or 'annual', not '{value}'") from None


def _line(value: str | None) -> Line:
    if value is None:
        return Line.EINVOICING
    try:
        return Line(value)
    except ValueError:
        raise Refused(f"line must be 'einvoicing' or 'payments', not '{value}'") from None
