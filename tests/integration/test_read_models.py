"""R14 read from PostgreSQL (issue 8 item 4): the client tab, billing history, invoices by
number, the firm overview and its totals, keyset pagination and the cursors we refuse."""
import base64
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from billing.catalog import Catalog, load_catalog
from billing.intervals import Interval
from billing.invoices import draft, overage_line, subscription_line
from billing.periods import Period
from billing.quota import Consumption
from store.invoices import draft_invoice, finalize_invoice
from store.models import Client, Firm, Subscription, SubscriptionPeriod
from store.read_models import (
    MALFORMED_CURSOR,
    client_invoices,
    client_tab,
    firm_overview,
    invoice_by_number,
    list_clients,
)

pytestmark = pytest.mark.postgres

CATALOG = load_catalog()
START, END = date(2025, 9, 1), date(2025, 10, 1)


def add_firm_and_clients(session: Session, firm_id: str, *client_ids: str) -> None:
    session.add(Firm(id=firm_id, name=f"Cabinet {firm_id}"))
    session.flush()
    for client_id in client_ids:
        session.add(Client(id=client_id, name=f"Client {client_id}", firm_id=firm_id,
                           external_id=f"ext-{client_id}", email=f"{client_id}@example.fr"))
    session.flush()


def add_subscription(
    session: Session, *, client_id: str, firm_id: str, plan: str, payer: str, line: str = "einvoicing",
    interval: str = "monthly", status: str = "active", used: int = 0, scheduled: dict[str, Any] | None = None,
    start: date = START, end: date = END, ended: bool = False,
) -> str:
    """A subscription row as the workflow writes it, its current period with `used` documents,
    and a closed period before it whose usage must never be read as this period's.
    `payer` is "firm" (the client's firm pays) or "client"."""
    p = CATALOG.plan(plan)
    sub_id = f"sub-{client_id}-{line}" + ("-old" if ended else "")
    session.add(Subscription(
        id=sub_id, client_id=client_id, line=line, product=p.product.value, plan_code=plan, interval=interval,
        quota=p.quota_for(Interval(interval)), firm_id=firm_id, payer_kind=payer,
        payer_id=firm_id if payer == "firm" else client_id, status="ended" if ended else status,
        anchor=start, period_start=start, period_end=end, scheduled=scheduled or {}, started_on=start,
        ended_on=end if ended else None, ended_reason="canceled" if ended else None,
        used=used,  # the reports keep the row's copy equal to its current period's
    ))
    session.flush()
    session.add(SubscriptionPeriod(subscription_id=sub_id, period_start=start, period_end=end, client_id=client_id,
                                   used=used))
    session.add(SubscriptionPeriod(subscription_id=sub_id, period_start=start - timedelta(days=30), period_end=start,
                                   client_id=client_id, used=9999, documents=9999, closed_at=datetime.now(UTC)))
    session.flush()
    return sub_id


def walk(fetch: Callable[[str | None], tuple[list[Any], str | None]]) -> list[list[Any]]:
    """Every page, following next_cursor from the first page to the last."""
    pages, cursor = [], None
    while True:
        items, cursor = fetch(cursor)
        pages.append(items)
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor does not move"


# --- the client tab -------------------------------------------------------------------------


