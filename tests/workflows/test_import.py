"""Importing existing subscriptions from a firm's old tool (issue 10), through the real service,
workflows, PostgreSQL and localstripe, on the time-skipping server.

The rules: the current period counts as billed by the old tool, so the first invoice is the
renewal at period_end (at once when that is today); a bad row is reported with its line number
and writes nothing, the good rows go in; importing the same file twice changes nothing."""
import argparse
import asyncio
import csv
import io
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from billing.catalog import DEFAULT_CATALOG_PATH, load_catalog
from billing.periods import paris_date
from settings import Settings
from starter.importer import COLUMNS, ImportReport, add_import_command, import_command, import_rows, read_csv
from starter.scenario import ScenarioClient, ScenarioFirm, shift
from starter.simulate import Simulation, SimulationParts, simulation
from store.models import Client, Firm, Invoice, Notification, PaymentCustomer, Subscription

TODAY = date(2025, 9, 15)
CARD = "4242424242424242"
DECLINED_WHEN_ATTACHED = "4000000000000002"  # localstripe refuses to attach it


def row(client: str, firm: str, plan: str, interval: str, payer: str, start: str, end: str, card: str = "",
        **names: str) -> dict[str, str]:
    return {"client_id": client, "client_name": names.get("client_name", f"Client {client}"), "firm_id": firm,
            "firm_name": names.get("firm_name", f"Cabinet {firm}"), "plan": plan, "interval": interval, "payer": payer,
            "period_start": start, "period_end": end, "card": card}


def write_file(path: Path, sim: Simulation, rows: list[dict[str, str]]) -> Path:
    """The rows as a CSV file, header on line 1 (so row i is on line i + 2), dates moved into the
    simulation's years (a date that is not one stays as written)."""
    def moved(value: str) -> str:
        try:
            return shift(date.fromisoformat(value), sim.years).isoformat()
        except ValueError:
            return value
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([moved(r[c]) if c.startswith("period_") else r[c] for c in COLUMNS])
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def run(parts: SimulationParts, body: Callable[[Simulation], Awaitable[None]], **options: Any) -> None:
    """The default catalogue, on TODAY at noon (Paris)."""
    async def main() -> None:
        async with simulation(load_catalog(DEFAULT_CATALOG_PATH), parts, first_date=TODAY, **options) as sim:
            await sim.advance_to(TODAY)
            await body(sim)
    asyncio.run(main())


async def import_file(sim: Simulation, path: Path, progress: list[int] | None = None) -> ImportReport:
    rows, errors = read_csv(path)
    assert errors == []
    return await import_rows(sim.service, rows, concurrency=4, progress=None if progress is None else progress.append)


def invoices(sim: Simulation) -> list[tuple[str, str, str, str, str]]:
    """(client, payer, issued on, period billed, status) of every invoice, in scenario dates."""
    report = sim.report()["invoices"]
    return [(i["client"], i["payer"], i["issued_on"], f"{i['lines'][0]['period_start']} → {i['lines'][0]['period_end']}",
             i["status"]) for i in report]


async def renewed_at_once(sim: Simulation, client_id: str) -> None:
    """Wait until the client's renewal invoice is recorded and its charge settled: the run that
    opened the subscription renews it at once, in the same run (issue 10: no continue-as-new)."""
    deadline = asyncio.get_running_loop().time() + 60
    while not await asyncio.to_thread(_renewal_settled, sim, client_id):
        assert asyncio.get_running_loop().time() < deadline, f"{client_id} was not renewed at once"
        await asyncio.sleep(0.05)
    await sim.settle()


def _renewal_settled(sim: Simulation, client_id: str) -> bool:
    with sim.sessions() as session:
        statuses = session.scalars(select(Invoice.status).where(Invoice.client_id == client_id)).all()
    return bool(statuses) and all(status != "open" for status in statuses)


