"""The notifications outbox: queued in the transaction of what caused them, once per cause."""
from datetime import date
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from store.models import Notification


def queue_notice(
    session: Session,
    *,
    dedupe_key: str,
    kind: str,
    recipient_kind: str,
    recipient_id: str,
    subject: str,
    business_date: date,
    payload: dict[str, Any] | None = None,
) -> None:
    """Queue a notice unless one with the same key was already queued (retries, replays)."""
    session.execute(
        pg_insert(Notification)
        .values(
            dedupe_key=dedupe_key, kind=kind, recipient_kind=recipient_kind,
            recipient_id=recipient_id, subject=subject, business_date=business_date,
            payload=payload or {},
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
