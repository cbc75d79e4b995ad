"""The operator CLI (issue 9): `subscriptions list` filters by firm, status and plan and counts
what it shows; `subscriptions show` is a subscription's timeline (periods, invoices, payments,
changes, notices); `invoices show` an invoice's lines, totals and attempts. Amounts read the
French way; piped output keeps its width; a bad request is one sentence on stderr, exit 2."""
import argparse
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from billing.catalog import load_catalog
from billing.intervals import Interval
from billing.invoices import InvoiceLine, LineKind, draft
from settings import Settings
from starter import operator_cli
from starter.operator_cli import add_operator_commands, operator_command
from store.invoices import draft_invoice, finalize_invoice
from store.models import (
    Client,
    Firm,
    Invoice,
    Notification,
    OperatorAlert,
    PaymentAttempt,
    PaymentAttemptInvoice,
    Subscription,
    SubscriptionPeriod,
)

pytestmark = pytest.mark.postgres

CATALOG = load_catalog()
SEPT, OCT, NOV = date(2025, 9, 1), date(2025, 10, 1), date(2025, 11, 1)


@pytest.fixture(autouse=True)
def cli_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("COLUMNS", raising=False)  # piped output: 160 columns unless COLUMNS says


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`python -m starter …` as starter/cli.py wires it: its subcommands and the settings."""
    parser = argparse.ArgumentParser(prog="python -m starter")
    add_operator_commands(parser.add_subparsers(dest="command", required=True))
    code = operator_command(Settings(), parser.parse_args(argv))
    out, err = capsys.readouterr()
    # French amounts keep "1 234,56 €" together with no-break spaces; the tests read plain ones.
    return code, out.replace("\u00a0", " ").replace("\u202f", " "), err


# --- the data: two firms, four clients, five subscriptions ----------------------------------


def subscription(session: Session, client_id: str, firm_id: str, plan: str, *, payer: str = "firm",
                 interval: str = "monthly", status: str = "active", used: int = 0,
                 scheduled: dict[str, Any] | None = None, line: str | None = None) -> Subscription:
    p = CATALOG.plan(plan)
    line = line or p.lines[0].value
    sub = Subscription(
        id=f"subscription:{client_id}:{line}", client_id=client_id, line=line, product=p.product.value,
        plan_code=plan, interval=interval, quota=p.quota_for(Interval(interval)), firm_id=firm_id,
        payer_kind=payer, payer_id=firm_id if payer == "firm" else client_id, status=status, anchor=SEPT,
        period_start=OCT, period_end=NOV, scheduled=scheduled or {}, started_on=SEPT, used=used,
    )
    session.add(sub)
    session.flush()
    session.add(SubscriptionPeriod(subscription_id=sub.id, client_id=client_id, period_start=SEPT, period_end=OCT,
                                   used=60, documents=60, closed_at=datetime(2025, 10, 1, 0, 5, tzinfo=UTC)))
    session.add(SubscriptionPeriod(subscription_id=sub.id, client_id=client_id, period_start=OCT, period_end=NOV,
                                   used=used))
    session.flush()
    return sub


def invoice(session: Session, sub: Subscription, issued_on: date, *lines: InvoiceLine) -> Invoice:
    drafted = draft_invoice(session, idempotency_key=f"{sub.id}:{issued_on}", client_id=sub.client_id,
                            payer_kind=sub.payer_kind, payer_id=sub.payer_id, issued_on=issued_on,
                            content=draft(*lines), subscription_id=sub.id)
    return finalize_invoice(session, drafted.id)


def fee(plan: str, start: date, end: date, amount: int) -> InvoiceLine:
    return InvoiceLine(LineKind.SUBSCRIPTION, plan, start, end, 1, amount)


def attempt(session: Session, inv: Invoice, no: int, status: str, intent: str, at: datetime,
            failure: tuple[str, str] | None = None, along: tuple[Invoice, ...] = ()) -> PaymentAttempt:
    """An attempt at collecting `inv` and (R16) the payer's waiting invoices `along`."""
    code, message = failure or (None, None)
    row = PaymentAttempt(invoice_id=inv.id, attempt_no=no, idempotency_key=f"charge:{inv.id}:{no}",
                         amount=inv.total + sum(i.total for i in along), status=status,
                         stripe_payment_intent_id=intent, failure_code=code, failure_message=message, created_at=at)
    session.add(row)
    session.flush()
    session.add_all([PaymentAttemptInvoice(attempt_id=row.id, invoice_id=i.id, amount=i.total) for i in (inv, *along)])
    if status == "succeeded":
        inv.status = "paid"
    session.flush()
    return row


