"""`python -m starter import FILE.csv`: existing subscriptions, from a firm migrating from its old tool.

The API (the command is a thin layer over it; the benchmark calls it directly):

    read_csv(path) -> (rows, errors)
        One `ImportRow` per data line, and a `RowError` per line that is not a row (a wrong number
        of fields). Raises `ImportFileError` (one sentence) when the file cannot be read at all,
        or its header lacks a column: then nothing is imported.
    await import_rows(service, rows, *, concurrency=32, progress=None, today=None) -> ImportReport
        Validates every row, then imports the good ones; never raises for a bad row. `progress`
        is called with the number of rows just settled (the calls add up to len(rows)); `today`
        defaults to the workflows' clock (see `workflow_today`).
    add_import_command(commands), import_command(settings, args)
        The CLI, wired in starter/cli.py.

The file: UTF-8 CSV (a BOM and `;` as the separator, as spreadsheets write them, are accepted),
a header naming the columns in any order (names in any case; other columns ignored):

    client_id,client_name,firm_id,firm_name,plan,interval,payer,period_start,period_end,card

`payer` is `firm` or `client`; dates are ISO (2025-09-01); `card` is a Stripe payment method id
(`pm_…`), or a test card number on local Stripe, and may be empty when the payer already has a card.

What a row means: the client (created under its firm when absent, the firm too) subscribes to
`plan` every `interval`, paid by `payer`, and its current period [period_start, period_end) was
billed by the old tool: no invoice now; the first one we issue is the renewal at period_end (at
once when period_end is today or past: `SubscriptionService.subscribe(imported=…)`).

Every row is checked before anything of it is written; a bad row is reported with its line
number, the others go in:
- ids are 1 to 64 lowercase letters, digits, '-' or '_' (as `firms create --id`); names 1 to 200
  characters; the plan is in the catalogue and offers the interval; the payer is allowed for its
  product (payments and bundle plans are paid by the client); the dates are one period of the
  interval, the current one: it has begun by today, and the next one has not ended yet (else the
  old tool has billed since: several renewals at once would bill the past);
- a client that exists under another firm is refused; so is a second subscription of a client on
  the same line in the file (a bundle occupies both lines);
- the payer needs a card: one already registered, or one in the card column of one of its rows
  (the first one given is registered; a payer that has a card keeps it: the file's is ignored).
Idempotent: a row whose subscription is already there (same client, line, plan, interval, payer,
and started on period_start on the same schedule, renewed since or not, even ended since) is
"already imported": counted, nothing written; a live subscription on that line that differs is a
refusal saying what differs. The same row twice in a file is one subscription. Firms and clients
are inserted only when absent (an existing one keeps its name); a card is registered only for a
payer without one, so a second import makes no new Stripe customer.

What Stripe or the workflow may still refuse after the checks (a card declined when attached, a
subscription started meanwhile by someone else) refuses the row then; the firm and client this
import created for rows that all failed so are deleted again, with their payment customer rows
(the Stripe customer, without card, stays in Stripe). A payer that existed keeps a card registered
for it. A subscription that did not answer in time may still open: its row is reported, and an
import of the same file later counts it as already imported. An outage midway (Temporal,
PostgreSQL or Stripe not answering) stops the import with its reason: what was imported stays,
and importing the same file again finishes the job.
"""
import argparse
import asyncio
import csv
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import String, any_, bindparam, delete, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from billing.catalog import Catalog, Plan, UnknownPlan
from billing.intervals import Interval, Line, Product, home_line, lines_occupied
from billing.periods import anchor_for, first_period, paris_date, period_containing
from billing.rules import Refused, check_new_subscription
from billing.statuses import SubscriptionStatus
from contracts.subscription import Payer
from settings import Settings
from starter.concurrently import all_or_cancel
from store.models import Client as ClientRow
from store.models import Firm, PaymentCustomer, Subscription

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement
    from sqlalchemy.orm import InstrumentedAttribute
    from temporalio.client import Client

    from embedded.stack import Endpoints
    from starter.service import SubscriptionService

