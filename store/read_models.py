"""The firm's screens (R14), read from the read model in PostgreSQL, never from workflow queries
(issue 8, item 4): the client tab, clients, billing history, the firm-wide overview.

These functions take ids and do no access checks: the service layer decides who may read what
(R15). An unknown id gives None (or an empty page). Lists paginate by keyset with an opaque
cursor (urlsafe base64 of the last key); a cursor we did not give raises ValueError.
"""
import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    ColumnExpressionArgument,
    Row,
    String,
    and_,
    bindparam,
    case,
    cast,
    column,
    distinct,
    func,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.selectable import TableValuedAlias

from billing.catalog import Catalog, UnknownPlan
from billing.intervals import Interval, Line
from billing.money import Cents
from billing.quota import Consumption
from billing.statuses import InvoiceStatus, PayerKind, SubscriptionStatus
from contracts.subscription import Payer
from contracts.views import (
    PARTY_FIELDS,
    ClientTab,
    ClientView,
    ConsumptionView,
    FirmOverview,
    FirmOverviewRow,
    FirmOverviewTotals,
    FirmView,
    InvoiceLineView,
    InvoiceView,
    Page,
    PlanRef,
    ScheduledChanges,
    SubscriptionView,
)
from store.models import Client, Firm, Invoice, Subscription, SubscriptionPeriod

MALFORMED_CURSOR = "the cursor is not one we gave"
MAX_BIGINT = 2**63 - 1
MAX_KEY_LENGTH = 300  # longer than any id column: a longer string is not a key we gave

T = TypeVar("T")

# The partial indexes' predicate, written as SQL text and not as a bound parameter: the planner
# must prove `status <> 'ended'` to use `live_by_payer`, which it cannot do with a parameter
# in a generic plan (psycopg prepares a statement run 5 times in one transaction).
_LIVE = Subscription.status != literal_column(f"'{SubscriptionStatus.ENDED.value}'")


# --- the client tab -------------------------------------------------------------------------


def client_tab(session: Session, catalog: Catalog, *, client_id: str) -> ClientTab | None:
    """The client's live subscriptions with this period's consumption (R14); None if unknown."""
    client = session.get(Client, client_id)
    if client is None:
        return None
    rows = session.execute(
        select(Subscription, _used())
        .where(Subscription.client_id == client_id, _LIVE)
        .order_by(Subscription.line)
    ).all()
    return ClientTab(client=client_view(client),
                     subscriptions=[_subscription_view(catalog, sub, used) for sub, used in rows])


def _subscription_view(catalog: Catalog, sub: Subscription, used: int) -> SubscriptionView:
    renews = sub.status != SubscriptionStatus.PENDING_CANCEL
    scheduled = _scheduled_changes(catalog, sub)
    consumption = None
    if sub.quota > 0:  # quota 0: not metered (R1), e.g. the payments line
        _, price = _prices(catalog, sub.plan_code, sub.interval)
        consumption = ConsumptionView.of(quota=sub.quota, used=used, overage_price=price)
    return SubscriptionView(
        line=Line(sub.line), subscription_id=sub.id, plan=_plan_ref(catalog, sub.plan_code),
        interval=Interval(sub.interval), payer=_payer(sub.payer_kind, sub.payer_id),
        status=SubscriptionStatus(sub.status), period_start=sub.period_start, period_end=sub.period_end,
        next_renewal=sub.period_end if renews else None,
        # A pending cancellation ends at the period end (R5, R10), even if `scheduled` lacks it.
        ends_on=None if renews else (scheduled.ends_on or sub.period_end),
        scheduled=scheduled, consumption=consumption,
    )


def _scheduled_changes(catalog: Catalog, sub: Subscription) -> ScheduledChanges:
    """Read the `scheduled` JSON the workflow writes (activities/records.py `_scheduled`)."""
    raw = sub.scheduled or {}
    plan, interval, ends_on, take_over = raw.get("plan"), raw.get("interval"), raw.get("ends_on"), raw.get("take_over")
    return ScheduledChanges(
        plan=_plan_ref(catalog, plan) if plan else None,
        interval=Interval(interval) if interval else None,
        ends_on=date.fromisoformat(ends_on) if ends_on else None,
        end_reason=raw.get("end_reason"),
        take_over=_payer_from_label(take_over) if take_over else None,
    )


def _payer_from_label(label: str) -> Payer:
    kind, _, payer_id = label.partition(":")  # Payer.label: "firm:cab-2"
    return _payer(kind, payer_id)


