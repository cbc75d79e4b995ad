"""What the operator CLI reads (issue 9): subscriptions across firms, one subscription's
history, one invoice with its payment attempts. Read-only, no access checks (the operator sees
every firm), no formatting: rows in, facts out; the CLI merges and renders them.

There is no table of past subscription states: a subscription's history is what it left
behind (periods, invoices, payment attempts, notices, operator alerts) and, for what is to
come, the changes its row says are scheduled.
"""
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, selectinload

from store.models import (
    Client,
    Firm,
    Invoice,
    Notification,
    OperatorAlert,
    PaymentAttempt,
    PaymentAttemptInvoice,
    Subscription,
    SubscriptionPeriod,
)

MAX_BIGINT = 2**63 - 1


# --- the list -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedSubscription:
    subscription: Subscription
    client: Client


@dataclass(frozen=True)
class SubscriptionListing:
    rows: list[ListedSubscription]
    total: int  # every subscription the filters match, the ones past the limit too


def list_subscriptions(session: Session, *, firm_id: str | None = None, status: str | None = None,
                       plan_code: str | None = None, limit: int) -> SubscriptionListing:
    """Subscriptions by client and line, filtered by firm, status and plan (each optional)."""
    filters: list[ColumnElement[bool]] = []
    if firm_id is not None:
        filters.append(Subscription.firm_id == firm_id)
    if status is not None:
        filters.append(Subscription.status == status)
    if plan_code is not None:
        filters.append(Subscription.plan_code == plan_code)
    total = session.scalar(select(func.count()).select_from(Subscription).where(*filters)) or 0
    rows = session.execute(
        select(Subscription, Client).join(Client, Client.id == Subscription.client_id)
        .where(*filters).order_by(Subscription.client_id, Subscription.line).limit(limit)
    ).all()
    return SubscriptionListing(rows=[ListedSubscription(s, c) for s, c in rows], total=total)


def firm_exists(session: Session, firm_id: str) -> bool:
    return session.get(Firm, firm_id) is not None


# --- one client's subscription and its history ----------------------------------------------


def find_clients(session: Session, ref: str) -> list[Client]:
    """The client whose id is `ref`; else the clients whose firm calls them `ref` (an external
    id is unique within its firm only, R15: two firms may use the same one)."""
    client = session.get(Client, ref)
    if client is not None:
        return [client]
    return list(session.scalars(select(Client).where(Client.external_id == ref).order_by(Client.id)))


def client_subscriptions(session: Session, client_id: str) -> list[Subscription]:
    """Every subscription the client has (one row per line: a line's next subscription reuses it)."""
    return list(session.scalars(
        select(Subscription).where(Subscription.client_id == client_id).order_by(Subscription.line)))


@dataclass(frozen=True)
class Attempt:
    """A payment attempt and the invoices it collects (its own first, then those it took along, R16)."""

    attempt: PaymentAttempt
    invoice_numbers: list[str]


@dataclass(frozen=True)
class SubscriptionHistory:
    subscription: Subscription
    client: Client
    firm: Firm
    payer_name: str
    periods: list[SubscriptionPeriod]
    invoices: list[Invoice]  # issued ones, with their lines; drafts have no number and are not shown
    attempts: list[Attempt]
    notices: list[Notification]
    alerts: list[OperatorAlert]


def subscription_history(session: Session, subscription: Subscription) -> SubscriptionHistory:
    sub_id = subscription.id
    client = session.get_one(Client, subscription.client_id)
    periods = list(session.scalars(
        select(SubscriptionPeriod).where(SubscriptionPeriod.subscription_id == sub_id)
        .order_by(SubscriptionPeriod.period_start)))
    invoices = list(session.scalars(
        select(Invoice).options(selectinload(Invoice.lines))
        .where(Invoice.subscription_id == sub_id, Invoice.number.is_not(None))
        .order_by(Invoice.issued_on, Invoice.number)))
    invoice_ids = [i.id for i in invoices]
    alerts = list(session.scalars(
        select(OperatorAlert)
        .where(or_(OperatorAlert.subscription_id == sub_id, OperatorAlert.invoice_id.in_(invoice_ids)))
        .order_by(OperatorAlert.created_at, OperatorAlert.id)))
    return SubscriptionHistory(
        subscription=subscription, client=client, firm=session.get_one(Firm, subscription.firm_id),
        payer_name=payer_name(session, subscription.payer_kind, subscription.payer_id),
        periods=periods, invoices=invoices, attempts=_attempts_collecting(session, invoice_ids),
        notices=_notices(session, sub_id, invoice_ids), alerts=alerts,
    )


