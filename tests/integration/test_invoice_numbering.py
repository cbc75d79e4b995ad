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
    with pytest.raises(RuntimeError), session_factory.begin() as session:
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


def draft_dated(factory: sessionmaker[Session], key: str, issued_on: date, content: InvoiceDraft = FEE) -> int:
    with factory.begin() as session:
        return draft_invoice(
            session, idempotency_key=key, client_id="cli-1", payer_kind="firm",
            payer_id="cab-1", issued_on=issued_on, content=content,
        ).id


def numbered(factory: sessionmaker[Session]) -> list[tuple[int, date]]:
    with factory() as session:
        rows = session.execute(
            select(Invoice.number, Invoice.issued_on).where(Invoice.number.is_not(None)).order_by(Invoice.number)
        )
        return [(number, issued_on) for number, issued_on in rows]


def test_issue_7_item_13_an_invoice_finalised_late_is_dated_the_day_of_the_one_before_it(
    session_factory: sessionmaker[Session],
) -> None:
    """Issue 7 item 13 (French law: chronological numbering): an invoice whose activity ran late
    takes the next number and is never dated before the invoice numbered just before it."""
    seed_drafts(session_factory, 0)
    on_time = draft_dated(session_factory, "test:on-time", date(2025, 10, 2))
    late = draft_dated(session_factory, "test:late", date(2025, 10, 1))
    assert finalize(session_factory, on_time) == 1
    with session_factory.begin() as session:
        invoice = finalize_invoice(session, late)
        assert (invoice.number, invoice.issued_on) == (2, date(2025, 10, 2))
    assert numbered(session_factory) == [(1, date(2025, 10, 2)), (2, date(2025, 10, 2))]
    later = draft_dated(session_factory, "test:later", date(2025, 10, 5))
    assert finalize(session_factory, later) == 3  # a later business date keeps its own day
    assert numbered(session_factory)[-1] == (3, date(2025, 10, 5))


SHUFFLED_DAYS = [date(2025, 10, day) for day in (7, 3, 3, 12, 1, 9, 15, 2, 15, 11, 4, 20, 18, 6)]


def test_issue_7_item_13_sorted_by_number_issue_dates_never_go_backwards(
    session_factory: sessionmaker[Session],
) -> None:
    """Issue 7 item 13: finalisations in shuffled business-date order; each invoice is dated
    the latest business date numbered so far (its own, or a previous invoice's)."""
    assert sorted(SHUFFLED_DAYS) != SHUFFLED_DAYS
    seed_drafts(session_factory, 0)
    ids = [draft_dated(session_factory, f"test:{i}", day) for i, day in enumerate(SHUFFLED_DAYS)]
    for invoice_id in ids:
        finalize(session_factory, invoice_id)
    stored = numbered(session_factory)
    assert [number for number, _ in stored] == list(range(1, len(ids) + 1))
    days = [issued_on for _, issued_on in stored]
    assert days == sorted(days)
    assert days == [max(SHUFFLED_DAYS[: i + 1]) for i in range(len(SHUFFLED_DAYS))]


def test_issue_7_item_13_concurrent_finalisations_with_mixed_dates_keep_dates_in_number_order(
    session_factory: sessionmaker[Session],
) -> None:
    """Issue 7 item 13 under concurrency: whichever takes the counter first, no invoice numbered
    later is dated earlier, and none is dated before its own business date."""
    seed_drafts(session_factory, 0)
    days_in_draft_order = [date(2025, 10, 1 + (i * 11) % 28) for i in range(30)]  # 1, 12, 23, 6, 17…
    business_days = {draft_dated(session_factory, f"test:{i}", day): day for i, day in enumerate(days_in_draft_order)}
    start = Barrier(15)

    def finalize_together(invoice_id: int) -> int:
        start.wait()
        return finalize(session_factory, invoice_id)

    with ThreadPoolExecutor(max_workers=15) as pool:
        numbers = list(pool.map(finalize_together, business_days))
    assert sorted(numbers) == list(range(1, 31))
    days = [issued_on for _, issued_on in numbered(session_factory)]
    assert days == sorted(days)
    with session_factory() as session:
        for invoice in session.scalars(select(Invoice)):
            assert invoice.issued_on >= business_days[invoice.id]


FREE = InvoiceDraft((InvoiceLine(LineKind.SUBSCRIPTION, "gratuit", date(2025, 9, 1), date(2025, 10, 1), 1, 0),))


def test_issue_7_item_13_a_zero_total_is_finalised_paid_any_other_total_open(
    session_factory: sessionmaker[Session],
) -> None:
    """Issue 7 item 13 with R16: an invoice whose total is 0 is issued and paid at once."""
    seed_drafts(session_factory, 0)
    free = draft_dated(session_factory, "test:free", date(2025, 9, 1), FREE)
    paying = draft_dated(session_factory, "test:paying", date(2025, 9, 1))
    with session_factory.begin() as session:
        invoice = finalize_invoice(session, free)
        assert (invoice.number, invoice.total, invoice.status) == (1, 0, "paid")
    with session_factory.begin() as session:
        invoice = finalize_invoice(session, paying)
        assert (invoice.number, invoice.total, invoice.status) == (2, 2280, "open")
    with session_factory() as session:
        statuses = {number: status for number, status in session.execute(select(Invoice.number, Invoice.status))}
        assert statuses == {1: "paid", 2: "open"}
