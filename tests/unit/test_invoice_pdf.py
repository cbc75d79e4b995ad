"""Issue 11: the invoice a person reads (einvoice/pdf.py) and the Factur-X file that carries the
XML too (einvoice/facturx_pdf.py). Read back with pypdf: what the page says, one page, PDF/A-3B
declared, the XML given comes out unchanged. Slower than most unit tests (a PDF is drawn each
time, ~50 ms) but pure: no database, no server."""
import io
import re
from datetime import date
from typing import Any

import facturx
import pytest
from fpdf import FPDF
from lxml import etree
from pypdf import PdfReader

from billing.money import format_eur_fr, vat
from einvoice.cii import cii_xml
from einvoice.document import DocumentLine, InvoiceDocument, Party, PostalAddress, Seller
from einvoice.facturx_pdf import factur_x_pdf
from einvoice.pdf import (
    FONTS,
    LATE_PAYMENT,
    OPERATION_CATEGORY,
    PAYMENT_CONDITIONS,
    REPERTOIRE,
    draw_invoice,
    monogram,
    wrap,
)

SELLER = Seller(name="Facturation Cabinets SAS", siren="732829320", vat_number="FR44732829320",
                address=PostalAddress(line1="10 rue de la Paix", postal_code="75002", city="Paris"),
                email="facturation@example.fr", legal_mentions="SAS au capital de 10 000 € — RCS Paris 732 829 320")
FIRM = Party(name="Cabinet Dupont SARL", siren="552100554", vat_number="FR96552100554",
             address=PostalAddress(line1="1 place Bellecour", line2="Bâtiment B", postal_code="69002", city="Lyon"),
             email="compta@cabinet-dupont.fr")
SUBSCRIPTION = DocumentLine(kind="subscription", description="Abonnement Standard — du 01/09/2025 au 30/09/2025",
                            first_day=date(2025, 9, 1), last_day=date(2025, 9, 30), quantity=1, unit_price=3900,
                            amount=3900)
OVERAGE = DocumentLine(kind="overage", description="Documents au-delà du quota — formule Standard — du 01/08/2025 "
                                                   "au 31/08/2025",
                       first_day=date(2025, 8, 1), last_day=date(2025, 8, 31), quantity=131, unit_price=19, amount=2489)
FREE = DocumentLine(kind="subscription", description="Abonnement Gratuit — du 01/09/2025 au 30/09/2025",
                    first_day=date(2025, 9, 1), last_day=date(2025, 9, 30), quantity=1, unit_price=0, amount=0)

NS = {"rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "pdfaid": "http://www.aiim.org/pdfa/ns/id/",
      "pdf": "http://ns.adobe.com/pdf/1.3/", "xmp": "http://ns.adobe.com/xap/1.0/",
      "dc": "http://purl.org/dc/elements/1.1/", "fx": "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"}


def invoice(*lines: DocumentLine, number: str = "F-00000042", paid_on: date | None = None, buyer: Party = FIRM,
            client_name: str | None = "Boulangerie Martin") -> InvoiceDocument:
    subtotal = sum(line.amount for line in lines)
    tax = vat(subtotal)
    return InvoiceDocument(number=number, issued_on=date(2025, 9, 1), due_on=date(2025, 9, 1), paid_on=paid_on,
                           seller=SELLER, buyer=buyer, client_name=client_name, subscription_id="cli-1.einvoicing",
                           lines=lines, subtotal=subtotal, tax=tax, total=subtotal + tax)


RENEWAL = invoice(SUBSCRIPTION, OVERAGE)
ZERO = invoice(FREE, number="F-00000043", paid_on=date(2025, 9, 1), buyer=Party(name="Boulangerie Martin"),
               client_name=None)


def spaced(text: str) -> str:
    """Any run of white space (no-break spaces, line ends of wrapped text) as one space."""
    return re.sub(r"[\s\u00a0\u202f]+", " ", text).strip()


def page_texts(pdf: bytes) -> list[str]:
    return [spaced(page.extract_text()) for page in PdfReader(io.BytesIO(pdf)).pages]


