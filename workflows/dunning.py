"""An invoice still unpaid when its subscription ended keeps its retries (R11): 3, 6 and 9
days after its first failure, at once on a new card, then `uncollectible`.

A workflow of its own (one per invoice), started by the ending subscription through an
activity (not as a child: nothing ties its life to the subscription's), so the client's line
is free at once for a new subscription.
"""
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.records import RecordActivities
    from billing.money import format_eur_fr
    from billing.periods import paris_date
    from billing.statuses import ChargeResult
    from contracts.activities import MarkUncollectible, RaiseAlert
    from contracts.subscription import DUNNING_WORKFLOW, Dunning, DunningInput, DunningOutcome, dunning_workflow_id
    from workflows import calls


@workflow.defn(name=DUNNING_WORKFLOW)
class InvoiceDunningWorkflow:
    @workflow.init
    def __init__(self, input: DunningInput) -> None:
        self._retry_now = input.retry_now
        self._card_version = 0

    @workflow.run
    async def run(self, input: DunningInput) -> DunningOutcome:
        entry = input.dunning
        if input.on_hold:  # Stripe refused the request: only a new card can cure it
            self._show(input, entry, "on hold: Stripe refused the request; waits for a new card")
            await self._hold(entry)
        while (due := entry.next_retry_at(input.retry_days)) is not None:
            self._show(input, entry, f"next retry {due:%Y-%m-%d %H:%M} UTC (or at once on a new card)")
            try:
                await workflow.wait_condition(lambda: self._retry_now,
                                              timeout=max(due - workflow.now(), timedelta(0)))
            except TimeoutError:
                pass
            self._retry_now = False
            entry.attempts += 1
            entry.scheduled_done += 1 if workflow.now() >= due else 0
            card_version = self._card_version
            try:
                self._show(input, entry, "charging now")
                outcome = await calls.charge(entry.invoice_id, entry.attempts, paris_date(workflow.now()),
                                             number=entry.number, total=entry.total)
            except ActivityError as exc:
                if calls.unrecoverable(exc) is None:
                    raise
                await calls.alert(RaiseAlert(dedupe_key=f"{dunning_workflow_id(entry.invoice_id)}:{entry.attempts}",
                                             subscription_id=input.subscription_id, invoice_id=entry.invoice_id,
                                             step="charge", error=str(exc.cause)))
                self._show(input, entry, "on hold: the charge failed for good; waits for a new card")
                await self._hold(entry)
                continue
            if outcome.status is ChargeResult.PAID:
                return DunningOutcome(invoice_id=entry.invoice_id, status="paid")
            if outcome.status is ChargeResult.WAITING:
                return DunningOutcome(invoice_id=entry.invoice_id, status="waiting")
            if outcome.status is ChargeResult.ERROR:  # the charge activity alerted the operator
                self._show(input, entry, "on hold: Stripe refused the request; waits for a new card")
                await self._hold(entry)
                continue
            if self._card_version != card_version:
                self._retry_now = True
        self._show(input, entry, "every retry failed: uncollectible")
        await calls.call(RecordActivities.mark_uncollectible, MarkUncollectible(
            invoice_ids=[entry.invoice_id], business_date=paris_date(workflow.now())),
            summary=f"write off {entry.number}")
        return DunningOutcome(invoice_id=entry.invoice_id, status="uncollectible")

    @staticmethod
    def _show(input: DunningInput, entry: Dunning, doing: str) -> None:
        workflow.set_current_details(
            f"### Unpaid invoice {entry.number}\n\n| | |\n|---|---|\n"
            f"| Client | {input.client_id} (firm {input.firm_id}) |\n| Payer | {input.payer.label} |\n"
            f"| Subscription | {input.subscription_id} (ended) |\n"
            f"| Amount | {'?' if entry.total is None else format_eur_fr(entry.total)} |\n"
            f"| Attempts | {entry.attempts} (first failure {entry.first_failed_at:%Y-%m-%d}) |\n| Now | {doing} |")

    async def _hold(self, entry: Dunning) -> None:
        """Stripe refused the request itself (R11's last paragraph): no scheduled retry cures
        it; wait for the payer's next card (one given meanwhile counts), then dun again from that day."""
        await workflow.wait_condition(lambda: self._retry_now)
        entry.first_failed_at, entry.scheduled_done = workflow.now(), 0

    @workflow.signal
    def payment_method_updated(self) -> None:
        self._card_version += 1
        self._retry_now = True

    @workflow.signal
    def payment_settled(self) -> None:
        self._retry_now = True
