"""Rendering an invoice's Factur-X e-invoice after it is numbered (issue 11).

Off the billing path: the workflow starts it beside the charge and never waits for it to bill
or charge. An outage is retried; a document our code cannot build (a bug: the XML breaks the
schema, amounts that do not add up) is unrecoverable: the operator is alerted, billing goes on.
"""
import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import UNRECOVERABLE, unrecoverable_errors_classified
from contracts.activities import RenderDocument, RenderedDocument
from einvoice.cii import cii_xml
from einvoice.facturx_pdf import factur_x_pdf
from einvoice.snapshot import document_for
from einvoice.validation import check_xsd
from observability.metrics import count
from store.invoice_documents import store_document, stored_digests, to_render

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


# The database being away is an outage, retried until it passes; anything else that breaks while
# drawing a document breaks the same way next time (our XML or PDF code, the data): alert, not retry.
OUTAGES = (OperationalError, InterfaceError, PoolTimeout)


def document_errors_classified(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (ApplicationError, *OUTAGES):
            raise
        except Exception as exc:
            detail = " ".join(str(exc).split())[:500]
            raise ApplicationError(f"{type(exc).__name__}: {detail}", type=UNRECOVERABLE, non_retryable=True) from None
    return wrapper


class DocumentActivities:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._sessions = session_factory

    @activity.defn
    @document_errors_classified
    @unrecoverable_errors_classified
    def render_invoice_document(self, request: RenderDocument) -> RenderedDocument | None:
        """The invoice's XML and PDF, built from its snapshot and stored once. None for an invoice
        numbered before e-invoicing (it has no snapshot of its parties to draw from)."""
        return render_and_store(self._sessions, request.invoice_id, request.number)


def render_and_store(sessions: sessionmaker[Session], invoice_id: int, number: str) -> RenderedDocument | None:
    """Draw and store an invoice's e-invoice, or find it stored (the activity, and the operator's
    `invoices render-missing` for those the workflow gave up on)."""
    with sessions() as session:
        if (stored := stored_digests(session, invoice_id)) is not None:
            return RenderedDocument(xml_sha256=stored[0], pdf_sha256=stored[1])
        source = to_render(session, invoice_id)
    if source is None:
        return None
    document = document_for(source.invoice, source.parties)
    xml = cii_xml(document)
    check_xsd(xml)
    pdf = factur_x_pdf(document, xml)
    with sessions.begin() as session:
        xml_sha256, pdf_sha256 = store_document(session, invoice_id, xml, pdf)
    answer = RenderedDocument(xml_sha256=xml_sha256, pdf_sha256=pdf_sha256)
    count("billing_invoice_documents")
    log.info("e-invoice of %s rendered", number, extra={"invoice": number})
    return answer