def stored(sim: Simulation) -> dict[str, list[Any]]:
    """What the import may write, table by table."""
    with sim.sessions() as session:
        def rows(*columns: Any) -> list[Any]:
            return [tuple(r) for r in session.execute(select(*columns).order_by(*columns))]
        return {
            "firms": rows(Firm.id, Firm.name),
            "clients": rows(Client.id, Client.name, Client.firm_id),
            "subscriptions": rows(Subscription.id, Subscription.plan_code, Subscription.interval, Subscription.payer_kind,
                                  Subscription.payer_id, Subscription.status, Subscription.started_on,
                                  Subscription.period_start, Subscription.period_end, Subscription.version),
            "invoices": rows(Invoice.number, Invoice.client_id, Invoice.issued_on, Invoice.total, Invoice.status),
            "payment_customers": rows(PaymentCustomer.payer_kind, PaymentCustomer.payer_id,
                                      PaymentCustomer.stripe_customer_id, PaymentCustomer.default_payment_method),
            "notifications": rows(Notification.dedupe_key),
        }


def count_stripe_writes(sim: Simulation) -> dict[str, int]:
    """Counts the customers created and cards attached through the service's gateway from now on."""
    calls = {"create_customer": 0, "attach_card": 0}
    gateway = sim.service.gateway

    def counting(name: str) -> Callable[..., Any]:
        real = getattr(gateway, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)
        return counted

    for name in calls:
        setattr(gateway, name, counting(name))
    return calls


GOOD_FILE = [
    row("boulangerie", "cab-dupont", "essentiel", "monthly", "firm", "2025-09-01", "2025-10-01", CARD,
        firm_name="Cabinet Dupont"),
    row("garage", "cab-dupont", "standard", "annual", "client", "2025-03-10", "2026-03-10", CARD),
    row("pharmacie", "cab-leroy", "pack-essentiel", "monthly", "client", "2025-08-20", "2025-09-20", CARD),
    row("boulangerie", "cab-dupont", "paiements", "monthly", "client", "2025-09-05", "2025-10-05", CARD),
]


def test_a_good_file_imports_and_the_first_invoice_is_the_renewal_at_period_end(
        simulation_parts: SimulationParts, tmp_path: Path) -> None:
    async def body(sim: Simulation) -> None:
        report = await import_file(sim, write_file(tmp_path / "clients.csv", sim, GOOD_FILE))
        assert (report.imported, report.already_imported, report.refused) == (4, 0, [])
        assert (report.firms_created, report.clients_created, report.cards_registered) == (2, 3, 4)
        assert invoices(sim) == []  # the current periods were billed by the old tool
        subscriptions = sim.report()["subscriptions"]
        lines = sorted((s["client"], s["line"], s["plan"], s["interval"], s["payer"], s["status"]) for s in subscriptions)
        assert lines == [
            ("boulangerie", "einvoicing", "essentiel", "monthly", "firm:cab-dupont", "active"),
            ("boulangerie", "payments", "paiements", "monthly", "client:boulangerie", "active"),
            ("garage", "einvoicing", "standard", "annual", "client:garage", "active"),
            ("pharmacie", "einvoicing", "pack-essentiel", "monthly", "client:pharmacie", "active"),
        ]
        with sim.sessions() as session:
            assert session.get(Firm, "cab-dupont").name == "Cabinet Dupont"  # type: ignore[union-attr]
            periods = {(s.client_id, s.line): (shift(s.period_start, -sim.years), shift(s.period_end, -sim.years))
                       for s in session.scalars(select(Subscription))}
        assert periods[("garage", "einvoicing")] == (date(2025, 3, 10), date(2026, 3, 10))

        await sim.advance_to(date(2025, 10, 1))
        assert invoices(sim) == [
            ("pharmacie", "client:pharmacie", "2025-09-20", "2025-09-20 → 2025-10-20", "paid"),
            ("boulangerie", "firm:cab-dupont", "2025-10-01", "2025-10-01 → 2025-11-01", "paid"),
        ]
        await sim.advance_to(date(2025, 10, 5))
        assert invoices(sim)[2:] == [
            ("boulangerie", "client:boulangerie", "2025-10-05", "2025-10-05 → 2025-11-05", "paid")]
    run(simulation_parts, body)