COLUMNS = ("client_id", "client_name", "firm_id", "firm_name", "plan", "interval", "payer", "period_start",
           "period_end", "card")
DEFAULT_CONCURRENCY = 32
PROGRESS_FROM = 50  # rows: a shorter file imports in a moment, without a bar
ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME = 200
PAYMENT_METHOD = re.compile(r"pm_[A-Za-z0-9_]{1,60}")


class ImportFileError(Exception):
    """The file cannot be imported at all (unreadable, not CSV, a column missing): one sentence."""


@dataclass(frozen=True)
class ImportRow:
    """One data line of the file, as written (values stripped of surrounding spaces)."""

    line_number: int
    client_id: str
    client_name: str
    firm_id: str
    firm_name: str
    plan: str
    interval: str
    payer: str
    period_start: str
    period_end: str
    card: str = ""


@dataclass(frozen=True, order=True)
class RowError:
    line_number: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line_number}: {self.message}"


@dataclass
class ImportReport:
    imported: int = 0
    already_imported: int = 0
    refused: list[RowError] = field(default_factory=list)  # by line number
    firms_created: int = 0
    clients_created: int = 0
    cards_registered: int = 0

    @property
    def rows(self) -> int:
        return self.imported + self.already_imported + len(self.refused)

    def summary(self) -> str:
        return (f"{_plural(self.rows, 'row')}: {self.imported} imported, {self.already_imported} already imported, "
                f"{len(self.refused)} refused; {_plural(self.firms_created, 'firm')} and "
                f"{_plural(self.clients_created, 'client')} created, {_plural(self.cards_registered, 'card')} registered")


# --- reading the file -----------------------------------------------------------------------


def read_csv(path: str | Path) -> tuple[list[ImportRow], list[RowError]]:
    """The file's rows, and its lines that are not rows. Raises ImportFileError (one sentence)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            return _read(file, str(path))
    except UnicodeDecodeError:
        raise ImportFileError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise ImportFileError(f"{path} cannot be read: {exc.strerror or exc}") from None


def _read(file: "Iterator[str]", name: str) -> tuple[list[ImportRow], list[RowError]]:
    lines = iter(file)
    first = next(lines, None)
    if first is None or not first.strip():
        raise ImportFileError(f"{name} has no header line: it must name the columns {', '.join(COLUMNS)}")
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(_chain(first, lines), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise ImportFileError(f"{name} has no column {_names(missing)} in its header (it needs {', '.join(COLUMNS)})")
        repeated = sorted({c for c in COLUMNS if header.count(c) > 1})
        if repeated:
            raise ImportFileError(f"{name} names the column {_names(repeated)} twice in its header")
        where = {c: header.index(c) for c in COLUMNS}
        rows: list[ImportRow] = []
        errors: list[RowError] = []
        while True:
            line_number = reader.line_num + 1  # where the record starts (a quoted field may span lines)
            try:
                fields = next(reader)
            except StopIteration:
                break
            if not any(f.strip() for f in fields):
                continue  # a blank line
            if len(fields) != len(header):
                errors.append(RowError(line_number, f"has {len(fields)} fields, the header has {len(header)}"))
                continue
            rows.append(ImportRow(line_number, **{c: fields[i].strip() for c, i in where.items()}))
    except csv.Error as exc:
        raise ImportFileError(f"{name} cannot be read as CSV at line {reader.line_num}: {exc}") from None
    return rows, errors


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _names(columns: list[str]) -> str:
    return " and ".join(f"'{c}'" for c in columns) if len(columns) <= 2 else ", ".join(f"'{c}'" for c in columns)


# --- checking rows --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Checked:
    """A row whose values are good on their own."""

    index: int  # in the rows given (outcomes are kept by index: line numbers are for people)
    row: ImportRow
    plan: Plan
    interval: Interval
    start: date
    end: date
    anchor: date

    @property
    def line(self) -> Line:
        return home_line(self.plan.product)

    @property
    def payer(self) -> Payer:
        if self.row.payer == "firm":
            return Payer(kind="firm", id=self.row.firm_id)
        return Payer(kind="client", id=self.row.client_id)

    def same_as(self, other: "_Checked") -> bool:
        """The same subscription (the same row written twice, names and card aside)."""
        key = ("client_id", "firm_id", "plan", "interval", "payer")
        return (all(getattr(self.row, k) == getattr(other.row, k) for k in key)
                and (self.start, self.end) == (other.start, other.end))

    def matches(self, s: Subscription) -> bool:
        """`s` is this row's subscription: its plan, interval and payer, started on the file's
        period start on the file's schedule (renewed since or not)."""
        return not self._differences(s)

    def _differences(self, s: Subscription) -> list[str]:
        payer = self.payer
        differs = []
        if s.plan_code != self.plan.code:
            differs.append(f"plan {s.plan_code}, not {self.plan.code}")
        if s.interval != self.interval.value:
            differs.append(f"interval {s.interval}, not {self.interval.value}")
        if (s.payer_kind, s.payer_id) != (payer.kind, payer.id):
            differs.append(f"paid by {s.payer_kind}:{s.payer_id}, not {payer.label}")
        if (s.started_on, s.anchor) != (self.start, self.anchor):
            differs.append(f"period {s.period_start} → {s.period_end} since {s.started_on}, "
                           f"not from {self.start} → {self.end}")
        return differs

    def difference(self, s: Subscription) -> str:
        return "; ".join(self._differences(s))