def catalog(reader: PdfReader) -> Any:
    """The document catalog, untyped: tests index into it freely."""
    return reader.trailer["/Root"].get_object()


def xmp_of(pdf: bytes) -> etree._Element:
    metadata = PdfReader(io.BytesIO(pdf)).xmp_metadata
    assert metadata is not None
    return etree.fromstring(metadata.stream.get_data())


def xmp_value(xmp: etree._Element, name: str) -> str:
    """An XMP property, written as an element (the first item of an rdf:Alt or rdf:Seq for a
    title or a creator) or as an attribute of rdf:Description."""
    prefix, local = name.split(":")
    element = xmp.find(f".//{name}", NS)
    if element is not None:
        item = element.find(".//rdf:li", NS)
        text = (item if item is not None else element).text
        assert text is not None, name
        return text
    for description in xmp.iterfind(".//rdf:Description", NS):
        value = description.get(f"{{{NS[prefix]}}}{local}")
        if value is not None:
            return value
    raise AssertionError(f"no {name} in the XMP")


@pytest.fixture(scope="module")
def renewal_pdf() -> bytes:
    return draw_invoice(RENEWAL)


def test_the_page_names_the_invoice_the_parties_and_the_client(renewal_pdf: bytes) -> None:
    [text] = page_texts(renewal_pdf)
    for expected in ("Facture", "N° F-00000042", "Date d'émission : 01/09/2025",
                     "Facturation Cabinets SAS", "10 rue de la Paix", "75002 Paris", "SIREN : 732829320",
                     "TVA intracommunautaire : FR44732829320", "facturation@example.fr",
                     "Facturé à", "Cabinet Dupont SARL", "1 place Bellecour", "Bâtiment B", "69002 Lyon",
                     "SIREN : 552100554", "TVA intracommunautaire : FR96552100554", "compta@cabinet-dupont.fr",
                     "Client : Boulangerie Martin"):
        assert expected in text, expected


def test_the_page_lists_each_line_with_its_amounts_then_the_totals(renewal_pdf: bytes) -> None:
    [text] = page_texts(renewal_pdf)
    assert "Désignation Qté Prix unitaire HT Montant HT" in text
    for line in RENEWAL.lines:  # description, quantity, unit price, amount, in that order
        row = f"{line.description} {line.quantity} {format_eur_fr(line.unit_price)} {format_eur_fr(line.amount)}"
        assert spaced(row) in text, row
    assert RENEWAL.subtotal == 6389 and RENEWAL.tax == 1278 and RENEWAL.total == 7667
    for label, cents in (("Total HT", RENEWAL.subtotal), ("TVA 20 %", RENEWAL.tax), ("Total TTC", RENEWAL.total),
                         ("Net à payer", RENEWAL.amount_due)):
        assert spaced(f"{label} {format_eur_fr(cents)}") in text, label
    assert "63,89 €" in text and "12,78 €" in text and "76,67 €" in text


def test_the_page_says_when_and_how_it_is_paid_and_carries_the_mentions_b2b_invoices_need(renewal_pdf: bytes) -> None:
    [text] = page_texts(renewal_pdf)
    assert "Échéance : 01/09/2025 — réglée par prélèvement sur la carte bancaire enregistrée" in text
    assert "Payée le" not in text
    assert "Catégorie de l'opération : prestation de services" in text
    assert spaced(PAYMENT_CONDITIONS) in text
    assert spaced(LATE_PAYMENT) in text and "40 €" in text
    assert "pénalités au taux de trois fois le taux d'intérêt légal (art. L441-10 du Code de commerce)" in text
    assert spaced(SELLER.legal_mentions) in text
    assert "Page 1/1" in text


def test_a_usual_invoice_is_one_a4_page(renewal_pdf: bytes) -> None:
    [page] = PdfReader(io.BytesIO(renewal_pdf)).pages
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)