def test_a_period_ending_today_renews_at_once(simulation_parts: SimulationParts, tmp_path: Path) -> None:
    async def body(sim: Simulation) -> None:
        assert paris_date(await sim.env.get_current_time()) == shift(TODAY, sim.years)
        ending_today = [row("boulangerie", "cab-dupont", "essentiel", "monthly", "firm", "2025-08-15", "2025-09-15", CARD)]
        report = await import_file(sim, write_file(tmp_path / "clients.csv", sim, ending_today))
        assert (report.imported, report.refused) == (1, [])
        await renewed_at_once(sim, "boulangerie")  # the renewal and its charge run after the import answered
        assert invoices(sim) == [
            ("boulangerie", "firm:cab-dupont", "2025-09-15", "2025-09-15 → 2025-10-15", "paid")]
    run(simulation_parts, body)


def test_bad_rows_are_reported_by_line_and_write_nothing_while_the_good_rows_go_in(
        simulation_parts: SimulationParts, tmp_path: Path) -> None:
    async def body(sim: Simulation) -> None:
        await sim.add_parties([ScenarioFirm(id="cab-leroy", name="Cabinet Leroy", card=CARD)],
                              [ScenarioClient(id="atelier", name="Atelier Moreau", firm="cab-leroy")])
        await sim.service.subscribe(client_id="atelier", plan_code="essentiel", interval="monthly", payer_kind="firm")
        await sim.settle()  # its first invoice charged
        before = stored(sim)
        rows = [
            row("boulangerie", "cab-dupont", "essentiel", "monthly", "firm", "2025-09-01", "2025-10-01", CARD),  # 2
            row("garage", "cab-dupont", "gold", "monthly", "client", "2025-09-01", "2025-10-01", CARD),  # 3
            row("cafe", "cab-dupont", "paiements", "monthly", "firm", "2025-09-01", "2025-10-01", CARD),  # 4
            row("fleuriste", "cab-dupont", "essentiel", "monthly", "firm", "2025-09-01", "2025-10-15"),  # 5
            row("atelier", "cab-dupont", "essentiel", "monthly", "firm", "2025-09-01", "2025-10-01"),  # 6
            row("atelier", "cab-leroy", "standard", "monthly", "firm", "2025-09-15", "2025-10-15"),  # 7
            row("librairie", "cab-martin", "essentiel", "monthly", "client", "2025-09-01", "2025-10-01"),  # 8
            row("Epicerie Fine", "cab-dupont", "essentiel", "monthly", "firm", "01/09/2025", "2025-10-01"),  # 9
            row("boulangerie", "cab-dupont", "standard", "annual", "firm", "2025-01-01", "2026-01-01"),  # 10
            row("opticien", "cab-roux", "essentiel", "monthly", "client", "2025-09-01", "2025-10-01",
                DECLINED_WHEN_ATTACHED),  # 11
            row("primeur", "cab-dupont", "essentiel", "annual", "firm", "2025-10-01", "2026-10-01"),  # 12
            row("tabac", "cab-dupont", "essentiel", "monthly", "firm", "2025-07-01", "2025-08-01"),  # 13
            row("garage", "cab-dupont", "standard", "monthly", "firm", "2025-09-10", "2025-10-10"),  # 14
        ]
        progress: list[int] = []
        report = await import_file(sim, write_file(tmp_path / "clients.csv", sim, rows), progress)
        assert sum(progress) == len(rows)
        refused = {e.line_number: sim.in_scenario_dates(e.message) for e in report.refused}
        assert refused == {
            3: "there is no plan 'gold' in the catalogue",
            4: "plan 'paiements' is a payments plan: it is always paid by the client, a firm can pay only for e-invoicing",
            5: "2025-09-01 → 2025-10-15 is not one monthly period (one from 2025-09-01 ends on 2025-10-01)",
            6: "client atelier exists under firm cab-leroy, not cab-dupont",
            7: "client atelier already has a live subscription on the einvoicing line that differs: plan essentiel, "
               "not standard",
            8: "client:librairie has no card yet: give one in the card column (a Stripe payment method id, "
               "or a test card number on local Stripe)",
            9: "client_id 'Epicerie Fine' must be 1 to 64 lowercase letters, digits, '-' or '_'; "
               "period_start '01/09/2025' is not a date written YYYY-MM-DD",
            10: "client boulangerie has another subscription on the einvoicing line in this file (line 2)",
            11: "the card of client:opticien was refused: Your card was declined.",
            12: "the period starts on 2025-10-01, after today (2025-09-15): give the period the old tool billed last",
            13: "the period ended on 2025-08-01 and the next one by 2025-09-01: give the period the old tool billed "
                "last (its current one)",
        }
        assert (report.imported, report.already_imported) == (2, 0)  # lines 2 and 14: the firm's card is line 2's
        after = stored(sim)
        assert after["firms"] == [("cab-dupont", "Cabinet cab-dupont"), ("cab-leroy", "Cabinet Leroy")]
        assert after["clients"] == [("atelier", "Atelier Moreau", "cab-leroy"), ("boulangerie", "Client boulangerie",
                                                                                 "cab-dupont"),
                                    ("garage", "Client garage", "cab-dupont")]
        assert [(s[0].split(".")[0], s[1]) for s in after["subscriptions"]] == [
            ("atelier", "essentiel"), ("boulangerie", "essentiel"), ("garage", "standard")]
        assert [(kind, payer) for kind, payer, *_ in after["payment_customers"]] == [
            ("firm", "cab-dupont"), ("firm", "cab-leroy")]  # the declined card's client is gone with its row
        assert after["invoices"] == before["invoices"]
    run(simulation_parts, body)


