"""Notices leave the outbox as e-mails: once each, retried while the SMTP server is down, never lost.

A notice row is taken under its row lock (FOR UPDATE SKIP LOCKED: any number of workers send
side by side, never the same notice), sent, and marked sent in the same transaction, one
notice a transaction. So a notice is lost never and sent twice only if the process dies between
the SMTP server's "250 accepted" and the commit; it then goes again with the same Message-ID,
which mail clients use to drop the copy.

- SMTP server unreachable, or gone mid-batch: nothing is marked; the dispatcher waits (doubling
  up to a minute) and tries again. The rows stay in the queue as they were.
- A temporary refusal (4xx) of one message: that notice is deferred (attempts, last error, next
  attempt after a back-off), the others go on.
- No address, or the address refused for good (5xx): failed, with the reason, counted, not
  retried (an operator fixes the address; the row shows what was not sent).
- An invoice's notice carries its Factur-X PDF (issue 11). The e-invoice is rendered just after
  the invoice is numbered: its notice waits for it (not an attempt), for at most
  DOCUMENT_WAIT, then goes without it (the operator was alerted of what failed to render).
"""
import asyncio
import logging
import smtplib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from notices.smtp import SmtpServer
from notices.texts import Letter, Names, UnknownKind, write
from observability.metrics import count
from store.invoice_documents import document_of
from store.models import Client, Firm, Invoice, Notification

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=1)
MAX_ATTEMPTS = 48  # a message refused for now this many times (about two days) fails for good
IDLE_POLL_SECONDS = 2.0
MAX_DOWN_WAIT_SECONDS = 60.0
DOCUMENT_WAIT = timedelta(hours=1)  # an invoice's notice waits this long for its e-invoice at most
DOCUMENT_POLL = timedelta(seconds=10)
# Notices about an invoice or its payment go to the payer's billing address when it has one.
BILLING_KINDS = frozenset({"invoice_issued", "invoice_uncollectible", "payment_failed"})


class SmtpDown(Exception):
    """The SMTP server cannot be reached (or dropped us): retry later, everything is kept."""


@dataclass
class Round:
    """What one round of sending did."""

    sent: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)  # for their invoice's e-invoice, not yet rendered


@dataclass(frozen=True)
class Recipient:
    address: str | None
    name: str


@dataclass(frozen=True)
class Attachment:
    filename: str
    pdf: bytes