def test_a_0_euro_invoice_is_drawn_paid_with_nothing_to_pay() -> None:
    [text] = page_texts(draw_invoice(ZERO))
    assert "Payée le 01/09/2025" in text and "Échéance" not in text
    for label in ("Total HT", "TVA 20 %", "Total TTC", "Net à payer"):
        assert f"{label} 0,00 €" in text, label
    assert "Déjà réglé" not in text  # nothing was paid: no line to say so
    assert "Client :" not in text  # the client pays for itself: the buyer is the client
    assert "Facturé à Boulangerie Martin" in text


def test_a_paid_invoice_shows_what_was_paid_and_nothing_due() -> None:
    [text] = page_texts(draw_invoice(invoice(SUBSCRIPTION, OVERAGE, paid_on=date(2025, 9, 1))))
    assert "Payée le 01/09/2025" in text
    assert "Total TTC 76,67 € Déjà réglé -76,67 € Net à payer 0,00 €" in text


def test_eight_lines_still_fit_on_one_page() -> None:
    lines = [SUBSCRIPTION, OVERAGE] * 4
    [text] = page_texts(draw_invoice(invoice(*lines)))
    assert text.count("Abonnement Standard") == 4 and spaced(LATE_PAYMENT) in text


def test_many_lines_flow_onto_more_pages_with_the_headings_again_and_the_mentions_once() -> None:
    lines = [SUBSCRIPTION.model_copy(update={"description": f"Abonnement Standard n° {i} — du 01/09/2025 au 30/09/2025"})
             for i in range(1, 31)]
    pages = page_texts(draw_invoice(invoice(*lines)))
    assert len(pages) >= 2
    every = " ".join(pages)
    for i in range(1, 31):
        assert f"Abonnement Standard n° {i} — du" in every, i
    for number, text in enumerate(pages, start=1):
        assert f"Page {number}/{len(pages)}" in text and spaced(SELLER.legal_mentions) in text
        if number > 1:
            assert "Facture F-00000042 (suite)" in text
    assert sum("Désignation Qté" in text for text in pages) >= 2
    assert every.count("Catégorie de l'opération") == 1 and spaced(LATE_PAYMENT) in pages[-1]
    assert "Net à payer" in pages[-1]


def test_long_names_wrap_inside_their_block() -> None:
    long_name = "Cabinet d'expertise comptable Durand, Martin, Lefèvre & Associés — Société d'exercice libéral"
    buyer = FIRM.model_copy(update={"name": long_name, "email": "comptabilite.fournisseurs.factures-entrantes@"
                                                                "cabinet-durand-martin-lefevre-associes.fr"})
    [text] = page_texts(draw_invoice(invoice(SUBSCRIPTION, buyer=buyer)))
    assert long_name in text


def test_names_beyond_the_usual_characters_are_drawn_with_the_whole_font() -> None:
    client = "Παπαδόπουλος & Иванова"
    assert not {ord(c) for c in client} <= REPERTOIRE
    [text] = page_texts(draw_invoice(invoice(SUBSCRIPTION, client_name=client)))
    assert f"Client : {client}" in text


def test_our_own_words_need_only_the_usual_characters() -> None:
    fixed = OPERATION_CATEGORY + PAYMENT_CONDITIONS + LATE_PAYMENT + "Désignation Qté Échéance Déjà réglé N°\u00a0"
    assert {ord(c) for c in fixed + format_eur_fr(123456)} <= REPERTOIRE


def test_drawing_the_same_invoice_twice_gives_the_same_bytes(renewal_pdf: bytes) -> None:
    assert draw_invoice(RENEWAL) == renewal_pdf


def test_the_drawn_pdf_declares_pdf_a_3b_with_the_srgb_output_intent_and_embedded_fonts(renewal_pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(renewal_pdf))
    assert reader.pdf_header == "%PDF-1.7"
    xmp = xmp_of(renewal_pdf)
    assert xmp_value(xmp, "pdfaid:part") == "3" and xmp_value(xmp, "pdfaid:conformance") == "B"
    assert xmp_value(xmp, "xmp:CreateDate") == "2025-09-01T00:00:00+00:00"
    [intent] = catalog(reader)["/OutputIntents"]
    intent = intent.get_object()
    assert intent["/S"] == "/GTS_PDFA1" and intent["/OutputConditionIdentifier"] == "sRGB"
    assert intent["/DestOutputProfile"].get_object().get_data()[36:40] == b"acsp"  # an ICC profile
    resources: Any = reader.pages[0]["/Resources"]
    fonts = resources.get_object()["/Font"]
    assert len(fonts) == 2
    for font in fonts.values():
        descendant = font.get_object()["/DescendantFonts"][0].get_object()
        assert "/FontFile2" in descendant["/FontDescriptor"]  # embedded, as PDF/A wants


