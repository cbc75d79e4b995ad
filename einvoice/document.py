"""What an invoice document says: the data both the XML (for machines) and the PDF (for people)
are drawn from, so the two never disagree.

Built once per invoice from its records and the parties' snapshot taken when it was numbered
(`document_for`); money stays integer cents here and becomes decimal text only in the XML.
"""
import re
from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

VAT_RATE_PERCENT = 20  # category S, standard rate (billing.money.VAT_RATE)


# Characters XML 1.0 cannot carry (C0 controls but tab, newline and return) and C1 controls: a
# name stored with one must not make an invoice impossible to render, so they are dropped here.
UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _printable(cls, value: object) -> object:
        return UNPRINTABLE.sub("", value) if isinstance(value, str) else value


class PostalAddress(Frozen):
    line1: str | None = None
    line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country: str = "FR"  # ISO 3166-1 alpha-2

    def lines(self) -> list[str]:
        """The address as printed, one line each, empty parts left out."""
        town = " ".join(p for p in (self.postal_code, self.city) if p)
        country = "" if self.country == "FR" else self.country
        return [p for p in (self.line1, self.line2, town, country) if p]


class Party(Frozen):
    """A seller or a buyer as it was on the invoice's date."""

    name: str  # the legal name, or the name we know when no legal name is on record
    siren: str | None = None  # 9 digits
    vat_number: str | None = None  # FR + 2-digit key + SIREN
    address: PostalAddress = PostalAddress()
    email: str | None = None


class Seller(Party):
    """Us: our identity comes from settings and is required in full."""

    siren: str
    vat_number: str
    legal_mentions: str = ""  # e.g. "SAS au capital de 10 000 € — RCS Paris 123 456 789"


LineKind = Literal["subscription", "proration", "overage"]


class DocumentLine(Frozen):
    kind: LineKind
    description: str  # "Abonnement Standard — du 01/09/2025 au 30/09/2025"
    first_day: date  # the billing period, both days included (EN 16931 BT-134/BT-135)
    last_day: date
    quantity: int
    unit_price: int  # cents excluding VAT
    amount: int  # cents excluding VAT: quantity × unit price

    @model_validator(mode="after")
    def _adds_up(self) -> "DocumentLine":
        if self.amount != self.quantity * self.unit_price:
            raise ValueError(f"line amount {self.amount} is not {self.quantity} × {self.unit_price}")
        if self.last_day < self.first_day:
            raise ValueError(f"billing period reversed: {self.first_day} .. {self.last_day}")
        return self


class InvoiceDocument(Frozen):
    number: str  # "F-00000042"
    issued_on: date
    due_on: date
    paid_on: date | None = None  # known when issued: a 0 € invoice is paid as it is issued (R16)
    seller: Seller
    buyer: Party  # the payer: the firm, or the client when it pays its own subscription
    client_name: str | None = None  # the subscriber, named when the firm pays for it
    subscription_id: str | None = None
    lines: tuple[DocumentLine, ...]
    subtotal: int  # cents excluding VAT
    tax: int
    total: int
    currency: Literal["EUR"] = "EUR"

    @model_validator(mode="after")
    def _totals_add_up(self) -> "InvoiceDocument":
        if self.subtotal != sum(line.amount for line in self.lines):
            raise ValueError(f"subtotal {self.subtotal} is not the sum of the lines")
        if self.total != self.subtotal + self.tax:
            raise ValueError(f"total {self.total} is not subtotal {self.subtotal} + tax {self.tax}")
        return self

    @property
    def amount_due(self) -> int:
        return 0 if self.paid_on is not None else self.total


# --- from our records ------------------------------------------------------------------------

LINE_LABELS: dict[str, str] = {
    "subscription": "Abonnement {plan}",
    "proration": "Passage à la formule {plan} (prorata)",
    "overage": "Documents au-delà du quota — formule {plan}",
}


def french_date(day: date) -> str:
    return day.strftime("%d/%m/%Y")


class RecordedLine(Frozen):
    """An invoice line as stored: its period is [start, end), `end` excluded."""

    kind: LineKind
    plan_code: str
    period_start: date
    period_end: date
    quantity: int
    amount: int


def document_line(line: RecordedLine, plan_name: str) -> DocumentLine:
    last_day = max(line.period_end - timedelta(days=1), line.period_start)
    label = LINE_LABELS[line.kind].format(plan=plan_name)
    description = f"{label} — du {french_date(line.period_start)} au {french_date(last_day)}"
    quantity = line.quantity
    if quantity <= 0 or line.amount % quantity:  # no exact unit price in cents: one line of the whole
        description, quantity = f"{description} — quantité {line.quantity}", 1
    return DocumentLine(kind=line.kind, description=description, first_day=line.period_start, last_day=last_day,
                        quantity=quantity, unit_price=line.amount // quantity, amount=line.amount)
