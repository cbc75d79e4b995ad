"""`python -m starter subscriptions list|show` and `invoices show`: what an operator reads, as
tables. Read-only, every firm. Errors: one sentence on stderr, exit 2.

    subscriptions list [--firm FIRM] [--status STATUS] [--plan PLAN] [--limit N]
    subscriptions show CLIENT [--line LINE]     CLIENT: a client id, or the firm's external id
    invoices show NUMBER                        F-00000042 (or F-42, or 42)
    invoices pdf|xml NUMBER -o FILE             its Factur-X e-invoice: the PDF/A-3, or its CII XML
    invoices render-missing                     draw the e-invoices the workflows gave up on (exit 1 if one fails)

Amounts are shown the French way (`1 234,56 €`). Piped or redirected, the tables are drawn
COLUMNS wide, else 160 characters (never squeezed into 80), without colours.
"""
import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from billing.intervals import Line
from billing.money import format_eur_fr
from billing.statuses import SubscriptionStatus
from settings import Settings
from store.models import Invoice, InvoiceLine, Notification, Subscription, SubscriptionPeriod
from store.timeline import Attempt, InvoiceDetail, SubscriptionHistory

DEFAULT_LIMIT = 50
PIPE_WIDTH = 160  # a redirected table's width when COLUMNS does not say
PARIS = ZoneInfo("Europe/Paris")


class Refused(Exception):
    """What the operator asked for cannot be shown: the message is the sentence printed."""


def add_operator_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    subscriptions = commands.add_parser("subscriptions", help="list subscriptions, or show one client's timeline")
    actions = subscriptions.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="one row per subscription, by client and line")
    listing.add_argument("--firm", help="only the clients of this firm (its id)")
    listing.add_argument("--status", help=f"only this status: {', '.join(SubscriptionStatus)}")
    listing.add_argument("--plan", help="only this plan (its code)")
    listing.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=f"at most N rows (default {DEFAULT_LIMIT})")
    show = actions.add_parser("show", help="a client's subscription: its periods, invoices, payments, changes, notices")
    show.add_argument("client", help="the client's id, or its firm's external id for it")
    show.add_argument("--line", help=f"the subscription's line ({', '.join(Line)}), when the client has several")
    invoices = commands.add_parser("invoices", help="show an invoice, or save its e-invoice").add_subparsers(
        dest="action", required=True)
    invoice = invoices.add_parser("show", help="an invoice: its lines, totals and payment attempts")
    invoice.add_argument("number", help="the invoice number, e.g. F-00000042")
    for kind, what in (("pdf", "the Factur-X PDF/A-3 (the XML inside)"), ("xml", "the CII XML (EN 16931)")):
        save = invoices.add_parser(kind, help=f"save an invoice's e-invoice: {what}")
        save.add_argument("number", help="the invoice number, e.g. F-00000042")
        save.add_argument("-o", "--output", required=True, help="the file to write ('-' for standard output)")
    invoices.add_parser("render-missing", help="draw every e-invoice not drawn yet (its render failed or timed out)")


def operator_command(settings: Settings, args: argparse.Namespace) -> int:
    from embedded.stack import database_url_for_cli
    from store.db import make_engine, make_session_factory

    try:
        _check_arguments(args)  # before any connection: a typo answers at once
        engine = make_engine(database_url_for_cli(settings))
    except Refused as exc:
        return _fail(str(exc))
    try:
        sessions = make_session_factory(engine)
        console = make_console()
        if args.command == "invoices" and args.action == "render-missing":
            return _render_missing(console, sessions)
        if args.command == "invoices" and args.action in ("pdf", "xml"):
            _save_document(console, sessions, args.number, args.action, args.output)
        elif args.command == "invoices":
            console.print(_invoice(sessions, args.number))
        elif args.action == "list":
            _print_subscription_list(console, sessions, args.firm, args.status, args.plan, args.limit)
        else:
            console.print(_subscription_timeline(sessions, settings, args.client, args.line))
        return 0
    except Refused as exc:
        return _fail(str(exc))
    except SQLAlchemyError as exc:  # unreachable, or a schema older than the code (run `migrate`)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return _fail(f"the database could not be read: {reason}")
    finally:
        engine.dispose()


