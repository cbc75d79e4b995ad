"""What an invoice keeps of its parties when it is numbered, and the document built from it.

The snapshot is stored with the invoice (JSON) in the transaction that numbers it: the seller
(our identity from settings), the buyer (the payer as recorded that day), the client it bills
for, and the plan names. A later change of address or of the catalogue never alters an issued
invoice, and rendering it again gives the same XML.
"""
from datetime import date

from einvoice.document import Frozen, InvoiceDocument, Party, RecordedLine, Seller, document_line


class PartiesSnapshot(Frozen):
    seller: Seller
    buyer: Party
    client_name: str | None = None  # named on the invoice when the buyer is not the client
    plan_names: dict[str, str] = {}


class RecordedInvoice(Frozen):
    """An issued invoice as our records hold it (cents, [start, end) periods)."""

    number: str
    issued_on: date
    paid_at_issue: bool  # a 0 € invoice is paid as it is issued (R16)
    subscription_id: str | None
    lines: tuple[RecordedLine, ...]
    subtotal: int
    tax: int
    total: int


def document_for(invoice: RecordedInvoice, parties: PartiesSnapshot) -> InvoiceDocument:
    """The e-invoice of a numbered invoice: due on its issue date (charged to the card on file)."""
    return InvoiceDocument(
        number=invoice.number, issued_on=invoice.issued_on, due_on=invoice.issued_on,
        paid_on=invoice.issued_on if invoice.paid_at_issue else None,
        seller=parties.seller, buyer=parties.buyer, client_name=parties.client_name,
        subscription_id=invoice.subscription_id,
        lines=tuple(document_line(line, parties.plan_names.get(line.plan_code, line.plan_code))
                    for line in invoice.lines),
        subtotal=invoice.subtotal, tax=invoice.tax, total=invoice.total,
    )
