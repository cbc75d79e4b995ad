"""How the workflows call their activities: timeouts, retries, and errors no retry cures.

Outages are retried until they pass. An activity that raises the non-retryable
`Unrecoverable` error (a constraint violated, a value the store cannot hold) is not retried:
`unrecoverable()` tells the caller so, which alerts the operator (R11) and goes on.
"""
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.errors import UNRECOVERABLE
    from activities.payments import PaymentActivities
    from activities.records import RecordActivities
    from contracts.activities import ChargeInvoice, ChargeOutcome, RaiseAlert
    from workflows.details import charge_summary

ACTIVITY_TIMEOUT = timedelta(seconds=60)
ACTIVITY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=2))
# A charge heartbeats around each Stripe call (at most REQUEST_TIMEOUT_SECONDS): a worker that
# died mid-charge is noticed this fast, and the retry finds the attempt where it stopped.
CHARGE_HEARTBEAT = timedelta(seconds=15)
# An alert is worth a few tries, not a stall: it is in the workflow's state and log anyway.
ALERT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                          maximum_attempts=10)

T = TypeVar("T")


def unrecoverable(error: ActivityError) -> str | None:
    """The message of an activity's unrecoverable error, or None for any other failure."""
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type == UNRECOVERABLE:
        return cause.message
    return None


async def call(activity: Callable[..., T], arg: Any, *, heartbeat: timedelta | None = None,
               summary: str | None = None) -> T:
    """`summary` is what the Temporal UI shows for this activity ("charge F-00000042, 22,80 €")."""
    return await workflow.execute_activity_method(
        activity, arg, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY,
        heartbeat_timeout=heartbeat, summary=summary,
    )


PAYMENTS_QUEUE = "payments-queue"  # workflow.patched id: charges on their own task queue (issue 10)
# workflow.patched id (issue 10): a run lives through many renewals and continues as new only when its
# history grows long; renewals upsert only search attributes that changed. A run that has it has every
# patch before it (LEAN_RENEWAL, PAYMENTS_QUEUE) too: one marker per run instead of one for each.
LONG_RUNS = "long-runs"


def patched(patch_id: str) -> bool:
    """`workflow.patched(patch_id)` for a patch older than LONG_RUNS. LONG_RUNS is asked first, wherever an
    older patch is asked: a run's first decision point decides it (False in a run recorded before it), so
    the older patch is never memoized False in a run that then answers True here."""
    return workflow.patched(LONG_RUNS) or workflow.patched(patch_id)


def documents_task_queue(task_queue: str) -> str:
    """E-invoices are drawn on their own task queue (issue 11): CPU work that must not take the
    slots renewals and changes need; its workers scale apart (DOCUMENT_THREADS)."""
    return f"{task_queue}-documents"


def payments_task_queue(task_queue: str) -> str:
    """Charges run on their own task queue, whose workers are rate-limited under Stripe's limit."""
    return f"{task_queue}-payments"


async def charge(invoice_id: int, attempt_no: int, on: Any, *, number: str, total: int | None,
                 long_runs: bool = False) -> ChargeOutcome:
    """`long_runs`: the caller is a workflow that knows LONG_RUNS (the subscription), which stands for
    PAYMENTS_QUEUE in its runs."""
    request = ChargeInvoice(invoice_id=invoice_id, attempt_no=attempt_no, business_date=on)
    summary = charge_summary(number, total, attempt_no)
    on_payments_queue = patched(PAYMENTS_QUEUE) if long_runs else workflow.patched(PAYMENTS_QUEUE)
    if not on_payments_queue:  # runs from before: the charge on the workflow's queue
        return await call(PaymentActivities.charge_invoice, request, heartbeat=CHARGE_HEARTBEAT, summary=summary)
    return await workflow.execute_activity_method(
        PaymentActivities.charge_invoice, request, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY,
        heartbeat_timeout=CHARGE_HEARTBEAT, summary=summary,
        task_queue=payments_task_queue(workflow.info().task_queue))


async def alert(request: RaiseAlert) -> None:
    workflow.logger.error("operator alert: %s: %s", request.step, request.error)
    try:
        await workflow.execute_activity_method(
            RecordActivities.raise_alert, request, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ALERT_RETRY,
            summary=f"alert the operator: {request.step}")
    except ActivityError:
        workflow.logger.error("the alert could not be stored: it stays in the workflow's state and log")