def make_console() -> Console:
    """Colours and the terminal's width on a terminal; piped, COLUMNS or 160 columns and no colour.
    Markup and emoji codes are off: names and subjects are printed as they are written."""
    wide = None if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit() else PIPE_WIDTH
    return Console(width=wide, markup=False, emoji=False, highlight=False)


def _check_arguments(args: argparse.Namespace) -> None:
    if args.command != "subscriptions":
        return
    if args.action == "list":
        if args.status is not None and args.status not in set(SubscriptionStatus):
            raise Refused(f"unknown status '{args.status}': use one of {', '.join(SubscriptionStatus)}")
        if args.limit < 1:
            raise Refused("--limit must be at least 1")
    elif args.line is not None and args.line not in set(Line):
        raise Refused(f"unknown line '{args.line}': use one of {', '.join(Line)}")


# --- subscriptions list ---------------------------------------------------------------------

LIST_HEADERS = ("client", "name", "firm", "line", "plan", "interval", "payer", "status", "period", "used/quota",
                "renewal/end")
NAME = LIST_HEADERS.index("name")  # the one column that wraps: the rest are ids, words and dates
COLUMN_GAP = 2
CHUNK_ROWS = 200  # rich measures every cell (~1 ms a row): a long list is printed a chunk at a time


def _print_subscription_list(console: Console, sessions: "sessionmaker[Session]", firm_id: str | None,
                             status: str | None, plan: str | None, limit: int) -> None:
    from store.timeline import firm_exists, list_subscriptions

    with sessions() as session:
        if firm_id is not None and not firm_exists(session, firm_id):
            raise Refused(f"there is no firm '{firm_id}'")
        listing = list_subscriptions(session, firm_id=firm_id, status=status, plan_code=plan, limit=limit)
    rows = [_list_cells(row.subscription, row.client.name) for row in listing.rows]
    widths = _fit(console.width, rows)
    # Chunks of one table, their columns as wide as the whole list's: they line up as one.
    with _progress(console, len(rows)) as advance:
        for start in range(0, max(len(rows), 1), CHUNK_ROWS):
            chunk = rows[start:start + CHUNK_ROWS]
            table = _table("Subscriptions") if start == 0 else _table(None, show_header=False)
            shown = [i for i, width in enumerate(widths) if width > 0]
            # Too narrow even so: every cell folds onto a second line rather than losing its end.
            fits = sum(widths[i] for i in shown) + COLUMN_GAP * (len(shown) - 1) <= console.width
            for i in shown:
                table.add_column(LIST_HEADERS[i], width=widths[i] if fits else None, no_wrap=fits and i != NAME,
                                 overflow="fold")
            for cells in chunk:
                table.add_row(*(cells[i] for i in shown))
            console.print(table)
            advance(len(chunk))
    console.print(_count(len(rows), listing.total, limit))


def _list_cells(s: Subscription, client_name: str) -> tuple[Text, ...]:
    plain = (s.client_id, client_name, s.firm_id, _line(s), s.plan_code, s.interval, _payer_short(s))
    return (*map(Text, plain), _status(s.status), Text(_period(s.period_start, s.period_end)),
            _usage(s.used, s.quota, short=True), Text(_next(s)))


def _fit(width: int, rows: list[tuple[Text, ...]]) -> list[int]:
    """Each column as wide as its widest cell; the name takes what is left (at least 10), or,
    on a terminal too narrow for it, is left out (0): `show` has it."""
    widths = [max([len(header), *(row[i].cell_len for row in rows)]) for i, header in enumerate(LIST_HEADERS)]
    rest = sum(widths) - widths[NAME] + COLUMN_GAP * (len(widths) - 1)
    widths[NAME] = 0 if width - rest < 10 else min(widths[NAME], width - rest)
    return widths