def notice(session: Session, key: str, kind: str, recipient: tuple[str, str], subject: str, day: date,
           sent: bool = True) -> None:
    session.add(Notification(dedupe_key=key, kind=kind, recipient_kind=recipient[0], recipient_id=recipient[1],
                             subject=subject, business_date=day,
                             sent_at=datetime(day.year, day.month, day.day, 9, tzinfo=UTC) if sent else None))
    session.flush()


@pytest.fixture
def billing(session_factory: sessionmaker[Session]) -> None:
    """Boulangerie Martin (cab-dupont pays its Essentiel; it pays its own Paiements) billed for
    two months: September's invoice declined once then paid, October's with 10 documents over
    the quota; Fromagerie Leroy cancelled at the period end, a downgrade scheduled, its 0,23 €
    invoice waiting for the firm's next charge (R16), October's; Garage Petit, Premium yearly,
    past due, billed over 1 000 €, an operator alert; Atelier [Nord] with no subscription."""
    with session_factory.begin() as session:
        session.add_all([Firm(id="cab-dupont", name="Cabinet Dupont"), Firm(id="cab-leroy", name="Cabinet Leroy")])
        session.flush()
        session.add_all([
            Client(id="cli-martin", name="Boulangerie Martin", firm_id="cab-dupont", external_id="BM-042"),
            Client(id="cli-leroy", name="Fromagerie Leroy", firm_id="cab-dupont", external_id="SHARED-1"),
            Client(id="cli-petit", name="Garage Petit", firm_id="cab-leroy", external_id="SHARED-1"),
            Client(id="cli-nord", name="Atelier [Nord] [/bold]", firm_id="cab-leroy"),
        ])
        session.flush()
        martin = subscription(session, "cli-martin", "cab-dupont", "essentiel", used=42)
        paiements = subscription(session, "cli-martin", "cab-dupont", "paiements", payer="client")
        leroy = subscription(session, "cli-leroy", "cab-dupont", "standard", status="pending_cancel", used=230,
                     scheduled={"plan": "essentiel", "ends_on": NOV.isoformat(), "end_reason": "canceled"})
        petit = subscription(session, "cli-petit", "cab-leroy", "premium", interval="annual", status="past_due")

        september = invoice(session, martin, SEPT, fee("essentiel", SEPT, OCT, 1900))  # F-00000001: 22,80 €
        notice(session, f"invoice:{september.id}", "invoice_issued", ("firm", "cab-dupont"),
               "Invoice F-00000001 for client cli-martin", SEPT)
        attempt(session, september, 1, "declined", "pi_declined_1", datetime(2025, 9, 1, 8, tzinfo=UTC),
                failure=("card_declined", "Your card was declined."))
        notice(session, f"payment_failed:{september.id}:1", "payment_failed", ("firm", "cab-dupont"),
               "Payment of 22.80 EUR for invoice F-00000001 failed: Your card was declined.", SEPT)
        attempt(session, september, 2, "succeeded", "pi_paid_2", datetime(2025, 9, 4, 8, tzinfo=UTC))
        invoice(session, paiements, SEPT, fee("paiements", SEPT, OCT, 900))  # F-00000002, the other line
        october = invoice(session, martin, OCT,  # F-00000003: 19,00 + 2,50 excl. VAT -> 25,80 €
                          InvoiceLine(LineKind.OVERAGE, "essentiel", SEPT, OCT, 10, 250), fee("essentiel", OCT, NOV, 1900))
        notice(session, f"quota:{martin.id}:{OCT}:80:firm:cab-dupont", "quota_80", ("firm", "cab-dupont"),
               "Client cli-martin has used 80 % of its document quota", date(2025, 10, 20), sent=False)
        notice(session, f"quota:{petit.id}:{OCT}:80:firm:cab-leroy", "quota_80", ("firm", "cab-leroy"),
               "Client cli-petit has used 80 % of its document quota", date(2025, 10, 21))

        yearly = invoice(session, petit, OCT, fee("premium", OCT, date(2026, 10, 1), 79000),  # F-00000004
                         InvoiceLine(LineKind.OVERAGE, "premium", SEPT, OCT, 10000, 120000))
        attempt(session, yearly, 1, "declined", "pi_declined_4", datetime(2025, 10, 1, 8, tzinfo=UTC),
                failure=("insufficient_funds", "Your card has insufficient funds."))
        session.add(OperatorAlert(dedupe_key="charge:petit:2", subscription_id=petit.id, invoice_id=yearly.id,
                                  step="charge", error="Stripe refused the request: no such customer",
                                  created_at=datetime(2025, 10, 4, 8, tzinfo=UTC)))

        waiting = invoice(session, leroy, OCT, InvoiceLine(LineKind.OVERAGE, "standard", SEPT, OCT, 1, 19))  # F-00000005
        waiting.waiting_since = OCT
        notice(session, f"canceled:{leroy.id}:v3:firm:cab-dupont", "canceled", ("firm", "cab-dupont"),
               "cli-leroy: cancelled, ends on 2025-11-01", date(2025, 10, 15), sent=False)
        attempt(session, october, 1, "pending", "pi_pending_3", datetime(2025, 10, 1, 8, tzinfo=UTC), along=(waiting,))


