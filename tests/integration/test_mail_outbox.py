"""Notices leave the outbox by SMTP, to a real SMTP server (aiosmtpd) and a real PostgreSQL:
in French, once each, retried while the server is down, never lost."""
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from notices.dispatcher import MAX_ATTEMPTS, MailDispatcher, SmtpDown
from notices.smtp import BadSmtpUrl, SmtpServer
from store.models import Client, Firm, Notification
from store.notifications import queue_notice
from tests.smtp_sink import SmtpSink

pytestmark = pytest.mark.postgres

FACTS = {"client_id": "cli-1", "firm_id": "cab-1", "plan": "Standard", "interval": "monthly",
         "period_start": "2025-09-01", "period_end": "2025-10-01", "payer_kind": "firm", "payer_id": "cab-1",
         "price": 3900}


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = SmtpSink()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def parties(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_factory.begin() as session:
        session.add(Firm(id="cab-1", name="Cabinet Dupont", email="compta@cabinet-dupont.fr"))
        session.flush()
        session.add(Client(id="cli-1", name="Boulangerie Martin", firm_id="cab-1", email="contact@boulangerie.fr"))
    return session_factory


def queue(sessions: sessionmaker[Session], key: str, kind: str = "upgraded", to: tuple[str, str] = ("firm", "cab-1"),
          **facts: str | int) -> None:
    with sessions.begin() as session:
        queue_notice(session, dedupe_key=key, kind=kind, recipient_kind=to[0], recipient_id=to[1],
                     subject=f"cli-1: {kind}", business_date=date(2025, 9, 16), payload={**FACTS, **facts})


def dispatcher(sessions: sessionmaker[Session], sink: SmtpSink) -> MailDispatcher:
    return MailDispatcher(sessions, SmtpServer.from_url(sink.url), "Facturation <facturation@example.fr>")


def rows(sessions: sessionmaker[Session]) -> list[Notification]:
    with sessions() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def test_an_upgrade_notice_arrives_in_french_with_its_amount(parties: sessionmaker[Session], sink: SmtpSink) -> None:
    queue(parties, "upgraded:sub-1:v2:firm:cab-1", amount=1000)
    done = dispatcher(parties, sink).send_due()
    assert len(done.sent) == 1
    [mail] = sink.received
    assert mail["To"] == "Cabinet Dupont <compta@cabinet-dupont.fr>"
    assert mail["From"] == "Facturation <facturation@example.fr>"
    assert mail["Subject"] == "Passage à la formule Standard — Boulangerie Martin"
    body = mail.get_content()
    assert body.startswith("Bonjour Cabinet Dupont,")
    assert "10,00\u00a0€ HT" in body
    [row] = rows(parties)
    assert row.sent_to == "compta@cabinet-dupont.fr" and row.sent_at is not None and row.attempts == 1
    assert row.message_id == mail["Message-ID"]


def test_each_notice_is_sent_once(parties: sessionmaker[Session], sink: SmtpSink) -> None:
    queue(parties, "a", kind="cancel_scheduled")
    queue(parties, "b", kind="reactivated", to=("client", "cli-1"))
    mailer = dispatcher(parties, sink)
    assert len(mailer.send_due().sent) == 2
    assert mailer.send_due().sent == []
    assert dispatcher(parties, sink).send_due().sent == []  # another worker finds nothing either
    assert sink.subjects() == ["Résiliation confirmée — Boulangerie Martin", "Résiliation annulée — Boulangerie Martin"]
    assert sink.received[1]["To"] == "Boulangerie Martin <contact@boulangerie.fr>"


def test_mail_waits_out_an_smtp_outage_and_then_arrives_once(parties: sessionmaker[Session], sink: SmtpSink) -> None:
    mailer = dispatcher(parties, sink)
    queue(parties, "before", kind="quota_80", used=40, quota=50, percent=80)
    assert len(mailer.send_due().sent) == 1
    sink.stop()  # the SMTP server goes down
    queue(parties, "during-1", kind="quota_100", used=50, quota=50, percent=100)
    queue(parties, "during-2", kind="payment_failed", to=("client", "cli-1"), invoice="F-00000007", amount=2280,
          failure="Your card was declined")
    for _ in range(3):
        with pytest.raises(SmtpDown):
            mailer.send_due()
    waiting = [r for r in rows(parties) if r.sent_at is None]
    assert [r.dedupe_key for r in waiting] == ["during-1", "during-2"]
    assert all(r.failed_at is None and r.attempts == 0 for r in waiting)  # nothing lost, nothing given up
    sink.start()  # back
    assert len(mailer.send_due().sent) == 2
    assert mailer.send_due().sent == []
    assert sink.subjects() == [
        "Boulangerie Martin a utilisé 80 % de son quota de documents",
        "Boulangerie Martin a utilisé 100 % de son quota de documents",
        "Échec du paiement de la facture F-00000007 — mettez à jour votre carte",
    ]
    assert "22,80\u00a0€" in sink.received[2].get_content()


def test_a_recipient_without_an_address_is_recorded_not_retried(parties: sessionmaker[Session], sink: SmtpSink) -> None:
    with parties.begin() as session:
        session.get_one(Client, "cli-1").email = None
    queue(parties, "no-address", kind="renewed", to=("client", "cli-1"))
    queue(parties, "firm", kind="renewed")
    done = dispatcher(parties, sink).send_due()
    assert (len(done.sent), len(done.failed)) == (1, 1)
    failed = next(r for r in rows(parties) if r.dedupe_key == "no-address")
    assert failed.last_error == "no e-mail address for client cli-1" and failed.failed_at is not None
    assert dispatcher(parties, sink).send_due().failed == []  # not tried again


def test_an_address_refused_for_good_fails_and_a_busy_one_is_deferred(parties: sessionmaker[Session],
                                                                       sink: SmtpSink) -> None:
    sink.refuse["contact@boulangerie.fr"] = "550 5.1.1 no such mailbox"
    sink.refuse["compta@cabinet-dupont.fr"] = "451 4.7.1 greylisted, try later"
    queue(parties, "client", kind="renewed", to=("client", "cli-1"))
    queue(parties, "firm", kind="renewed")
    mailer = dispatcher(parties, sink)
    done = mailer.send_due()
    assert (done.sent, len(done.failed), len(done.deferred)) == ([], 1, 1)
    client_row, firm_row = rows(parties)
    assert client_row.failed_at is not None and client_row.last_error == "550 5.1.1 no such mailbox"
    assert firm_row.failed_at is None and firm_row.last_error == "451 4.7.1 greylisted, try later"
    assert firm_row.next_attempt_at is not None
    assert mailer.send_due().deferred == []  # not before its next attempt
    del sink.refuse["compta@cabinet-dupont.fr"]
    later = datetime.now(UTC) + timedelta(hours=2)
    assert len(mailer.send_due(now=later).sent) == 1
    assert sink.subjects() == ["Abonnement Standard renouvelé — Boulangerie Martin"]


@pytest.mark.parametrize(("url", "message"), [
    ("http://mail.example.fr", "SMTP_URL must start with smtp:// or smtps://, not 'http://'"),
    ("smtp://", "SMTP_URL names no host"),
    ("smtp://mail.example.fr:99999", "SMTP_URL's port is not a number from 1 to 65535"),
])
def test_a_bad_smtp_url_is_refused_with_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(BadSmtpUrl, match=message):
        SmtpServer.from_url(url)


def test_smtp_url_reads_security_credentials_and_default_ports() -> None:
    assert SmtpServer.from_url("smtps://bob:p%40ss@mail.example.fr") == SmtpServer(
        "mail.example.fr", 465, "tls", "bob", "p@ss")
    assert SmtpServer.from_url("smtp://mail.example.fr?starttls=1").port == 587
    assert SmtpServer.from_url("smtp://127.0.0.1:2525").security == "none"
    assert "p@ss" not in SmtpServer.from_url("smtps://bob:p%40ss@mail.example.fr").describe()


def test_an_address_no_mail_can_carry_fails_alone_and_the_queue_goes_on(parties: sessionmaker[Session],
                                                                         sink: SmtpSink) -> None:
    with parties.begin() as session:  # written before the API refused such addresses
        session.get_one(Client, "cli-1").email = "contact\r\nBcc: everyone@example.fr"
        session.get_one(Firm, "cab-1").email = "élodie@cabinet-dupont.fr"  # not ASCII: not sent (see README)
    queue(parties, "client", kind="renewed", to=("client", "cli-1"))
    queue(parties, "firm", kind="renewed")
    with parties.begin() as session:
        session.add(Firm(id="cab-2", name="Cabinet Blanc", email="compta@cabinet-blanc.fr"))
    queue(parties, "other", kind="quota_80", to=("firm", "cab-2"), used=40, quota=50, percent=80)
    done = dispatcher(parties, sink).send_due()
    assert (len(done.sent), len(done.failed)) == (1, 2)
    assert [str(m["To"]) for m in sink.received] == ["Cabinet Blanc <compta@cabinet-blanc.fr>"]
    client_row, firm_row, _ = rows(parties)
    assert client_row.failed_at is not None and "cannot write the mail" in (client_row.last_error or "")
    assert firm_row.failed_at is not None and "élodie@cabinet-dupont.fr" in (firm_row.last_error or "")


def test_a_sender_the_server_refuses_keeps_every_notice_for_later(parties: sessionmaker[Session],
                                                                  sink: SmtpSink) -> None:
    sink.refuse_sender = "553 5.7.1 sender not allowed"  # our MAIL_FROM or credentials, no notice's fault
    queue(parties, "a", kind="renewed")
    queue(parties, "b", kind="reactivated")
    mailer = dispatcher(parties, sink)
    with pytest.raises(SmtpDown, match="refuses the sender"):
        mailer.send_due()
    assert all(r.failed_at is None and r.sent_at is None for r in rows(parties))
    sink.refuse_sender = None  # the operator fixed MAIL_FROM
    assert len(mailer.send_due().sent) == 2


def test_a_message_refused_for_now_again_and_again_fails_for_good_in_the_end(parties: sessionmaker[Session],
                                                                             sink: SmtpSink) -> None:
    sink.refuse["compta@cabinet-dupont.fr"] = "452 4.2.2 mailbox full"
    queue(parties, "full", kind="renewed")
    with parties.begin() as session:  # two days of temporary refusals already
        session.scalars(select(Notification)).one().attempts = MAX_ATTEMPTS - 1
    done = dispatcher(parties, sink).send_due()
    assert len(done.failed) == 1
    [row] = rows(parties)
    assert row.failed_at is not None and row.last_error == "452 4.2.2 mailbox full"


def test_a_notice_that_breaks_the_sender_is_set_aside_and_the_others_go_on(
        parties: sessionmaker[Session], sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    queue(parties, "broken", kind="renewed")
    queue(parties, "fine", kind="reactivated")
    mailer = dispatcher(parties, sink)
    original = MailDispatcher._message

    def breaks_on_the_first(self: MailDispatcher, session: Session, notice: Notification, *args: object) -> object:
        if notice.dedupe_key == "broken":  # a fake fault of our own code, for this row only
            raise RuntimeError("a bug")
        return original(self, session, notice, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(MailDispatcher, "_message", breaks_on_the_first)
    done = mailer.send_due()
    assert (len(done.sent), len(done.deferred)) == (1, 1)
    broken, fine = rows(parties)
    assert fine.sent_at is not None
    assert broken.sent_at is None and broken.failed_at is None and broken.last_error == "RuntimeError: a bug"
    assert broken.next_attempt_at is not None and broken.next_attempt_at > datetime.now(UTC)


def test_message_ids_are_in_the_senders_domain(parties: sessionmaker[Session], sink: SmtpSink) -> None:
    queue(parties, "a", kind="renewed")
    dispatcher(parties, sink).send_due()
    assert sink.received[0]["Message-ID"].endswith("@example.fr>")


# --- issue 11: an invoice's mail carries its e-invoice ------------------------------------------

def issued_invoice(sessions: sessionmaker[Session], *, with_snapshot: bool = True) -> int:
    """An invoice numbered with (or, as before e-invoicing, without) its parties' snapshot, and its notice."""
    from store.models import Invoice

    with sessions.begin() as session:
        invoice = Invoice(idempotency_key="k", series="F", number=7, client_id="cli-1", payer_kind="firm",
                          payer_id="cab-1", issued_on=date(2025, 9, 1), status="open", subtotal=1900, tax=380,
                          total=2280, parties={"seller": "…"} if with_snapshot else None)
        session.add(invoice)
        session.flush()
        queue_notice(session, dedupe_key=f"invoice:{invoice.id}", kind="invoice_issued", recipient_kind="firm",
                     recipient_id="cab-1", subject="Invoice F-00000007", business_date=date(2025, 9, 1),
                     payload={"invoice": "F-00000007", "invoice_id": invoice.id, "total": 2280, "subtotal": 1900,
                              "tax": 380, "client_id": "cli-1", "issued_on": "2025-09-01"})
        return invoice.id


def test_an_invoice_mail_waits_for_its_e_invoice_then_carries_it(parties: sessionmaker[Session], sink: SmtpSink) -> None:
    from store.invoice_documents import store_document

    invoice_id = issued_invoice(parties)
    mailer = dispatcher(parties, sink)
    done = mailer.send_due()
    assert done.waiting == [rows(parties)[0].id] and done.sent == [] and sink.received == []
    [row] = rows(parties)
    assert row.attempts == 0 and row.failed_at is None  # waiting is not a failed try
    with parties.begin() as session:
        store_document(session, invoice_id, b"<xml/>", b"%PDF-1.7 the e-invoice")
    assert mailer.send_due(now=datetime.now(UTC) + timedelta(minutes=1)).sent == [row.id]
    [mail] = sink.received
    [pdf] = list(mail.iter_attachments())
    assert (pdf.get_filename(), pdf.get_content_type(), pdf.get_content()) == (
        "F-00000007.pdf", "application/pdf", b"%PDF-1.7 the e-invoice")
    assert "La facture est jointe à ce message" in mail.get_body(preferencelist=("plain",)).get_content()


def test_an_invoice_mail_goes_without_an_e_invoice_that_will_not_come(
        parties: sessionmaker[Session], sink: SmtpSink) -> None:
    issued_invoice(parties, with_snapshot=False)  # numbered before e-invoicing: it has none
    assert len(dispatcher(parties, sink).send_due().sent) == 1
    assert list(sink.received[0].iter_attachments()) == []


def test_an_invoice_mail_stops_waiting_after_an_hour(parties: sessionmaker[Session], sink: SmtpSink) -> None:
    from notices.dispatcher import DOCUMENT_WAIT

    issued_invoice(parties)
    with parties.begin() as session:  # queued more than an hour ago: its render failed (the operator was alerted)
        session.get_one(Notification, rows(parties)[0].id).created_at = datetime.now(UTC) - DOCUMENT_WAIT
    assert len(dispatcher(parties, sink).send_due().sent) == 1
    assert list(sink.received[0].iter_attachments()) == []


def test_invoice_mails_go_to_the_billing_address_when_there_is_one(
        parties: sessionmaker[Session], sink: SmtpSink) -> None:
    with parties.begin() as session:
        session.get_one(Firm, "cab-1").billing_email = "factures@cabinet-dupont.fr"
    issued_invoice(parties, with_snapshot=False)
    queue(parties, "u", kind="upgraded", amount=1000)
    assert len(dispatcher(parties, sink).send_due().sent) == 2
    assert [str(m["To"]) for m in sink.received] == ["Cabinet Dupont <factures@cabinet-dupont.fr>",
                                                      "Cabinet Dupont <compta@cabinet-dupont.fr>"]
