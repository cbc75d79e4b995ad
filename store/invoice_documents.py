"""Invoices' e-invoices in the system of record: the parties' snapshot taken when an invoice is
numbered, and the documents, written once (issue 11)."""
import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, selectinload

from einvoice.document import Party, PostalAddress, RecordedLine, Seller
from einvoice.snapshot import PartiesSnapshot, RecordedInvoice
from store.models import Client, Firm, Invoice, InvoiceDocument
from store.read_models import printed_number

PROFILE = "factur-x en16931"


def party_of(row: Firm | Client) -> Party:
    """A firm or a client as a party to an invoice: its legal identity where it is on record."""
    return Party(
        name=row.legal_name or row.name, siren=row.siren, vat_number=row.vat_number,
        address=PostalAddress(line1=row.address_line1, line2=row.address_line2, postal_code=row.postal_code,
                              city=row.city, country=row.country or "FR"),
        email=row.billing_email or row.email,
    )


def snapshot_parties(session: Session, invoice: Invoice, seller: Seller, plan_names: dict[str, str]) -> None:
    """Keep on the invoice who sold and who bought, as they are now (called when it is numbered)."""
    client = session.get(Client, invoice.client_id)
    payer: Firm | Client | None = (session.get(Client, invoice.payer_id) if invoice.payer_kind == "client"
                                   else session.get(Firm, invoice.payer_id))
    codes = {line.plan_code for line in invoice.lines}
    # A party missing from our records (it cannot be, short of a broken database) never stops
    # billing: the invoice names it by its id and the e-invoice says no more.
    snapshot = PartiesSnapshot(
        seller=seller, buyer=party_of(payer) if payer is not None else Party(name=invoice.payer_id),
        client_name=(None if invoice.payer_kind == "client" and invoice.payer_id == invoice.client_id
                     else client.legal_name or client.name if client is not None else invoice.client_id),
        plan_names={code: name for code, name in plan_names.items() if code in codes},
    )
    invoice.parties = snapshot.model_dump(mode="json")


@dataclass(frozen=True)
class ToRender:
    invoice: RecordedInvoice
    parties: PartiesSnapshot


def to_render(session: Session, invoice_id: int) -> ToRender | None:
    """The numbered invoice and its snapshot; None when it has none (numbered before e-invoicing)."""
    invoice = session.scalars(
        select(Invoice).where(Invoice.id == invoice_id).options(selectinload(Invoice.lines))
    ).one()
    if invoice.parties is None or invoice.display_number is None:
        return None
    recorded = RecordedInvoice(
        number=invoice.display_number, issued_on=invoice.issued_on, paid_at_issue=invoice.total == 0,
        subscription_id=invoice.subscription_id, subtotal=invoice.subtotal, tax=invoice.tax, total=invoice.total,
        lines=tuple(RecordedLine(kind=line.kind, plan_code=line.plan_code,
                                 period_start=line.period_start, period_end=line.period_end,
                                 quantity=line.quantity, amount=line.amount) for line in invoice.lines),
    )
    return ToRender(recorded, PartiesSnapshot.model_validate(invoice.parties))


def store_document(session: Session, invoice_id: int, xml: bytes, pdf: bytes) -> tuple[str, str]:
    """Write the documents once; a second call (a retried activity) keeps the first ones. The
    stored ones' SHA-256 (XML, PDF), not the bytes: no need to read 30 KB back."""
    written = session.execute(pg_insert(InvoiceDocument).values(
        invoice_id=invoice_id, profile=PROFILE, xml=xml, xml_sha256=sha256(xml), pdf=pdf, pdf_sha256=sha256(pdf),
    ).on_conflict_do_nothing(index_elements=["invoice_id"])
     .returning(InvoiceDocument.xml_sha256, InvoiceDocument.pdf_sha256)).one_or_none()
    stored = (written[0], written[1]) if written is not None else stored_digests(session, invoice_id)
    assert stored is not None  # inserted now, or by the call that won
    return stored


def stored_digests(session: Session, invoice_id: int) -> tuple[str, str] | None:
    """The SHA-256 (XML, PDF) of an invoice's stored e-invoice; None before it is drawn."""
    row = session.execute(select(InvoiceDocument.xml_sha256, InvoiceDocument.pdf_sha256)
                          .where(InvoiceDocument.invoice_id == invoice_id)).one_or_none()
    return None if row is None else (row[0], row[1])


def document_of(session: Session, invoice_id: int) -> InvoiceDocument | None:
    return session.get(InvoiceDocument, invoice_id)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def document_by_number(session: Session, number: str) -> tuple[InvoiceDocument | None, bool]:
    """The stored e-invoice of the invoice shown as `number` ("F-00000042"), if rendered yet, and
    whether it has one to come (numbered with its parties' snapshot, after e-invoicing began)."""
    found = printed_number(number)
    if found is None:
        return None, False
    row = session.execute(
        select(InvoiceDocument, Invoice.parties.is_not(None))
        .select_from(Invoice).outerjoin(InvoiceDocument, InvoiceDocument.invoice_id == Invoice.id)
        .where(Invoice.series == found[0], Invoice.number == found[1])
    ).one_or_none()
    return (None, False) if row is None else (row[0], bool(row[1]))


def invoices_without_document(session: Session) -> list[tuple[int, str]]:
    """(id, number) of the invoices numbered with a snapshot whose e-invoice is not stored."""
    rows = session.execute(
        select(Invoice.id, Invoice.series, Invoice.number)
        .outerjoin(InvoiceDocument, InvoiceDocument.invoice_id == Invoice.id)
        .where(Invoice.parties.is_not(None), Invoice.number.is_not(None), InvoiceDocument.invoice_id.is_(None))
        .order_by(Invoice.id)).all()
    return [(invoice_id, f"{series}-{number:08d}") for invoice_id, series, number in rows]