# --- subscriptions list ---------------------------------------------------------------------


def rows(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.lstrip().startswith("cli-")]


@pytest.mark.usefixtures("billing")
def test_the_list_shows_every_subscription_by_client_with_its_period_usage_and_renewal(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "subscriptions", "list")
    assert (code, err) == (0, "")
    assert [r.split()[0] for r in rows(out)] == ["cli-leroy", "cli-martin", "cli-martin", "cli-petit"]
    martin = rows(out)[1]
    for shown in ("Boulangerie Martin", "cab-dupont", "einvoicing", "essentiel", "monthly", "firm", "active",
                  "2025-10-01 → 2025-11-01", "42 / 50", "renews 2025-11-01"):
        assert shown in martin
    assert "client" in rows(out)[2] and "not metered" in rows(out)[2]  # Paiements: paid by the client itself
    assert "230 / 200" in rows(out)[0] and "ends 2025-11-01" in rows(out)[0]
    assert "4 subscriptions" in out


@pytest.mark.usefixtures("billing")
@pytest.mark.parametrize("argv, clients", [
    (("--firm", "cab-leroy"), ["cli-petit"]),
    (("--status", "pending_cancel"), ["cli-leroy"]),
    (("--plan", "essentiel"), ["cli-martin"]),
    (("--firm", "cab-dupont", "--status", "active"), ["cli-martin", "cli-martin"]),
    (("--firm", "cab-leroy", "--plan", "essentiel"), []),
])
def test_the_list_keeps_only_what_the_filters_name(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...],
                                                  clients: list[str]) -> None:
    code, out, _ = run(capsys, "subscriptions", "list", *argv)
    assert code == 0
    assert [r.split()[0] for r in rows(out)] == clients
    assert f"{len(clients)} subscription" in out


