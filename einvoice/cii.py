"""The invoice as UN/CEFACT CII XML, Factur-X profile EN 16931 (what accounting software reads).

Element order follows the Factur-X 1.0 EN 16931 XSD (its sequences are strict). Business terms
(BT-…) are named where they are written. Money is written from integer cents, never through a
float: "1234" → "12.34". The same document always gives the same bytes.
"""
from datetime import date

from lxml import etree

from einvoice.document import VAT_RATE_PERCENT, InvoiceDocument, Party, PostalAddress

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
NSMAP = {"rsm": RSM, "qdt": QDT, "ram": RAM, "udt": UDT}
EN16931 = "urn:cen.eu:en16931:2017"  # BT-24: the Factur-X EN 16931 profile

COMMERCIAL_INVOICE = "380"  # BT-3 (UNTDID 1001)
SERVICES = "S1"  # BT-23, French e-invoicing reform: an invoice for services
SERVICES_ALREADY_PAID = "S2"  # … for services already paid (a 0 € invoice, paid as it is issued)
SIREN_SCHEME = "0002"  # ISO 6523 ICD for the French SIREN
FRENCH_DIRECTORY = "0225"  # EAS: the French e-invoicing directory, addressed by SIREN
BANK_CARD = "48"  # BT-81 (UNTDID 4461)
PAID_TO_DATE = "72"  # BT-8: VAT due on payment ("TVA sur les encaissements"), the rule for services
ONE = "C62"  # BT-130: unit of measure "one" (a subscription period, a document)

# BT-22 notes with the subject codes French B2B invoices use for the mentions the law requires.
PENALTIES = ("En cas de retard de paiement, pénalités au taux de trois fois le taux d'intérêt légal "
             "(art. L441-10 du Code de commerce).")
RECOVERY_INDEMNITY = "Indemnité forfaitaire pour frais de recouvrement en cas de retard de paiement : 40 € (art. D441-5)."
NO_DISCOUNT = "Pas d'escompte pour paiement anticipé."
PAYMENT_TERMS = "Paiement à réception, par prélèvement sur la carte bancaire enregistrée."