def _check_values(index: int, row: ImportRow, catalog: Catalog, today: date) -> _Checked | str:
    """The row on its own (no database): every problem found, in one sentence."""
    problems: list[str] = []
    for column in ("client_id", "firm_id"):
        value = getattr(row, column)
        if not ID.fullmatch(value):
            problems.append(f"{column} {_quoted(value)} must be 1 to 64 lowercase letters, digits, '-' or '_'")
    for column in ("client_name", "firm_name"):
        value = getattr(row, column)
        if not 0 < len(value) <= MAX_NAME or CONTROL.search(value):
            problems.append(f"{column} must have 1 to {MAX_NAME} characters (no control character)")
    plan = interval = None
    try:
        plan = catalog.plan(row.plan)
    except UnknownPlan:
        problems.append(f"there is no plan {_quoted(row.plan)} in the catalogue")
    try:
        interval = Interval(row.interval.lower())
    except ValueError:
        problems.append(f"interval must be 'monthly' or 'annual', not {_quoted(row.interval)}")
    payer = row.payer.lower()
    if plan is not None and interval is not None:
        try:
            check_new_subscription(plan, interval, payer, ())
        except Refused as exc:
            problems.append(str(exc))
    elif payer not in ("firm", "client"):
        problems.append(f"payer must be 'firm' or 'client', not {_quoted(row.payer)}")
    start, end = _date(row.period_start, "period_start", problems), _date(row.period_end, "period_end", problems)
    anchor = None
    if start is not None and end is not None and interval is not None:
        anchor, problem = _check_period(start, end, interval, today)
        if problem:
            problems.append(problem)
    if row.card and not _card_looks_right(row.card):
        problems.append("card must be a Stripe payment method id (pm_…) or a card number")
    if problems:
        return "; ".join(problems)
    assert plan is not None and interval is not None and start is not None and end is not None and anchor is not None
    return _Checked(index=index, row=_lowered(row), plan=plan, interval=interval, start=start, end=end, anchor=anchor)


def _check_period(start: date, end: date, interval: Interval, today: date) -> tuple[date | None, str | None]:
    if end <= start:
        return None, f"period_end {end} must be after period_start {start}"
    anchor = anchor_for(start, end, interval)
    if anchor is None:
        return None, (f"{start} → {end} is not one {interval.value} period (one from {start} ends on "
                      f"{first_period(start, interval).end})")
    if start > today:
        return None, f"the period starts on {start}, after today ({today}): give the period the old tool billed last"
    following = period_containing(anchor, interval, end)
    if following.end <= today:
        return None, (f"the period ended on {end} and the next one by {following.end}: give the period the old tool "
                      "billed last (its current one)")
    return anchor, None


