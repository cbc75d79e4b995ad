"""What callers send to the HTTP API and what actions answer (pydantic; separate from tables).
Reads answer the views of `contracts.views`."""
import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from billing.intervals import Interval, Line, Product
from billing.statuses import SubscriptionStatus
from contracts.subscription import Payer
from einvoice import identifiers

# PostgreSQL text cannot hold NUL: refused at the boundary, with the field named.
NO_NUL = r"^[^\x00]*$"
EMAIL = r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$"
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _one_line(value: str) -> str:
    # Names and addresses go into e-invoices (XML cannot carry most control characters) and mail headers.
    if CONTROL.search(value):
        raise ValueError("must be one line of text, without control characters (tab, line break…)")
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_one_line)]
Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00]*$")]
PostalCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=16),
                       AfterValidator(_one_line)]
City = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(_one_line)]


def _email(value: str) -> str:
    # No control character (NUL cannot be stored; CR/LF would end a mail header)
    if not re.fullmatch(EMAIL, value):
        raise ValueError("must be an address like compta@cabinet.fr")
    return value


Email = Annotated[str, StringConstraints(max_length=320), AfterValidator(_email)]
# Spaces are allowed ("732 829 320"); the length bound only keeps absurd input short.
Siren = Annotated[str, StringConstraints(max_length=40), AfterValidator(identifiers.siren)]
VatNumber = Annotated[str, StringConstraints(max_length=40)]  # checked with the SIREN: LegalIdentity
Country = Annotated[str, StringConstraints(max_length=40), AfterValidator(identifiers.country_code)]
MAX_USAGE_EVENTS = 10_000


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LegalIdentity(Request):
    """The legal identity e-invoices name a firm or a client by (issue 11), validated the same way
    for both, by the API and the CLI. Every field is optional; `null` clears one (but the country).
    A VAT number must hold the SIREN sent with it (the one on record is checked by the portal)."""

    legal_name: Text | None = None
    siren: Siren | None = None  # 9 digits with a valid check digit
    vat_number: VatNumber | None = None  # FR + 2-digit key + SIREN: French numbers only
    address_line1: Text | None = None
    address_line2: Text | None = None
    postal_code: PostalCode | None = None
    city: City | None = None
    country: Country = "FR"  # ISO 3166-1 alpha-2
    billing_email: Email | None = None  # where invoices go, when not the notices' address

    @field_validator("vat_number")
    @classmethod
    def _french_and_of_the_siren(cls, value: str | None, info: ValidationInfo) -> str | None:
        # `siren` is validated first (declared first): absent from `data` when it was refused.
        return None if value is None else identifiers.vat_number(value, siren=info.data.get("siren"))

    def identity(self, *, sent_only: bool = False) -> dict[str, Any]:
        """The identity's fields (all, or only those the caller sent), by column name."""
        return self.model_dump(include=set(LegalIdentity.model_fields), exclude_unset=sent_only)


class ClientCreate(LegalIdentity):
    name: Text
    external_id: Ref | None = None
    email: Email | None = None  # where its notices go
    card: Ref | None = None  # a Stripe payment method id, or a test card number on local Stripe
    firm_id: Ref | None = None  # the operator says which firm manages the client; a firm need not


class Subscribe(Request):
    plan: Ref
    interval: Interval
    payer: Literal["firm", "client"]


class ChangePlanBody(Request):
    plan: Ref


class SwitchIntervalBody(Request):
    interval: Interval


class TakeOverBody(Request):
    payer: Literal["firm", "client"]


class CardBody(Request):
    card: Ref


class UsageEventBody(Request):
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    client_id: Ref
    occurred_at: AwareDatetime
    documents: Annotated[int, Field(ge=1, le=2**31 - 1)]


class UsageBatch(Request):
    events: Annotated[list[UsageEventBody], Field(min_length=1, max_length=MAX_USAGE_EVENTS)]


class UsageAnswer(BaseModel):
    event_id: str
    status: Literal["accepted", "duplicate", "refused"]
    reason: str | None = None


class UsageBatchAnswer(BaseModel):
    accepted: int
    duplicates: int
    refused: int
    results: list[UsageAnswer]  # one per event, in the order sent


class PlanView(BaseModel):
    code: str
    product: Product
    name: str
    features: list[str]
    prices: dict[Interval, int]  # cents excluding VAT, per interval offered
    quota: dict[Interval, int]  # documents per period; 0 = not metered
    overage: int  # cents per document beyond the quota


class SubscriptionAnswer(BaseModel):
    """A subscription as the workflow answered it (R17: its first invoice is issued; the
    charge goes on in the background)."""

    subscription_id: str
    line: Line
    plan: str
    interval: Interval
    payer: Payer
    status: SubscriptionStatus
    period_start: date
    period_end: date


class CardAnswer(BaseModel):
    payer: Payer
    status: Literal["registered"] = "registered"
