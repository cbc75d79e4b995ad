"""R4: invoice numbers are sequential with no gap and never reused, under concurrency and retries."""
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from threading import Barrier

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billing.invoices import InvoiceDraft, InvoiceLine, LineKind
from store.invoices import draft_invoice, finalize_invoice
from store.models import Client, Firm, Invoice

pytestmark = pytest.mark.postgres

FEE = InvoiceDraft((InvoiceLine(LineKind.SUBSCRIPTION, "essentiel", date(2025, 9, 1), date(2025, 10, 1), 1, 1900),))


def seed_drafts(factory: sessionmaker[Session], count: int) -> list[int]:
    with factory.begin() as session:
        session.add(Firm(id="cab-1", name="Cabinet Dupont"))
        session.flush()
        session.add(Client(id="cli-1", name="Boulangerie Martin", firm_id="cab-1"))
        session.flush()
        return [
            draft_invoice(
                session, idempotency_key=f"test:{i}", client_id="cli-1", payer_kind="firm",
                payer_id="cab-1", issued_on=date(2025, 9, 1), content=FEE,
            ).id
            for i in range(count)
        ]


def finalize(factory: sessionmaker[Session], invoice_id: int) -> int:
    with factory.begin() as session:
        number = finalize_invoice(session, invoice_id).number
        assert number is not None
        return number


def test_fifty_concurrent_finalisations_take_numbers_one_to_fifty_once_each(session_factory: sessionmaker[Session]) -> None:
    ids = seed_drafts(session_factory, 50)
    start = Barrier(25)

    def finalize_together(invoice_id: int) -> int:
        start.wait()  # the first 25 hit the counter at the same moment
        return finalize(session_factory, invoice_id)

    with ThreadPoolExecutor(max_workers=25) as pool:
        numbers = list(pool.map(finalize_together, ids))
    assert sorted(numbers) == list(range(1, 51))
    with session_factory() as session:
        stored = session.scalars(select(Invoice.number).order_by(Invoice.number)).all()
        assert stored == list(range(1, 51))
        assert set(session.scalars(select(Invoice.status))) == {"open"}


def test_finalising_twice_keeps_the_first_number(session_factory: sessionmaker[Session]) -> None:
    first, second = seed_drafts(session_factory, 2)
    assert finalize(session_factory, first) == 1
    assert finalize(session_factory, first) == 1  # a retried activity
    assert finalize(session_factory, second) == 2


def test_same_invoice_finalised_concurrently_gets_one_number(session_factory: sessionmaker[Session]) -> None:
    (only, other) = seed_drafts(session_factory, 2)
    start = Barrier(10)

    def race(_: int) -> int:
        start.wait()
        return finalize(session_factory, only)

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert set(pool.map(race, range(10))) == {1}
    assert finalize(session_factory, other) == 2


def test_a_rolled_back_finalisation_leaves_no_gap(session_factory: sessionmaker[Session]) -> None:
    first, second = seed_drafts(session_factory, 2)
    with pytest.raises(RuntimeError):
        with session_factory.begin() as session:
            assert finalize_invoice(session, first).number == 1
            raise RuntimeError("crash after numbering, before commit")
    assert finalize(session_factory, second) == 1
    assert finalize(session_factory, first) == 2


def test_retried_draft_returns_the_same_invoice(session_factory: sessionmaker[Session]) -> None:
    (first,) = seed_drafts(session_factory, 1)
    with session_factory.begin() as session:
        again = draft_invoice(
            session, idempotency_key="test:0", client_id="cli-1", payer_kind="firm",
            payer_id="cab-1", issued_on=date(2025, 9, 1), content=FEE,
        )
        assert again.id == first
        assert [line.amount for line in again.lines] == [1900]
        assert (again.subtotal, again.tax, again.total) == (1900, 380, 2280)