@pytest.mark.usefixtures("billing")
def test_a_limited_list_says_how_many_it_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "subscriptions", "list", "--limit", "2")
    assert code == 0 and len(rows(out)) == 2
    assert "2 of 4 subscriptions shown (--limit 2)" in out


@pytest.mark.usefixtures("billing")
def test_a_long_list_is_printed_in_chunks_that_line_up_as_one_table(capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operator_cli, "CHUNK_ROWS", 1)
    code, out, err = run(capsys, "subscriptions", "list")
    assert (code, err) == (0, "")  # piped: no progress bar on stderr either
    assert [line.split()[:2] for line in out.splitlines() if line.startswith("client ")] == [["client", "name"]]
    assert [r.split()[0] for r in rows(out)] == ["cli-leroy", "cli-martin", "cli-martin", "cli-petit"]
    assert len({r.index("cab-") for r in rows(out)}) == 1 and len({r.index("2025-10-01 →") for r in rows(out)}) == 1


@pytest.mark.usefixtures("billing")
def test_piped_output_is_drawn_160_columns_wide_without_colours(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "subscriptions", "list")
    widths = {len(line) for line in out.splitlines() if line.strip()}
    assert 80 < max(widths) <= 160
    assert "\x1b[" not in out


# --- subscriptions show ---------------------------------------------------------------------


@pytest.mark.usefixtures("billing")
def test_the_timeline_merges_periods_invoices_payments_and_notices_in_date_order(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "subscriptions", "show", "cli-martin", "--line", "einvoicing")
    assert (code, err) == (0, "")
    header, timeline = out.split("Timeline", 1)
    for shown in ("subscription:cli-martin:einvoicing", "Boulangerie Martin (cli-martin, external id BM-042)",
                  "Essentiel (essentiel), monthly", "active", "firm Cabinet Dupont (cab-dupont)",
                  "2025-10-01 → 2025-11-01", "42 / 50", "renews 2025-11-01"):
        assert shown in header
    in_order = [
        ("2025-09-01", "started"),
        ("2025-09-01", "period opened", "2025-09-01 → 2025-10-01"),
        ("2025-09-01", "invoice (subscription)", "F-00000001", "22,80 €", "paid"),
        ("2025-09-01", "payment attempt 1", "pi_declined_1", "22,80 €", "declined",
         "card_declined: Your card was declined."),
        ("2025-09-01", "notice invoice_issued", "firm cab-dupont", "sent 2025-09-01"),
        ("2025-09-01", "notice payment_failed"),
        ("2025-09-04", "payment attempt 2", "pi_paid_2", "22,80 €", "succeeded"),
        ("2025-10-01", "period closed", "60 documents"),
        ("2025-10-01", "period opened", "2025-10-01 → 2025-11-01", "open", "42 / 50 documents so far"),
        ("2025-10-01", "invoice (overage + subscription)", "F-00000003", "25,80 €", "open",
         "excl. VAT 21,50 €, VAT 4,30 €"),
        ("2025-10-01", "payment attempt 1", "pi_pending_3", "26,03 €", "pending",
         "for F-00000003, taking along F-00000005 (R16)"),
        ("2025-10-20", "notice quota_80", "queued"),
    ]
    lines = [line for line in timeline.splitlines() if line.lstrip().startswith("20")]
    assert len(lines) == len(in_order)
    for line, expected in zip(lines, in_order, strict=True):
        for part in expected:
            assert part in line, f"{part!r} not in {line!r}"
    assert "F-00000002" not in out and "cli-petit" not in out  # the other line's invoice, another client's notice
    assert "2 periods, 2 invoices, 3 payment attempts, 3 notices" in out


