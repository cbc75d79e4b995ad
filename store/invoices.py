"""Invoices in the system of record: drafted idempotently, numbered with no gap (R4)."""
from datetime import date

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, selectinload

from billing.invoices import InvoiceDraft
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
        status="draft", subtotal=content.subtotal, tax=content.tax, total=content.total,
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
    """
    invoice = session.scalars(
        select(Invoice).where(Invoice.id == invoice_id).with_for_update()
    ).one()
    if invoice.number is not None:
        return invoice
    number = next_number(session, invoice.series)
    invoice.number = number
    invoice.status = "open"
    invoice.finalized_at = func.now()
    session.flush()
    return invoice


def next_number(session: Session, series: str) -> int:
    """Take the next number of `series`; the counter row stays locked until the transaction ends."""
    session.execute(
        pg_insert(InvoiceCounter).values(series=series, last_number=0).on_conflict_do_nothing()
    )
    return session.execute(
        update(InvoiceCounter)
        .where(InvoiceCounter.series == series)
        .values(last_number=InvoiceCounter.last_number + 1)
        .returning(InvoiceCounter.last_number)
    ).scalar_one()