def test_client_tab_shows_metered_and_unmetered_lines_with_overage_so_far(session_factory: sessionmaker[Session]) -> None:
    """Option 1 (R2): the firm pays e-invoicing (Standard, 230 of 200 used), the client pays the
    payments add-on (not metered); a subscription that ended earlier is not shown."""
    with session_factory.begin() as session:
        add_firm_and_clients(session, "cab-1", "cli-1")
        add_subscription(session, client_id="cli-1", firm_id="cab-1", plan="essentiel", payer="firm", ended=True,
                         start=date(2025, 7, 1), end=date(2025, 8, 1))
        add_subscription(session, client_id="cli-1", firm_id="cab-1", plan="standard", payer="firm", used=230)
        add_subscription(session, client_id="cli-1", firm_id="cab-1", plan="paiements", payer="client",
                         line="payments", used=0)

    with session_factory() as session:
        tab = client_tab(session, CATALOG, client_id="cli-1")
    assert tab is not None
    assert (tab.client.id, tab.client.external_id, tab.client.firm_id) == ("cli-1", "ext-cli-1", "cab-1")
    assert [s.line for s in tab.subscriptions] == ["einvoicing", "payments"]
    einvoicing, payments = tab.subscriptions

    assert (einvoicing.plan.code, einvoicing.plan.name, einvoicing.interval) == ("standard", "Standard", "monthly")
    assert (einvoicing.payer.kind, einvoicing.payer.id, einvoicing.status) == ("firm", "cab-1", "active")
    assert (einvoicing.period_start, einvoicing.period_end) == (START, END)
    assert (einvoicing.next_renewal, einvoicing.ends_on) == (END, None)
    assert einvoicing.consumption is not None
    assert einvoicing.consumption.model_dump() == {
        "quota": 200, "used": 230, "left": 0, "overage_documents": 30, "overage_amount": 30 * 19, "overage_price": 19,
    }
    assert einvoicing.scheduled.model_dump() == {
        "plan": None, "interval": None, "ends_on": None, "end_reason": None, "take_over": None,
    }

    assert (payments.plan.name, payments.payer.kind, payments.payer.id) == ("Paiements", "client", "cli-1")
    assert payments.consumption is None  # quota 0: not metered
    assert payments.next_renewal == END


def test_client_tab_pending_cancel_has_no_next_renewal_and_ends_at_the_period_end(
    session_factory: sessionmaker[Session],
) -> None:
    """R5: cancelled, it stays usable with its quota until the period end, then is not renewed;
    R10: the firm stops paying and the client takes over from that date."""
    with session_factory.begin() as session:
        add_firm_and_clients(session, "cab-1", "cli-2", "cli-3")
        add_subscription(session, client_id="cli-2", firm_id="cab-1", plan="essentiel", payer="client",
                         status="pending_cancel", used=12,
                         scheduled={"ends_on": END.isoformat(), "end_reason": "canceled"})
        add_subscription(session, client_id="cli-3", firm_id="cab-1", plan="standard", payer="firm",
                         status="pending_cancel",
                         scheduled={"ends_on": END.isoformat(), "end_reason": "not_renewed", "take_over": "client:cli-3"})

    with session_factory() as session:
        cancelled = client_tab(session, CATALOG, client_id="cli-2")
        stopped = client_tab(session, CATALOG, client_id="cli-3")
    assert cancelled is not None and stopped is not None
    (sub,) = cancelled.subscriptions
    assert (sub.status, sub.next_renewal, sub.ends_on) == ("pending_cancel", None, END)
    assert sub.scheduled.end_reason == "canceled"
    assert sub.consumption is not None and (sub.consumption.used, sub.consumption.left) == (12, 38)

    (sub,) = stopped.subscriptions
    assert (sub.next_renewal, sub.ends_on, sub.scheduled.end_reason) == (None, END, "not_renewed")
    assert sub.scheduled.take_over is not None
    assert (sub.scheduled.take_over.kind, sub.scheduled.take_over.id) == ("client", "cli-3")


def test_client_tab_shows_a_scheduled_downgrade_and_interval_switch(session_factory: sessionmaker[Session]) -> None:
    """R8, R9: the downgrade and the switch take effect at the renewal, which still happens."""
    with session_factory.begin() as session:
        add_firm_and_clients(session, "cab-1", "cli-4")
        add_subscription(session, client_id="cli-4", firm_id="cab-1", plan="premium", payer="firm", interval="annual",
                         end=date(2026, 9, 1), used=40, scheduled={"plan": "essentiel", "interval": "monthly"})

    with session_factory() as session:
        tab = client_tab(session, CATALOG, client_id="cli-4")
    assert tab is not None
    (sub,) = tab.subscriptions
    assert (sub.plan.code, sub.interval, sub.next_renewal, sub.ends_on) == ("premium", "annual", date(2026, 9, 1), None)
    scheduled = sub.scheduled
    assert scheduled.plan is not None
    assert (scheduled.plan.code, scheduled.plan.name, scheduled.interval) == ("essentiel", "Essentiel", "monthly")
    assert sub.consumption is not None and (sub.consumption.quota, sub.consumption.overage_amount) == (12000, 0)


