"""What callers send to the HTTP API and what actions answer (pydantic; separate from tables).
Reads answer the views of `contracts.views`."""
from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from billing.intervals import Interval, Line, Product
from billing.statuses import SubscriptionStatus
from contracts.subscription import Payer

# PostgreSQL text cannot hold NUL: refused at the boundary, with the field named.
NO_NUL = r"^[^\x00]*$"
EMAIL = r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$"
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL)]
Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00]*$")]
MAX_USAGE_EVENTS = 10_000


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClientCreate(Request):
    name: Text
    external_id: Ref | None = None
    # No control character (NUL cannot be stored; CR/LF would end a mail header)
    email: Annotated[str, StringConstraints(max_length=320, pattern=EMAIL)] | None = None
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
