"""An invoice's e-invoice over HTTP (issue 11): the Factur-X PDF for people, its CII XML for
software. Same access as the invoice itself (R15): another firm's invoice is not found."""
import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from starter.access import Actor, NotFound
from starter.api_errors import problem
from starter.portal import Portal
from store.invoice_documents import document_by_number
from store.models import InvoiceDocument

NO_NUL = r"^[^\x00]*$"
Number = Annotated[str, Path(min_length=1, max_length=32, pattern=NO_NUL, description='as shown: "F-00000042"')]
RETRY_AFTER_SECONDS = 5


class DocumentPending(Exception):
    """The invoice exists but its e-invoice is not stored yet (rendered just after numbering)."""


def install_document_errors(app: FastAPI) -> None:
    @app.exception_handler(DocumentPending)
    async def pending(_: Request, exc: DocumentPending) -> JSONResponse:
        answer = problem(503, "Not rendered yet", str(exc))
        answer.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return answer


def document_router(portal: Portal, sessions: sessionmaker[Session], actor: Callable[..., Actor]) -> APIRouter:
    Caller = Annotated[Actor, Depends(actor)]
    api = APIRouter(tags=["invoices"], responses={503: {"description": "the e-invoice is not rendered yet: retry"}})

    async def stored(who: Actor, number: str) -> InvoiceDocument:
        await portal.invoice(who, number)  # R15: NotFound for another firm's invoice, as for none
        document, expected = await asyncio.to_thread(_read, sessions, number)
        if document is not None:
            return document
        if not expected:
            raise NotFound(f"invoice {number} has no e-invoice: it was numbered before e-invoicing")
        raise DocumentPending(f"the e-invoice of {number} is being rendered; retry in a few seconds")

    def download(body: bytes, media_type: str, filename: str, sha256: str) -> Response:
        return Response(body, media_type=media_type, headers={
            "Content-Disposition": f'inline; filename="{filename}"', "ETag": f'"{sha256}"',
            "Cache-Control": "private, max-age=31536000, immutable"})  # an issued e-invoice never changes

    @api.get("/invoices/{number}/pdf", response_class=Response,
             responses={200: {"content": {"application/pdf": {}}, "description": "Factur-X PDF/A-3"}})
    async def invoice_pdf(number: Number, who: Caller) -> Any:
        document = await stored(who, number)
        return download(document.pdf, "application/pdf", f"{number}.pdf", document.pdf_sha256)

    @api.get("/invoices/{number}/xml", response_class=Response,
             responses={200: {"content": {"application/xml": {}}, "description": "CII XML, EN 16931"}})
    async def invoice_xml(number: Number, who: Caller) -> Any:
        document = await stored(who, number)
        return download(document.xml, "application/xml", f"{number}.xml", document.xml_sha256)

    return api


def _read(sessions: sessionmaker[Session], number: str) -> tuple[InvoiceDocument | None, bool]:
    """The stored e-invoice, and whether one is to come (the invoice has its parties' snapshot)."""
    with sessions() as session:
        document, expected = document_by_number(session, number)
        if document is not None:
            session.expunge(document)
        return document, expected
