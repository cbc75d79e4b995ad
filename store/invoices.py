"""Invoices in the system of record: drafted idempotently, numbered with no gap (R4)."""
from datetime import date

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, selectinload

from billing.invoices import InvoiceDraft
from billing.statuses import InvoiceStatus
from store.models import Invoice, InvoiceCounter, InvoiceLine

DEFAULT_SERIES = "F"


def draft_invoice(
    session: Session,
    *,
    idempotency_key: str,
    client_id: str,
    payer_kind: str,
    payer_id: str,
    issued_on: date,
    content: InvoiceDraft,
    subscription_id: str | None = None,
    series: str = DEFAULT_SERIES,
) -> Invoice:
    """The draft for `idempotency_key`, created on first call, returned as-is on a retry."""
    existing = session.scalars(
        select(Invoice).where(Invoice.idempotency_key == idempotency_key).options(selectinload(Invoice.lines))
    ).one_or_none()
    if existing is not None:
        return existing
    invoice = Invoice(
        idempotency_key=idempotency_key, series=series, subscription_id=subscription_id,
        client_id=client_id, payer_kind=payer_kind, payer_id=payer_id, issued_on=issued_on,
        status=InvoiceStatus.DRAFT, subtotal=content.subtotal, tax=content.tax, total=content.total,
        lines=[
            InvoiceLine(
                position=i, kind=line.kind.value, plan_code=line.plan,
                period_start=line.period_start, period_end=line.period_end,
                quantity=line.quantity, amount=line.amount,
            )
            for i, line in enumerate(content.lines)
        ],
    )
    session.add(invoice)
    session.flush()
    return invoice


def finalize_invoice(session: Session, invoice_id: int) -> Invoice:
    """Give the draft the next number of its series, in the caller's transaction.

    The invoice row is locked first, so two finalisations of one invoice serialise and the
    second sees the number; the counter row's lock then serialises numbering across invoices.
    A rollback undoes the increment with the invoice, so numbers have no gap and are never
    reused. Idempotent: an invoice already numbered is returned unchanged.

    Numbers follow issue dates (French law: chronological): an invoice whose business date is
    earlier than the last one numbered (its activity ran late, after a crash or an outage) is
    dated that last day instead. A total of 0 is paid as it is issued (R16).
    """
    invoice = session.scalars(
        select(Invoice).where(Invoice.id == invoice_id).with_for_update()
    ).one()
    if invoice.number is not None:
        return invoice
    number, issued_on = next_number(session, invoice.series, invoice.issued_on)
    invoice.number = number
    invoice.issued_on = issued_on
    invoice.status = InvoiceStatus.PAID if invoice.total == 0 else InvoiceStatus.OPEN
    invoice.finalized_at = func.now()
    session.flush()
    return invoice


def next_number(session: Session, series: str, issued_on: date) -> tuple[int, date]:
    """Take the next number of `series` and the date it is issued on (never before the last
    one's); the counter row stays locked until the transaction ends."""
    session.execute(
        pg_insert(InvoiceCounter).values(series=series, last_number=0).on_conflict_do_nothing()
    )
    dated = func.greatest(func.coalesce(InvoiceCounter.last_issued_on, issued_on), issued_on)
    number, day = session.execute(
        update(InvoiceCounter)
        .where(InvoiceCounter.series == series)
        .values(last_number=InvoiceCounter.last_number + 1, last_issued_on=dated)
        .returning(InvoiceCounter.last_number, InvoiceCounter.last_issued_on)
    ).one()
    assert day is not None  # set by this very statement
    return number, day

