from billing.reconciliation import RecordedPayment, StripeIntent, reconcile


def paid(invoice_id: int = 1, intent: str = "pi_1", amount: int = 2280) -> RecordedPayment:
    return RecordedPayment(invoice_id, f"F-{invoice_id}", "paid", 2280, "succeeded", amount, intent)


def charged(intent: str = "pi_1", invoice_id: int = 1, amount: int = 2280, status: str = "succeeded") -> StripeIntent:
    return StripeIntent(intent, invoice_id, status, amount)


def kinds(recorded: list[RecordedPayment], intents: list[StripeIntent]) -> list[str]:
    return sorted(m.kind for m in reconcile(recorded, intents))


def test_agreeing_records_report_nothing() -> None:
    assert reconcile([paid()], [charged()]) == []


def test_an_unconfirmed_orphan_intent_is_harmless() -> None:
    assert reconcile([paid()], [charged(), charged("pi_orphan", status="requires_confirmation")]) == []


def test_charged_but_not_recorded() -> None:
    pending = RecordedPayment(1, "F-1", "open", 2280, "pending", 2280, "pi_1")
    assert kinds([pending], [charged()]) == ["charged_not_recorded"]
    assert kinds([], [charged("pi_x")]) == ["charged_not_recorded"]


def test_recorded_but_not_charged() -> None:
    assert kinds([paid()], [charged(status="requires_payment_method")]) == ["recorded_not_charged"]
    assert kinds([paid()], []) == ["recorded_not_charged"]


def test_amount_differs() -> None:
    assert kinds([paid()], [charged(amount=2281)]) == ["amount_differs"]


def test_two_succeeded_charges_for_one_invoice() -> None:
    assert "charged_twice" in kinds([paid()], [charged(), charged("pi_2")])