def _date(value: str, column: str, problems: list[str]) -> date | None:
    try:
        if ISO_DATE.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    problems.append(f"{column} {_quoted(value)} is not a date written YYYY-MM-DD")
    return None


def _card_looks_right(card: str) -> bool:
    if PAYMENT_METHOD.fullmatch(card):
        return True
    digits = card.replace(" ", "")
    if not (digits.isdigit() and 12 <= len(digits) <= 19):
        return False
    total = 0  # Luhn
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _lowered(row: ImportRow) -> ImportRow:
    return replace(row, interval=row.interval.lower(), payer=row.payer.lower(), card=row.card.replace(" ", ""))


def _quoted(value: str) -> str:
    return f"'{value[:70]}…'" if len(value) > 70 else f"'{value}'"


@dataclass
class _Facts:
    """What the database holds about the file's clients, payers and subscriptions."""

    client_firms: dict[str, str]
    payers_with_card: set[tuple[str, str]]
    subscriptions: dict[str, list[Subscription]]


def _read_facts(sessions: "sessionmaker[Session]", rows: list[_Checked]) -> _Facts:
    firm_ids = sorted({c.row.firm_id for c in rows})
    client_ids = sorted({c.row.client_id for c in rows})
    with sessions() as session:
        client_firms = {client: firm for client, firm in session.execute(
            select(ClientRow.id, ClientRow.firm_id).where(_among(ClientRow.id, client_ids)))}
        cards = {(kind, payer) for kind, payer in session.execute(
            select(PaymentCustomer.payer_kind, PaymentCustomer.payer_id)
            .where(PaymentCustomer.default_payment_method.is_not(None),
                   _among(PaymentCustomer.payer_id, sorted({*firm_ids, *client_ids}))))}
        subscriptions: dict[str, list[Subscription]] = {}
        for s in session.scalars(select(Subscription).where(_among(Subscription.client_id, client_ids))):
            subscriptions.setdefault(s.client_id, []).append(s)
    return _Facts(client_firms, cards, subscriptions)


def _among(column: "ColumnElement[str] | InstrumentedAttribute[str]", values: list[str]) -> "ColumnElement[bool]":
    """column = ANY(one array parameter): any number of values (IN takes one parameter each)."""
    return column == any_(bindparam(None, values, type_=ARRAY(String)))


def _against_stored(c: _Checked, facts: _Facts) -> str | None:
    """None: the row may be imported; "": already imported; else why it is refused (the client
    is known to be the firm's, or new)."""
    stored = facts.subscriptions.get(c.row.client_id, [])
    if any(s.line == c.line.value and c.matches(s) for s in stored):
        return ""
    for s in stored:
        if s.status == SubscriptionStatus.ENDED:
            continue
        if s.line == c.line.value:
            return (f"client {c.row.client_id} already has a live subscription on the {s.line} line that differs: "
                    f"{c.difference(s)}")
        shared = [line.value for line in lines_occupied(Product(s.product)) if line in c.plan.lines]
        if shared:
            return (f"client {c.row.client_id} already has a live subscription to {s.plan_code} ({s.interval}), "
                    f"on the {' and '.join(shared)} line that {c.plan.code} needs too")
    return None


# --- importing ------------------------------------------------------------------------------


@dataclass
class _Outcome:
    """How each row (by index) ended: imported, already imported, refused (with why); `unsure`
    when the subscription did not answer in time (it may still open)."""

    imported: set[int] = field(default_factory=set)
    already: set[int] = field(default_factory=set)
    refused: dict[int, str] = field(default_factory=dict)
    unsure: set[int] = field(default_factory=set)


