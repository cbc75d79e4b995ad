"""One subscription line, alive for its whole life (R3–R11, R16, R17).

The workflow decides; activities record, invoice, charge and notify. Business dates come
from `workflow.now()` read as a Paris calendar date. Renewal is this workflow's own timer at
the period end (midnight in Paris); a run lives through renewal after renewal and continues-as-new
with the state once its history is long (RUN_HISTORY_EVENTS), so the history of a subscription that
lives for years stays bounded, and a renewal costs the server no new run (issue 10).

R17: a change holds the lock only while it records and invoices (database work); charges run
in the background, outside the lock, so an update answers in seconds whatever Stripe does.
State is built in `@workflow.init`: signal handlers and update validators may run before
`run` does, in a run's first activation.
"""
import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as TimeoutError_

with workflow.unsafe.imports_passed_through():
    from activities.dunning import DunningActivities
    from activities.records import RecordActivities
    from billing.invoices import InvoiceLine, overage_line, proration_line, subscription_line
    from billing.money import format_eur
    from billing.periods import first_period, paris_date, paris_midnight, period_containing
    from billing.proration import ChangeKind, classify_change, prorated_upgrade
    from billing.quota import Consumption
    from billing.rules import Refused, check_interval_switch, check_plan_change
    from billing.statuses import ChargeResult, InvoiceStatus
    from contracts import search_attributes as sa
    from contracts.activities import (
        ChargeOutcome,
        ClosePeriod,
        FreeLines,
        IssuedInvoice,
        IssueInvoice,
        MarkUncollectible,
        Notice,
        OpenSubscription,
        RaiseAlert,
        RecordState,
        RenderDocument,
        RenderedDocument,
        Renew,
    )
    from contracts.subscription import (
        MAX_ALERTS,
        Alert,
        ChangePlan,
        ChangeResult,
        Dunning,
        DunningInput,
        Ended,
        EndReason,
        NewSubscription,
        Payer,
        Scheduled,
        SubscriptionInput,
        SubscriptionOutcome,
        SubscriptionState,
        SwitchInterval,
        TakeOver,
    )
    from observability.metrics import count
    from workflows import calls
    from workflows.details import current_details

T = TypeVar("T")
# workflow.patched ids: runs recorded before a change replay the old path (tests/workflows/histories).
LEAN_RENEWAL = "lean-renewal"  # issue 10: a renewal's database work in one activity
# Issue 11: each new invoice's e-invoice rendered beside its charge. One patch id per invoice, not
# one per run: `patched` keeps its first answer for the whole run, and a run recorded before this
# (which renews in place for dozens of periods) must still render the invoices it issues from now on.
INVOICE_DOCUMENTS = "invoice-documents"
# By name: the workflow module stays free of the drawing libraries (the API imports it too).
RENDER_ACTIVITY = "render_invoice_document"
# A render neither the retries nor a documents worker finish in this long is given up and alerted
# (`python -m starter invoices render-missing` draws it later): the run may then end or continue.
RENDER_DEADLINE = timedelta(hours=1)
# LONG_RUNS (calls.py): past these, a run that renews in place continues as new (once quiet).
RUN_HISTORY_EVENTS = 1_000
RUN_HISTORY_BYTES = 4 * 1024 * 1024


def refuse(message: str) -> ApplicationError:
    return ApplicationError(message, type="Refused", non_retryable=True)