def amount(cents: int) -> str:
    """Cents as the decimal text CII expects: 2280 → "22.80", -5 → "-0.05"."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    return f"{sign}{euros}.{rest:02d}"


def cii_xml(doc: InvoiceDocument) -> bytes:
    root = etree.Element(f"{{{RSM}}}CrossIndustryInvoice", nsmap=NSMAP)
    context = _sub(root, RSM, "ExchangedDocumentContext")
    # BT-23, the French reform's billing framework: services, already paid or to be paid.
    _text(_sub(context, RAM, "BusinessProcessSpecifiedDocumentContextParameter"), "ID",
          SERVICES_ALREADY_PAID if doc.paid_on else SERVICES)
    _text(_sub(context, RAM, "GuidelineSpecifiedDocumentContextParameter"), "ID", EN16931)

    header = _sub(root, RSM, "ExchangedDocument")
    _text(header, "ID", doc.number)  # BT-1
    _text(header, "TypeCode", COMMERCIAL_INVOICE)
    _date(_sub(header, RAM, "IssueDateTime"), doc.issued_on)  # BT-2
    if doc.client_name:
        _note(header, f"Client : {doc.client_name}", "AAI")
    _note(header, PENALTIES, "PMD")
    _note(header, RECOVERY_INDEMNITY, "PMT")
    _note(header, NO_DISCOUNT, "AAB")
    if doc.seller.legal_mentions:
        _note(header, doc.seller.legal_mentions, "REG")

    transaction = _sub(root, RSM, "SupplyChainTradeTransaction")
    for position, line in enumerate(doc.lines, start=1):
        item = _sub(transaction, RAM, "IncludedSupplyChainTradeLineItem")
        _text(_sub(item, RAM, "AssociatedDocumentLineDocument"), "LineID", str(position))  # BT-126
        _text(_sub(item, RAM, "SpecifiedTradeProduct"), "Name", line.description)  # BT-153
        price = _sub(_sub(item, RAM, "SpecifiedLineTradeAgreement"), RAM, "NetPriceProductTradePrice")
        _text(price, "ChargeAmount", amount(line.unit_price))  # BT-146
        _text(_sub(item, RAM, "SpecifiedLineTradeDelivery"), "BilledQuantity", str(line.quantity),
              unitCode=ONE)  # BT-129, BT-130
        settlement = _sub(item, RAM, "SpecifiedLineTradeSettlement")
        _line_vat(settlement)
        period = _sub(settlement, RAM, "BillingSpecifiedPeriod")  # BG-26
        _date(_sub(period, RAM, "StartDateTime"), line.first_day)
        _date(_sub(period, RAM, "EndDateTime"), line.last_day)
        _text(_sub(settlement, RAM, "SpecifiedTradeSettlementLineMonetarySummation"),
              "LineTotalAmount", amount(line.amount))  # BT-131

    agreement = _sub(transaction, RAM, "ApplicableHeaderTradeAgreement")
    _party(agreement, "SellerTradeParty", doc.seller)
    _party(agreement, "BuyerTradeParty", doc.buyer)
    if doc.subscription_id:
        _text(_sub(agreement, RAM, "ContractReferencedDocument"), "IssuerAssignedID", doc.subscription_id)  # BT-12
    _sub(transaction, RAM, "ApplicableHeaderTradeDelivery")  # required, empty: services, no delivery

    settlement = _sub(transaction, RAM, "ApplicableHeaderTradeSettlement")
    _text(settlement, "InvoiceCurrencyCode", doc.currency)  # BT-5
    means = _sub(settlement, RAM, "SpecifiedTradeSettlementPaymentMeans")
    _text(means, "TypeCode", BANK_CARD)
    _text(means, "Information", "Carte bancaire")  # BT-82
    tax = _sub(settlement, RAM, "ApplicableTradeTax")  # BG-23, one category: S at 20 %
    _text(tax, "CalculatedAmount", amount(doc.tax))  # BT-117
    _text(tax, "TypeCode", "VAT")
    _text(tax, "BasisAmount", amount(doc.subtotal))  # BT-116
    _text(tax, "CategoryCode", "S")  # BT-118
    _text(tax, "DueDateTypeCode", PAID_TO_DATE)  # BT-8
    _text(tax, "RateApplicablePercent", str(VAT_RATE_PERCENT))  # BT-119
    terms = _sub(settlement, RAM, "SpecifiedTradePaymentTerms")
    _text(terms, "Description", f"Payée le {doc.paid_on:%d/%m/%Y}." if doc.paid_on else PAYMENT_TERMS)  # BT-20
    _date(_sub(terms, RAM, "DueDateDateTime"), doc.due_on)  # BT-9
    totals = _sub(settlement, RAM, "SpecifiedTradeSettlementHeaderMonetarySummation")  # BG-22
    _text(totals, "LineTotalAmount", amount(doc.subtotal))  # BT-106
    _text(totals, "TaxBasisTotalAmount", amount(doc.subtotal))  # BT-109
    _text(totals, "TaxTotalAmount", amount(doc.tax), currencyID=doc.currency)  # BT-110
    _text(totals, "GrandTotalAmount", amount(doc.total))  # BT-112
    _text(totals, "TotalPrepaidAmount", amount(doc.total - doc.amount_due))  # BT-113
    _text(totals, "DuePayableAmount", amount(doc.amount_due))  # BT-115
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _party(parent: etree._Element, tag: str, party: Party) -> None:
    node = _sub(parent, RAM, tag)
    _text(node, "Name", party.name)  # BT-27 / BT-44
    if party.siren:
        _text(_sub(node, RAM, "SpecifiedLegalOrganization"), "ID", party.siren, schemeID=SIREN_SCHEME)  # BT-30 / BT-47
    _address(node, party.address)
    # BT-34 / BT-49, the electronic address: under the French reform the SIREN in the directory of
    # e-invoicing platforms (scheme 0225); an e-mail address when we know no SIREN.
    if party.siren:
        _text(_sub(node, RAM, "URIUniversalCommunication"), "URIID", party.siren, schemeID=FRENCH_DIRECTORY)
    elif party.email:
        _text(_sub(node, RAM, "URIUniversalCommunication"), "URIID", party.email, schemeID="EM")
    if party.vat_number:
        _text(_sub(node, RAM, "SpecifiedTaxRegistration"), "ID", party.vat_number, schemeID="VA")  # BT-31 / BT-48


def _address(parent: etree._Element, address: PostalAddress) -> None:
    node = _sub(parent, RAM, "PostalTradeAddress")  # BG-5 / BG-8
    for tag, value in (("PostcodeCode", address.postal_code), ("LineOne", address.line1),
                       ("LineTwo", address.line2), ("CityName", address.city)):
        if value:
            _text(node, tag, value)
    _text(node, "CountryID", address.country)


def _line_vat(parent: etree._Element) -> None:
    tax = _sub(parent, RAM, "ApplicableTradeTax")
    _text(tax, "TypeCode", "VAT")
    _text(tax, "CategoryCode", "S")  # BT-151
    _text(tax, "RateApplicablePercent", str(VAT_RATE_PERCENT))  # BT-152


def _note(parent: etree._Element, content: str, subject: str) -> None:
    note = _sub(parent, RAM, "IncludedNote")
    _text(note, "Content", content)
    _text(note, "SubjectCode", subject)


def _date(parent: etree._Element, day: date) -> None:
    node = etree.SubElement(parent, f"{{{UDT}}}DateTimeString", format="102")
    node.text = day.strftime("%Y%m%d")


def _sub(parent: etree._Element, namespace: str, tag: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{namespace}}}{tag}")


def _text(parent: etree._Element, tag: str, value: str, **attributes: str) -> etree._Element:
    node = etree.SubElement(parent, f"{{{RAM}}}{tag}", **attributes)
    node.text = value
    return node
