"""The SMTP server mail leaves through, from SMTP_URL: smtp://[user:pass@]host[:port][?starttls=1]
(port 25, or 587 with STARTTLS) or smtps://[user:pass@]host[:port] (TLS from the start, port 465)."""
import smtplib
import ssl
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

Security = Literal["none", "starttls", "tls"]


class BadSmtpUrl(ValueError):
    """SMTP_URL cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    security: Security = "none"
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> "SmtpServer":
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise BadSmtpUrl(f"SMTP_URL must start with smtp:// or smtps://, not '{parts.scheme}://'")
        if not parts.hostname:
            raise BadSmtpUrl("SMTP_URL names no host, e.g. smtp://mail.example.fr:587?starttls=1")
        try:
            port = parts.port
        except ValueError:
            raise BadSmtpUrl("SMTP_URL's port is not a number from 1 to 65535") from None
        starttls = parse_qs(parts.query).get("starttls", ["0"])[0] in ("1", "true", "yes")
        security: Security = "tls" if parts.scheme == "smtps" else "starttls" if starttls else "none"
        default_port = {"tls": 465, "starttls": 587, "none": 25}[security]
        return cls(host=parts.hostname, port=port or default_port, security=security,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None)

    def connect(self, timeout: float = 120.0) -> smtplib.SMTP:
        """An open, authenticated connection. Raises OSError or smtplib.SMTPException. The
        timeout is long: a server scanning content may take its time to answer the end of DATA
        (RFC 5321 allows 10 minutes); a refused connection still fails at once."""
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.security == "tls":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
        try:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def describe(self) -> str:
        """For logs and `run`'s banner: never the password."""
        who = f"{self.username}@" if self.username else ""
        return f"smtp{'s' if self.security == 'tls' else ''}://{who}{self.host}:{self.port}"