class MailDispatcher:
    def __init__(self, sessions: sessionmaker[Session], server: SmtpServer, mail_from: str,
                 batch: int = 100) -> None:
        self._sessions = sessions
        self._server = server
        self._from = mail_from
        self._batch = batch
        # Message-IDs in the sender's own domain (deliverability), e.g. <notice-42@cabinet.fr>
        self._domain = parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"

    def send_due(self, now: datetime | None = None) -> Round:
        """Send what is due, up to a batch. Raises SmtpDown (after keeping what was sent)."""
        done = Round()
        smtp: smtplib.SMTP | None = None
        try:
            for _ in range(self._batch):
                notice_id: int | None = None
                try:
                    with self._sessions.begin() as session:
                        moment = now or datetime.now(UTC)
                        notice = self._next_due(session, moment)
                        if notice is None:
                            break
                        notice_id = notice.id
                        attachment = _invoice_pdf(session, notice)
                        if attachment is None and _waits_for_its_document(session, notice, moment):
                            done.waiting.append(notice_id)
                            continue
                        if smtp is None:
                            smtp = self._connect()
                        outcome = self._deliver(session, smtp, notice, attachment)
                except SmtpDown:
                    raise
                except Exception as exc:  # a bug or a bad row: set it aside, never block the queue
                    if notice_id is None:
                        raise
                    self._set_aside(notice_id, exc)
                    done.deferred.append(notice_id)
                    continue
                getattr(done, outcome).append(notice_id)
        finally:
            if smtp is not None:
                try:
                    smtp.quit()
                except (OSError, smtplib.SMTPException):
                    pass
        return done

    def _set_aside(self, notice_id: int, exc: Exception) -> None:
        log.exception("e-mail %s could not be handled; set aside for an hour", notice_id, extra={"notice_id": notice_id})
        with self._sessions.begin() as session:
            notice = session.get_one(Notification, notice_id, with_for_update=True)
            notice.attempts += 1
            notice.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            notice.next_attempt_at = datetime.now(UTC) + MAX_BACKOFF
            if notice.attempts >= MAX_ATTEMPTS:
                notice.failed_at = datetime.now(UTC)
        count("billing_emails_failed", reason="error")

    def _connect(self) -> smtplib.SMTP:
        try:
            return self._server.connect()
        except (OSError, smtplib.SMTPException) as exc:
            raise SmtpDown(f"{self._server.describe()}: {exc}") from exc

    @staticmethod
    def _next_due(session: Session, now: datetime) -> Notification | None:
        return session.scalars(
            select(Notification)
            .where(Notification.sent_at.is_(None), Notification.failed_at.is_(None),
                   or_(Notification.next_attempt_at.is_(None), Notification.next_attempt_at <= now))
            .order_by(Notification.id).limit(1).with_for_update(skip_locked=True)
        ).first()

    def _deliver(self, session: Session, smtp: smtplib.SMTP, notice: Notification,
                 attachment: "Attachment | None" = None) -> str:
        """'sent', 'deferred' or 'failed'; raises SmtpDown when the connection is lost (the
        transaction is rolled back: the notice stays as it was)."""
        ids = {"notice_id": notice.id, "client_id": notice.payload.get("client_id"),
               "firm_id": notice.payload.get("firm_id")}
        recipient = self._recipient(session, notice.recipient_kind, notice.recipient_id, notice.kind)
        if recipient.address is None:
            return self._fail(notice, f"no e-mail address for {notice.recipient_kind} {notice.recipient_id}",
                              "no_address", ids)
        try:
            message = self._message(session, notice, recipient, attachment)
        except ValueError as exc:  # an address or name no mail header can carry
            return self._fail(notice, f"cannot write the mail to {recipient.address!r}: {exc}", "bad_address", ids)
        notice.attempts += 1
        try:
            smtp.send_message(message)
        except (smtplib.SMTPNotSupportedError, UnicodeError) as exc:  # e.g. a non-ASCII address, no SMTPUTF8
            return self._fail(notice, f"the SMTP server cannot take {recipient.address!r}: {exc}", "refused", ids)
        except smtplib.SMTPSenderRefused as exc:
            if exc.smtp_code >= 500:  # our MAIL FROM or credentials: no notice is at fault, keep them all
                raise SmtpDown(f"{self._server.describe()} refuses the sender {self._from!r}: "
                               f"{exc.smtp_code} {exc.smtp_error!r} (check SMTP_URL's credentials and MAIL_FROM)") from exc
            return self._refused(notice, exc.smtp_code, exc.smtp_error, ids)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reason = next(iter(exc.recipients.values()))
            text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
            if code in (530, 535) or "5.7." in text and "relay" in text.lower():  # not allowed to relay: ours
                raise SmtpDown(f"{self._server.describe()} will not relay for us: {code} {text}") from exc
            return self._refused(notice, code, reason, ids)
        except smtplib.SMTPDataError as exc:
            return self._refused(notice, exc.smtp_code, exc.smtp_error, ids)
        except (OSError, smtplib.SMTPException) as exc:  # disconnected, timed out: the server is down
            count("billing_emails_failed", reason="smtp_down")
            raise SmtpDown(f"{self._server.describe()}: {exc}") from exc
        notice.sent_at, notice.sent_to = datetime.now(UTC), recipient.address
        notice.message_id, notice.last_error, notice.next_attempt_at = message["Message-ID"], None, None
        count("billing_emails_sent", kind=notice.kind)
        log.info("e-mail sent: %s to %s", notice.kind, recipient.address, extra=ids)
        return "sent"

    def _refused(self, notice: Notification, code: int, reason: bytes | str, ids: dict[str, object]) -> str:
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else reason
        if 400 <= code < 500 and notice.attempts < MAX_ATTEMPTS:  # later: mailbox busy, greylisting, rate limits
            notice.last_error = f"{code} {text}"
            notice.next_attempt_at = datetime.now(UTC) + min(timedelta(minutes=2 ** min(notice.attempts, 6)),
                                                             MAX_BACKOFF)
            count("billing_emails_failed", reason="deferred")
            log.warning("e-mail deferred: %s %s", code, text, extra=ids)
            return "deferred"
        return self._fail(notice, f"{code} {text}", "refused", ids)

    @staticmethod
    def _fail(notice: Notification, why: str, reason: str, ids: dict[str, object]) -> str:
        notice.failed_at, notice.last_error = datetime.now(UTC), why
        count("billing_emails_failed", reason=reason)
        log.warning("e-mail not sent: %s", why, extra=ids)
        return "failed"

    @staticmethod
    def _recipient(session: Session, kind: str, recipient_id: str, notice_kind: str) -> Recipient:
        row: Firm | Client | None = session.get(Firm, recipient_id) if kind == "firm" else session.get(Client, recipient_id)
        if row is None:
            return Recipient(None, recipient_id)
        billing = row.billing_email if notice_kind in BILLING_KINDS else None
        return Recipient(billing or row.email or None, row.name)

    def _message(self, session: Session, notice: Notification, recipient: Recipient,
                 attachment: Attachment | None = None) -> EmailMessage:
        client_id = str(notice.payload.get("client_id") or notice.payload.get("client") or "")
        client = session.get(Client, client_id) if client_id else None
        names = Names(recipient=recipient.name, client=client.name if client else client_id,
                      recipient_is_client=notice.recipient_kind == "client")
        try:
            letter = write(notice.kind, notice.payload, names)
        except (KeyError, ValueError, UnknownKind):
            # Queued before its facts were recorded (an older release): its one-line summary.
            letter = Letter(subject=notice.subject, body=f"Bonjour {recipient.name},\n\n{notice.subject}\n")
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = formataddr((recipient.name, recipient.address or ""))
        message["Subject"] = letter.subject
        message["Date"] = formatdate(localtime=False)
        # The same for every attempt at this notice: a copy sent twice is recognisable.
        message["Message-ID"] = f"<notice-{notice.id}@{self._domain}>"
        message["X-Notice-Kind"] = notice.kind
        if attachment is None:
            message.set_content(letter.body)
            return message
        message.set_content(letter.body + f"\nLa facture est jointe à ce message ({attachment.filename}, PDF "
                            "Factur-X : lisible, avec ses données XML pour votre logiciel comptable).\n")
        message.add_attachment(attachment.pdf, maintype="application", subtype="pdf", filename=attachment.filename)
        return message


