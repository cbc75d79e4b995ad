"""A local SMTP server for the embedded default (SMTP_URL unset): it accepts every mail and
keeps each one as a file, `DATA_DIR/mail/<received>-<n>.eml`, readable with any text viewer
or mail client. Nothing leaves the machine."""
import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from embedded.processes import free_port


class KeepAsFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        content: Any = envelope.original_content or envelope.content or b""
        data = content if isinstance(content, bytes) else str(content).encode()
        (self.folder / f"{stamp}-{next(self._numbers):05d}.eml").write_bytes(data)
        return "250 Message accepted"


class MailCatcher:
    """with MailCatcher(folder) as catcher: catcher.url is an SMTP_URL for the dispatcher."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = port or free_port()
        self._controller = Controller(KeepAsFiles(folder), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> "MailCatcher":
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