def test_importing_the_same_file_twice_changes_nothing(simulation_parts: SimulationParts, tmp_path: Path) -> None:
    async def body(sim: Simulation) -> None:
        rows = [*GOOD_FILE,
                row("fleuriste", "cab-leroy", "essentiel", "monthly", "firm", "2025-08-15", "2025-09-15", CARD)]
        path = write_file(tmp_path / "clients.csv", sim, rows)
        first = await import_file(sim, path)
        assert (first.imported, first.refused) == (5, [])
        await renewed_at_once(sim, "fleuriste")
        once = stored(sim)
        assert len(once["invoices"]) == 1
        stripe = count_stripe_writes(sim)

        again = await import_file(sim, path)
        assert (again.imported, again.already_imported, again.refused) == (0, 5, [])
        assert (again.firms_created, again.clients_created, again.cards_registered) == (0, 0, 0)
        await sim.settle()
        assert stored(sim) == once
        assert stripe == {"create_customer": 0, "attach_card": 0}

        await sim.advance_to(date(2025, 10, 2))  # renewed since: still the subscriptions of the file
        renewed = stored(sim)
        later = await import_file(sim, path)
        assert (later.imported, later.already_imported, later.refused) == (0, 5, [])
        assert stored(sim) == renewed
        assert stripe == {"create_customer": 0, "attach_card": 0}
    run(simulation_parts, body)


def test_the_same_row_twice_in_a_file_is_one_subscription(simulation_parts: SimulationParts, tmp_path: Path) -> None:
    async def body(sim: Simulation) -> None:
        rows = [GOOD_FILE[0], GOOD_FILE[0]]
        report = await import_file(sim, write_file(tmp_path / "clients.csv", sim, rows))
        assert (report.imported, report.already_imported, report.refused) == (1, 1, [])
        assert len(stored(sim)["subscriptions"]) == 1
    run(simulation_parts, body)


# --- the file and the command -----------------------------------------------------------------


def test_a_spreadsheet_export_reads_semicolons_a_bom_quoted_newlines_with_the_files_own_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes("\ufeffFirm_ID;Client_ID;Client_Name;Firm_Name;Plan;Interval;Payer;Period_Start;Period_End;Card;Notes\n"
                     'cab-dupont;boulangerie;"Boulangerie\nMartin";Cabinet Dupont;essentiel;monthly;firm;2025-09-01;'
                     "2025-10-01;;VIP\n"
                     "\n"
                     "cab-dupont;garage;Garage\n"
                     "cab-dupont;cafe;Café; Cabinet Dupont ;standard;Annual;client;2025-01-01;2026-01-01;"
                     "4242 4242 4242 4242;\n"
                     .encode())
    rows, errors = read_csv(path)
    assert [(r.line_number, r.client_id, r.client_name, r.firm_name, r.interval, r.card) for r in rows] == [
        (2, "boulangerie", "Boulangerie\nMartin", "Cabinet Dupont", "monthly", ""),
        (6, "cafe", "Café", "Cabinet Dupont", "Annual", "4242 4242 4242 4242"),
    ]
    assert [str(e) for e in errors] == ["line 5: has 3 fields, the header has 11"]



