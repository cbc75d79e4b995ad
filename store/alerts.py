"""Operator alerts: errors that no retry cures (R11). Stored once per cause and logged; the
workflow that met the error went on without it."""
import logging

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from store.models import OperatorAlert

log = logging.getLogger("billing.alerts")


def raise_alert(session: Session, *, dedupe_key: str, step: str, error: str,
                subscription_id: str | None = None, invoice_id: int | None = None) -> None:
    log.error("operator alert %s: %s: %s (subscription %s, invoice %s)",
              dedupe_key, step, error, subscription_id, invoice_id)
    session.execute(
        pg_insert(OperatorAlert)
        .values(dedupe_key=dedupe_key[:300], step=step[:64], error=error,
                subscription_id=subscription_id, invoice_id=invoice_id)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