@pytest.mark.usefixtures("billing")
def test_the_timeline_ends_with_the_changes_scheduled_for_the_period_end(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "subscriptions", "show", "cli-leroy")  # its only line: no --line needed
    assert code == 0
    assert "ends 2025-11-01" in out and "pending_cancel" in out
    cancelled = next(line for line in out.splitlines() if "notice canceled" in line)
    assert "2025-10-15" in cancelled and "cli-leroy: cancelled, ends on 2025-11-01" in cancelled
    last = [line for line in out.splitlines() if line.lstrip().startswith("20")][-1]
    assert "2025-11-01" in last and "scheduled" in last
    assert "plan → Essentiel (essentiel)" in last
    assert "ends on 2025-11-01 (canceled)" in last


@pytest.mark.usefixtures("billing")
def test_an_invoice_below_the_minimum_shows_it_waits_and_the_charge_that_takes_it_along(
        capsys: pytest.CaptureFixture[str]) -> None:
    """R16: Fromagerie Leroy's 0,23 € waits; the firm's next charge (Boulangerie Martin's October
    invoice) collects it too, and both subscriptions' timelines show that attempt."""
    code, out, _ = run(capsys, "subscriptions", "show", "cli-leroy")
    assert code == 0
    invoice_row = next(line for line in out.splitlines() if "F-00000005" in line and "invoice" in line)
    assert "0,23 €" in invoice_row and "below the minimum charge" in out
    attempt_row = next(line for line in out.splitlines() if "payment attempt" in line)
    assert "pi_pending_3" in attempt_row and "for F-00000003, taking along F-00000005" in attempt_row

    code, out, _ = run(capsys, "invoices", "show", "F-00000005")
    assert code == 0 and "collected with the payer's next charge" in out
    attempts = out.split("Payment attempts", 1)[1]
    assert "pi_pending_3" in attempts and "F-00000003 + F-00000005" in attempts and "26,03 €" in attempts


@pytest.mark.usefixtures("billing")
def test_the_timeline_shows_the_operator_alerts_raised_for_the_subscription(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "subscriptions", "show", "cli-petit")
    alert = next(line for line in out.splitlines() if "operator alert" in line and "2025-10-04" in line)
    assert code == 0 and "charge" in alert and "open" in alert and "no such customer" in alert


@pytest.mark.usefixtures("billing")
def test_a_client_is_found_by_its_firms_external_id_too(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "subscriptions", "show", "BM-042", "--line", "payments")
    assert code == 0
    assert "subscription:cli-martin:payments" in out and "F-00000002" in out and "10,80 €" in out
    assert "client Boulangerie Martin (cli-martin)" in out  # the client pays this line itself


@pytest.mark.usefixtures("billing")
def test_an_invoice_over_a_thousand_euros_groups_its_thousands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "subscriptions", "show", "cli-petit")
    assert code == 0
    assert "F-00000004" in out and "2 388,00 €" in out and "insufficient_funds" in out
    assert "past_due" in out


