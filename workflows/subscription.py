"""One subscription line, alive for its whole life (R3–R10, R12–R13).

The workflow decides; activities record, invoice, charge and notify. Business dates come
from `workflow.now()` read as a Paris calendar date. Renewal is this workflow's own timer at
the period end (midnight in Paris); each renewal continues-as-new with the state, so the
history of a subscription that lives for years stays small.
"""
import asyncio
from datetime import date, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        ChargeInvoice, ChargeOutcome, ClosePeriod, IssuedInvoice, IssueInvoice, Notice, RecordState,
    )
    from activities.payments import PaymentActivities
    from activities.records import RecordActivities
    from billing.invoices import InvoiceLine, overage_line, proration_line, subscription_line
    from billing.money import format_eur
    from billing.periods import first_period, paris_date, paris_midnight, period_containing
    from billing.proration import ChangeKind, classify_change, prorated_upgrade
    from billing.quota import Consumption
    from billing.rules import Refused, check_interval_switch, check_plan_change
    from workflows import search_attributes as sa
    from workflows.models import (
        ChangePlan, ChangeResult, Dunning, Ended, EndReason, NewSubscription, Payer, Scheduled, SubscriptionInput,
        SubscriptionOutcome, SubscriptionState, SwitchInterval, TakeOver, UsageReported,
    )

ACTIVITY_TIMEOUT = timedelta(seconds=60)
# Outages (database, Stripe) are retried until they pass; refusals and declines are answers.
# A charge heartbeats around each Stripe call (at most REQUEST_TIMEOUT_SECONDS): a worker that
# died mid-charge is noticed this fast, and the retry finds the attempt where it stopped.
CHARGE_HEARTBEAT = timedelta(seconds=15)
ACTIVITY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=2))


def refuse(message: str) -> ApplicationError:
    return ApplicationError(message, type="Refused", non_retryable=True)


