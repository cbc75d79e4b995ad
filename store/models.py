"""Tables of the system of record (typed declarative SQLAlchemy 2).

Amounts are integer cents. Business dates are `date` (Paris calendar dates); technical
timestamps are `timestamptz`. A subscription row is a read model of its workflow's state:
the workflow is the source of truth for its lifecycle, the row is what queries and the API read.
"""
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from billing.intervals import Interval
from billing.statuses import AttemptStatus, InvoiceStatus, PayerKind, SubscriptionStatus, check_in


class Base(DeclarativeBase):
    pass


class LegalIdentity:
    """The legal identity an e-invoice names a firm or a client by (issue 11), completed when known
    (migration 0006)."""

    legal_name: Mapped[str | None] = mapped_column(String(200))
    siren: Mapped[str | None] = mapped_column(String(9))
    vat_number: Mapped[str | None] = mapped_column(String(13))
    address_line1: Mapped[str | None] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(16))
    city: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2), default="FR", server_default="FR")  # ISO 3166-1 alpha-2
    billing_email: Mapped[str | None] = mapped_column(String(320))


class Firm(LegalIdentity, Base):
    __tablename__ = "firms"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Client(LegalIdentity, Base):
    __tablename__ = "clients"
    # The firm's own reference for its client, unique within the firm (R15: never across).
    __table_args__ = (UniqueConstraint("firm_id", "external_id", name="external_id_once_per_firm"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    # Each client is managed by exactly one firm (R2, R15).
    firm_id: Mapped[str] = mapped_column(ForeignKey("firms.id"), index=True)
    external_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(Base):
    """A caller's key, stored as a SHA-256 hash (R15); firm_id NULL means the platform operator."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown to people to tell keys apart
    firm_id: Mapped[str | None] = mapped_column(ForeignKey("firms.id"), index=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        # R14: a firm's overview lists the live subscriptions it pays for, in one indexed query.
        Index("live_by_payer", "payer_kind", "payer_id", "client_id",
              postgresql_where=text("status <> 'ended'")),
        CheckConstraint(check_in("payer_kind", PayerKind), name="payer_kind_known"),
        CheckConstraint(check_in("status", SubscriptionStatus), name="status_known"),
        CheckConstraint(check_in("interval", Interval), name="interval_known"),
        # At most one live subscription per client and line (R2), enforced by the database too.
        Index(
            "one_live_subscription_per_line", "client_id", "line", unique=True,
            postgresql_where=text("status <> 'ended'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # the workflow id
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    line: Mapped[str] = mapped_column(String(16))
    product: Mapped[str] = mapped_column(String(16))
    plan_code: Mapped[str] = mapped_column(String(64))
    interval: Mapped[str] = mapped_column(String(16))
    quota: Mapped[int] = mapped_column(Integer)  # documents per period, current plan (R7)
    firm_id: Mapped[str] = mapped_column(ForeignKey("firms.id"), index=True)  # the client's firm
    payer_kind: Mapped[str] = mapped_column(String(8))
    payer_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    anchor: Mapped[date] = mapped_column(Date)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    scheduled: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    started_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    ended_reason: Mapped[str | None] = mapped_column(String(32))
    # Documents so far in the current period: a copy of its period's `used`, written in the
    # same transaction as each report, so the firm overview (R14) reads one row a subscription.
    used: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Workflow state version last written: an older write never overwrites a newer one.
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class IdempotencyRecord(Base):
    """The first answer to a POST/PUT carrying an `Idempotency-Key`: the same key with the same
    body replays it; with another body, it is refused. Keys are per caller."""

    __tablename__ = "idempotency_records"

    caller: Mapped[str] = mapped_column(String(80), primary_key=True)  # "firm:<id>" or "operator"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[Any] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LineReservation(Base):
    """The lines (R2) a live subscription occupies: a bundle holds both. The primary key is the
    rule: two subscriptions racing for one line cannot both reserve it (one transaction each)."""

    __tablename__ = "line_reservations"

    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), primary_key=True)
    line: Mapped[str] = mapped_column(String(16), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(String(200), index=True)
    reserved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class InvoiceCounter(Base):
    """One row per numbering series; its row lock serialises numbering (R4: no gap, no reuse).

    `last_issued_on` keeps dates in number order (French law: chronological numbering): an
    invoice numbered after another is never dated before it."""

    __tablename__ = "invoice_counters"

    series: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_number: Mapped[int] = mapped_column(BigInteger, default=0)
    last_issued_on: Mapped[date | None] = mapped_column(Date)


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint(check_in("status", InvoiceStatus), name="invoice_status_known"),
        CheckConstraint("subtotal >= 0 and tax >= 0 and total = subtotal + tax", name="totals_add_up"),
        CheckConstraint("(status = 'draft') = (number is null)", name="numbered_unless_draft"),
        UniqueConstraint("series", "number", name="invoice_number_once"),
        # R16: the payer's invoices below the minimum, found by the payer's next charge.
        Index("waiting_by_payer", "payer_kind", "payer_id",
              postgresql_where=text("waiting_since is not null and status = 'open'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # Derived from what the invoice bills (subscription + event), so a retried activity
    # finds the invoice it already drafted instead of making a second one.
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    series: Mapped[str] = mapped_column(String(32), default="F")
    number: Mapped[int | None] = mapped_column(BigInteger)
    subscription_id: Mapped[str | None] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), index=True)
    payer_kind: Mapped[str] = mapped_column(String(8))
    payer_id: Mapped[str] = mapped_column(String(64), index=True)
    issued_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    currency: Mapped[str] = mapped_column(String(3), default="eur")
    subtotal: Mapped[int] = mapped_column(BigInteger)
    tax: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    finalized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # R16: below the minimum charge, it waits (open, not declined) for the payer's next charge.
    waiting_since: Mapped[date | None] = mapped_column(Date)
    # The attempt now collecting it (its own, or another invoice's that took it along, R16):
    # set and cleared under the invoice's row lock, so two charges never take the same invoice.
    collecting_attempt_id: Mapped[int | None] = mapped_column(BigInteger)
    # Issue 11: the seller, the buyer (the payer) and the plan names as they were when it was
    # numbered (einvoice.snapshot), so its e-invoice never changes with a later edit. None for
    # invoices numbered before e-invoicing.
    parties: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    lines: Mapped[list["InvoiceLine"]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.position", cascade="all, delete-orphan"
    )

    @property
    def display_number(self) -> str | None:
        return None if self.number is None else f"{self.series}-{self.number:08d}"


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (
        CheckConstraint("kind in ('subscription', 'proration', 'overage')", name="line_kind_known"),
        UniqueConstraint("invoice_id", "position"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    plan_code: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)

    invoice: Mapped[Invoice] = relationship(back_populates="lines")


class PaymentAttempt(Base):
    """One try at collecting an invoice (and, R16, the payer's waiting invoices it takes
    along: `PaymentAttemptInvoice`) through one PaymentIntent, recorded before Stripe is called."""

    __tablename__ = "payment_attempts"
    __table_args__ = (
        CheckConstraint(check_in("status", AttemptStatus), name="attempt_status_known"),
        UniqueConstraint("invoice_id", "attempt_no"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    attempt_no: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="eur")
    status: Mapped[str] = mapped_column(String(24), default="pending")
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PaymentAttemptInvoice(Base):
    """The invoices one attempt collects: its own first, then the payer's waiting ones (R16)."""

    __tablename__ = "payment_attempt_invoices"

    attempt_id: Mapped[int] = mapped_column(ForeignKey("payment_attempts.id"), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), primary_key=True, index=True)
    amount: Mapped[int] = mapped_column(BigInteger)


class OperatorAlert(Base):
    """An error no retry cures (R11): the workflow went on; a person must look (once per cause)."""

    __tablename__ = "operator_alerts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    subscription_id: Mapped[str | None] = mapped_column(String(200), index=True)
    invoice_id: Mapped[int | None] = mapped_column(BigInteger)
    step: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UsageEvent(Base):
    """Documents the platform processed; `event_id` makes a resent event count once (R12)."""

    __tablename__ = "usage_events"
    __table_args__ = (
        CheckConstraint("documents > 0", name="documents_positive"),
        Index("usage_by_period", "subscription_id", "period_start"),
    )

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"))
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"))
    period_start: Mapped[date] = mapped_column(Date)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    documents: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SubscriptionPeriod(Base):
    """A period a subscription was open for; usage lands in it until it is closed (R12).

    `closed_at` is set when the period's overage is invoiced: usage for it is refused from then
    on. `end` is cut to the end date when a subscription ends early (R6).
    """

    __tablename__ = "subscription_periods"
    __table_args__ = (CheckConstraint("period_end >= period_start", name="period_not_reversed"),)

    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"), primary_key=True)
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    period_end: Mapped[date] = mapped_column(Date)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"))
    # Documents so far, kept by each report under the row's lock: a report reads one row,
    # not the whole period's events (a period may count tens of thousands of them).
    used: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    documents: Mapped[int | None] = mapped_column(Integer)  # the total, once closed
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Notification(Base):
    """Outbox: a notice is queued in the same transaction as what caused it, sent later."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_to_send", "id", postgresql_where=text("sent_at IS NULL AND failed_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # Derived from the cause (e.g. "quota:sub-x:2025-03-01:80:firm:cab-1"): queued once.
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipient_kind: Mapped[str] = mapped_column(String(8))
    recipient_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    business_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Delivery (notices/dispatcher.py): sent once; retried with back-off while the SMTP server
    # refuses for now; failed for good (no address, address refused) with the reason.
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_to: Mapped[str | None] = mapped_column(String(320))
    message_id: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PaymentCustomer(Base):
    """The Stripe customer of a payer (a firm or a client), created once and remembered."""

    __tablename__ = "payment_customers"

    payer_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    payer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    stripe_customer_id: Mapped[str] = mapped_column(String(64), unique=True)
    default_payment_method: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class InvoiceDocument(Base):
    """An invoice's Factur-X e-invoice (issue 11): the CII XML and the PDF/A-3 carrying it,
    written once (a database trigger refuses any update or delete) with their SHA-256."""

    __tablename__ = "invoice_documents"

    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), primary_key=True)
    profile: Mapped[str] = mapped_column(String(64))  # "factur-x en16931"
    xml: Mapped[bytes] = mapped_column(LargeBinary)
    xml_sha256: Mapped[str] = mapped_column(String(64))
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    pdf_sha256: Mapped[str] = mapped_column(String(64))
    rendered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