def command(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="python -m starter")
    add_import_command(parser.add_subparsers(dest="command", required=True))
    return import_command(settings, parser.parse_args(["import", *argv]))


def no_stack(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, database_url=None, temporal_address=None, stripe_api_key=None,
                    stripe_api_base=None, data_dir=tmp_path / "var")


def test_a_header_without_a_column_is_refused_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "clients.csv"
    path.write_text("client_id,client_name,firm_id,firm_name,plan,interval,payer,period_start,card\n"
                    "boulangerie,Boulangerie,cab-dupont,Cabinet Dupont,essentiel,monthly,firm,2025-09-01,4242424242424242\n")
    assert command(no_stack(tmp_path), str(path)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"{path} has no column 'period_end' in its header (it needs client_id, client_name, firm_id, "
                   "firm_name, plan, interval, payer, period_start, period_end, card)\n")


def test_a_file_that_cannot_be_read_or_no_stack_to_import_into_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert command(no_stack(tmp_path), str(tmp_path / "missing.csv")) == 2
    assert capsys.readouterr().err.startswith(f"{tmp_path / 'missing.csv'} cannot be read: ")
    (tmp_path / "latin1.csv").write_bytes(",".join(COLUMNS).encode() + b"\ncaf\xe9\n")
    assert command(no_stack(tmp_path), str(tmp_path / "latin1.csv")) == 2
    assert capsys.readouterr().err == f"{tmp_path / 'latin1.csv'} is not UTF-8 text\n"
    (tmp_path / "good.csv").write_text(",".join(COLUMNS) + "\n")
    assert command(no_stack(tmp_path), str(tmp_path / "good.csv")) == 2
    assert capsys.readouterr().err == ("import needs the running stack: start `make run` first, or set DATABASE_URL, "
                                       "TEMPORAL_ADDRESS and STRIPE_API_KEY (or STRIPE_API_BASE)\n")


def test_the_command_reports_bad_rows_on_stderr_exits_1_then_0_once_they_are_fixed(
        simulation_parts: SimulationParts, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def body(sim: Simulation) -> None:
        target = sim.env.client.service_client.config.target_host
        settings = Settings(_env_file=None, database_url=sim.database_url, temporal_address=target,
                            stripe_api_key=simulation_parts.stripe_api_key,
                            stripe_api_base=simulation_parts.stripe_api_base, task_queue="import-cli",
                            data_dir=tmp_path / "var")
        good = row("boulangerie", "cab-dupont", "essentiel", "monthly", "firm", "2025-09-01", "2025-10-01", CARD)
        bad = row("garage", "cab-dupont", "essentiel", "weekly", "firm", "2025-09-01", "2025-10-01")
        path = write_file(tmp_path / "clients.csv", sim, [good, bad])
        with path.open("a") as file:
            file.write("cafe,Café,cab-dupont\n")  # line 4: three fields
        assert await asyncio.to_thread(command, settings, str(path)) == 1
        out, err = capsys.readouterr()
        assert err == ("line 3: interval must be 'monthly' or 'annual', not 'weekly'\n"
                       "line 4: has 3 fields, the header has 10\n")
        assert out == "3 rows: 1 imported, 0 already imported, 2 refused; 1 firm and 1 client created, 1 card registered\n"

        bad["interval"] = "monthly"
        write_file(path, sim, [good, bad])
        assert await asyncio.to_thread(command, settings, str(path)) == 0
        out, err = capsys.readouterr()
        assert (out, err) == ("2 rows: 1 imported, 1 already imported, 0 refused; 0 firms and 1 client created, "
                              "0 cards registered\n", "")
    run(simulation_parts, body, task_queue="import-cli")