def _notices(session: Session, sub_id: str, invoice_ids: Sequence[int]) -> list[Notification]:
    """The outbox's notices about the subscription, found by the dedupe keys their causes give
    them: the workflow's `{kind}:{subscription}:v{n}:{recipient}` and the quota alerts'
    `quota:{subscription}:…` name it; `invoice:{id}` and `payment_failed:{id}:{n}` name one of
    its invoices. (The outbox has no subscription column; a read scans it.)"""
    key = Notification.dedupe_key
    names_invoice = (func.split_part(key, ":", 1).in_(["invoice", "payment_failed", "uncollectible"])
                     & func.split_part(key, ":", 2).in_([str(i) for i in invoice_ids]))
    return list(session.scalars(
        select(Notification)
        .where(or_(key.contains(f":{sub_id}:", autoescape=True), names_invoice))
        .order_by(Notification.business_date, Notification.created_at, Notification.id)))


def _attempts_collecting(session: Session, invoice_ids: Sequence[int]) -> list[Attempt]:
    """The attempts that charged one of these invoices: their own, or taking it along (R16)."""
    if not invoice_ids:
        return []
    taking_along = select(PaymentAttemptInvoice.attempt_id).where(PaymentAttemptInvoice.invoice_id.in_(invoice_ids))
    attempts = list(session.scalars(
        select(PaymentAttempt)
        .where(or_(PaymentAttempt.invoice_id.in_(invoice_ids), PaymentAttempt.id.in_(taking_along)))
        .order_by(PaymentAttempt.created_at, PaymentAttempt.id)))
    return _with_invoice_numbers(session, attempts)


def _with_invoice_numbers(session: Session, attempts: list[PaymentAttempt]) -> list[Attempt]:
    ids = [a.id for a in attempts]
    collected: dict[int, list[tuple[int, str]]] = {a.id: [] for a in attempts}
    rows = session.execute(
        select(PaymentAttemptInvoice.attempt_id, Invoice.id, Invoice.series, Invoice.number)
        .join(Invoice, Invoice.id == PaymentAttemptInvoice.invoice_id)
        .where(PaymentAttemptInvoice.attempt_id.in_(ids))
    ).all() if ids else []
    for attempt_id, invoice_id, series, number in rows:
        collected[attempt_id].append((invoice_id, _display(series, number)))
    own = {invoice_id: _display(series, number) for invoice_id, series, number in session.execute(
        select(Invoice.id, Invoice.series, Invoice.number).where(Invoice.id.in_({a.invoice_id for a in attempts}))
    ).all()} if attempts else {}
    result = []
    for a in attempts:
        # An attempt written before the link table lists only its own invoice.
        others = [number for invoice_id, number in sorted(collected[a.id]) if invoice_id != a.invoice_id]
        result.append(Attempt(attempt=a, invoice_numbers=[own.get(a.invoice_id, "?"), *others]))
    return result


def payer_name(session: Session, kind: str, payer_id: str) -> str:
    """The name of the firm or client that pays; its id when it is not (or no longer) known."""
    model = Firm if kind == "firm" else Client
    name = session.scalar(select(model.name).where(model.id == payer_id))
    return name if name is not None else payer_id


def _display(series: str, number: int | None) -> str:
    return "(draft)" if number is None else f"{series}-{number:08d}"


# --- one invoice ----------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceDetail:
    invoice: Invoice  # with its lines
    client: Client
    payer_name: str
    attempts: list[Attempt] = field(default_factory=list)


_NUMBER = re.compile(r"(?:([A-Za-z0-9]{1,32})-)?0*([0-9]{1,19})")


def invoice_detail(session: Session, number: str) -> InvoiceDetail | None:
    """The invoice printed as `number`. Operators may type it short: "F-00000042", "F-42" and
    "42" (the default series F) name the same invoice. None when no invoice has that number."""
    match = _NUMBER.fullmatch(number.strip())
    if match is None:
        return None
    series, value = match.group(1) or "F", int(match.group(2))
    if value > MAX_BIGINT:
        return None
    invoice = session.scalars(
        select(Invoice).options(selectinload(Invoice.lines)).where(Invoice.series == series, Invoice.number == value)
    ).one_or_none()
    if invoice is None:
        return None
    taking_along = select(PaymentAttemptInvoice.attempt_id).where(PaymentAttemptInvoice.invoice_id == invoice.id)
    attempts = list(session.scalars(
        select(PaymentAttempt)
        .where(or_(PaymentAttempt.invoice_id == invoice.id, PaymentAttempt.id.in_(taking_along)))
        .order_by(PaymentAttempt.created_at, PaymentAttempt.id)))
    return InvoiceDetail(
        invoice=invoice, client=session.get_one(Client, invoice.client_id),
        payer_name=payer_name(session, invoice.payer_kind, invoice.payer_id),
        attempts=_with_invoice_numbers(session, attempts),
    )
