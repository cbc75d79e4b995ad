"""Our payment records against Stripe's PaymentIntents: every way they can disagree.

Pure: the caller reads both sides; this says what does not match, in words an operator acts on.
"""
from collections import defaultdict
from dataclasses import dataclass

from billing.money import Cents, format_eur
from billing.statuses import AttemptStatus, InvoiceStatus


@dataclass(frozen=True)
class RecordedPayment:
    """One of our payment attempts, with its invoice."""

    invoice_id: int
    invoice_number: str | None
    invoice_status: str  # open, paid, uncollectible
    invoice_total: Cents
    attempt_status: str  # pending, succeeded, declined, requires_action, canceled, error, none
    amount: Cents
    intent_id: str | None
    collects: Cents | None = None  # what the attempt collects: this invoice and those it took along (R16)


@dataclass(frozen=True)
class StripeIntent:
    id: str
    invoice_id: int | None  # from its metadata
    status: str
    amount: Cents


@dataclass(frozen=True)
class Mismatch:
    kind: str  # charged_not_recorded, recorded_not_charged, amount_differs, charged_twice
    invoice_id: int | None
    detail: str


def reconcile(recorded: list[RecordedPayment], intents: list[StripeIntent]) -> list[Mismatch]:
    found: list[Mismatch] = []
    by_id = {i.id: i for i in intents}
    ours = {r.intent_id for r in recorded if r.intent_id}
    succeeded_by_invoice: dict[int | None, list[StripeIntent]] = defaultdict(list)
    for intent in intents:
        if intent.status == "succeeded":
            succeeded_by_invoice[intent.invoice_id].append(intent)

    for invoice_id, charged in succeeded_by_invoice.items():
        if len(charged) > 1:
            found.append(Mismatch("charged_twice", invoice_id,
                                  f"{len(charged)} succeeded charges: {', '.join(sorted(i.id for i in charged))}"))
    for intent in intents:
        if intent.status == "succeeded" and intent.id not in ours:
            found.append(Mismatch("charged_not_recorded", intent.invoice_id,
                                  f"{intent.id} charged {format_eur(intent.amount)}; no attempt of ours names it"))

    # A 0 € invoice is paid with no charge (R16).
    paid_invoices = {r.invoice_id for r in recorded if r.invoice_status == InvoiceStatus.PAID and r.invoice_total > 0}
    for r in recorded:
        label = r.invoice_number or f"#{r.invoice_id}"
        named = by_id.get(r.intent_id) if r.intent_id else None
        if r.intent_id and named is None:
            found.append(Mismatch("recorded_not_charged", r.invoice_id,
                                  f"invoice {label}: {r.intent_id} is not in Stripe"))
            continue
        if named is None:
            continue
        intent = named
        expected = r.invoice_total if r.collects is None else r.collects
        if intent.amount != r.amount or r.amount != expected:
            found.append(Mismatch("amount_differs", r.invoice_id,
                                  f"invoice {label}: to collect {format_eur(expected)}, attempt "
                                  f"{format_eur(r.amount)}, Stripe {format_eur(intent.amount)} ({intent.id})"))
        if r.attempt_status == AttemptStatus.SUCCEEDED and intent.status != "succeeded":
            found.append(Mismatch("recorded_not_charged", r.invoice_id,
                                  f"invoice {label}: recorded paid but {intent.id} is {intent.status}"))
        settled = r.attempt_status == AttemptStatus.SUCCEEDED and r.invoice_status == InvoiceStatus.PAID
        if intent.status == "succeeded" and not settled:
            found.append(Mismatch("charged_not_recorded", r.invoice_id,
                                  f"invoice {label}: {intent.id} succeeded but our attempt is "
                                  f"{r.attempt_status} and the invoice {r.invoice_status}"))
    recorded_ids = {r.invoice_id for r in recorded if r.attempt_status == AttemptStatus.SUCCEEDED}
    for invoice_id in sorted(paid_invoices - recorded_ids):
        found.append(Mismatch("recorded_not_charged", invoice_id,
                              f"invoice #{invoice_id} is paid but no attempt of ours succeeded"))
    return found