async def import_rows(service: "SubscriptionService", rows: list[ImportRow], *, concurrency: int = DEFAULT_CONCURRENCY,
                      progress: Callable[[int], None] | None = None, today: date | None = None) -> ImportReport:
    """Check every row, then import the good ones (see the module's docstring); rows of different
    clients `concurrency` at a time. `today`: the workflows' clock by default."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    advance = progress or (lambda _: None)
    today = today or await workflow_today(service.temporal)
    outcome = _Outcome()
    checked: list[_Checked] = []
    for index, row in enumerate(rows):
        result = _check_values(index, row, service.catalog, today)
        if isinstance(result, str):
            outcome.refused[index] = result
        else:
            checked.append(result)
    facts = await asyncio.to_thread(_read_facts, service.sessions, checked)
    todo, duplicates = _plan_rows(checked, facts, outcome)
    card_of = _cards_to_register(todo, facts, outcome)
    todo = [c for c in todo if c.index not in outcome.refused]
    advance(len(rows) - sum(1 + len(duplicates.get(c.index, [])) for c in todo))

    created_firms, created_clients = await asyncio.to_thread(_create_parties, service.sessions, todo)
    # Someone may have created one of these clients meanwhile, under another firm.
    stored = await asyncio.to_thread(_client_firms, service.sessions, sorted({c.row.client_id for c in todo}))
    for c in todo:
        if stored.get(c.row.client_id) != c.row.firm_id:
            outcome.refused[c.index] = (f"client {c.row.client_id} exists under firm "
                                                  f"{stored.get(c.row.client_id)}, not {c.row.firm_id}")
    registered = 0
    limit = asyncio.Semaphore(concurrency)
    paid_by: dict[str, list[_Checked]] = {}
    for c in todo:
        paid_by.setdefault(c.payer.label, []).append(c)

    async def register(payer: Payer) -> None:
        """The payer's card, unless every row it pays for is refused by now; a card refused
        refuses them all."""
        nonlocal registered
        pending = [c for c in paid_by[payer.label] if c.index not in outcome.refused]
        if not pending:
            return
        try:
            await service.register_card(payer=payer, card=card_of[payer.kind, payer.id])
        except Refused as exc:
            for c in pending:
                outcome.refused[c.index] = str(exc)
            return
        registered += 1

    async def register_firm(firm_id: str) -> None:
        async with limit:
            await register(Payer(kind="firm", id=firm_id))

    async def import_client(client_rows: list[_Checked]) -> None:
        """A client's rows one after the other (its card first, when it pays and has none)."""
        async with limit:
            client_id = client_rows[0].row.client_id
            if ("client", client_id) in card_of:
                await register(Payer(kind="client", id=client_id))
            for c in client_rows:
                await _subscribe(service, c, outcome)
                advance(1 + len(duplicates.get(c.index, [])))

    # Firms' cards first: a firm pays for many clients, each of which waits for it.
    await all_or_cancel(register_firm(payer_id) for kind, payer_id in card_of if kind == "firm")
    by_client: dict[str, list[_Checked]] = {}
    for c in todo:
        by_client.setdefault(c.row.client_id, []).append(c)
    await all_or_cancel(import_client(client_rows) for client_rows in by_client.values())

    for original, copies in duplicates.items():
        for index in copies:
            if original in outcome.refused:
                outcome.refused[index] = f"{outcome.refused[original]} (as line {rows[original].line_number})"
            else:
                outcome.already.add(index)  # the same subscription as its first line's
    deleted_firms, deleted_clients = await asyncio.to_thread(
        _forget_unused, service.sessions, _failed_parties(todo, outcome, created_firms, created_clients))
    return ImportReport(
        imported=len(outcome.imported), already_imported=len(outcome.already),
        refused=sorted(RowError(rows[i].line_number, m) for i, m in outcome.refused.items()),
        firms_created=len(created_firms - deleted_firms), clients_created=len(created_clients - deleted_clients),
        cards_registered=registered,
    )


