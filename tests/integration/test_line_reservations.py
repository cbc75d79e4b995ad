"""R2: a client has at most one live subscription on each line, a bundle holding both, whatever
the timing: the line reservations' primary key decides a race (issue 7 item 10)."""
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.models import Client, Firm, LineReservation
from store.reservations import pass_lines, release_lines, reserve_lines

pytestmark = pytest.mark.postgres

RACES = 20


def seed_clients(factory: sessionmaker[Session], count: int) -> list[str]:
    with factory.begin() as session:
        session.add(Firm(id="cab-1", name="Cabinet Dupont"))
        session.flush()
        clients = [f"cli-{i}" for i in range(count)]
        session.add_all(Client(id=c, name=f"Client {c}", firm_id="cab-1") for c in clients)
        return clients


def reserve(factory: sessionmaker[Session], client_id: str, lines: Sequence[str], subscription_id: str) -> list[str]:
    """What an activity does: reserve, commit if nothing is held by another, else roll back."""
    with factory() as session:
        with session.begin():
            held = reserve_lines(session, client_id=client_id, lines=lines, subscription_id=subscription_id)
            if held:
                session.rollback()
        return held


def holders(factory: sessionmaker[Session], client_id: str) -> dict[str, str]:
    with factory() as session:
        rows = session.execute(
            select(LineReservation.line, LineReservation.subscription_id).where(LineReservation.client_id == client_id)
        )
        return {line: holder for line, holder in rows}


def test_issue_7_item_10_a_bundle_and_a_payments_add_on_racing_for_one_client_one_wins(
    session_factory: sessionmaker[Session],
) -> None:
    """Issue 7 item 10 (R2): a bundle (einvoicing + payments) and a payments add-on subscribed
    at the same moment, 20 times: exactly one wins, the other is told `payments` is held,
    and every reservation left belongs to the winner."""
    clients = seed_clients(session_factory, RACES)
    contenders = {"bundle": ["einvoicing", "payments"], "payments": ["payments"]}
    for client in clients:
        start = Barrier(2)

        def race(kind: str, client: str = client, start: Barrier = start) -> tuple[str, list[str]]:
            subscription = f"sub-{client}-{kind}"
            with session_factory() as session, session.begin():
                start.wait()
                held = reserve_lines(
                    session, client_id=client, lines=contenders[kind], subscription_id=subscription)
                if held:
                    session.rollback()
            return subscription, held

        with ThreadPoolExecutor(max_workers=2) as pool:
            outcomes = list(pool.map(race, contenders))
        winners = [subscription for subscription, held in outcomes if held == []]
        losers = [held for _, held in outcomes if held != []]
        assert len(winners) == 1, outcomes
        assert losers == [["payments"]], outcomes
        (winner,) = winners
        expected = contenders["bundle"] if winner.endswith("-bundle") else contenders["payments"]
        assert holders(session_factory, client) == {line: winner for line in expected}


def test_issue_7_item_10_a_line_held_by_one_subscription_is_refused_to_another(
    session_factory: sessionmaker[Session],
) -> None:
    """Issue 7 item 10 (R2): held lines are returned and nothing of the refused plan is kept;
    reserving again for the holder is a no-op."""
    (client,) = seed_clients(session_factory, 1)
    assert reserve(session_factory, client, ["payments"], "sub-payments") == []
    assert reserve(session_factory, client, ["einvoicing", "payments"], "sub-bundle") == ["payments"]
    assert holders(session_factory, client) == {"payments": "sub-payments"}
    assert reserve(session_factory, client, ["payments"], "sub-payments") == []
    assert reserve(session_factory, client, ["einvoicing"], "sub-einvoicing") == []  # the other line is free
    assert holders(session_factory, client) == {"payments": "sub-payments", "einvoicing": "sub-einvoicing"}


def test_issue_7_item_10_an_ended_subscription_releases_its_lines(session_factory: sessionmaker[Session]) -> None:
    """Issue 7 item 10 (R2): once released, the lines can be taken by a new subscription."""
    (client,) = seed_clients(session_factory, 1)
    assert reserve(session_factory, client, ["einvoicing", "payments"], "sub-bundle") == []
    assert reserve(session_factory, client, ["payments"], "sub-payments") == ["payments"]
    with session_factory.begin() as session:
        release_lines(session, "sub-bundle")
    assert holders(session_factory, client) == {}
    assert reserve(session_factory, client, ["payments"], "sub-payments") == []
    assert holders(session_factory, client) == {"payments": "sub-payments"}


def test_issue_7_item_10_a_take_over_passes_the_lines_to_its_successor(session_factory: sessionmaker[Session]) -> None:
    """Issue 7 item 10 (R2, R10): the successor holds the lines with no moment where they are
    free; the predecessor holds nothing any more and a third subscription is still refused."""
    (client,) = seed_clients(session_factory, 1)
    assert reserve(session_factory, client, ["einvoicing"], "sub-firm-pays") == []
    with session_factory.begin() as session:
        pass_lines(session, "sub-firm-pays", "sub-client-pays")
    assert holders(session_factory, client) == {"einvoicing": "sub-client-pays"}
    assert reserve(session_factory, client, ["einvoicing"], "sub-client-pays") == []  # retried: no-op
    assert reserve(session_factory, client, ["einvoicing"], "sub-other") == ["einvoicing"]
    with session_factory.begin() as session:
        release_lines(session, "sub-firm-pays")  # the predecessor ending frees nothing of its successor's
    assert holders(session_factory, client) == {"einvoicing": "sub-client-pays"}