def test_an_unknown_client_has_no_tab(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        assert client_tab(session, CATALOG, client_id="nobody") is None


# --- clients --------------------------------------------------------------------------------


def test_clients_of_a_firm_page_by_page_and_all_of_them_for_the_operator(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        add_firm_and_clients(session, "cab-1", *(f"cli-{i:02d}" for i in range(7)))
        add_firm_and_clients(session, "cab-2", "cli-x", "cli-y")

    with session_factory() as session:
        def fetch(firm_id: str | None) -> Callable[[str | None], tuple[list[Any], str | None]]:
            def one(cursor: str | None) -> tuple[list[Any], str | None]:
                page = list_clients(session, firm_id=firm_id, cursor=cursor, limit=3)
                return page.items, page.next_cursor
            return one

        firm_pages = walk(fetch("cab-1"))
        everyone = [c.id for page in walk(fetch(None)) for c in page]
    assert [len(p) for p in firm_pages] == [3, 3, 1]
    assert [c.id for page in firm_pages for c in page] == [f"cli-{i:02d}" for i in range(7)]
    assert all(c.firm_id == "cab-1" for page in firm_pages for c in page)
    assert everyone == sorted([f"cli-{i:02d}" for i in range(7)] + ["cli-x", "cli-y"])


# --- invoices -------------------------------------------------------------------------------


def issue(session: Session, key: str, client_id: str, payer: tuple[str, str], issued_on: date,
          used: int | None = None) -> str:
    """A numbered invoice of the Essentiel fee for the month from `issued_on`, with the previous
    month's overage when `used` is given, as the workflow's activity issues it."""
    plan = CATALOG.plan("essentiel")
    period = Period(issued_on, date(issued_on.year + issued_on.month // 12, issued_on.month % 12 + 1, 1))
    overage = None
    if used is not None:
        previous = date(issued_on.year - (issued_on.month == 1), (issued_on.month - 2) % 12 + 1, 1)
        overage = overage_line(plan, previous, issued_on, Consumption(quota=plan.quota_for(Interval.MONTHLY), used=used))
    invoice = draft_invoice(
        session, idempotency_key=key, client_id=client_id, payer_kind=payer[0], payer_id=payer[1],
        issued_on=issued_on, content=draft(subscription_line(plan, Interval.MONTHLY, period), overage),
    )
    number = finalize_invoice(session, invoice.id).display_number
    assert number is not None
    return number


def test_billing_history_newest_first_with_lines_every_invoice_once(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        add_firm_and_clients(session, "cab-1", "cli-1", "cli-2")
        numbers = [issue(session, f"inv-{m}", "cli-1", ("firm", "cab-1"), date(2025, m, 1), used=50 + 10 * m)
                   for m in range(1, 6)]
        # Two on one day (a cancel-now's final invoice beside the renewal): the later number first.
        numbers.append(issue(session, "inv-5b", "cli-1", ("client", "cli-1"), date(2025, 5, 1)))
        issue(session, "other-client", "cli-2", ("client", "cli-2"), date(2025, 5, 1))

    with session_factory() as session:
        def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            page = client_invoices(session, client_id="cli-1", cursor=cursor, limit=2)
            return page.items, page.next_cursor

        pages = walk(fetch)
        unknown = client_invoices(session, client_id="nobody", cursor=None, limit=10)
    seen = [i.number for page in pages for i in page]
    assert [len(p) for p in pages] == [2, 2, 2]
    assert seen == list(reversed(numbers))  # newest first, each exactly once
    assert unknown.items == [] and unknown.next_cursor is None

    march = next(i for page in pages for i in page if i.issued_on == date(2025, 3, 1))
    assert [(l.position, l.kind, l.quantity, l.amount) for l in march.lines] == [
        (0, "subscription", 1, 1900), (1, "overage", 30, 30 * 25),  # 80 of 50 used in February
    ]
    assert (march.lines[1].period_start, march.lines[1].period_end) == (date(2025, 2, 1), date(2025, 3, 1))
    assert (march.subtotal, march.tax, march.total) == (2650, 530, 3180)
    assert (march.status, march.currency, march.client_id) == ("open", "eur", "cli-1")
    assert (march.payer.kind, march.payer.id) == ("firm", "cab-1")


def test_an_invoice_by_its_number_and_malformed_numbers_not_found(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        add_firm_and_clients(session, "cab-1", "cli-1")
        first = issue(session, "inv-1", "cli-1", ("firm", "cab-1"), date(2025, 9, 1))
        second = issue(session, "inv-2", "cli-1", ("firm", "cab-1"), date(2025, 10, 1), used=60)

    with session_factory() as session:
        found = invoice_by_number(session, number=second)
        assert second == "F-00000002"
        assert found is not None
        assert (found.number, found.issued_on, found.total) == (second, date(2025, 10, 1), 2580)
        assert [l.kind for l in found.lines] == ["subscription", "overage"]
        assert invoice_by_number(session, number=first) is not None
        for malformed in ["", "F-2", "F-000000002", "f-00000002", "F00000002", "F-0000000x", "F-00000002 ",
                          "G-00000002", "F-00000003", "F-99999999999999999999", "F--0000002", "F-\x0000000002"]:
            assert invoice_by_number(session, number=malformed) is None, malformed


# --- the firm overview ----------------------------------------------------------------------


def seed_overview(session: Session) -> set[str]:
    """cab-1 pays e-invoicing for eight of its clients (one of them cancelled, still live); it
    does not pay the clients' own subscriptions, ended ones, nor cab-2's. Returns what it pays."""
    clients = [f"cli-{i}" for i in range(10)]
    add_firm_and_clients(session, "cab-1", *clients)
    add_firm_and_clients(session, "cab-2", "other-1", "other-2")
    plans = ["essentiel", "standard", "premium", "pack-essentiel"]
    paid = set()
    for i, client_id in enumerate(clients[:8]):
        plan = plans[i % 3]  # a firm pays no bundle (R2)
        paid.add(add_subscription(
            session, client_id=client_id, firm_id="cab-1", plan=plan, payer="firm", used=[0, 45, 260, 1500][i % 4],
            interval="annual" if i == 5 else "monthly", status="pending_cancel" if i == 6 else "active",
        ))
        if i % 2 == 0:  # Option 1: the client pays its payments add-on itself
            add_subscription(session, client_id=client_id, firm_id="cab-1", plan="paiements", payer="client",
                             line="payments")
    add_subscription(session, client_id="cli-0", firm_id="cab-1", plan="premium", payer="firm", ended=True,
                     used=5000, start=date(2025, 6, 1), end=date(2025, 7, 1))
    add_subscription(session, client_id="cli-8", firm_id="cab-1", plan=plans[3], payer="client", used=999)
    add_subscription(session, client_id="cli-9", firm_id="cab-1", plan="standard", payer="client", used=999)
    add_subscription(session, client_id="other-1", firm_id="cab-2", plan="standard", payer="firm", used=999)
    return paid


def test_firm_overview_rows_are_what_the_firm_pays_and_totals_cover_every_page(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        paid = seed_overview(session)

    with session_factory() as session:
        overviews = []

        def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            overview = firm_overview(session, CATALOG, firm_id="cab-1", cursor=cursor, limit=3)
            overviews.append(overview)
            return overview.items, overview.next_cursor

        pages = walk(fetch)
        nothing = firm_overview(session, CATALOG, firm_id="cab-nobody", cursor=None, limit=3)

    rows = [r for page in pages for r in page]
    assert [len(p) for p in pages] == [3, 3, 2]
    assert {r.subscription_id for r in rows} == paid  # not the clients' own, not ended, not cab-2's
    assert len(rows) == len(paid)
    assert [(r.client_id, r.line) for r in rows] == sorted((r.client_id, r.line) for r in rows)
    assert {r.status for r in rows} == {"active", "pending_cancel"}

    for r in rows:  # each row's cost is the plan's fee plus billing.quota's overage so far
        plan = CATALOG.plan(r.plan.code)
        expected_overage = Consumption(quota=r.quota, used=r.used).overage_amount(plan.overage)
        assert (r.fee, r.overage, r.cost) == (plan.price(r.interval), expected_overage, r.fee + expected_overage)
        assert (r.client_name, r.external_id, r.plan.name) == (f"Client {r.client_id}", f"ext-{r.client_id}", plan.name)
    assert any(r.overage > 0 for r in rows) and any(r.overage == 0 for r in rows)

    totals = overviews[0].totals
    assert all(o.totals == totals for o in overviews)  # every page carries the totals of all rows
    assert totals.model_dump() == {
        "clients": 8, "subscriptions": 8, "fees": sum(r.fee for r in rows), "overage": sum(r.overage for r in rows),
        "cost": sum(r.cost for r in rows),
    }
    assert nothing.items == [] and nothing.next_cursor is None and nothing.totals.cost == 0


def encoded(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "", "garbage", "!!!", "é", encoded({"client": "cli-1"}), encoded(["clients"]), encoded(["clients", 42]),
    encoded(["overview", "cli-1"]), encoded(["overview", "cli-1", 7]), encoded(["overview", "cli-\x00", "einvoicing"]),
    encoded(["invoices", "2025-13-01", 1, 1]), encoded(["invoices", "2025-01-01", 2**63, 1]),
    encoded(["invoices", "2025-01-01", True, 1]), base64.urlsafe_b64encode(b"\xff\xfe").decode(),
])
def test_a_cursor_we_did_not_give_is_refused(session_factory: sessionmaker[Session], cursor: str) -> None:
    with session_factory.begin() as session:
        seed_overview(session)
    with session_factory() as session:
        calls: list[Callable[[], object]] = [
            lambda: firm_overview(session, CATALOG, firm_id="cab-1", cursor=cursor, limit=3),
            lambda: client_invoices(session, client_id="cli-1", cursor=cursor, limit=3),
            lambda: list_clients(session, firm_id="cab-1", cursor=cursor, limit=3),
        ]
        for call in calls:
            with pytest.raises(ValueError, match=MALFORMED_CURSOR):
                call()


def test_a_cursor_of_one_list_is_refused_by_another(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        seed_overview(session)
    with session_factory() as session:
        cursor = list_clients(session, firm_id="cab-1", cursor=None, limit=3).next_cursor
        assert cursor is not None
        with pytest.raises(ValueError, match=MALFORMED_CURSOR):
            firm_overview(session, CATALOG, firm_id="cab-1", cursor=cursor, limit=3)
        overview_cursor = firm_overview(session, CATALOG, firm_id="cab-1", cursor=None, limit=3).next_cursor
        assert overview_cursor is not None
        with pytest.raises(ValueError, match=MALFORMED_CURSOR):
            list_clients(session, firm_id="cab-1", cursor=overview_cursor, limit=3)


def test_an_empty_catalogue_still_reads(session_factory: sessionmaker[Session]) -> None:
    """A plan retired from the catalogue still shows, by its code, costing nothing we can price."""
    with session_factory.begin() as session:
        seed_overview(session)
    with session_factory() as session:
        overview = firm_overview(session, Catalog([]), firm_id="cab-1", cursor=None, limit=100)
        tab = client_tab(session, Catalog([]), client_id="cli-1")
    assert overview.totals.subscriptions == 8 and overview.totals.cost == 0
    assert all(r.plan.name == r.plan.code for r in overview.items)
    assert tab is not None and tab.subscriptions[0].plan.name == "standard"


def test_the_overview_cursor_breaks_ties_on_the_line(session_factory: sessionmaker[Session]) -> None:
    """The key is (client_id, line): a page boundary between two lines of one client loses none.
    (R2 has firms pay e-invoicing only; the read model does not rely on it.)"""
    with session_factory.begin() as session:
        add_firm_and_clients(session, "cab-1", "cli-1", "cli-2")
        for client_id in ("cli-1", "cli-2"):
            for line, plan in (("einvoicing", "essentiel"), ("payments", "paiements")):
                add_subscription(session, client_id=client_id, firm_id="cab-1", plan=plan, payer="firm", line=line)
    with session_factory() as session:
        def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            overview = firm_overview(session, CATALOG, firm_id="cab-1", cursor=cursor, limit=1)
            return overview.items, overview.next_cursor

        keys = [(r.client_id, r.line) for page in walk(fetch) for r in page]
    assert keys == [("cli-1", "einvoicing"), ("cli-1", "payments"), ("cli-2", "einvoicing"), ("cli-2", "payments")]