def _plan_rows(checked: list[_Checked], facts: _Facts, outcome: _Outcome) -> tuple[list[_Checked], dict[int, list[int]]]:
    """The rows to import, in file order; and the rows repeating an earlier one (indexes, by the
    earlier one's). Refusals and rows already imported go to `outcome`."""
    todo: list[_Checked] = []
    duplicates: dict[int, list[int]] = {}
    firm_of: dict[str, tuple[str, int]] = {}  # client -> (firm, first line naming it)
    on_line: dict[tuple[str, Line], _Checked] = {}  # (client, line) -> the row that takes it
    for c in checked:
        n, client = c.index, c.row.client_id
        firm = facts.client_firms.get(client)
        if firm is not None and firm != c.row.firm_id:
            outcome.refused[n] = f"client {client} exists under firm {firm}, not {c.row.firm_id}"
            continue
        firm, first = firm_of.setdefault(client, (c.row.firm_id, c.row.line_number))
        if firm != c.row.firm_id:
            outcome.refused[n] = f"client {client} is under firm {firm} on line {first}, not {c.row.firm_id}"
            continue
        earlier = next((on_line[client, line] for line in c.plan.lines if (client, line) in on_line), None)
        if earlier is not None:
            if earlier.same_as(c):
                duplicates.setdefault(earlier.index, []).append(n)
            else:
                outcome.refused[n] = (f"client {client} has another subscription on the {c.line.value} line in this file "
                                      f"(line {earlier.row.line_number})")
            continue
        for line in c.plan.lines:
            on_line[client, line] = c
        verdict = _against_stored(c, facts)
        if verdict == "":
            outcome.already.add(n)
        elif verdict is not None:
            outcome.refused[n] = verdict
        else:
            todo.append(c)
    return todo, duplicates


def _cards_to_register(todo: list[_Checked], facts: _Facts, outcome: _Outcome) -> dict[tuple[str, str], str]:
    """The card to register for each payer without one (its first row's that gives one); the
    rows of a payer left without a card are refused."""
    cards: dict[tuple[str, str], str] = {}
    for c in todo:
        key = (c.payer.kind, c.payer.id)
        if key not in facts.payers_with_card and c.row.card:
            cards.setdefault(key, c.row.card)
    for c in todo:
        key = (c.payer.kind, c.payer.id)
        if key not in facts.payers_with_card and key not in cards:
            outcome.refused[c.index] = (f"{c.payer.label} has no card yet: give one in the card column "
                                        "(a Stripe payment method id, or a test card number on local Stripe)")
    return cards


def _create_parties(sessions: "sessionmaker[Session]", todo: list[_Checked]) -> tuple[set[str], set[str]]:
    """Insert the firms and clients that are absent, in one transaction (one inserted meanwhile by
    someone else stays as it is); answers those this call created."""
    firms = {c.row.firm_id: c.row.firm_name for c in reversed(todo)}  # the first row's name
    clients = {c.row.client_id: (c.row.client_name, c.row.firm_id) for c in reversed(todo)}
    created_firms: set[str] = set()
    created_clients: set[str] = set()
    with sessions.begin() as session:
        # In id order (two imports at once never wait for each other in a cycle), a chunk at a
        # time (PostgreSQL takes at most 65,535 parameters a statement).
        firm_rows = [{"id": f, "name": name} for f, name in sorted(firms.items())]
        for chunk in _chunks(firm_rows):
            created_firms.update(session.scalars(
                pg_insert(Firm).values(chunk).on_conflict_do_nothing().returning(Firm.id)))
        client_rows = [{"id": c, "name": name, "firm_id": firm} for c, (name, firm) in sorted(clients.items())]
        for chunk in _chunks(client_rows):
            created_clients.update(session.scalars(
                pg_insert(ClientRow).values(chunk).on_conflict_do_nothing().returning(ClientRow.id)))
    return created_firms, created_clients