@workflow.defn
class SubscriptionWorkflow:
    @workflow.init
    def __init__(self, input: SubscriptionInput) -> None:
        self._lock = asyncio.Lock()  # one change at a time, renewal included
        self._charging: set[int] = set()  # invoices whose charge runs in the background
        self._rendering: set[int] = set()  # invoices whose e-invoice is being rendered (issue 11)
        self._renewed = False  # a renewal happened in this run: continue as new once quiet (runs before LONG_RUNS)
        self._renews_in_place = False  # LONG_RUNS: renewals stay in this run until its history is long
        self._refusal: str | None = None  # the subscription could not open (R2)
        self._successor: NewSubscription | None = None  # R10: who takes over at the end
        self._task_failure: Exception | None = None  # raised by `run`: a background task's bug
        self._used: int | None = None  # documents this period, as the last recorded state read them
        self._used_as_of: date | None = None
        self._charging_numbers: dict[int, str] = {}
        self._imported = input.new is not None and input.new.imported is not None
        if input.state is not None:
            self.state = input.state
            self._ready = True
        elif input.new is not None:
            self.state = self._new_state(input.new)
            self._ready = False  # changes wait until the opening is recorded and billed
        else:
            raise ApplicationError("a subscription run needs `new` or `state`", non_retryable=True)
        self._show()

    # --- life ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: SubscriptionInput) -> SubscriptionOutcome:
        if not self._ready:
            async with self._lock:
                await self._open()
            self._ready = True
            if self._refusal is not None:
                return SubscriptionOutcome(subscription_id=self.state.subscription_id, refused=self._refusal)
        while True:
            await self._wait_for_work()
            if self._task_failure is not None:
                raise self._task_failure
            async with self._lock:
                await self._catch_up()
            if not self._quiet():
                continue
            if self.state.ended_on is not None:
                return await self._finish()
            if self._renewed or workflow.info().is_continue_as_new_suggested() or self._history_long():
                workflow.continue_as_new(SubscriptionInput(state=self.state))

    async def _open(self) -> None:
        s = self.state
        try:
            # An imported subscription is not news to its payer: no "started" notice.
            notices = [] if self._imported else self._notice("started", f"Subscription to {s.plan.name} started", s.payer)
            refusal = await calls.call(RecordActivities.open_subscription, OpenSubscription(state=s, notices=notices),
                summary=f"open {s.plan.name} {s.interval.value} from {s.period_start}")
        except ActivityError as exc:
            if (message := calls.unrecoverable(exc)) is None:
                raise
            await self._alert("open", message)
            refusal = f"the subscription could not be recorded ({message}); the operator is alerted"
        if refusal:
            self._refusal = refusal
            return
        if self._imported:
            return  # billed by the old tool: our first invoice is the renewal at its end
        invoice = await self._issue(f"{s.subscription_id}:fee:{s.period_start}", s.started_on,
                                    [subscription_line(s.plan, s.interval, s.period)])
        self._collect(invoice, s.started_on)

    async def _catch_up(self) -> None:
        """Do what fell due: the renewal (first: a change at the renewal instant applies to
        the new period), then the retries of declined invoices (R11)."""
        if self.state.ended_on is None and workflow.now() >= self._renewal_at():
            await self._renew()
        if self.state.ended_on is None:
            self._start_due_retries()

    async def _renew(self) -> None:
        """At the period end: close it and bill its overage, then renew or end."""
        s = self.state
        closing = s.period
        if not s.ending and calls.patched(LEAN_RENEWAL):
            await self._renew_in_one_step()
            return
        overage = await self._close_period(closing.end)
        if s.ending:
            await self._end(closing.end, EndReason.CANCELED if s.cancel_requested else EndReason.NOT_RENEWED, overage)
            return
        if s.scheduled_plan is not None:
            s.plan, s.scheduled_plan = s.scheduled_plan, None
        if s.scheduled_interval is not None:  # R9: the new interval is anchored on this renewal
            s.interval, s.anchor, s.scheduled_interval = s.scheduled_interval, closing.end, None
        period = period_containing(s.anchor, s.interval, closing.end)
        s.period_start, s.period_end = period.start, period.end
        await self._commit(*self._notice("renewed", f"Subscription renewed until {period.end}", s.payer))
        count("billing_renewals", meter=workflow.metric_meter(), plan=s.plan.code, interval=s.interval.value)
        workflow.logger.info("renewed until %s", period.end, extra=self._ids())
        invoice = await self._issue(f"{s.subscription_id}:fee:{period.start}", period.start,
                                    [subscription_line(s.plan, s.interval, period), overage])
        self._collect(invoice, period.start)
        self._renewed = True

    async def _renew_in_one_step(self) -> None:
        """Renewal day (issue 10): close, record, invoice and notify in one activity and one
        transaction; the charge follows on the rate-limited payments queue."""
        s = self.state
        closing, closing_plan, closing_quota = s.period, s.plan, s.quota
        if s.scheduled_plan is not None:
            s.plan, s.scheduled_plan = s.scheduled_plan, None
        if s.scheduled_interval is not None:  # R9: the new interval is anchored on this renewal
            s.interval, s.anchor, s.scheduled_interval = s.scheduled_interval, closing.end, None
        period = period_containing(s.anchor, s.interval, closing.end)
        s.period_start, s.period_end = period.start, period.end
        notices = self._notice("renewed", f"Subscription renewed until {period.end}", s.payer)
        s.version += 1
        renewed = await self._db(RecordActivities.renew, Renew(
            subscription_id=s.subscription_id, closing_start=closing.start, closing_end=closing.end,
            closing_plan=closing_plan, closing_quota=closing_quota, state=s, notices=notices,
            invoice_key=f"{s.subscription_id}:fee:{period.start}", fee=subscription_line(s.plan, s.interval, period),
        ), step="renew", summary=f"renew {closing.start} → {period.start} → {period.end}: close, record, invoice")
        self._upsert_search_attributes()
        count("billing_renewals", meter=workflow.metric_meter(), plan=s.plan.code, interval=s.interval.value)
        workflow.logger.info("renewed until %s", period.end, extra=self._ids())
        if renewed is not None:
            self._used, self._used_as_of = 0, period.start
            self._collect(renewed.invoice, period.start)
        else:  # not recorded (the operator is alerted): this period's usage is not known here
            self._used, self._used_as_of = None, None
        self._show()
        if workflow.patched(calls.LONG_RUNS):
            self._renews_in_place = True  # the next renewal happens in this run, unless its history is long
        else:
            self._renewed = True

    async def _end(self, on: date, reason: EndReason, overage: InvoiceLine | None,
                   *, dun: bool = True) -> IssuedInvoice | None:
        """Final invoice (overage in arrears, R4), then ended. With `dun` False (an unpaid end)
        the final invoice is charged once and, if declined, left open for the operator."""
        s = self.state
        invoice = None
        if overage is not None:
            invoice = await self._issue(f"{s.subscription_id}:final", on, [overage])
            self._collect(invoice, on, dun=dun)
        s.ended_on, s.ended_reason = on, reason
        if s.take_over is not None:
            self._successor = self._successor_subscription()
        await self._commit(*self._notice("ended", f"Subscription ended on {on} ({reason.value})", s.payer,
                                         ended_on=on.isoformat(), reason=reason.value))
        # Its own step, so no other write's failure can leave the lines reserved for ever.
        await self._db(RecordActivities.free_lines, FreeLines(
            subscription_id=s.subscription_id,
            successor_id=self._successor.subscription_id if self._successor else None), step="free_lines")
        return invoice

    async def _finish(self) -> SubscriptionOutcome:
        """Ended and quiet. Invoices still unpaid keep their retries (R11) in a workflow of
        their own; a take-over continues here as the new payer's subscription (R10)."""
        s = self.state
        for entry in [*s.dunning, *s.on_hold]:
            await workflow.execute_activity_method(DunningActivities.start_dunning, DunningInput(
                subscription_id=s.subscription_id, client_id=s.client_id, firm_id=s.firm_id, payer=s.payer,
                dunning=entry, retry_days=s.retry_days, retry_now=s.retry_now, on_hold=entry in s.on_hold),
                start_to_close_timeout=calls.ACTIVITY_TIMEOUT, retry_policy=calls.ACTIVITY_RETRY)
        if self._successor is not None:
            workflow.continue_as_new(SubscriptionInput(new=self._successor))
        assert s.ended_on is not None and s.ended_reason is not None
        return SubscriptionOutcome(subscription_id=s.subscription_id, ended_on=s.ended_on, ended_reason=s.ended_reason)

    def _new_state(self, new: NewSubscription) -> SubscriptionState:
        fields = new.model_dump(exclude={"plan", "payer", "starts_on", "imported"})
        if new.imported is not None:  # the old tool's current period, already billed there
            i = new.imported
            return SubscriptionState(**fields, plan=new.plan, payer=new.payer, anchor=i.anchor,
                                     period_start=i.start, period_end=i.end, started_on=i.start)
        start = new.starts_on or self._today()
        period = first_period(start, new.interval)
        return SubscriptionState(**fields, plan=new.plan, payer=new.payer,
                                 anchor=start, period_start=period.start, period_end=period.end, started_on=start)

    def _successor_subscription(self) -> NewSubscription:
        """R10: the next period exactly as the renewal would have made it; only the payer differs."""
        old = self.state
        assert old.take_over is not None
        return NewSubscription(
            subscription_id=f"{old.client_id}.{old.line.value}.{workflow.uuid4().hex[:12]}",
            client_id=old.client_id, firm_id=old.firm_id, line=old.line,
            plan=old.scheduled_plan or old.plan, interval=old.scheduled_interval or old.interval,
            payer=old.take_over, retry_days=old.retry_days, starts_on=old.ended_on,
        )

    # --- waiting ------------------------------------------------------------------------------

    async def _wait_for_work(self) -> None:
        """Sleep until something is due, or until what is next due changes (a decline adds a
        retry date, a card update asks for one now)."""
        wake = self._next_due_at()
        timeout = None if wake is None else max(wake - workflow.now(), timedelta(0))
        try:
            await workflow.wait_condition(lambda: self._has_work() or self._next_due_at() != wake, timeout=timeout)
        except TimeoutError:
            pass

    def _has_work(self) -> bool:
        s = self.state
        if self._due_now() or self._task_failure is not None:
            return True
        wants_to_close = (s.ended_on is not None or self._renewed or workflow.info().is_continue_as_new_suggested()
                          or self._history_long())
        return wants_to_close and self._quiet()

    def _history_long(self) -> bool:
        """A run that renews in place continues as new past this (the server suggests it much later)."""
        info = workflow.info()
        return self._renews_in_place and (info.get_current_history_length() >= RUN_HISTORY_EVENTS
                                          or info.get_current_history_size() >= RUN_HISTORY_BYTES)

    def _due_now(self) -> bool:
        s, now = self.state, workflow.now()
        if s.ended_on is not None:
            return False
        if now >= self._renewal_at() or s.retry_now:
            return True
        return any(t <= now for t in self._retry_times())

    def _next_due_at(self) -> datetime | None:
        if self.state.ended_on is not None:
            return None
        return min([self._renewal_at(), *self._retry_times()])

    def _quiet(self) -> bool:
        """Nothing in flight, no handler running. Only then may the run end or continue."""
        return not self._in_flight() and workflow.all_handlers_finished()

    def _in_flight(self) -> bool:
        """A change holds the lock, or a charge or an e-invoice runs in the background."""
        return self._lock.locked() or bool(self._charging) or bool(self._rendering)

    def _renewal_at(self) -> datetime:
        return paris_midnight(self.state.period_end)

    # --- charges (R11, R16, R17): in the background, outside the lock -------------------------

    def _retry_times(self) -> list[datetime]:
        s = self.state
        return [t for d in s.dunning
                if d.invoice_id not in self._charging and (t := d.next_retry_at(s.retry_days)) is not None]

    def _collect(self, invoice: IssuedInvoice | None, on: date, *, dun: bool = True) -> None:
        """Render a new invoice's e-invoice and charge it, both in the background (nothing to
        charge when it is paid: 0 €, R16). Neither waits for the other."""
        if invoice is None:
            return
        if workflow.patched(f"{INVOICE_DOCUMENTS}:{invoice.invoice_id}"):
            self._rendering.add(invoice.invoice_id)
            asyncio.create_task(self._render(invoice))
        if invoice.status == InvoiceStatus.OPEN:
            self._start_charge(invoice.invoice_id, invoice.number, invoice.total, 1, on, dun=dun)

    async def _render(self, invoice: IssuedInvoice) -> None:
        """Issue 11: outages are retried for up to RENDER_DEADLINE; a document that cannot be built,
        or is not built by then, alerts the operator. Billing and charging go on regardless."""
        try:
            try:
                await workflow.execute_activity(
                    RENDER_ACTIVITY, RenderDocument(invoice_id=invoice.invoice_id, number=invoice.number),
                    result_type=RenderedDocument, start_to_close_timeout=calls.ACTIVITY_TIMEOUT,
                    schedule_to_close_timeout=RENDER_DEADLINE, retry_policy=calls.ACTIVITY_RETRY,
                    task_queue=calls.documents_task_queue(workflow.info().task_queue),
                    summary=f"render e-invoice {invoice.number} (Factur-X)")
            except ActivityError as exc:
                message = calls.unrecoverable(exc)
                if message is None and not isinstance(exc.cause, TimeoutError_):
                    raise
                why = message or f"not rendered within {RENDER_DEADLINE}: run `invoices render-missing` once it can be"
                await self._alert("render_document", f"invoice {invoice.number}: {why}",
                                  invoice_id=invoice.invoice_id, key=invoice.number)
        except Exception as exc:  # a bug here must fail the workflow task (seen, retried), not vanish
            self._task_failure = exc
        finally:
            self._rendering.discard(invoice.invoice_id)

    def _start_due_retries(self) -> None:
        """Retry what is due: every open invoice when the card changed, else those whose day came."""
        s, now = self.state, workflow.now()
        retry_now, s.retry_now = s.retry_now, False
        for entry in [*s.dunning, *s.on_hold]:
            if entry.invoice_id in self._charging:
                continue  # in flight: a card changed meanwhile retries it when it answers
            due = entry.next_retry_at(s.retry_days) if entry in s.dunning else None
            scheduled = due is not None and now >= due
            if retry_now or scheduled:
                entry.attempts += 1
                entry.scheduled_done += 1 if scheduled else 0
                self._start_charge(entry.invoice_id, entry.number, entry.total, entry.attempts, self._today())

    def _start_charge(self, invoice_id: int, number: str, total: int | None, attempt_no: int, on: date, *,
                      dun: bool = True) -> None:
        self._charging.add(invoice_id)
        self._charging_numbers[invoice_id] = number
        self._show()
        asyncio.create_task(self._charge(invoice_id, number, total, attempt_no, on, dun))

    async def _charge(self, invoice_id: int, number: str, total: int | None, attempt_no: int, on: date,
                      dun: bool) -> None:
        card_version = self.state.card_version
        try:
            try:
                outcome = await calls.charge(invoice_id, attempt_no, on, number=number, total=total, long_runs=True)
            except ActivityError as exc:
                message = calls.unrecoverable(exc)
                if message is None:
                    raise
                outcome = ChargeOutcome(status=ChargeResult.ERROR, failure_message=message)
            async with self._lock:
                await self._charged(invoice_id, number, total, attempt_no, outcome, card_version, dun)
        except Exception as exc:  # a bug here must fail the workflow task (seen, retried), not vanish
            self._task_failure = exc
        finally:
            self._charging.discard(invoice_id)
            self._charging_numbers.pop(invoice_id, None)
        self._show()  # not in `finally`: an evicted run's coroutine is closed there, outside the workflow

    async def _charged(self, invoice_id: int, number: str, total: int | None, attempt_no: int,
                       outcome: ChargeOutcome, card_version: int, dun: bool) -> None:
        """What a charge came to: paid or waiting (R16) closes it; a decline is dunned (R11);
        a request Stripe refuses waits, open, for a new card (the operator is alerted)."""
        s = self.state
        entry = next((d for d in [*s.dunning, *s.on_hold] if d.invoice_id == invoice_id), None)
        if outcome.status in (ChargeResult.PAID, ChargeResult.WAITING):
            if entry is not None:
                _remove(s, entry)
                await self._commit()
            return
        if s.card_version != card_version:  # the card changed while this charge ran
            s.retry_now = True
        if outcome.status is ChargeResult.ERROR:
            if entry is not None:
                _remove(s, entry)
            s.on_hold.append(Dunning(invoice_id=invoice_id, number=number, first_failed_at=workflow.now(),
                                     attempts=attempt_no, total=total))
            self._note_alert("charge", f"invoice {number}: {outcome.failure_message}")
            await self._commit()
            return
        if not dun:
            return
        if entry is None or entry in s.on_hold:
            if entry is not None:
                _remove(s, entry)
            s.dunning.append(Dunning(invoice_id=invoice_id, number=number, first_failed_at=workflow.now(),
                                     attempts=attempt_no, total=total))
        elif entry.next_retry_at(s.retry_days) is None and s.ended_on is None:
            await self._give_up()  # the last retry failed
            return
        await self._commit()

    async def _give_up(self) -> None:
        """Every declined invoice becomes uncollectible and the subscription ends, unpaid (R11)."""
        s, today = self.state, self._today()
        await self._db(RecordActivities.mark_uncollectible,
                       MarkUncollectible(invoice_ids=[d.invoice_id for d in s.dunning], business_date=today),
                       step="mark_uncollectible")
        s.dunning = []
        s.take_over = None  # nobody takes over a subscription that ends unpaid
        overage = await self._close_period(today)
        await self._end(today, EndReason.UNPAID, overage, dun=False)

    # --- changes (Workflow Updates: the validator refuses before anything is recorded) ---

    @asynccontextmanager
    async def _change(self) -> AsyncIterator[SubscriptionState]:
        """One change at a time, once the subscription is open, after what fell due (a renewal
        at this very instant happens first: the change applies to the new period)."""
        await workflow.wait_condition(lambda: self._ready)
        async with self._lock:
            if self._refusal is not None:
                raise refuse(self._refusal)
            await self._catch_up()
            yield self.state

    @workflow.update
    async def change_plan(self, request: ChangePlan) -> ChangeResult:
        async with self._change() as s:
            self.validate_change_plan(request)  # again, under the lock, after the catch-up
            target, today = request.plan, self._today()
            outcome = self._plan_change(request)
            if outcome.kind == "withdrawn":  # back to the current plan: withdraw the scheduled one
                s.scheduled_plan = None
                await self._commit()
                return outcome
            if outcome.kind == "downgrade":  # R8
                s.scheduled_plan = target
                await self._commit(*self._notice(
                    "downgrade_scheduled", f"Change to {target.name} on {s.period_end}", s.payer,
                    new_plan=target.name, effective_on=s.period_end.isoformat()))
                return outcome
            amount = outcome.amount or 0
            s.plan, s.scheduled_plan = target, None
            await self._commit(*self._notice(
                "upgraded", f"Upgraded to {target.name}: {format_eur(amount)} excl. VAT charged now", s.payer,
                amount=amount))
            if amount == 0:
                return outcome
            invoice = await self._issue(f"{s.subscription_id}:upgrade:v{s.version}", today,
                                        [proration_line(target, today, s.period_end, amount)])
            self._collect(invoice, today)
            return outcome.model_copy(update={"invoice_number": invoice.number if invoice else None})

    @workflow.update
    async def preview_change_plan(self, request: ChangePlan) -> ChangeResult:
        """What `change_plan` would answer now, changing nothing: the same computation, on the
        workflow's clock (an Update, not a query: a query sees the time of the last task)."""
        async with self._change():
            self.validate_change_plan(request)
            return self._plan_change(request)

    @preview_change_plan.validator
    def validate_preview_change_plan(self, request: ChangePlan) -> None:
        self.validate_change_plan(request)

    def _plan_change(self, request: ChangePlan) -> ChangeResult:
        s, target, today = self.state, request.plan, self._today()
        if target.code == s.plan.code:
            return ChangeResult(kind="withdrawn", plan=target.code, effective_on=today)
        old_price, new_price = s.plan.price(s.interval), target.price(s.interval)
        if classify_change(old_price, new_price) is ChangeKind.DOWNGRADE:
            return ChangeResult(kind="downgrade", plan=target.code, effective_on=s.period_end)
        try:
            amount = prorated_upgrade(old_price, new_price, s.period, today)  # R7
        except ValueError as exc:
            raise refuse(f"cannot prorate this change: {exc}") from None
        return ChangeResult(kind="upgrade", plan=target.code, effective_on=today, amount=amount)

    @change_plan.validator
    def validate_change_plan(self, request: ChangePlan) -> None:
        s = self._live()
        self._not_ending("changing plan")
        try:
            check_plan_change(s.plan, request.plan, s.interval)
            if s.scheduled_interval is not None:
                check_interval_switch(request.plan, s.scheduled_interval)
        except Refused as exc:
            raise refuse(str(exc)) from None
        if request.plan.code == s.plan.code and s.scheduled_plan is None:
            raise refuse(f"the subscription is already on plan '{s.plan.code}'")

    @workflow.update
    async def switch_interval(self, request: SwitchInterval) -> Scheduled:
        async with self._change() as s:
            self.validate_switch_interval(request)
            withdrawn = request.interval == s.interval
            s.scheduled_interval = None if withdrawn else request.interval
            if withdrawn:
                await self._commit()
            else:
                await self._commit(*self._notice(
                    "interval_switch_scheduled", f"{request.interval.value} from {s.period_end}", s.payer,
                    new_interval=request.interval.value, effective_on=s.period_end.isoformat()))
            detail = "switch withdrawn" if withdrawn else f"{request.interval.value} from {s.period_end}"
            return Scheduled(effective_on=s.period_end, detail=detail)

    @switch_interval.validator
    def validate_switch_interval(self, request: SwitchInterval) -> None:
        s = self._live()
        self._not_ending("switching interval")
        if request.interval == s.interval and s.scheduled_interval is None:
            raise refuse(f"the subscription is already {s.interval.value}")
        try:
            check_interval_switch(s.scheduled_plan or s.plan, request.interval)
        except Refused as exc:
            raise refuse(str(exc)) from None

    @workflow.update
    async def cancel(self) -> Scheduled:
        """R5: pending-cancel now, usable with its quota until the period end, then ended."""
        async with self._change() as s:
            self.validate_cancel()
            s.cancel_requested = True
            await self._commit(*self._notice(
                "cancel_scheduled", f"Subscription cancelled: usable until {s.period_end}", s.payer))
            return Scheduled(effective_on=s.period_end, detail="ends at the period end")

    @cancel.validator
    def validate_cancel(self) -> None:
        self._live()
        if self.state.cancel_requested:
            raise refuse(f"the subscription is already cancelled: it ends on {self.state.period_end}")

    @workflow.update
    async def reactivate(self) -> Scheduled:
        """Withdraw a cancellation (or a firm's stop) before the period ends."""
        async with self._change() as s:
            self.validate_reactivate()
            s.cancel_requested = s.stop_paying = False
            s.take_over = None
            await self._commit(*self._notice("reactivated", f"Subscription renews on {s.period_end}", s.payer))
            return Scheduled(effective_on=s.period_end, detail="renews at the period end")

    @reactivate.validator
    def validate_reactivate(self) -> None:
        self._live()
        if not self.state.ending:
            raise refuse("the subscription is not cancelled: there is nothing to reactivate")

    @workflow.update
    async def cancel_now(self) -> Ended:
        """R6: ends today; no refund; overage consumed so far on a final invoice."""
        async with self._change():
            self.validate_cancel_now()
            today = self._today()
            overage = await self._close_period(today)
            invoice = await self._end(today, EndReason.CANCELED_NOW, overage)
            return Ended(ended_on=today, invoice_number=invoice.number if invoice else None)

    @cancel_now.validator
    def validate_cancel_now(self) -> None:
        self._live()

    @workflow.update
    async def stop_paying(self) -> Scheduled:
        """R10: the firm stops paying; the subscription runs to its period end, then is not renewed."""
        async with self._change() as s:
            self.validate_stop_paying()
            s.stop_paying = True
            await self._commit(*self._notice(
                "firm_stops_paying", f"Firm {s.payer.id} stops paying on {s.period_end}",
                Payer(kind="client", id=s.client_id)))
            return Scheduled(effective_on=s.period_end, detail="not renewed")

    @stop_paying.validator
    def validate_stop_paying(self) -> None:
        s = self._live()
        if s.payer.kind != "firm":
            raise refuse("the client pays this subscription itself: there is no firm to stop paying")
        if s.stop_paying:
            raise refuse(f"the firm already stops paying on {s.period_end}")
        if s.cancel_requested:
            raise refuse(f"the subscription is already cancelled: it ends on {s.period_end}")

    @workflow.update
    async def take_over(self, request: TakeOver) -> Scheduled:
        """R10: the new payer's subscription starts the day this one ends: no gap, no double bill."""
        async with self._change() as s:
            self.validate_take_over(request)
            s.take_over = request.payer
            await self._commit(*self._notice(
                "take_over_registered", f"{request.payer.label} pays from {s.period_end}", request.payer,
                new_payer_kind=request.payer.kind, new_payer_id=request.payer.id,
                next_plan=(s.scheduled_plan or s.plan).name, next_interval=(s.scheduled_interval or s.interval).value,
                effective_on=s.period_end.isoformat()))
            return Scheduled(effective_on=s.period_end, detail=f"{request.payer.label} takes over")

    @take_over.validator
    def validate_take_over(self, request: TakeOver) -> None:
        s = self._live()
        if not s.ending:
            raise refuse(f"the subscription renews on {s.period_end}: it must be cancelled, or its "
                         "firm must stop paying, before another payer can take over")
        if request.payer == s.payer:
            raise refuse(f"{s.payer.label} already pays this subscription: reactivate it instead")
        if request.payer.kind == "firm" and s.plan.product.value != "einvoicing":
            raise refuse(f"a {s.plan.product.value} plan is always paid by the client")

    @workflow.update
    async def opened(self) -> SubscriptionState:
        """Answers once the subscription is recorded and its first invoice issued (its charge
        goes on in the background): callers start a subscription with this update
        (update-with-start), so they never see it half-open."""
        await workflow.wait_condition(lambda: self._ready)
        if self._refusal is not None:
            raise refuse(self._refusal)
        return self.state

    @workflow.signal
    def payment_method_updated(self) -> None:
        """The payer replaced its card: open invoices are retried at once (R11), including one
        whose charge is in flight right now (when it declines)."""
        self.state.card_version += 1
        self.state.retry_now = True

    @workflow.signal
    def payment_settled(self) -> None:
        """A payment settled outside a charge (Stripe webhook): the open invoices are looked at
        again now; one already paid is found paid, with no new charge."""
        self.state.retry_now = True

    @workflow.query
    def current(self) -> SubscriptionState:
        return self.state

    @workflow.query
    def settled(self) -> bool:
        """Nothing in progress and nothing overdue: every renewal and retry due by now is done."""
        return self._ready and not self._in_flight() and not self._due_now()

    # --- helpers --------------------------------------------------------------------------

    def _today(self) -> date:
        return paris_date(workflow.now())

    def _live(self) -> SubscriptionState:
        if self._refusal is not None:
            raise refuse(self._refusal)
        if self.state.ended_on is not None:
            raise refuse(f"the subscription ended on {self.state.ended_on}")
        return self.state

    def _not_ending(self, what: str) -> None:
        if self.state.ending:
            raise refuse(f"the subscription ends on {self.state.period_end}: reactivate it before {what}")

    def _notice(self, kind: str, subject: str, recipient: Payer, **facts: str | int) -> list[Notice]:
        """The notice to the recipient and to the firm, with what its e-mail tells them."""
        s = self.state
        key = f"{kind}:{s.subscription_id}:v{s.version + 1}"
        recipients = {recipient, Payer(kind="firm", id=s.firm_id)}
        facts = {"client_id": s.client_id, "firm_id": s.firm_id, "plan": s.plan.name,
                 "interval": s.interval.value, "period_start": s.period_start.isoformat(),
                 "period_end": s.period_end.isoformat(), "payer_kind": s.payer.kind, "payer_id": s.payer.id,
                 "price": s.plan.price(s.interval), **facts}
        return [Notice(dedupe_key=f"{key}:{r.label}", kind=kind, recipient=r,
                       subject=f"{s.client_id}: {subject}", business_date=self._today(), facts=facts)
                for r in sorted(recipients, key=lambda p: p.label)]

    async def _commit(self, *notices: Notice) -> None:
        """A new version of the state: written to the read model with its notices, and shown
        to operators as search attributes."""
        s = self.state
        s.version += 1
        used = await self._db(RecordActivities.record_state, RecordState(state=s, notices=list(notices)),
                              step="record", summary=f"record v{s.version}: {s.status.value}"
                              + "".join(f", notify {n.kind} to {n.recipient.label}" for n in notices))
        if used is not None:
            self._used, self._used_as_of = used, self._today()
        self._show()
        self._upsert_search_attributes()

    def _upsert_search_attributes(self) -> None:
        """Only when one changed (LONG_RUNS): a renewal or a paid retry rarely changes any, and each
        upsert is a history event and a visibility write on the server."""
        s = self.state
        updates = [
            sa.FIRM_ID.value_set(s.firm_id), sa.CLIENT_ID.value_set(s.client_id),
            sa.PLAN_CODE.value_set(s.plan.code), sa.SUBSCRIPTION_STATUS.value_set(s.status.value),
            sa.BILLING_INTERVAL.value_set(s.interval.value), sa.PAYER_KIND.value_set(s.payer.kind),
        ]
        shown = workflow.info().typed_search_attributes  # as the run started, with its upserts since
        if all(shown.get(u.key) == u.value for u in updates) and workflow.patched(calls.LONG_RUNS):
            return
        workflow.upsert_search_attributes(updates)

    async def _close_period(self, end: date) -> InvoiceLine | None:
        """Close the period to usage at `end` and bill its overage at the plan in force (R4)."""
        s = self.state
        used = await self._db(RecordActivities.close_period,
                              ClosePeriod(subscription_id=s.subscription_id, period_start=s.period_start, end=end),
                              step="close_period", summary=f"close period {s.period_start} → {end}")
        if used is None:
            return None
        return overage_line(s.plan, s.period_start, end, Consumption(quota=s.quota, used=used))

    async def _issue(self, key: str, issued_on: date, lines: list[InvoiceLine | None]) -> IssuedInvoice | None:
        s = self.state
        return await self._db(RecordActivities.issue_invoice, IssueInvoice(
            idempotency_key=key, subscription_id=s.subscription_id, client_id=s.client_id, payer=s.payer,
            issued_on=issued_on, lines=[line for line in lines if line is not None]), step="issue_invoice",
            summary=f"issue invoice dated {issued_on}: " + ", ".join(str(line.kind) for line in lines if line))

    def _ids(self) -> dict[str, str]:
        s = self.state
        return {"firm_id": s.firm_id, "client_id": s.client_id, "subscription_id": s.subscription_id}

    def _show(self) -> None:
        """The operator's view in the Temporal UI (workflows/details.py)."""
        workflow.set_current_details(current_details(
            self.state, self._used, self._used_as_of, sorted(self._charging_numbers.values()), workflow.now()))

    async def _db(self, activity: Callable[..., T], arg: Any, *, step: str, summary: str | None = None) -> T | None:
        """Run a database activity; on an error no retry cures, alert and go on (None)."""
        try:
            return await calls.call(activity, arg, summary=summary or step.replace("_", " "))
        except ActivityError as exc:
            message = calls.unrecoverable(exc)
            if message is None:
                raise
            await self._alert(step, message)
            return None

    async def _alert(self, step: str, message: str, *, invoice_id: int | None = None, key: str | None = None) -> None:
        """`key`: what tells this alert from others of the same step at the same instant (an invoice)."""
        self._note_alert(step, message)
        at = workflow.now().isoformat()
        await calls.alert(RaiseAlert(
            dedupe_key=f"{self.state.subscription_id}:{step}:{at}" + (f":{key}" if key else ""),
            subscription_id=self.state.subscription_id, invoice_id=invoice_id, step=step, error=message))

    def _note_alert(self, step: str, error: str) -> None:
        alerts = self.state.alerts
        alerts.append(Alert(at=workflow.now(), step=step, error=error))
        del alerts[:-MAX_ALERTS]


def _remove(state: SubscriptionState, entry: Dunning) -> None:
    for entries in (state.dunning, state.on_hold):
        if entry in entries:
            entries.remove(entry)