def _payer(kind: str, payer_id: str) -> Payer:
    return Payer.model_validate({"kind": kind, "id": payer_id})


# --- clients --------------------------------------------------------------------------------


def list_clients(session: Session, *, firm_id: str | None, cursor: str | None, limit: int) -> Page[ClientView]:
    """The firm's clients by id; every client when `firm_id` is None (the operator)."""
    _check_limit(limit)
    statement = select(Client).order_by(Client.id).limit(limit + 1)
    if firm_id is not None:
        statement = statement.where(Client.firm_id == firm_id)
    if cursor is not None:
        (after,) = _decode(cursor, "clients", (_key_str,))
        statement = statement.where(Client.id > after)
    clients, next_cursor = _page(list(session.scalars(statement)), limit, lambda c: _encode("clients", c.id))
    return Page[ClientView](items=[client_view(c) for c in clients], next_cursor=next_cursor)


def client_view(client: Client) -> ClientView:
    return ClientView(id=client.id, external_id=client.external_id, name=client.name, email=client.email,
                      firm_id=client.firm_id, **party_fields(client))


def firm_view(firm: Firm) -> FirmView:
    return FirmView(id=firm.id, name=firm.name, email=firm.email, **party_fields(firm))


def party_fields(party: Firm | Client) -> dict[str, Any]:
    """The legal identity (issue 11) of a firm or a client row, as its view shows it."""
    return {name: getattr(party, name) for name in PARTY_FIELDS}


# --- invoices -------------------------------------------------------------------------------


def client_invoices(session: Session, *, client_id: str, cursor: str | None, limit: int) -> Page[InvoiceView]:
    """The client's issued invoices, newest first, with their lines (R14's billing history)."""
    _check_limit(limit)
    key = (Invoice.issued_on, Invoice.number, Invoice.id)  # numbers follow dates (R4); id breaks ties
    statement = (
        select(Invoice).options(selectinload(Invoice.lines))
        .where(Invoice.client_id == client_id, Invoice.number.is_not(None))  # drafts are not issued
        .order_by(*(k.desc() for k in key)).limit(limit + 1)
    )
    if cursor is not None:
        issued_on, number, invoice_id = _decode(cursor, "invoices", (_key_date, _key_int, _key_int))
        statement = statement.where(tuple_(*key) < tuple_(issued_on, number, invoice_id))
    invoices, next_cursor = _page(list(session.scalars(statement)), limit, _invoice_cursor)
    return Page[InvoiceView](items=[_invoice_view(i) for i in invoices], next_cursor=next_cursor)


def _invoice_cursor(invoice: Invoice) -> str:
    assert invoice.number is not None
    return _encode("invoices", invoice.issued_on.isoformat(), invoice.number, invoice.id)


_NUMBER = re.compile(r"([A-Za-z0-9]{1,32})-([0-9]{8,19})")


def printed_number(number: str) -> tuple[str, int] | None:
    """(series, number) of an invoice number in the exact form we print ("F-00000042"): "F-42" or
    "F-000000042" name no invoice, nor does a malformed one."""
    match = _NUMBER.fullmatch(number)
    if match is None:
        return None
    series, value = match.group(1), int(match.group(2))
    if value > MAX_BIGINT or f"{series}-{value:08d}" != number:
        return None
    return series, value


def invoice_by_number(session: Session, *, number: str) -> InvoiceView | None:
    """The invoice shown as `number` ("F-00000042"); a malformed number is simply not found."""
    found = printed_number(number)
    if found is None:
        return None
    series, value = found
    invoice = session.scalars(
        select(Invoice).options(selectinload(Invoice.lines)).where(Invoice.series == series, Invoice.number == value)
    ).one_or_none()
    return None if invoice is None else _invoice_view(invoice)


def _invoice_view(invoice: Invoice) -> InvoiceView:
    number = invoice.display_number
    assert number is not None  # only issued invoices are read here
    return InvoiceView(
        number=number, issued_on=invoice.issued_on, status=InvoiceStatus(invoice.status),
        subtotal=invoice.subtotal, tax=invoice.tax, total=invoice.total, currency=invoice.currency,
        payer=_payer(invoice.payer_kind, invoice.payer_id), client_id=invoice.client_id,
        subscription_id=invoice.subscription_id,
        lines=[InvoiceLineView(position=l.position, kind=l.kind, plan_code=l.plan_code, period_start=l.period_start,
                               period_end=l.period_end, quantity=l.quantity, amount=l.amount)
               for l in invoice.lines],
    )


