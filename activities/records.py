"""Activities on the system of record: the read model, periods, invoices, notices."""
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.errors import unrecoverable_errors_classified
from billing.invoices import draft, overage_line
from billing.money import format_eur
from billing.quota import Consumption
from billing.statuses import InvoiceStatus
from contracts.activities import (
    ClosePeriod,
    FreeLines,
    IssuedInvoice,
    IssueInvoice,
    MarkUncollectible,
    Notice,
    OpenSubscription,
    RaiseAlert,
    RecordState,
    Renew,
    Renewed,
)
from contracts.subscription import SubscriptionState
from einvoice.document import Seller
from observability.metrics import count
from store.alerts import raise_alert
from store.invoice_documents import snapshot_parties
from store.invoices import draft_invoice, finalize_invoice
from store.models import Client, Invoice, Subscription, SubscriptionPeriod
from store.notifications import queue_notice
from store.reservations import pass_lines, release_lines, reserve_lines
from store.subscriptions import ensure_period, upsert_subscription


@dataclass(frozen=True)
class Issuer:
    """Who issues our invoices (settings) and what the plans are called (the catalogue): kept on
    each invoice when it is numbered, for its e-invoice (issue 11)."""

    seller: Seller
    plan_names: dict[str, str]


class RecordActivities:
    def __init__(self, session_factory: sessionmaker[Session], issuer: Issuer) -> None:
        self._sessions = session_factory
        self._issuer = issuer

    @activity.defn
    @unrecoverable_errors_classified
    def open_subscription(self, request: OpenSubscription) -> str | None:
        """Reserve every line the plan occupies (R2) and record the new subscription, in one
        transaction; or, when another subscription holds one of them, record nothing and say so."""
        s = request.state
        with self._sessions.begin() as session:
            taken = reserve_lines(session, client_id=s.client_id, lines=[l.value for l in s.plan.lines],
                                  subscription_id=s.subscription_id)
            if taken:
                session.rollback()
                return f"the client already has a live subscription on the {' and '.join(taken)} line"
            _record(session, s, request.notices)
        return None

    @activity.defn
    @unrecoverable_errors_classified
    def record_state(self, request: RecordState) -> int:
        """Write the subscription's state to the read model and open its current period.
        Answers the documents used so far this period (for the operator's view of the workflow)."""
        with self._sessions.begin() as session:
            _record(session, request.state, request.notices)
            used = session.scalar(select(Subscription.used).where(Subscription.id == request.state.subscription_id))
            return int(used or 0)

    @activity.defn
    @unrecoverable_errors_classified
    def free_lines(self, request: FreeLines) -> None:
        """R2/R10: the ended subscription's lines, freed or passed to its successor."""
        with self._sessions.begin() as session:
            if request.successor_id is not None:
                pass_lines(session, request.subscription_id, request.successor_id)
            else:
                release_lines(session, request.subscription_id)

    @activity.defn
    @unrecoverable_errors_classified
    def close_period(self, request: ClosePeriod) -> int:
        """Close the period to usage and return its documents; a second call returns the same."""
        with self._sessions.begin() as session:
            return _close(session, request.subscription_id, request.period_start, request.end)

    @activity.defn
    @unrecoverable_errors_classified
    def renew(self, request: Renew) -> Renewed:
        """A renewal's database work in one transaction (issue 10): close the period, record the
        renewed state and its notices, issue the invoice. A retry finds it all done and answers
        the same (the period stays closed with its count, the invoice is found by its key)."""
        with self._sessions.begin() as session:
            used = _close(session, request.subscription_id, request.closing_start, request.closing_end)
            overage = overage_line(request.closing_plan, request.closing_start, request.closing_end,
                                   Consumption(quota=request.closing_quota, used=used))
            _record(session, request.state, request.notices)
            s = request.state
            issued, newly = _issue(session, self._issuer, IssueInvoice(
                idempotency_key=request.invoice_key, subscription_id=s.subscription_id, client_id=s.client_id,
                payer=s.payer, issued_on=s.period_start, lines=[line for line in (request.fee, overage) if line]))
        if newly:
            _count_issued(issued, s.client_id, s.subscription_id)
        return Renewed(used=used, invoice=issued)

    @activity.defn
    @unrecoverable_errors_classified
    def issue_invoice(self, request: IssueInvoice) -> IssuedInvoice:
        """Draft and number the invoice in one transaction (a retry finds it, number and all)."""
        with self._sessions.begin() as session:
            issued, newly = _issue(session, self._issuer, request)
        if newly:  # counted once it is committed, not again when a retry finds it
            _count_issued(issued, request.client_id, request.subscription_id)
        return issued

    @activity.defn
    @unrecoverable_errors_classified
    def mark_uncollectible(self, request: MarkUncollectible) -> None:
        """R11: after the last failed retry, the open invoices are written off."""
        with self._sessions.begin() as session:
            written_off = session.scalars(
                update(Invoice).where(Invoice.id.in_(request.invoice_ids), Invoice.status == InvoiceStatus.OPEN)
                .values(status=InvoiceStatus.UNCOLLECTIBLE).returning(Invoice)
            ).all()
            for invoice in written_off:  # the payer and the firm hear of it, once per invoice
                for kind, who in _payer_and_firm(session, invoice):
                    queue_notice(
                        session, dedupe_key=f"uncollectible:{invoice.id}:{kind}:{who}", kind="invoice_uncollectible",
                        recipient_kind=kind, recipient_id=who,
                        subject=f"Invoice {invoice.display_number} ({format_eur(invoice.total)}) is uncollectible",
                        business_date=request.business_date or invoice.issued_on,
                        payload={"client_id": invoice.client_id, "invoice": invoice.display_number or "",
                                 "total": invoice.total, "payer_kind": invoice.payer_kind, "payer_id": invoice.payer_id},
                    )

    @activity.defn
    def raise_alert(self, request: RaiseAlert) -> None:
        """R11: an error no retry cures, kept for the operator (once per key) and logged."""
        with self._sessions.begin() as session:
            raise_alert(session, dedupe_key=request.dedupe_key, step=request.step, error=request.error,
                        subscription_id=request.subscription_id, invoice_id=request.invoice_id)