@contextmanager
def _progress(console: Console, total: int) -> Iterator[Callable[[int], None]]:
    """A bar while a long list is printed: on the terminal the table goes to (above the bar),
    else on stderr when that is a terminal; none when nobody watches, or for a short list."""
    watched = console if console.is_terminal else Console(stderr=True)
    if total <= CHUNK_ROWS or not watched.is_terminal:
        yield lambda _: None
        return
    columns = (TextColumn("printing subscriptions"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=watched, transient=True) as progress:
        task = progress.add_task("print", total=total)
        yield lambda done: progress.advance(task, done)


def _count(shown: int, total: int, limit: int) -> str:
    if shown < total:
        return f"{shown} of {_plural(total, 'subscription')} shown (--limit {limit}); narrow with --firm, --status, --plan"
    return _plural(total, "subscription")


# --- subscriptions show ---------------------------------------------------------------------


def _subscription_timeline(sessions: "sessionmaker[Session]", settings: Settings, client_ref: str,
                           line: str | None) -> RenderableType:
    from store.timeline import client_subscriptions, find_clients, subscription_history

    with sessions.begin() as session:
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})  # one snapshot for all reads
        clients = find_clients(session, client_ref)
        if not clients:
            raise Refused(f"there is no client '{client_ref}' (neither a client id nor an external id)")
        if len(clients) > 1:
            raise Refused(f"the external id '{client_ref}' names several clients "
                          f"({', '.join(f'{c.id} of {c.firm_id}' for c in clients)}): give the client id")
        client = clients[0]
        history = subscription_history(session, _chosen(client.id, client_subscriptions(session, client.id), line))
    names = _plan_names(settings)
    return Group(_header(history, names), _timeline_table(history, names))


def _chosen(client_id: str, subscriptions: list[Subscription], line: str | None) -> Subscription:
    """The subscription on `line`; without one, the client's only subscription, or its only live one."""
    lines = ", ".join(s.line for s in subscriptions)
    if line is not None:
        for s in subscriptions:
            if s.line == line:
                return s
        raise Refused(f"client {client_id} has no subscription on the {line} line"
                      + (f" (its lines: {lines})" if subscriptions else ""))
    if not subscriptions:
        raise Refused(f"client {client_id} has no subscription")
    if len(subscriptions) == 1:
        return subscriptions[0]
    live = [s for s in subscriptions if s.status != SubscriptionStatus.ENDED]
    if len(live) == 1:
        return live[0]
    raise Refused(f"client {client_id} has subscriptions on several lines ({lines}): choose one with --line")


def _header(h: SubscriptionHistory, names: dict[str, str]) -> Panel:
    s = h.subscription
    grid = Table.grid(padding=(0, 2))
    external = f", external id {h.client.external_id}" if h.client.external_id else ""
    grid.add_row(_label("client"), f"{h.client.name} ({h.client.id}{external})",
                 _label("firm"), f"{h.firm.name} ({h.firm.id})")
    grid.add_row(_label("plan"), f"{names.get(s.plan_code, s.plan_code)} ({s.plan_code}), {s.interval}",
                 _label("line"), _line(s))
    grid.add_row(_label("status"), _status(s.status), _label("payer"), f"{s.payer_kind} {h.payer_name} ({s.payer_id})")
    grid.add_row(_label("period"), _period(s.period_start, s.period_end),
                 _label("used / quota"), _usage(s.used, s.quota))
    grid.add_row(_label("started"), s.started_on.isoformat(), _label("renewal / end"), _next(s))
    scheduled = _scheduled(s, names)
    if scheduled:
        grid.add_row(_label("scheduled"), "; ".join(scheduled), "", "")
    return Panel(grid, title=Text(s.id, style="bold"), title_align="left", expand=False)


@dataclass(frozen=True)
class Event:
    """One row of the timeline; `rank` orders a day's events (a period closes, the next opens,
    its invoice is issued, charged, announced)."""

    day: date
    rank: int
    event: str
    reference: str = ""
    amount: str = ""
    status: Text | str = ""
    details: str = ""
    style: str = ""


def timeline(h: SubscriptionHistory, names: dict[str, str]) -> list[Event]:
    """Everything the subscription left behind, oldest first, and what its row says comes next."""
    s = h.subscription
    events = [Event(s.started_on, 0, "started", style="bold")]
    for p in h.periods:
        events.extend(_period_events(p, s))
    issued = {i.id: i for i in h.invoices}
    for invoice in h.invoices:
        events.append(_invoice_event(invoice))
    for attempt in h.attempts:
        events.append(_attempt_event(attempt, issued.get(attempt.attempt.invoice_id)))
    events.extend(_notice_event(n) for n in h.notices)
    for alert in h.alerts:
        resolved = f"resolved {_paris_day(alert.resolved_at)}" if alert.resolved_at else "open"
        events.append(Event(_paris_day(alert.created_at), 6, f"operator alert: {alert.step}", status=resolved,
                            details=alert.error, style="red"))
    if s.ended_on is not None:
        events.append(Event(s.ended_on, 7, "ended", status=s.ended_reason or "", style="bold"))
    elif changes := _scheduled(s, names):
        events.append(Event(s.period_end, 8, "scheduled", status="at the period end", details="; ".join(changes),
                            style="italic"))
    return sorted(events, key=lambda e: (e.day, e.rank))


