"""The invoice as a person reads it: an A4 PDF/A-3B in French, drawn by fpdf2 from the same
`InvoiceDocument` as the CII XML (einvoice.cii), so the two never disagree.

PDF/A forbids the 14 standard fonts: the text is set in DejaVu (einvoice/fonts), embedded.
Deterministic: the only date written (in the XMP) is the issue date at midnight UTC and the file
identifier is a hash of the content, so the same document always gives the same bytes.
"""
import atexit
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, time
from functools import cache
from html import escape
from pathlib import Path
from typing import Literal

from fontTools import subset, ttLib
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import TTFFont

from billing.money import NBSP, format_eur_fr
from einvoice.document import VAT_RATE_PERCENT, InvoiceDocument, Party, french_date

# Mentions French law requires on a B2B invoice (C. com. L441-9, L441-10, D441-5; CGI art. 242 nonies A).
OPERATION_CATEGORY = "Catégorie de l'opération : prestation de services."
PAYMENT_CONDITIONS = "Paiement à réception. Pas d'escompte pour paiement anticipé."
LATE_PAYMENT = ("En cas de retard de paiement, pénalités au taux de trois fois le taux d'intérêt légal "
                "(art. L441-10 du Code de commerce) et indemnité forfaitaire pour frais de recouvrement "
                "de 40 € (art. D441-5).")
CARD_DEBIT = "réglée par prélèvement sur la carte bancaire enregistrée"
KEYWORDS = "Facture, Factur-X"
PRODUCER = "cabinet_billing (fpdf2)"

FONTS = Path(__file__).parent / "fonts"
FAMILY = "DejaVu"
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
# Characters of the usual invoice: French and the other Latin-script languages of Europe (Latin-1,
# Latin Extended-A, Romanian's s and t with comma), punctuation, €, ™, minus. A document with any other
# character (Greek, Cyrillic, decomposed accents…) is drawn with the whole of DejaVu, only slower.
REPERTOIRE = frozenset((*range(0x20, 0x7F), *range(0xA0, 0x180), *range(0x218, 0x21C), *range(0x2000, 0x2070),
                        0x20AC, 0x2122, 0x2212, 0xFFFD))

# A4 portrait, in mm. The title, the buyer and the totals align on RIGHT_X.
MARGIN = 18.0
TOP = 16.0
RIGHT_X = 112.0
LEFT_WIDTH = RIGHT_X - MARGIN - 8.0
RIGHT_WIDTH = 210.0 - MARGIN - RIGHT_X
# Lines table: Désignation, Qté, Prix unitaire HT, Montant HT (174 mm, the width between margins).
COLUMNS = (96.0, 14.0, 32.0, 32.0)
CELL_PAD = 2.0

Colour = tuple[int, int, int]
INK: Colour = (33, 37, 41)
MUTED: Colour = (108, 117, 125)
ACCENT: Colour = (31, 58, 95)  # dark blue: monogram, headings, "Net à payer"
TINT: Colour = (232, 238, 245)  # table heading and buyer panel
RULE: Colour = (206, 212, 218)
WHITE: Colour = (255, 255, 255)

# Words left out of the monogram: legal forms and French particles ("Cabinet de la Gare SARL" -> "CG").
NOT_INITIALS = {"SA", "SAS", "SASU", "SARL", "EURL", "SCP", "SELARL", "SELAS", "SNC", "SCI", "ET", "DE", "DES", "DU",
                "LA", "LE", "LES", "D", "L"}


def draw_invoice(doc: InvoiceDocument) -> bytes:
    """The invoice as an A4 PDF/A-3B: one page for a usual invoice, more when its lines need them."""
    pdf = _new_pdf(doc)
    _header(pdf, doc)
    _lines_table(pdf, doc)
    _totals_and_payment(pdf, doc)
    _mentions(pdf)
    return bytes(pdf.output())


def creation_time(doc: InvoiceDocument) -> datetime:
    """The date written in the file's metadata: the issue date, so drawing again gives the same bytes."""
    return datetime.combine(doc.issued_on, time(0, 0), tzinfo=UTC)


def pdf_title(doc: InvoiceDocument) -> str:
    return f"Facture {doc.number}"


def pdf_subject(doc: InvoiceDocument) -> str:
    return f"Facture {doc.number} du {french_date(doc.issued_on)} de {doc.seller.name} à {doc.buyer.name}"