def _record(session: Session, s: SubscriptionState, notices: list[Notice]) -> None:
    upsert_subscription(session, {
        "id": s.subscription_id, "client_id": s.client_id, "firm_id": s.firm_id,
        "line": s.line.value, "product": s.plan.product.value, "plan_code": s.plan.code,
        "interval": s.interval.value, "quota": s.quota, "payer_kind": s.payer.kind,
        "payer_id": s.payer.id, "status": s.status.value, "anchor": s.anchor,
        "period_start": s.period_start, "period_end": s.period_end,
        "scheduled": _scheduled(s), "started_on": s.started_on,
        "ended_on": s.ended_on, "ended_reason": s.ended_reason.value if s.ended_reason else None,
        "version": s.version,
    })
    if s.ended_on is None:
        ensure_period(session, subscription_id=s.subscription_id, client_id=s.client_id,
                      start=s.period_start, end=s.period_end)
    for notice in notices:
        _queue(session, notice)


def _scheduled(s: SubscriptionState) -> dict[str, object]:
    scheduled: dict[str, object] = {}
    if s.scheduled_plan is not None:
        scheduled["plan"] = s.scheduled_plan.code
    if s.scheduled_interval is not None:
        scheduled["interval"] = s.scheduled_interval.value
    if s.ending and s.ended_on is None:
        scheduled["ends_on"] = s.period_end.isoformat()
        scheduled["end_reason"] = "canceled" if s.cancel_requested else "not_renewed"
    if s.take_over is not None:
        scheduled["take_over"] = s.take_over.label
    return scheduled


def _close(session: Session, subscription_id: str, period_start: date, end: date) -> int:
    period = session.scalars(
        select(SubscriptionPeriod)
        .where(SubscriptionPeriod.subscription_id == subscription_id, SubscriptionPeriod.period_start == period_start)
        .with_for_update()
    ).one()
    if period.closed_at is None:
        # The running total every report keeps under this same row lock (single and bulk), not
        # a sum of the period's events: on the 1st that would read every event of 800,000
        # periods (docs/scaling.md §5). Reports after this see the period closed and are refused.
        period.documents = period.used
        period.period_end = min(period.period_end, end)
        period.closed_at = func.now()
    assert period.documents is not None
    return period.documents


def _issue(session: Session, issuer: Issuer, request: IssueInvoice) -> tuple[IssuedInvoice, bool]:
    """The invoice numbered with its parties' snapshot, its notice queued; and whether this call
    numbered it."""
    invoice = draft_invoice(
        session, idempotency_key=request.idempotency_key, client_id=request.client_id,
        payer_kind=request.payer.kind, payer_id=request.payer.id, issued_on=request.issued_on,
        content=draft(*request.lines), subscription_id=request.subscription_id,
    )
    newly_issued = invoice.number is None
    invoice = finalize_invoice(session, invoice.id)
    if newly_issued:
        snapshot_parties(session, invoice, issuer.seller, issuer.plan_names)
    number = invoice.display_number
    assert number is not None
    queue_notice(
        session, dedupe_key=f"invoice:{invoice.id}", kind="invoice_issued",
        recipient_kind=request.payer.kind, recipient_id=request.payer.id,
        subject=f"Invoice {number} for client {request.client_id}", business_date=request.issued_on,
        payload={"invoice": number, "invoice_id": invoice.id, "total": invoice.total, "subtotal": invoice.subtotal,
                 "tax": invoice.tax, "client_id": request.client_id, "issued_on": invoice.issued_on.isoformat()},
    )
    return IssuedInvoice(invoice_id=invoice.id, number=number, issued_on=invoice.issued_on,
                         subtotal=invoice.subtotal, tax=invoice.tax, total=invoice.total,
                         status=InvoiceStatus(invoice.status)), newly_issued


def _count_issued(issued: IssuedInvoice, client_id: str, subscription_id: str) -> None:
    count("billing_invoices_issued")
    activity.logger.info("invoice %s issued: %s", issued.number, issued.total,
                         extra={"client_id": client_id, "subscription_id": subscription_id, "invoice": issued.number})


def _payer_and_firm(session: Session, invoice: Invoice) -> list[tuple[str, str]]:
    firm_id = session.get_one(Client, invoice.client_id).firm_id
    return sorted({(invoice.payer_kind, invoice.payer_id), ("firm", firm_id)})


def _queue(session: Session, notice: Notice) -> None:
    queue_notice(
        session, dedupe_key=notice.dedupe_key, kind=notice.kind, recipient_kind=notice.recipient.kind,
        recipient_id=notice.recipient.id, subject=notice.subject, business_date=notice.business_date,
        payload=dict(notice.facts),
    )