def _period_events(p: SubscriptionPeriod, s: Subscription) -> list[Event]:
    span = _period(p.period_start, p.period_end)
    if p.closed_at is None:
        return [Event(p.period_start, 2, "period opened", span, status="open",
                      details=f"{_used_of(p.used, s.quota if p.period_start == s.period_start else 0)} so far")]
    return [Event(p.period_start, 2, "period opened", span),
            Event(p.period_end, 1, "period closed", span, status="closed",
                  details=f"{p.documents if p.documents is not None else p.used} documents")]


def _invoice_event(invoice: Invoice) -> Event:
    kinds = " + ".join(dict.fromkeys(line.kind for line in invoice.lines)) or "empty"
    details = f"excl. VAT {format_eur_fr(invoice.subtotal)}, VAT {format_eur_fr(invoice.tax)}"
    if invoice.waiting_since is not None and invoice.status == "open":
        details += f"; below the minimum charge, waits since {invoice.waiting_since} for the payer's next charge"
    return Event(invoice.issued_on, 3, f"invoice ({kinds})", invoice.display_number or "", format_eur_fr(invoice.total),
                 _status(invoice.status), details)


def _attempt_event(a: Attempt, invoice: Invoice | None) -> Event:
    attempt = a.attempt
    # Our business dates are Paris days; an attempt has only its timestamp: its Paris day, never
    # before its invoice's date (an invoice is charged once issued).
    day = _paris_day(attempt.created_at)
    if invoice is not None:
        day = max(day, invoice.issued_on)
    failure = ": ".join(x for x in (attempt.failure_code, attempt.failure_message) if x)
    own, *along = a.invoice_numbers
    details = f"for {own}" + (f", taking along {', '.join(along)} (R16)" if along else "") + (
        f"; {failure}" if failure else "")
    return Event(day, 4, f"payment attempt {attempt.attempt_no}", attempt.stripe_payment_intent_id or "(no intent)",
                 format_eur_fr(attempt.amount), _status(attempt.status), details)


def _notice_event(n: Notification) -> Event:
    return Event(n.business_date, 5, f"notice {n.kind}", f"{n.recipient_kind} {n.recipient_id}",
                 status=_notice_status(n), details=n.subject, style="dim")


def _notice_status(n: Notification) -> Text:
    if n.sent_at is not None:
        return Text(f"sent {_paris_day(n.sent_at)}", style="green")
    if n.failed_at is not None:
        return Text(f"failed: {n.last_error}" if n.last_error else "failed", style="red")
    if n.last_error:
        return Text(f"queued, retrying: {n.last_error}", style="yellow")
    return Text("queued", style="yellow")


def _timeline_table(h: SubscriptionHistory, names: dict[str, str]) -> Table:
    events = timeline(h, names)
    counts = [_plural(len(h.periods), "period"), _plural(len(h.invoices), "invoice"),
              _plural(len(h.attempts), "payment attempt"), _plural(len(h.notices), "notice")]
    counts += [_plural(len(h.alerts), "operator alert")] if h.alerts else []
    table = _table("Timeline", caption=", ".join(counts))
    table.add_column("date", no_wrap=True)
    table.add_column("event")
    table.add_column("reference", no_wrap=True)
    table.add_column("amount", justify="right", no_wrap=True)
    table.add_column("status")
    table.add_column("details")
    for e in events:
        table.add_row(e.day.isoformat(), Text(e.event, style=e.style), e.reference, e.amount, e.status, e.details)
    return table


# --- invoices show --------------------------------------------------------------------------


def _invoice(sessions: "sessionmaker[Session]", number: str) -> RenderableType:
    from store.timeline import invoice_detail

    with sessions.begin() as session:
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        detail = invoice_detail(session, number)
    if detail is None:
        raise Refused(f"there is no invoice '{number}'")
    return Group(_invoice_header(detail), _invoice_lines(detail.invoice), _attempts_table(detail))