@pytest.mark.usefixtures("billing")
def test_without_line_the_client_s_only_live_subscription_is_shown(capsys: pytest.CaptureFixture[str],
                                                                   session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        ended = subscription(session, "cli-nord", "cab-leroy", "essentiel", status="ended")
        ended.ended_on, ended.ended_reason = OCT, "canceled"
        subscription(session, "cli-nord", "cab-leroy", "paiements", payer="client")
    code, out, _ = run(capsys, "subscriptions", "show", "cli-nord")
    assert code == 0 and "subscription:cli-nord:payments" in out

    code, out, _ = run(capsys, "subscriptions", "show", "cli-nord", "--line", "einvoicing")
    ended_row = next(line for line in out.splitlines() if line.lstrip().startswith("2025-10-01  ended"))
    assert code == 0 and "canceled" in ended_row and "ended 2025-10-01" in out


# --- invoices show --------------------------------------------------------------------------


@pytest.mark.usefixtures("billing")
def test_an_invoice_shows_its_lines_with_unit_prices_its_totals_and_its_attempts(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "invoices", "show", "F-00000004")
    assert (code, err) == (0, "")
    for shown in ("Invoice F-00000004", "2025-10-01", "Garage Petit (cli-petit, external id SHARED-1)",
                  "firm Cabinet Leroy (cab-leroy)", "open", "subscription:cli-petit:einvoicing"):
        assert shown in out
    fee_line = next(line for line in out.splitlines() if "subscription fee" in line)
    assert "premium" in fee_line and "2025-10-01 → 2026-10-01" in fee_line and fee_line.count("790,00 €") == 2
    overage = next(line for line in out.splitlines() if "documents over the quota" in line)
    assert "10000" in overage and "0,12 €" in overage and "1 200,00 €" in overage
    totals = out.split("Payment attempts", 1)[0].splitlines()[-3:]
    assert [" ".join(line.split()) for line in totals] == [
        "total excl. VAT 1 990,00 €", "VAT 20 % 398,00 €", "total incl. VAT 2 388,00 €"]
    attempts = out.split("Payment attempts", 1)[1]
    assert "pi_declined_4" in attempts and "2 388,00 €" in attempts
    assert "insufficient_funds: Your card has insufficient funds." in attempts


@pytest.mark.usefixtures("billing")
@pytest.mark.parametrize("typed", ["F-00000001", "F-1", "1"])
def test_an_invoice_number_may_be_typed_short(capsys: pytest.CaptureFixture[str], typed: str) -> None:
    code, out, _ = run(capsys, "invoices", "show", typed)
    assert code == 0 and "Invoice F-00000001" in out
    assert "pi_declined_1" in out and "pi_paid_2" in out and "22,80 €" in out


# --- names are printed as written -----------------------------------------------------------


@pytest.mark.usefixtures("billing")
def test_brackets_in_a_name_are_printed_not_read_as_styles(capsys: pytest.CaptureFixture[str],
                                                           session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        subscription(session, "cli-nord", "cab-leroy", "essentiel")
    code, out, _ = run(capsys, "subscriptions", "list", "--firm", "cab-leroy")
    assert code == 0 and "Atelier [Nord] [/bold]" in out


# --- refusals: one sentence, exit 2 ---------------------------------------------------------


@pytest.mark.usefixtures("billing")
@pytest.mark.parametrize("argv, says", [
    (("subscriptions", "list", "--status", "paused"),
     "unknown status 'paused': use one of active, pending_cancel, past_due, ended"),
    (("subscriptions", "list", "--limit", "0"), "--limit must be at least 1"),
    (("subscriptions", "list", "--firm", "cab-nobody"), "there is no firm 'cab-nobody'"),
    (("subscriptions", "show", "cli-nobody"), "there is no client 'cli-nobody' (neither a client id nor an external id)"),
    (("subscriptions", "show", "SHARED-1"),
     "the external id 'SHARED-1' names several clients (cli-leroy of cab-dupont, cli-petit of cab-leroy): "
     "give the client id"),
    (("subscriptions", "show", "cli-martin"),
     "client cli-martin has subscriptions on several lines (einvoicing, payments): choose one with --line"),
    (("subscriptions", "show", "cli-leroy", "--line", "payments"),
     "client cli-leroy has no subscription on the payments line (its lines: einvoicing)"),
    (("subscriptions", "show", "cli-martin", "--line", "fax"), "unknown line 'fax': use one of einvoicing, payments"),
    (("subscriptions", "show", "cli-nord"), "client cli-nord has no subscription"),
    (("invoices", "show", "F-00000099"), "there is no invoice 'F-00000099'"),
    (("invoices", "show", "not-a-number"), "there is no invoice 'not-a-number'"),
])
def test_a_request_that_cannot_be_shown_is_one_sentence_on_stderr_and_exit_2(
        capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], says: str) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err == says + "\n"


def test_a_database_that_cannot_be_reached_is_one_sentence_too(capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nowhere")
    code, out, err = run(capsys, "invoices", "show", "F-00000001")
    assert (code, out) == (2, "")
    assert err.startswith("the database could not be read: ") and len(err.splitlines()) == 1