def test_factur_x_carries_the_xml_unchanged_and_says_so_in_its_xmp() -> None:
    xml = cii_xml(RENEWAL)
    pdf = factur_x_pdf(RENEWAL, xml)
    filename, embedded = facturx.get_xml_from_pdf(pdf, check_xsd=False)
    assert filename == "factur-x.xml" and embedded == xml
    xmp = xmp_of(pdf)
    assert xmp_value(xmp, "pdfaid:part") == "3" and xmp_value(xmp, "pdfaid:conformance") == "B"
    assert xmp_value(xmp, "fx:ConformanceLevel") == "EN 16931"
    assert xmp_value(xmp, "fx:DocumentType") == "INVOICE" and xmp_value(xmp, "fx:DocumentFileName") == "factur-x.xml"
    assert page_texts(pdf) == page_texts(draw_invoice(RENEWAL))  # the same page a person reads


def test_factur_x_keeps_pdf_a_and_its_info_agrees_with_its_xmp() -> None:
    pdf = factur_x_pdf(RENEWAL, cii_xml(RENEWAL))
    reader = PdfReader(io.BytesIO(pdf))
    assert reader.pdf_header == "%PDF-1.7"
    root = catalog(reader)
    [intent] = root["/OutputIntents"]
    assert intent.get_object()["/S"] == "/GTS_PDFA1"
    assert root["/Lang"] == "fr-FR"
    [spec] = root["/AF"]
    assert spec.get_object()["/AFRelationship"] == "/Data"
    info, xmp = reader.metadata, xmp_of(pdf)
    assert info is not None
    assert info["/Title"] == xmp_value(xmp, "dc:title") == "Facture F-00000042"
    assert info["/Author"] == xmp_value(xmp, "dc:creator") == "Facturation Cabinets SAS"
    assert info["/Subject"] == xmp_value(xmp, "dc:description")
    assert info["/Keywords"] == xmp_value(xmp, "pdf:Keywords")
    assert info["/Creator"] == xmp_value(xmp, "xmp:CreatorTool")
    assert info["/CreationDate"] == info["/ModDate"] == "D:20250901000000+00'00'"
    assert xmp_value(xmp, "xmp:CreateDate") == xmp_value(xmp, "xmp:ModifyDate") == "2025-09-01T00:00:00+00:00"
    assert "/Producer" not in info


def test_factur_x_of_the_same_invoice_is_the_same_file() -> None:
    xml = cii_xml(ZERO)
    assert factur_x_pdf(ZERO, xml) == factur_x_pdf(ZERO, xml)


def test_wrap_breaks_at_spaces_and_cuts_only_a_word_too_long_for_a_line() -> None:
    pdf = FPDF()
    pdf.add_font("DejaVu", "", FONTS / "DejaVuSans.ttf")
    pdf.set_font("DejaVu", "", 9)
    text = "Documents au-delà du quota\u00a0: 1\u00a0234,56\u00a0€ " + "x" * 120
    lines = wrap(pdf, text, 50)
    assert all(pdf.get_string_width(line) <= 50 for line in lines)
    assert "1\u00a0234,56\u00a0€" in " ".join(lines)  # never broken at a no-break space
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert wrap(pdf, "un\ndeux", 50) == ["un", "deux"]


@pytest.mark.parametrize(("name", "initials"), [("Facturation Cabinets SAS", "FC"), ("Cabinet de la Gare SARL", "CG"),
                                                ("SAS Durand", "D"), ("42", "4")])
def test_the_monogram_takes_the_initials_of_the_name(name: str, initials: str) -> None:
    assert monogram(name) == initials
