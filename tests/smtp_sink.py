"""A real SMTP server for tests (aiosmtpd on loopback) that keeps what arrives, parsed; it can
be stopped and started again on the same port to play an outage."""
import email
import email.policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from embedded.processes import free_port


class _Keep:
    def __init__(self, inbox: "SmtpSink") -> None:
        self.inbox = inbox

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,  # noqa: N802
                          options: list[str]) -> str:
        if self.inbox.refuse_sender:
            return self.inbox.refuse_sender
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,  # noqa: N802
                          options: list[str]) -> str:
        if address in self.inbox.refuse:
            return self.inbox.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content: Any = envelope.original_content or envelope.content
        self.inbox.received.append(email.message_from_bytes(content, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 Message accepted"


class SmtpSink:
    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[EmailMessage] = []
        self.refuse: dict[str, str] = {}  # address -> SMTP answer, e.g. "550 no such user"
        self.refuse_sender: str | None = None  # e.g. "553 5.7.1 sender not allowed"
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller = Controller(_Keep(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.received]
