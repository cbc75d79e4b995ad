"""Which live subscription holds each line of a client (R2): one row per (client, line).

Reserving every line a plan occupies happens in one transaction, against the primary key: of
two subscriptions racing for a line (a bundle and a payments add-on, say), one wins and the
other is refused, whatever the timing. A subscription that ends frees its lines; a take-over
passes them to its successor in the same transaction (R10: no moment where they are free).
"""
from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from store.models import LineReservation


def reserve_lines(session: Session, *, client_id: str, lines: Sequence[str], subscription_id: str) -> list[str]:
    """Reserve `lines` for the subscription; return those another subscription holds (then
    nothing is reserved: the caller rolls back). Reserving again for the same one is a no-op."""
    for line in sorted(set(lines)):  # one order for everyone: two reservations never deadlock
        session.execute(
            pg_insert(LineReservation)
            .values(client_id=client_id, line=line, subscription_id=subscription_id)
            .on_conflict_do_nothing(index_elements=["client_id", "line"])
        )
    holders = session.execute(
        select(LineReservation.line, LineReservation.subscription_id)
        .where(LineReservation.client_id == client_id, LineReservation.line.in_(lines))
    ).all()
    return sorted(line for line, holder in holders if holder != subscription_id)


def release_lines(session: Session, subscription_id: str) -> None:
    session.execute(delete(LineReservation).where(LineReservation.subscription_id == subscription_id))


def pass_lines(session: Session, subscription_id: str, successor_id: str) -> None:
    session.execute(
        update(LineReservation).where(LineReservation.subscription_id == subscription_id)
        .values(subscription_id=successor_id)
    )