def _render_missing(console: Console, sessions: "sessionmaker[Session]") -> int:
    """Each invoice numbered with its parties' snapshot and no e-invoice: drawn now, one by one;
    one that fails is reported and the others go on."""
    from activities.documents import render_and_store
    from store.invoice_documents import invoices_without_document

    with sessions() as session:
        missing = invoices_without_document(session)
    failed = 0
    for invoice_id, number in missing:
        try:
            rendered = render_and_store(sessions, invoice_id, number)
        except SQLAlchemyError:
            raise
        except Exception as exc:  # our drawing code or the data: report it, go on with the others
            failed += 1
            console.print(f"{number}: not rendered: {type(exc).__name__}: {exc}")
            continue
        console.print(f"{number}: rendered (PDF sha256 {rendered.pdf_sha256})" if rendered else f"{number}: no snapshot")
    console.print(f"{len(missing) - failed} of {len(missing)} e-invoices rendered")
    return 1 if failed else 0


def _save_document(console: Console, sessions: "sessionmaker[Session]", number: str, kind: str, output: str) -> None:
    from store.invoice_documents import document_of
    from store.timeline import invoice_detail

    with sessions() as session:
        detail = invoice_detail(session, number)
        if detail is None:
            raise Refused(f"there is no invoice '{number}'")
        shown = detail.invoice.display_number
        document = document_of(session, detail.invoice.id)
        if document is None:
            raise Refused(f"invoice {shown} has no e-invoice yet: it is rendered just after it is numbered "
                          "(invoices numbered before e-invoicing have none)")
        body, digest = (document.pdf, document.pdf_sha256) if kind == "pdf" else (document.xml, document.xml_sha256)
    if output == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return
    try:
        with open(output, "wb") as file:
            file.write(body)
    except OSError as exc:
        raise Refused(f"could not write {output}: {exc.strerror}") from None
    console.print(f"{shown}: {kind.upper()} written to {output} ({len(body):,} bytes, sha256 {digest})")


def _invoice_header(d: InvoiceDetail) -> Panel:
    i = d.invoice
    grid = Table.grid(padding=(0, 2))
    external = f", external id {d.client.external_id}" if d.client.external_id else ""
    grid.add_row(_label("date"), i.issued_on.isoformat(), _label("status"), _status(i.status))
    grid.add_row(_label("client"), f"{d.client.name} ({d.client.id}{external})",
                 _label("payer"), f"{i.payer_kind} {d.payer_name} ({i.payer_id})")
    grid.add_row(_label("subscription"), i.subscription_id or "-", _label("total"), format_eur_fr(i.total))
    if i.waiting_since is not None and i.status == "open":
        grid.add_row(_label("waiting"), f"since {i.waiting_since}: below the minimum charge, "
                                        "collected with the payer's next charge", "", "")
    return Panel(grid, title=Text(f"Invoice {i.display_number}", style="bold"), title_align="left", expand=False)


def _invoice_lines(i: Invoice) -> Table:
    # VAT is computed once, on the subtotal (R4), not line by line: the lines show amounts
    # excluding VAT; under them, the invoice's own subtotal, VAT and total.
    table = _table("Lines", show_footer=True)
    table.add_column("description")
    table.add_column("period", no_wrap=True)
    table.add_column("quantity", justify="right")
    table.add_column("unit price excl. VAT", justify="right", no_wrap=True,
                     footer=Text("total excl. VAT\nVAT 20 %\ntotal incl. VAT", justify="right"))
    table.add_column("amount excl. VAT", justify="right", no_wrap=True, footer=Text("\n".join(
        format_eur_fr(amount) for amount in (i.subtotal, i.tax, i.total)), justify="right", style="bold"))
    for line in i.lines:
        table.add_row(_describe(line), _period(line.period_start, line.period_end), str(line.quantity),
                      _unit_price(line), format_eur_fr(line.amount))
    return table


def _describe(line: InvoiceLine) -> str:
    what = {"subscription": "subscription fee, in advance", "proration": "upgrade, prorated to the period end",
            "overage": "documents over the quota"}.get(line.kind, line.kind)
    return f"{line.plan_code}: {what}"