def _invoice_id(notice: Notification) -> int | None:
    """The invoice a notice is about: in its facts, or (queued before they named it) its key."""
    recorded = notice.payload.get("invoice_id")
    if isinstance(recorded, int):
        return recorded
    prefix, _, rest = notice.dedupe_key.partition(":")
    return int(rest) if prefix == "invoice" and rest.isdigit() else None


def _invoice_pdf(session: Session, notice: Notification) -> Attachment | None:
    """An invoice's notice carries its e-invoice, once stored."""
    invoice_id = _invoice_id(notice) if notice.kind == "invoice_issued" else None
    document = None if invoice_id is None else document_of(session, invoice_id)
    if document is None:
        return None
    return Attachment(filename=f"{notice.payload.get('invoice') or invoice_id}.pdf", pdf=document.pdf)


def _waits_for_its_document(session: Session, notice: Notification, now: datetime) -> bool:
    """An invoice's notice whose e-invoice (not stored yet) is to come (the invoice has its parties'
    snapshot) waits, for DOCUMENT_WAIT at most: looked at again in DOCUMENT_POLL."""
    invoice_id = _invoice_id(notice) if notice.kind == "invoice_issued" else None
    if invoice_id is None or now - notice.created_at >= DOCUMENT_WAIT:
        return False
    if session.scalar(select(Invoice.parties.is_not(None)).where(Invoice.id == invoice_id)) is not True:
        return False
    notice.next_attempt_at = now + DOCUMENT_POLL
    return True


async def dispatch_forever(dispatcher: MailDispatcher, stop: asyncio.Event | threading.Event | None = None) -> None:
    """The worker's sending loop: poll the outbox, back off while SMTP is down."""
    wait_down = 1.0
    while not (stop is not None and stop.is_set()):
        try:
            done = await asyncio.to_thread(dispatcher.send_due)
            wait_down = 1.0
            pause = 0.0 if done.sent or done.deferred or done.failed else IDLE_POLL_SECONDS  # waiting: idle
        except SmtpDown as exc:
            log.warning("SMTP server unreachable, retrying in %.0f s: %s", wait_down, exc)
            pause, wait_down = wait_down, min(wait_down * 2, MAX_DOWN_WAIT_SECONDS)
        except Exception:  # a database hiccup: log it and carry on; the rows are still there
            log.exception("the mail dispatcher failed a round; retrying")
            pause = IDLE_POLL_SECONDS
        if pause:
            await asyncio.sleep(pause)