def monogram(name: str) -> str:
    """'Cabinet Durand & Associés SAS' -> 'CD': initials of the first two words that are not a legal form."""
    words = [w for w in re.split(r"\W+", name) if w and w[0].isalpha() and w.upper() not in NOT_INITIALS]
    return "".join(w[0] for w in words[:2]).upper() or name[:1].upper()


# --- the document and its fonts --------------------------------------------------------------

class _InvoicePdf(FPDF):
    """FPDF with our footer on every page: the seller's legal mentions and the page number."""

    FOOTER_LINE = 3.2

    def __init__(self, number: str, legal_mentions: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4", enforce_compliance="PDF/A-3B")
        self.number = number
        self.legal_mentions = legal_mentions
        self.c_margin = 0  # paddings are explicit here: a text's width is the width it is given

    def header(self) -> None:
        """From the second page on, which invoice the page belongs to."""
        if self.page_no() > 1:
            _font(self, 8, colour=MUTED)
            self.set_xy(self.l_margin, TOP - 6)
            self.cell(self.epw, 4, f"Facture {self.number} (suite)", align="R")
            self.set_y(TOP)

    def footer_lines(self) -> list[str]:
        self.set_font(FAMILY, "", 7)
        return wrap(self, self.legal_mentions, self.epw - 22) if self.legal_mentions else []

    def footer_height(self) -> float:
        """Rule, gap, the mentions and the bottom margin."""
        return 1.5 + self.FOOTER_LINE * max(len(self.footer_lines()), 1) + 10.0

    def footer(self) -> None:
        lines = self.footer_lines()
        self.set_y(-self.footer_height())
        _rule(self, self.l_margin, self.w - self.r_margin)
        self.set_y(self.y + 1.5)
        self.set_text_color(*MUTED)
        top = self.y
        for line in lines:
            self.cell(self.epw - 22, self.FOOTER_LINE, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_xy(self.w - self.r_margin - 20, top)
        self.cell(20, self.FOOTER_LINE, f"Page {self.page_no()}/{{nb}}", align="R")


def _new_pdf(doc: InvoiceDocument) -> _InvoicePdf:
    pdf = _InvoicePdf(doc.number, doc.seller.legal_mentions)
    usual = {ord(char) for char in doc.model_dump_json()} <= REPERTOIRE  # every text the page may show
    fonts = _reduced_fonts() if usual else {style: FONTS / name for style, name in FONT_FILES.items()}
    if not all(path.exists() for path in fonts.values()):  # a cleaner of /tmp went by a long-lived worker
        _reduced_fonts.cache_clear()
        fonts = _reduced_fonts()
    for style, path in fonts.items():
        pdf.add_font(FAMILY, style, path)
        # The glyphs' boxes in the font file are right: without this, fontTools decodes and encodes
        # again every glyph of fpdf2's subset to recompute them, a third of the drawing time.
        font = pdf.fonts[f"{FAMILY.lower()}{style}"]
        if isinstance(font, TTFFont):
            font.ttfont.recalcBBoxes = False
    pdf.set_margins(MARGIN, TOP, MARGIN)
    pdf.set_auto_page_break(True, margin=pdf.footer_height() + 4)
    pdf.alias_nb_pages()
    pdf.set_lang("fr-FR")
    # For PDF/A fpdf2 writes no Info dictionary: the XMP is all the metadata, and ours rather than
    # fpdf2's, which would write the time of drawing as ModifyDate.
    created = creation_time(doc)
    pdf.set_creation_date(created)  # also hashed into the file identifier
    pdf.set_xmp_metadata(_xmp(doc, created))
    pdf.add_page()
    return pdf


@cache
def _reduced_fonts() -> dict[str, Path]:
    """DejaVu cut down to REPERTOIRE, once per process, in a temporary folder removed at exit.

    fpdf2 cannot re-use a parsed font from one document to the next (writing a document subsets it in
    place), and parsing the whole of DejaVu (6,000 glyphs) took most of an invoice's time; this cut has
    about 500. fpdf2 reads fonts from files only, hence the folder.
    """
    folder = Path(tempfile.mkdtemp(prefix="einvoice-fonts-"))
    atexit.register(_remove_folder, folder, os.getpid())
    options = subset.Options()
    options.layout_features = []  # no text shaping here: kerning and ligature tables go unused
    options.hinting = False  # a third of the bytes; viewers rasterise PDF text well without it
    options.notdef_outline = True  # PDF/A: the .notdef glyph must be drawable
    options.recommended_glyphs = True
    options.drop_tables += ["FFTM"]  # FontForge's timestamp, which fontTools would warn about
    paths: dict[str, Path] = {}
    for style, name in FONT_FILES.items():
        font = ttLib.TTFont(FONTS / name, recalcTimestamp=False)  # same bytes from run to run
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=REPERTOIRE)
        subsetter.subset(font)
        paths[style] = folder / name
        font.save(paths[style])
    return paths


def _remove_folder(folder: Path, owner: int) -> None:
    if os.getpid() == owner:  # not when a forked child exits: the parent still draws with these fonts
        shutil.rmtree(folder, ignore_errors=True)


def _xmp(doc: InvoiceDocument, created: datetime) -> str:
    """PDF/A identification (part 3, conformance B), title, author, subject, keywords, dates."""
    when = created.isoformat(timespec="seconds")

    def esc(text: str) -> str:
        return escape(text, quote=True)

    return "\n".join([
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">',
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">',
        '  <rdf:Description rdf:about=""',
        '    xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/" xmlns:dc="http://purl.org/dc/elements/1.1/"',
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:pdf="http://ns.adobe.com/pdf/1.3/"',
        f'    xmp:CreatorTool="{esc(PRODUCER)}" xmp:CreateDate="{when}" xmp:ModifyDate="{when}"',
        f'    xmp:MetadataDate="{when}" pdf:Producer="{esc(PRODUCER)}" pdf:Keywords="{esc(KEYWORDS)}">',
        "   <pdfaid:part>3</pdfaid:part>",
        "   <pdfaid:conformance>B</pdfaid:conformance>",
        f'   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{esc(pdf_title(doc))}</rdf:li></rdf:Alt></dc:title>',
        f'   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{esc(pdf_subject(doc))}</rdf:li></rdf:Alt>'
        "</dc:description>",
        f"   <dc:creator><rdf:Seq><rdf:li>{esc(doc.seller.name)}</rdf:li></rdf:Seq></dc:creator>",
        "  </rdf:Description>",
        " </rdf:RDF>",
        "</x:xmpmeta>",
    ])


# --- text ------------------------------------------------------------------------------------

def wrap(pdf: FPDF, text: str, width: float) -> list[str]:
    """`text` broken into lines no wider than `width` at the current font, at spaces (never at a
    no-break space), a word too long for a line cut where it must. "\\n" starts a new line.

    Ours rather than fpdf2's multi_cell, which measures each line again for every character it adds
    (quadratic: most of the drawing time): without text shaping, widths simply add up.
    """
    space = pdf.get_string_width(" ")
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line, used = "", 0.0
        for word in paragraph.split(" "):
            for piece, piece_width in _pieces(pdf, word, width):
                if line and used + space + piece_width <= width:
                    line, used = f"{line} {piece}", used + space + piece_width
                else:
                    if line:
                        lines.append(line)
                    line, used = piece, piece_width
        lines.append(line)
    return lines


def _pieces(pdf: FPDF, word: str, width: float) -> list[tuple[str, float]]:
    """The word and its width, or, when wider than a line (an e-mail, a reference), the cuts of it that fit."""
    word_width = pdf.get_string_width(word)
    if word_width <= width:
        return [(word, word_width)]
    pieces: list[tuple[str, float]] = []
    piece, piece_width = "", 0.0
    for char in word:
        char_width = pdf.get_string_width(char)
        if piece and piece_width + char_width > width:
            pieces.append((piece, piece_width))
            piece, piece_width = "", 0.0
        piece, piece_width = piece + char, piece_width + char_width
    return [*pieces, (piece, piece_width)]


def _text(pdf: FPDF, x: float, width: float, line_height: float, lines: Sequence[str],
          align: Literal["L", "R"] = "L") -> None:
    """Lines drawn from the current y at x, one under the other; y ends below the last."""
    for line in lines:
        pdf.set_x(x)
        pdf.cell(width, line_height, line, align=align, new_x=XPos.LEFT, new_y=YPos.NEXT)


def _font(pdf: FPDF, size: float, bold: bool = False, colour: Colour = INK) -> None:
    pdf.set_font(FAMILY, "B" if bold else "", size)
    pdf.set_text_color(*colour)


def _rule(pdf: FPDF, x1: float, x2: float) -> None:
    pdf.set_draw_color(*RULE)
    pdf.set_line_width(0.2)
    pdf.line(x1, pdf.y, x2, pdf.y)


# --- the parts of the page -------------------------------------------------------------------

def _header(pdf: FPDF, doc: InvoiceDocument) -> None:
    # Logo area: a monogram in a rounded square, the seller's name beside it in large type.
    size = 15.0
    pdf.set_fill_color(*ACCENT)
    pdf.rect(MARGIN, TOP, size, size, style="F", round_corners=True, corner_radius=2.5)
    _font(pdf, 15, bold=True, colour=WHITE)
    pdf.set_xy(MARGIN, TOP)
    pdf.cell(size, size, monogram(doc.seller.name), align="C")
    _font(pdf, 13, bold=True)
    name_x = MARGIN + size + 4
    pdf.set_y(TOP + 1)
    _text(pdf, name_x, LEFT_WIDTH - size - 4, 6, wrap(pdf, doc.seller.name, LEFT_WIDTH - size - 4))
    pdf.set_y(max(pdf.y, TOP + size) + 4)
    _font(pdf, 8.5)
    for detail in _details(doc.seller):
        _text(pdf, MARGIN, LEFT_WIDTH, 4.2, wrap(pdf, detail, LEFT_WIDTH))
    left_bottom = pdf.y

    # Title, number and date, aligned right.
    pdf.set_y(TOP - 1)
    _font(pdf, 22, bold=True, colour=ACCENT)
    _text(pdf, RIGHT_X, RIGHT_WIDTH, 10, ["Facture"], align="R")
    _font(pdf, 10.5, bold=True)
    _text(pdf, RIGHT_X, RIGHT_WIDTH, 6, wrap(pdf, f"N°{NBSP}{doc.number}", RIGHT_WIDTH), align="R")
    _font(pdf, 9)
    _text(pdf, RIGHT_X, RIGHT_WIDTH, 5, [f"Date d'émission : {french_date(doc.issued_on)}"], align="R")

    # The buyer on a tinted panel with an accent edge: measured first, the panel drawn under the text.
    inner_x, inner_width = RIGHT_X + 5, RIGHT_WIDTH - 8
    blocks: list[tuple[float, bool, Colour, float, list[str]]] = []
    for size_pt, bold, colour, line_height, text in (
        (7.5, False, MUTED, 4.0, "Facturé à"),
        (10, True, INK, 5.0, doc.buyer.name),
        *((8.5, False, INK, 4.2, detail) for detail in _details(doc.buyer)),
    ):
        _font(pdf, size_pt, bold)
        blocks.append((size_pt, bold, colour, line_height, wrap(pdf, text, inner_width)))
    panel_top = max(pdf.y + 6, TOP + 31)
    panel_height = 6 + sum(line_height * len(lines) for _, _, _, line_height, lines in blocks)
    pdf.set_fill_color(*TINT)
    pdf.rect(RIGHT_X, panel_top, RIGHT_WIDTH, panel_height, style="F", round_corners=True, corner_radius=1.5)
    pdf.set_fill_color(*ACCENT)
    pdf.rect(RIGHT_X, panel_top, 1.2, panel_height, style="F")
    pdf.set_y(panel_top + 3)
    for size_pt, bold, colour, line_height, lines in blocks:
        _font(pdf, size_pt, bold, colour)
        _text(pdf, inner_x, inner_width, line_height, lines)

    pdf.set_y(max(left_bottom, panel_top + panel_height) + 8)
    if doc.client_name:  # the subscriber, when the firm pays for its client
        _font(pdf, 10, bold=True)
        _text(pdf, MARGIN, pdf.epw, 5.5, wrap(pdf, f"Client : {doc.client_name}", pdf.epw))
        pdf.set_y(pdf.y + 2)


def _details(party: Party) -> list[str]:
    """Address, identifiers and e-mail, one per line, those unknown left out."""
    lines = list(party.address.lines())
    if party.siren:
        lines.append(f"SIREN : {party.siren}")
    if party.vat_number:
        lines.append(f"TVA intracommunautaire : {party.vat_number}")
    if party.email:
        lines.append(party.email)
    return lines


def _lines_table(pdf: FPDF, doc: InvoiceDocument) -> None:
    """One row per line; a row that does not fit starts a new page, under the headings again."""
    line_height = 4.4
    _table_headings(pdf)
    for line in doc.lines:
        _font(pdf, 8.5)
        description = wrap(pdf, line.description, COLUMNS[0] - 2 * CELL_PAD)
        height = line_height * len(description) + 2 * CELL_PAD
        if pdf.will_page_break(height):
            pdf.add_page()
            _table_headings(pdf)
            _font(pdf, 8.5)
        top = pdf.y
        cells = (description, [str(line.quantity)], [format_eur_fr(line.unit_price)], [format_eur_fr(line.amount)])
        x = MARGIN
        for column, (width, lines) in enumerate(zip(COLUMNS, cells, strict=True)):
            pdf.set_y(top + CELL_PAD)
            _text(pdf, x + CELL_PAD, width - 2 * CELL_PAD, line_height, lines, align="L" if column == 0 else "R")
            x += width
        pdf.set_y(top + height)
        _rule(pdf, MARGIN, MARGIN + sum(COLUMNS))
    pdf.set_y(pdf.y + 6)


def _table_headings(pdf: FPDF) -> None:
    height = 7.0
    pdf.set_fill_color(*TINT)
    pdf.rect(MARGIN, pdf.y, sum(COLUMNS), height, style="F")
    _font(pdf, 8, bold=True, colour=ACCENT)
    top, x = pdf.y, MARGIN
    for column, (width, title) in enumerate(zip(COLUMNS, ("Désignation", "Qté", "Prix unitaire HT", "Montant HT"),
                                                strict=True)):
        pdf.set_xy(x + CELL_PAD, top)
        pdf.cell(width - 2 * CELL_PAD, height, title, align="L" if column == 0 else "R")
        x += width
    pdf.set_y(top + height)


def _totals_and_payment(pdf: FPDF, doc: InvoiceDocument) -> None:
    """The totals on the right; beside them, on the left, how the invoice is (or was) paid."""
    rows: list[tuple[str, int, bool]] = [
        ("Total HT", doc.subtotal, False),
        (f"TVA {VAT_RATE_PERCENT}{NBSP}%", doc.tax, False),
        ("Total TTC", doc.total, True),
    ]
    if paid := doc.total - doc.amount_due:
        rows.append(("Déjà réglé", -paid, False))  # so that Total TTC and Net à payer visibly agree
    row_height, due_height = 6.0, 8.0
    _font(pdf, 9, bold=doc.paid_on is not None)
    payment = wrap(pdf, _payment_text(doc), LEFT_WIDTH)
    if pdf.will_page_break(max(row_height * len(rows) + 2 + due_height, 4 + 4.6 * len(payment))):
        pdf.add_page()
    top = pdf.y

    label_width, amount_width = 44.0, RIGHT_WIDTH - 44.0 - 2 * CELL_PAD
    for label, cents, bold in rows:
        _font(pdf, 9.5, bold)
        pdf.set_x(RIGHT_X + CELL_PAD)
        pdf.cell(label_width, row_height, label)
        pdf.cell(amount_width, row_height, format_eur_fr(cents), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_y(pdf.y + 1)
    pdf.set_fill_color(*ACCENT)
    pdf.rect(RIGHT_X, pdf.y, RIGHT_WIDTH, due_height, style="F")
    _font(pdf, 10.5, bold=True, colour=WHITE)
    pdf.set_x(RIGHT_X + CELL_PAD)
    pdf.cell(label_width, due_height, "Net à payer")
    pdf.cell(amount_width, due_height, format_eur_fr(doc.amount_due), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    totals_bottom = pdf.y

    pdf.set_y(top)
    _font(pdf, 7.5, colour=MUTED)
    _text(pdf, MARGIN, LEFT_WIDTH, 4, ["Règlement"])
    _font(pdf, 9, bold=doc.paid_on is not None)
    _text(pdf, MARGIN, LEFT_WIDTH, 4.6, payment)
    pdf.set_y(max(pdf.y, totals_bottom) + 6)


def _payment_text(doc: InvoiceDocument) -> str:
    if doc.paid_on is not None:
        return f"Payée le {french_date(doc.paid_on)}"
    return f"Échéance : {french_date(doc.due_on)} — {CARD_DEBIT}"


def _mentions(pdf: FPDF) -> None:
    """The B2B mentions in small type at the foot of the last page (of a new one if they do not fit)."""
    _font(pdf, 7, colour=MUTED)
    line_height = 3.3
    lines = wrap(pdf, "\n".join((OPERATION_CATEGORY, PAYMENT_CONDITIONS, LATE_PAYMENT)), pdf.epw)
    height = line_height * len(lines)
    if pdf.will_page_break(height):
        pdf.add_page()
    pdf.set_y(max(pdf.y, pdf.page_break_trigger - height - 0.5))  # 0.5: no rounding may push a line over
    _text(pdf, MARGIN, pdf.epw, line_height, lines)
