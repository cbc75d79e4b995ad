"""The simulation's report, read from the system of record (the scenario contract's JSON)."""
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from billing.statuses import SubscriptionStatus
from store.models import Invoice, Subscription


def build_report(session: Session, errors: list[dict[str, Any]], to_scenario: Callable[[date], date]) -> dict[str, Any]:
    def d(value: date | None) -> str | None:
        return None if value is None else to_scenario(value).isoformat()

    invoices = session.scalars(
        select(Invoice).where(Invoice.number.is_not(None)).order_by(Invoice.number)
        .options(selectinload(Invoice.lines))
    ).all()
    subscriptions = session.scalars(select(Subscription).order_by(Subscription.started_on, Subscription.updated_at)).all()
    return {
        "invoices": [
            {
                "number": inv.display_number, "client": inv.client_id,
                "payer": f"{inv.payer_kind}:{inv.payer_id}", "issued_on": d(inv.issued_on),
                "lines": [
                    {"kind": line.kind, "plan": line.plan_code, "period_start": d(line.period_start),
                     "period_end": d(line.period_end), "quantity": line.quantity, "amount": line.amount}
                    for line in inv.lines
                ],
                "subtotal": inv.subtotal, "tax": inv.tax, "total": inv.total, "status": inv.status,
            }
            for inv in invoices
        ],
        "subscriptions": [
            {
                "client": sub.client_id, "line": sub.line, "plan": sub.plan_code, "interval": sub.interval,
                "payer": f"{sub.payer_kind}:{sub.payer_id}", "status": sub.status,
                **({"ended_on": d(sub.ended_on), "ended_reason": sub.ended_reason}
                   if sub.status == SubscriptionStatus.ENDED else {}),
            }
            for sub in subscriptions
        ],
        "errors": errors,
    }