def _unit_price(line: InvoiceLine) -> str:
    if line.quantity and line.amount % line.quantity == 0:
        return format_eur_fr(line.amount // line.quantity)
    return ""


def _attempts_table(d: InvoiceDetail) -> Table | Text:
    if not d.attempts:
        return Text("No payment attempt." + (" Nothing to charge." if d.invoice.total == 0 else ""))
    table = _table("Payment attempts")
    for header in ("no.", "date", "amount", "status", "Stripe", "invoices collected", "failure"):
        table.add_column(header, justify="right" if header == "amount" else "left",
                         no_wrap=header in ("date", "amount", "Stripe"))
    for a in d.attempts:
        at = a.attempt
        failure = ": ".join(x for x in (at.failure_code, at.failure_message) if x)
        table.add_row(str(at.attempt_no), _paris_day(at.created_at).isoformat(), format_eur_fr(at.amount),
                      _status(at.status), at.stripe_payment_intent_id or "(no intent)", " + ".join(a.invoice_numbers),
                      failure)
    return table


# --- shared pieces --------------------------------------------------------------------------


def _table(title: str | None, *, caption: str | None = None, show_header: bool = True,
           show_footer: bool = False) -> Table:
    """A table without vertical rules: narrower, and its rows copy and grep as plain text."""
    return Table(title=Text(title, style="bold") if title else None, title_justify="left", caption=caption,
                 caption_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
                 show_header=show_header, show_footer=show_footer)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")

STATUS_STYLES = {"active": "green", "paid": "green", "succeeded": "green", "pending_cancel": "yellow",
                 "open": "yellow", "pending": "yellow", "requires_action": "yellow", "past_due": "red",
                 "declined": "red", "error": "red", "uncollectible": "red", "ended": "dim", "canceled": "dim"}


def _status(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def _label(text: str) -> Text:
    return Text(text, style="bold")


def _line(s: Subscription) -> str:
    return s.line if s.product == s.line else f"{s.line} ({s.product})"


def _payer_short(s: Subscription) -> str:
    own = {"firm": s.firm_id, "client": s.client_id}.get(s.payer_kind)
    return s.payer_kind if s.payer_id == own else f"{s.payer_kind} {s.payer_id}"


def _period(start: date, end: date) -> str:
    return f"{start.isoformat()} → {end.isoformat()}"


def _usage(used: int, quota: int, *, short: bool = False) -> Text:
    """Documents used of the quota; beyond it, in red and (unless short) by how many (R12)."""
    if quota <= 0:
        return Text("not metered")
    over = f" (+{used - quota} over)" if used > quota and not short else ""
    return Text(f"{used} / {quota}{over}", style="red" if used > quota else "")


def _used_of(used: int, quota: int) -> str:
    return f"{used} / {quota} documents" if quota > 0 else f"{used} documents"


def _next(s: Subscription) -> str:
    """R5/R10: a live subscription renews at its period end unless it is to end there."""
    if s.ended_on is not None:
        return f"ended {s.ended_on}"
    ends_on = (s.scheduled or {}).get("ends_on")
    if s.status == SubscriptionStatus.PENDING_CANCEL or ends_on:
        return f"ends {ends_on or s.period_end}"
    return f"renews {s.period_end}"


def _scheduled(s: Subscription, names: dict[str, str]) -> list[str]:
    """The changes the row says the workflow applies at the period end (R8, R9, R10)."""
    raw = s.scheduled or {}
    changes = []
    if plan := raw.get("plan"):
        changes.append(f"plan → {names.get(plan, plan)} ({plan})")
    if interval := raw.get("interval"):
        changes.append(f"interval → {interval}")
    if take_over := raw.get("take_over"):
        changes.append(f"paid by {take_over.replace(':', ' ', 1)} from then on")
    if raw.get("ends_on") and s.ended_on is None:
        changes.append(f"ends on {raw['ends_on']}" + (f" ({raw['end_reason']})" if raw.get("end_reason") else ""))
    return changes


def _plan_names(settings: Settings) -> dict[str, str]:
    """Plan code -> name from the catalogue; codes alone if it cannot be read (the screen still shows)."""
    from billing.catalog import DEFAULT_CATALOG_PATH, CatalogError, load_catalog

    try:
        return {p.code: p.name for p in load_catalog(settings.catalog_path or DEFAULT_CATALOG_PATH)}
    except CatalogError:
        return {}


def _paris_day(moment: datetime) -> date:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(PARIS).date()


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 2