@workflow.defn
class SubscriptionWorkflow:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()  # one change at a time, renewal included
        self._opened_ready = False
        self._retry_now = False  # a new card, or a payment settled elsewhere: retry at once (R11)
        self.state: SubscriptionState

    # --- life ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: SubscriptionInput) -> SubscriptionOutcome:
        if input.new is not None:
            self.state = self._opened(input.new)
            async with self._lock:
                await self._open()
        else:
            assert input.state is not None
            self.state = input.state
        self._opened_ready = True
        while self.state.ended_on is None:
            renewal = paris_midnight(self.state.period_end)
            wake = min([renewal, *self._retry_times()])
            try:
                await workflow.wait_condition(
                    lambda: self.state.ended_on is not None or self._retry_now,
                    timeout=max(wake - workflow.now(), timedelta(0)),
                )
            except asyncio.TimeoutError:
                pass
            async with self._lock:
                if self.state.ended_on is None:
                    await self._dun()
                if self.state.ended_on is None and workflow.now() >= renewal:
                    if await self._renew():
                        break
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.state.ended_on is None:  # renewed: the next period is a fresh run
            workflow.continue_as_new(SubscriptionInput(state=self.state))
        if self.state.take_over is not None:  # R10: the new payer's subscription starts that day
            workflow.continue_as_new(SubscriptionInput(new=self._taken_over()))
        assert self.state.ended_reason is not None
        return SubscriptionOutcome(subscription_id=self.state.subscription_id,
                                   ended_on=self.state.ended_on, ended_reason=self.state.ended_reason)

    async def _open(self) -> None:
        s = self.state
        await self._record(self._notice("started", f"Subscription to {s.plan.name} started", s.payer))
        invoice = await self._issue(f"{s.subscription_id}:fee:{s.period_start}", s.started_on,
                                    [subscription_line(s.plan, s.interval, s.period)])
        await self._collect(invoice, s.started_on)

    async def _renew(self) -> bool:
        """At the period end: close it, then renew (True) or end the subscription (False)."""
        s = self.state
        closing = s.period
        used = await self._close_period(closing.end)
        overage = overage_line(s.plan, closing.start, closing.end, Consumption(quota=s.quota, used=used))
        if s.ending:
            reason = EndReason.CANCELED if s.cancel_requested else EndReason.NOT_RENEWED
            await self._end(closing.end, reason, overage)
            return False
        if s.scheduled_plan is not None:
            s.plan, s.scheduled_plan = s.scheduled_plan, None
        if s.scheduled_interval is not None:  # R9: the new interval is anchored on this renewal
            s.interval, s.anchor, s.scheduled_interval = s.scheduled_interval, closing.end, None
        period = period_containing(s.anchor, s.interval, closing.end)
        s.period_start, s.period_end, s.used = period.start, period.end, 0
        s.version += 1
        await self._record(self._notice("renewed", f"Subscription renewed until {period.end}", s.payer))
        invoice = await self._issue(f"{s.subscription_id}:fee:{period.start}", period.start,
                                    [subscription_line(s.plan, s.interval, period), overage])
        await self._collect(invoice, period.start)
        return True

    async def _end(self, on: date, reason: EndReason, overage: InvoiceLine | None,
                   *, collect_once: bool = False) -> IssuedInvoice | None:
        """Final invoice (overage in arrears, R4), then ended. `collect_once`: charged once and,
        if declined, left open for the operator (no dunning after an unpaid end)."""
        s = self.state
        invoice = None
        if overage is not None:
            invoice = await self._issue(f"{s.subscription_id}:final", on, [overage])
            await self._collect(invoice, on, dun=not collect_once)
        s.ended_on, s.ended_reason = on, reason
        s.version += 1
        await self._record(self._notice("ended", f"Subscription ended on {on} ({reason.value})", s.payer))
        return invoice

    def _opened(self, new: NewSubscription) -> SubscriptionState:
        today = self._today()
        period = first_period(today, new.interval)
        return SubscriptionState(
            **new.model_dump(exclude={"plan", "payer"}), plan=new.plan, payer=new.payer,
            anchor=today, period_start=period.start, period_end=period.end, started_on=today,
        )

    def _taken_over(self) -> NewSubscription:
        old = self.state
        assert old.take_over is not None
        return NewSubscription(
            subscription_id=f"{old.client_id}.{old.line.value}.{workflow.uuid4().hex[:12]}",
            client_id=old.client_id, firm_id=old.firm_id, line=old.line, plan=old.plan,
            interval=old.interval, payer=old.take_over, retry_days=old.retry_days,
        )

    # --- dunning (R11) -----------------------------------------------------------------------

    def _retry_times(self) -> list[datetime]:
        s = self.state
        return [t for d in s.dunning if (t := d.next_retry_at(s.retry_days)) is not None]

    async def _dun(self) -> None:
        """Retry what is due: every open invoice when the card changed, else those whose day came."""
        retry_now, self._retry_now = self._retry_now, False
        now = workflow.now()
        for entry in list(self.state.dunning):
            due = entry.next_retry_at(self.state.retry_days)
            scheduled = due is not None and now >= due
            if (retry_now or scheduled) and self.state.ended_on is None:
                await self._retry(entry, scheduled)

    async def _retry(self, entry: Dunning, scheduled: bool) -> None:
        s = self.state
        entry.attempts += 1
        if scheduled:
            entry.scheduled_done += 1
        outcome = await self._charge(entry.invoice_id, entry.attempts, self._today())
        if outcome.paid:
            s.dunning.remove(entry)
        elif entry.next_retry_at(s.retry_days) is None:  # the last retry failed: give up
            await self._give_up()
            return
        s.version += 1
        await self._record()

    async def _give_up(self) -> None:
        """Every open invoice becomes uncollectible and the subscription ends, unpaid."""
        s, today = self.state, self._today()
        await workflow.execute_activity_method(
            RecordActivities.mark_uncollectible, [d.invoice_id for d in s.dunning],
            start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY,
        )
        s.dunning = []
        used = await self._close_period(today)
        overage = overage_line(s.plan, s.period_start, today, Consumption(quota=s.quota, used=used))
        s.take_over = None  # nobody takes over a subscription that ends unpaid
        await self._end(today, EndReason.UNPAID, overage, collect_once=True)

    # --- changes (Workflow Updates: the validator refuses before anything is recorded) ---

    @workflow.update
    async def change_plan(self, request: ChangePlan) -> ChangeResult:
        async with self._lock:
            self.validate_change_plan(request)  # again, under the lock
            s, target, today = self.state, request.plan, self._today()
            if target.code == s.plan.code:  # back to the current plan: withdraw the scheduled one
                s.scheduled_plan = None
                s.version += 1
                await self._record()
                return ChangeResult(kind="withdrawn", plan=target.code, effective_on=today)
            old_price, new_price = s.plan.price(s.interval), target.price(s.interval)
            if classify_change(old_price, new_price) is ChangeKind.DOWNGRADE:  # R8
                s.scheduled_plan = target
                s.version += 1
                await self._record(self._notice(
                    "downgrade_scheduled", f"Change to {target.name} on {s.period_end}", s.payer))
                return ChangeResult(kind="downgrade", plan=target.code, effective_on=s.period_end)
            amount = prorated_upgrade(old_price, new_price, s.period, today)  # R7
            s.plan, s.scheduled_plan = target, None
            s.version += 1
            await self._record(self._notice(
                "upgraded", f"Upgraded to {target.name}: {format_eur(amount)} excl. VAT charged now", s.payer))
            number = None
            if amount > 0:
                invoice = await self._issue(
                    f"{s.subscription_id}:upgrade:v{s.version}", today,
                    [proration_line(target, today, s.period_end, amount)])
                await self._collect(invoice, today)
                number = invoice.number
            return ChangeResult(kind="upgrade", plan=target.code, effective_on=today, amount=amount,
                                invoice_number=number)

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
        async with self._lock:
            self.validate_switch_interval(request)  # again, under the lock
            s = self.state
            withdrawn = request.interval == s.interval
            s.scheduled_interval = None if withdrawn else request.interval
            s.version += 1
            await self._record()
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
        async with self._lock:
            self.validate_cancel()  # again, under the lock
            s = self.state
            s.cancel_requested = True
            s.version += 1
            await self._record(self._notice(
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
        async with self._lock:
            self.validate_reactivate()  # again, under the lock
            s = self.state
            s.cancel_requested = s.stop_paying = False
            s.take_over = None
            s.version += 1
            await self._record(self._notice("reactivated", f"Subscription renews on {s.period_end}", s.payer))
            return Scheduled(effective_on=s.period_end, detail="renews at the period end")

    @reactivate.validator
    def validate_reactivate(self) -> None:
        self._live()
        if not self.state.ending:
            raise refuse("the subscription is not cancelled: there is nothing to reactivate")

    @workflow.update
    async def cancel_now(self) -> Ended:
        """R6: ends today; no refund; overage consumed so far on a final invoice."""
        async with self._lock:
            self.validate_cancel_now()  # again, under the lock
            s, today = self.state, self._today()
            used = await self._close_period(today)
            overage = overage_line(s.plan, s.period_start, today, Consumption(quota=s.quota, used=used))
            invoice = await self._end(today, EndReason.CANCELED_NOW, overage)
            return Ended(ended_on=today, invoice_number=invoice.number if invoice else None)

    @cancel_now.validator
    def validate_cancel_now(self) -> None:
        self._live()

    @workflow.update
    async def stop_paying(self) -> Scheduled:
        """R10: the firm stops paying; the subscription runs to its period end, then is not renewed."""
        async with self._lock:
            self.validate_stop_paying()  # again, under the lock
            s = self.state
            s.stop_paying = True
            s.version += 1
            await self._record(self._notice(
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
        async with self._lock:
            self.validate_take_over(request)  # again, under the lock
            s = self.state
            s.take_over = request.payer
            s.version += 1
            await self._record(self._notice(
                "take_over_registered", f"{request.payer.label} pays from {s.period_end}", request.payer))
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
        """Answers once the subscription is recorded and its first period billed: callers start
        a subscription with this update (update-with-start), so they never see it half-open."""
        await workflow.wait_condition(lambda: self._opened_ready)
        return self.state

    @workflow.signal
    def payment_method_updated(self) -> None:
        """The payer replaced its card: open invoices are retried at once (R11)."""
        if self.state.dunning:
            self._retry_now = True

    @workflow.signal
    def payment_settled(self) -> None:
        """A payment settled outside a charge (Stripe webhook): the open invoices are looked at
        again now; one already paid is found paid, with no new charge."""
        if self.state.dunning:
            self._retry_now = True

    @workflow.signal
    def usage_reported(self, report: UsageReported) -> None:
        if report.period_start == self.state.period_start:
            self.state.used = max(self.state.used, report.used)

    @workflow.query
    def current(self) -> SubscriptionState:
        return self.state

    @workflow.query
    def settled(self) -> bool:
        """Nothing in progress and nothing overdue: every renewal due by now is done."""
        if self._lock.locked() or self._retry_now:
            return False
        return self.state.ended_on is not None or workflow.now() < paris_midnight(self.state.period_end)

    # --- helpers --------------------------------------------------------------------------

    def _today(self) -> date:
        return paris_date(workflow.now())

    def _live(self) -> SubscriptionState:
        if self.state.ended_on is not None:
            raise refuse(f"the subscription ended on {self.state.ended_on}")
        return self.state

    def _not_ending(self, what: str) -> None:
        if self.state.ending:
            raise refuse(f"the subscription ends on {self.state.period_end}: reactivate it before {what}")

    def _notice(self, kind: str, subject: str, recipient: Payer) -> list[Notice]:
        s = self.state
        key = f"{kind}:{s.subscription_id}:v{s.version}"
        recipients = {recipient, Payer(kind="firm", id=s.firm_id)}
        return [Notice(dedupe_key=f"{key}:{r.label}", kind=kind, recipient=r,
                       subject=f"{s.client_id}: {subject}", business_date=self._today())
                for r in sorted(recipients, key=lambda p: p.label)]

    async def _record(self, notices: list[Notice] | None = None) -> None:
        await workflow.execute_activity_method(
            RecordActivities.record_state, RecordState(state=self.state, notices=notices or []),
            start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY,
        )
        s = self.state
        workflow.upsert_search_attributes([
            sa.FIRM_ID.value_set(s.firm_id), sa.CLIENT_ID.value_set(s.client_id),
            sa.PLAN_CODE.value_set(s.plan.code), sa.SUBSCRIPTION_STATUS.value_set(s.status.value),
            sa.BILLING_INTERVAL.value_set(s.interval.value), sa.PAYER_KIND.value_set(s.payer.kind),
        ])

    async def _close_period(self, end: date) -> int:
        return await workflow.execute_activity_method(
            RecordActivities.close_period,
            ClosePeriod(subscription_id=self.state.subscription_id, period_start=self.state.period_start, end=end),
            start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY,
        )

    async def _issue(self, key: str, issued_on: date, lines: list[InvoiceLine | None]) -> IssuedInvoice:
        s = self.state
        return await workflow.execute_activity_method(
            RecordActivities.issue_invoice,
            IssueInvoice(idempotency_key=key, subscription_id=s.subscription_id, client_id=s.client_id,
                         payer=s.payer, issued_on=issued_on, lines=[l for l in lines if l is not None]),
            start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY,
        )

    async def _collect(self, invoice: IssuedInvoice, on: date, *, dun: bool = True) -> None:
        """Charge the invoice; a decline leaves it open and the subscription past due (R11)."""
        outcome = await self._charge(invoice.invoice_id, 1, on)
        if not outcome.paid and dun:
            self.state.dunning.append(Dunning(invoice_id=invoice.invoice_id, number=invoice.number,
                                              first_failed_at=workflow.now()))
            self.state.version += 1
            await self._record()

    async def _charge(self, invoice_id: int, attempt_no: int, on: date) -> ChargeOutcome:
        return await workflow.execute_activity_method(
            PaymentActivities.charge_invoice,
            ChargeInvoice(invoice_id=invoice_id, attempt_no=attempt_no, business_date=on),
            start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY,
            heartbeat_timeout=CHARGE_HEARTBEAT,
        )