def _chunks(rows: list[dict[str, str]], size: int = 5000) -> Iterator[list[dict[str, str]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _client_firms(sessions: "sessionmaker[Session]", client_ids: list[str]) -> dict[str, str]:
    with sessions() as session:
        return {client: firm for client, firm in session.execute(
            select(ClientRow.id, ClientRow.firm_id).where(_among(ClientRow.id, client_ids)))}


async def _subscribe(service: "SubscriptionService", c: _Checked, outcome: _Outcome) -> None:
    from starter.service import NoAnswer

    n = c.index
    if n in outcome.refused:
        return
    try:
        await service.subscribe(client_id=c.row.client_id, plan_code=c.plan.code, interval=c.interval.value,
                                payer_kind=c.row.payer, imported=(c.start, c.end))
    except NoAnswer as exc:
        outcome.unsure.add(n)
        outcome.refused[n] = f"{exc}; import the file again later: it is then found already imported, or imported"
        return
    except Refused as exc:
        # Another import of the same row may have won the race: then it is already imported.
        verdict = _against_stored(c, await asyncio.to_thread(_read_facts, service.sessions, [c]))
        if verdict == "":
            outcome.already.add(n)
        else:
            outcome.refused[n] = verdict or str(exc)
        return
    outcome.imported.add(n)


def _failed_parties(todo: list[_Checked], outcome: _Outcome, firms: set[str],
                    clients: set[str]) -> tuple[set[str], set[str]]:
    """The firms and clients this import created whose rows were all refused (for sure)."""
    kept_clients = {c.row.client_id for c in todo
                    if c.index not in outcome.refused or c.index in outcome.unsure}
    kept_firms = {c.row.firm_id for c in todo if c.row.client_id in kept_clients}
    return firms - kept_firms, clients - kept_clients


def _forget_unused(sessions: "sessionmaker[Session]", parties: tuple[set[str], set[str]]) -> tuple[set[str], set[str]]:
    """Delete those firms and clients again (with their payment customer rows) if nothing refers
    to them; answers those deleted."""
    firms, clients = parties
    deleted_clients: set[str] = set()
    deleted_firms: set[str] = set()
    with sessions.begin() as session:
        for client_id in sorted(clients):
            if session.scalar(select(Subscription.id).where(Subscription.client_id == client_id).limit(1)):
                continue
            try:
                with session.begin_nested():
                    session.execute(delete(PaymentCustomer).where(PaymentCustomer.payer_kind == "client",
                                                                  PaymentCustomer.payer_id == client_id))
                    session.execute(delete(ClientRow).where(ClientRow.id == client_id))
                deleted_clients.add(client_id)
            except IntegrityError:  # something refers to it after all: it stays
                pass
        for firm_id in sorted(firms):
            if session.scalar(select(ClientRow.id).where(ClientRow.firm_id == firm_id).limit(1)):
                continue
            try:
                with session.begin_nested():
                    session.execute(delete(PaymentCustomer).where(PaymentCustomer.payer_kind == "firm",
                                                                  PaymentCustomer.payer_id == firm_id))
                    session.execute(delete(Firm).where(Firm.id == firm_id))
                deleted_firms.add(firm_id)
            except IntegrityError:
                pass
    return deleted_firms, deleted_clients


async def workflow_today(temporal: "Client") -> date:
    """Today in Paris on the workflows' clock: the time-skipping test server's when that is what
    `temporal` speaks to (simulations, tests, benchmarks), else this machine's."""
    from google.protobuf.empty_pb2 import Empty
    from temporalio.service import RPCError

    try:
        answer = await temporal.test_service.get_current_time(Empty(), timeout=timedelta(seconds=5))
    except RPCError:  # a real server has no test service
        return paris_date(datetime.now(UTC))
    return paris_date(answer.time.ToDatetime().replace(tzinfo=UTC))




# --- the command ----------------------------------------------------------------------------

DESCRIPTION = """\
Import existing subscriptions, from a firm migrating from its old tool. Each row's current
period was billed by the old tool: the first invoice is the renewal at period_end (at once
when that is today or past). Firms and clients are created when absent. A bad row is reported
with its line number and writes nothing; the good rows go in. Importing the same file again
changes nothing.

Against the configured stack (DATABASE_URL, TEMPORAL_ADDRESS, STRIPE_API_KEY or
STRIPE_API_BASE), or the one a running `make run` started."""

EXIT_CODES = """\
exit status:
  0  every row imported, or already imported
  1  some rows refused (each on stderr as `line N: why`); the others are imported
  2  the file cannot be read or lacks a column, or there is no stack to import into: nothing
     is imported; or the stack failed midway: import the file again to finish"""


def add_import_command(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser(
        "import", help="import existing subscriptions from a CSV file (a firm migrating from its old tool)",
        description=DESCRIPTION, epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", help=f"the CSV file; its header names the columns {', '.join(COLUMNS)}")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N",
                        help=f"subscriptions started at once (default {DEFAULT_CONCURRENCY})")


def import_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        return _fail("--concurrency must be at least 1")
    try:
        rows, errors = read_csv(args.file)
    except ImportFileError as exc:
        return _fail(str(exc))
    endpoints = _stack(settings)
    if endpoints is None:
        return _fail("import needs the running stack: start `make run` first, or set DATABASE_URL, TEMPORAL_ADDRESS "
                     "and STRIPE_API_KEY (or STRIPE_API_BASE)")
    from billing.catalog import DEFAULT_CATALOG_PATH, CatalogError, load_catalog

    try:
        catalog = load_catalog(settings.catalog_path or DEFAULT_CATALOG_PATH)
    except CatalogError as exc:
        return _fail(f"catalogue refused: {exc}")
    try:
        with _progress(len(rows)) as advance:
            report = asyncio.run(_import(settings, endpoints, catalog, rows, args.concurrency, advance))
    except _Stopped as exc:
        return _fail(str(exc))
    report.refused = sorted([*errors, *report.refused])  # the lines that are not rows too
    for error in report.refused:
        print(error, file=sys.stderr)
    print(report.summary())
    return 1 if report.refused else 0


class _Stopped(Exception):
    """The import could not go on (the stack does not answer…): one sentence."""


def _stack(settings: Settings) -> "Endpoints | None":
    """The configured stack, as `api` finds it; else the one a running `run` started; else None."""
    from embedded.stack import Endpoints, running_endpoints
    from embedded.stripe_server import LOCALSTRIPE_KEY

    if settings.database_url and settings.temporal_address and (settings.stripe_api_key or settings.stripe_api_base):
        return Endpoints(settings.database_url, settings.temporal_address, None,
                         settings.stripe_api_key or LOCALSTRIPE_KEY, settings.stripe_api_base)
    return running_endpoints(settings.data_dir)


async def _import(settings: Settings, endpoints: "Endpoints", catalog: Catalog, rows: list[ImportRow],
                  concurrency: int, advance: Callable[[int], None]) -> ImportReport:
    from sqlalchemy.exc import SQLAlchemyError

    from adapters.stripe_gateway import StripeGateway
    from starter.service import SubscriptionService
    from store.db import make_engine, make_session_factory
    from worker import connect

    try:
        temporal = await connect(endpoints.temporal_address, settings.temporal_namespace)
    except RuntimeError as exc:
        raise _Stopped(f"Temporal at {endpoints.temporal_address} does not answer: {exc}") from None
    engine = make_engine(endpoints.database_url, pool_size=min(concurrency, 32), max_overflow=4)
    try:
        service = SubscriptionService(temporal, make_session_factory(engine), catalog,
                                      StripeGateway(endpoints.stripe_api_key, endpoints.stripe_api_base),
                                      settings.task_queue, settings.dunning_retry_days)
        return await import_rows(service, rows, concurrency=concurrency, progress=advance)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise _Stopped(f"the import stopped, the database failed: {reason}; the rows imported so far stay "
                       "(import the file again to finish: they are found already imported)") from None
    except Exception as exc:
        raise _Stopped(f"the import stopped: {exc}; the rows imported so far stay (import the file again to finish: "
                       "they are found already imported)") from None
    finally:
        engine.dispose()


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    """A bar on stderr for a long file, when someone watches it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if total < PROGRESS_FROM or not console.is_terminal:
        yield lambda _: None
        return
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("import", total=total)
        yield lambda done: progress.advance(task, done)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 2