# --- the firm overview ----------------------------------------------------------------------


def firm_overview(session: Session, catalog: Catalog, *, firm_id: str, cursor: str | None, limit: int) -> FirmOverview:
    """Every live subscription the firm pays for, with this period's cost (R14): totals over
    all of them in one aggregate query, then one page by (client_id, line) in a second one;
    both read only this payer's entries of the partial index `live_by_payer`. The two agree
    exactly when the caller's transaction is REPEATABLE READ (one snapshot for both)."""
    _check_limit(limit)
    after = None if cursor is None else _decode(cursor, "overview", (_key_str, _key_str))
    totals = _overview_totals(session, catalog, firm_id)
    rows = _overview_page(session, catalog, firm_id, after, limit)
    items, next_cursor = _page(rows, limit, lambda r: _encode("overview", r.client_id, r.line.value))
    return FirmOverview(firm_id=firm_id, totals=totals, items=items, next_cursor=next_cursor)


def _overview_totals(session: Session, catalog: Catalog, firm_id: str) -> FirmOverviewTotals:
    """One aggregate over every row. The catalogue's prices come in as array parameters, so the
    statement is the same whatever the catalogue and SQLAlchemy compiles it once (a VALUES
    list of literals is compiled again on every call: ~7 ms here)."""
    prices = _price_list(catalog)
    fee = func.coalesce(prices.c.fee, 0)
    overage = _over_quota() * func.coalesce(prices.c.overage, 0)
    statement = (
        select(func.count(distinct(Subscription.client_id)), func.count(), _sum(fee), _sum(overage))
        .select_from(Subscription)
        .outerjoin(prices, and_(prices.c.code == Subscription.plan_code, prices.c.interval == Subscription.interval))
        .where(*_paid_by_firm(firm_id))
    )
    clients, subscriptions, fees, overages = session.execute(statement).one()
    return FirmOverviewTotals(clients=clients, subscriptions=subscriptions, fees=fees, overage=overages,
                              cost=fees + overages)


def _price_list(catalog: Catalog) -> TableValuedAlias:
    """`unnest(codes, intervals, fees, overage prices) AS prices`: a row per plan and interval.
    A plan retired from the catalogue matches no row and counts 0, as in `_prices`."""
    offers = [(plan, interval) for plan in catalog for interval in plan.prices]
    arrays = [
        bindparam("price_codes", [p.code for p, _ in offers], type_=ARRAY(String)),
        bindparam("price_intervals", [i.value for _, i in offers], type_=ARRAY(String)),
        bindparam("price_fees", [p.price(i) for p, i in offers], type_=ARRAY(BigInteger)),
        bindparam("price_overages", [p.overage for p, _ in offers], type_=ARRAY(BigInteger)),
    ]
    return func.unnest(*arrays).table_valued(
        column("code", String), column("interval", String), column("fee", BigInteger), column("overage", BigInteger),
        name="prices",
    ).render_derived()  # AS prices(code, interval, fee, overage)


def _overview_page(session: Session, catalog: Catalog, firm_id: str, after: tuple[Any, ...] | None,
                   limit: int) -> list[FirmOverviewRow]:
    # The page's keys first, from this payer's index entries alone; clients and periods are
    # then looked up for those rows only. Joined in one flat query, the planner preferred
    # walking every client in (client_id, line) order through another index, filtering the
    # payer: ~50 ms instead of ~1 when the firm's 10,000 client ids sort after everyone else's.
    s = Subscription
    keys = select(s.client_id, s.id, s.line, s.plan_code, s.interval, s.status, s.period_start, s.period_end, s.quota,
                  s.used)
    keys = keys.where(*_paid_by_firm(firm_id)).order_by(s.client_id, s.line).limit(limit + 1)
    if after is not None:
        client_id, line = after
        # `client_id >= …` on its own, so the planner bounds the index scan with it.
        keys = keys.where(s.client_id >= client_id, or_(s.client_id > client_id, s.line > line))
    page = keys.subquery("page")
    statement = (
        select(page, Client.external_id, Client.name)
        .join(Client, Client.id == page.c.client_id)
        .order_by(page.c.client_id, page.c.line)
    )
    return [_overview_row(catalog, row) for row in session.execute(statement).all()]


