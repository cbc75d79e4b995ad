"""The e-mails' French texts (notices/texts.py): every kind the product queues has one, with
French dates and amounts. Pure: no SMTP, no database."""
import pytest

from notices.texts import TEXTS, Names, UnknownKind, write

BASE = {"client_id": "cli-1", "firm_id": "cab-1", "plan": "Essentiel", "interval": "monthly",
        "period_start": "2025-09-01", "period_end": "2025-10-01", "payer_kind": "firm", "payer_id": "cab-1",
        "price": 1900}
FIRM = Names(recipient="Cabinet Dupont", client="Boulangerie Martin", recipient_is_client=False)
CLIENT = Names(recipient="Boulangerie Martin", client="Boulangerie Martin", recipient_is_client=True)

EVERY_KIND = {
    "started": {},
    "renewed": {},
    "upgraded": {"amount": 1900},
    "downgrade_scheduled": {"new_plan": "Découverte", "effective_on": "2025-10-01"},
    "interval_switch_scheduled": {"new_interval": "annual", "effective_on": "2025-10-01"},
    "cancel_scheduled": {},
    "reactivated": {},
    "ended": {"ended_on": "2025-10-01", "reason": "canceled"},
    "firm_stops_paying": {},
    "take_over_registered": {"new_payer_kind": "client", "new_payer_id": "cli-1", "effective_on": "2025-10-01"},
    "payment_failed": {"invoice": "F-00000042", "amount": 2280, "failure": "Your card was declined"},
    "invoice_issued": {"invoice": "F-00000042", "issued_on": "2025-09-01", "subtotal": 1900, "tax": 380,
                       "total": 2280},
    "invoice_uncollectible": {"invoice": "F-00000042", "total": 2280},
    "quota_80": {"used": 40, "quota": 50, "percent": 80},
    "quota_100": {"used": 50, "quota": 50, "percent": 100},
}


def test_every_kind_the_product_queues_has_a_french_text() -> None:
    assert set(TEXTS) == set(EVERY_KIND)


@pytest.mark.parametrize("kind", sorted(EVERY_KIND))
def test_each_text_greets_signs_and_names_the_client(kind: str) -> None:
    letter = write(kind, {**BASE, **EVERY_KIND[kind]}, FIRM)
    assert letter.body.startswith("Bonjour Cabinet Dupont,\n")
    assert letter.body.rstrip().endswith("Le service facturation")
    assert "Boulangerie Martin" in letter.subject + letter.body
    assert "{" not in letter.subject + letter.body  # nothing left unfilled


def test_amounts_read_as_french_readers_write_them() -> None:
    letter = write("invoice_issued", {**BASE, **EVERY_KIND["invoice_issued"]}, FIRM)
    assert "Total HT : 19,00\u00a0€" in letter.body
    assert "TVA (20 %) : 3,80\u00a0€" in letter.body
    assert "Total TTC : 22,80\u00a0€" in letter.body
    upgraded = write("upgraded", {**BASE, "plan": "Standard", "amount": 123456}, FIRM)
    assert "1\u00a0234,56\u00a0€ HT" in upgraded.body


def test_dates_read_as_in_the_help_article() -> None:
    letter = write("cancel_scheduled", BASE, FIRM)  # R5: active until the period end
    assert "jusqu'au 01/10/2025" in letter.body


def test_the_client_reads_about_its_own_subscription_the_firm_about_its_client() -> None:
    assert "Votre abonnement" in write("renewed", BASE, CLIENT).body
    assert "L'abonnement de votre client Boulangerie Martin" in write("renewed", BASE, FIRM).body


def test_cancelled_now_says_no_refund() -> None:
    letter = write("ended", {**BASE, "ended_on": "2025-09-12", "reason": "canceled_now"}, FIRM)
    assert letter.subject.startswith("Abonnement annulé immédiatement")
    assert "aucun remboursement" in letter.body


def test_a_kind_with_no_text_is_refused_not_sent_half_written() -> None:
    with pytest.raises(UnknownKind, match="no e-mail text for notice kind 'mystery'"):
        write("mystery", BASE, FIRM)
