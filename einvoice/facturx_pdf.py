"""The Factur-X file: the invoice's PDF/A-3 (einvoice.pdf) with its CII XML embedded as
factur-x.xml, EN 16931 profile, by the factur-x library, which also writes the XMP that declares
the file Factur-X (PDF/A extension schema, fx:ConformanceLevel "EN 16931").

One pass of ours after it, for two things the library leaves undone:
- PDF/A wants each entry of the Info dictionary in the XMP with the same value: factur-x writes
  /Keywords in Info but no pdf:Keywords, and reads the clock twice for the Info and XMP dates;
- the same invoice should give the same file: factur-x dates the XMP, Info and the attachment "now".
So the dates become the issue date (as in the drawn PDF) and pdf:Keywords is added.
"""
from datetime import datetime
from io import BytesIO

import facturx
from lxml import etree
from pypdf import PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, NameObject, PdfObject, TextStringObject

from einvoice.document import InvoiceDocument
from einvoice.pdf import KEYWORDS, creation_time, draw_invoice, pdf_subject, pdf_title

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMP = "http://ns.adobe.com/xap/1.0/"
PDF = "http://ns.adobe.com/pdf/1.3/"


def factur_x_pdf(doc: InvoiceDocument, xml: bytes) -> bytes:
    """The PDF a person reads and the XML software reads, in one file; `xml` is embedded as given."""
    combined = facturx.generate_from_binary(
        draw_invoice(doc), xml,
        flavor="factur-x", level="en16931",
        # The caller has checked the XML against the EN 16931 XSD already (einvoice.validation):
        # a second check here would only cost time.
        check_xsd=False,
        pdf_metadata={"author": doc.seller.name, "title": pdf_title(doc), "subject": pdf_subject(doc),
                      "keywords": KEYWORDS},
        lang="fr-FR",
        xmp_compression=False,  # plain XMP: readable by any tool, and rewritten in place below
    )
    return _settle_metadata(combined, creation_time(doc))


def _settle_metadata(pdf: bytes, when: datetime) -> bytes:
    """The file with every date at `when`, in Info, XMP and the attachment, and pdf:Keywords in the XMP."""
    writer = PdfWriter(clone_from=BytesIO(pdf), keep_initial_header=True)  # else "%PDF-1.3", not PDF/A-3's 1.7
    pdf_date = when.strftime("D:%Y%m%d%H%M%S+00'00'")  # the form factur-x writes (always UTC)
    writer.add_metadata({"/CreationDate": pdf_date, "/ModDate": pdf_date})

    metadata = writer.xmp_metadata
    if metadata is None:
        raise ValueError("factur-x wrote no XMP metadata")
    root = etree.fromstring(metadata.stream.get_data())
    xmp_date = when.isoformat(timespec="seconds")
    _set_property(root, XMP, "CreateDate", xmp_date)
    _set_property(root, XMP, "ModifyDate", xmp_date)
    _set_property(root, PDF, "Keywords", KEYWORDS)
    writer.xmp_metadata = etree.tostring(root.getroottree(), encoding="utf-8")  # keeps the <?xpacket?> around it

    attachments = _dict(_dict(writer.root_object["/Names"])["/EmbeddedFiles"])["/Names"].get_object()
    if not isinstance(attachments, ArrayObject):
        raise ValueError("factur-x wrote no list of embedded files")
    for filespec in attachments[1::2]:  # [name, file specification, name, …]
        embedded = _dict(_dict(_dict(filespec)["/EF"])["/F"])
        _dict(embedded["/Params"])[NameObject("/ModDate")] = TextStringObject(pdf_date)

    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def _dict(value: PdfObject) -> DictionaryObject:
    """The dictionary (or stream) `value` is or refers to."""
    resolved = value.get_object()
    if not isinstance(resolved, DictionaryObject):
        raise ValueError(f"expected a PDF dictionary, found {type(resolved).__name__}")
    return resolved


def _set_property(root: etree._Element, namespace: str, name: str, value: str) -> None:
    """The XMP property set to `value`; when missing, added beside a property of its schema (or in
    the first rdf:Description)."""
    found = root.findall(f".//{{{namespace}}}{name}")
    if not found:
        sibling = root.find(f".//{{{RDF}}}Description/{{{namespace}}}*")
        description = sibling.getparent() if sibling is not None else root.find(f".//{{{RDF}}}Description")
        if description is None:
            raise ValueError("XMP metadata without rdf:Description")
        found = [etree.SubElement(description, f"{{{namespace}}}{name}")]
    for element in found:
        element.text = value