def _overview_row(catalog: Catalog, row: Row[*tuple[Any, ...]]) -> FirmOverviewRow:
    # The cost as the invoice will bill it: billing.quota's overage at the plan's price.
    fee, price = _prices(catalog, row.plan_code, row.interval)
    overage = Consumption(quota=row.quota, used=row.used).overage_amount(price)
    return FirmOverviewRow(
        client_id=row.client_id, external_id=row.external_id, client_name=row.name, subscription_id=row.id,
        line=Line(row.line), plan=_plan_ref(catalog, row.plan_code), interval=Interval(row.interval),
        status=SubscriptionStatus(row.status), period_start=row.period_start, period_end=row.period_end,
        quota=row.quota, used=row.used, fee=fee, overage=overage, cost=fee + overage,
    )


def _paid_by_firm(firm_id: str) -> tuple[ColumnElement[bool], ...]:
    # Exactly the index `live_by_payer`: (payer_kind, payer_id, client_id) where status <> 'ended'.
    return (Subscription.payer_kind == PayerKind.FIRM.value, Subscription.payer_id == firm_id, _LIVE)


def _over_quota() -> ColumnElement[int]:
    # billing.quota.Consumption.over in SQL: documents beyond the quota, none when not metered.
    # (The page's rows are priced in Python by Consumption itself; a test checks they agree.)
    return case((Subscription.quota > 0, func.greatest(Subscription.used - Subscription.quota, 0)), else_=0)


def _sum(value: ColumnElement[int]) -> ColumnElement[int]:
    # sum(bigint) is numeric in PostgreSQL; cents stay integers.
    return cast(func.coalesce(func.sum(value), 0), BigInteger)


def _prices(catalog: Catalog, code: str, interval: str) -> tuple[Cents, Cents]:
    """The plan's fee for the interval and its price per document beyond the quota. A plan
    retired from the catalogue (or an interval it no longer offers) counts 0: the row still shows."""
    try:
        plan = catalog.plan(code)
    except UnknownPlan:
        return 0, 0
    return plan.prices.get(Interval(interval), 0), plan.overage


# --- shared pieces --------------------------------------------------------------------------


def _used(subscription_id: ColumnExpressionArgument[str] = Subscription.id,
          period_start: ColumnExpressionArgument[date] = Subscription.period_start) -> ColumnElement[int]:
    """Documents so far in the subscription's current period (0 before its period row exists),
    from the period itself: the client tab's reading. (The overview reads the copy on the
    subscription row instead: one row a subscription, no lookup per row.)"""
    period = select(SubscriptionPeriod.used).where(
        SubscriptionPeriod.subscription_id == subscription_id, SubscriptionPeriod.period_start == period_start,
    )
    return func.coalesce(period.scalar_subquery(), 0)


def _plan_ref(catalog: Catalog, code: str) -> PlanRef:
    try:
        return PlanRef(code=code, name=catalog.plan(code).name)
    except UnknownPlan:  # retired from the catalogue since: the screen still shows the row
        return PlanRef(code=code, name=code)


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError("the limit must be at least 1")


def _page(items: Sequence[T], limit: int, cursor_of: Callable[[T], str]) -> tuple[list[T], str | None]:
    """The page and the next cursor: `items` were fetched with limit + 1, one more means a next page."""
    shown = list(items[:limit])
    return shown, cursor_of(shown[-1]) if len(items) > limit else None


# --- cursors --------------------------------------------------------------------------------


def _encode(kind: str, *key: str | int) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode(cursor: str, kind: str, parts: tuple[Callable[[Any], Any], ...]) -> tuple[Any, ...]:
    """The key in `cursor`, checked part by part; anything else is refused, never queried."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if not isinstance(data, list) or len(data) != len(parts) + 1 or data[0] != kind:
            raise ValueError(MALFORMED_CURSOR)
        return tuple(check(value) for check, value in zip(parts, data[1:], strict=True))
    except (ValueError, TypeError, binascii.Error):  # JSON and Unicode errors are ValueErrors
        raise ValueError(MALFORMED_CURSOR) from None


def _key_str(value: Any) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the query.
    if not isinstance(value, str) or len(value) > MAX_KEY_LENGTH or "\x00" in value:
        raise ValueError(MALFORMED_CURSOR)
    return value


def _key_int(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= MAX_BIGINT:
        raise ValueError(MALFORMED_CURSOR)
    return value


def _key_date(value: Any) -> date:
    if not isinstance(value, str):
        raise ValueError(MALFORMED_CURSOR)
    return date.fromisoformat(value)
