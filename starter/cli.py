"""`python -m starter COMMAND`: the operator's entry points."""
import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m starter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the stack (embedded parts where unset) and keep it up")
    commands.add_parser("migrate", help="bring DATABASE_URL's schema to the latest revision")
    sim = commands.add_parser("simulate", help="run a scenario through the real system; JSON on stdout")
    sim.add_argument("scenario", help="the scenario file (YAML)")
    sim.add_argument("--histories", help="also save every workflow history (JSON) in this folder")
    check = commands.add_parser("check-catalog", help="validate a catalogue file")
    check.add_argument("path", nargs="?", help="the catalogue (default: CATALOG_PATH or the shipped one)")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "run":
        return run(settings)
    if args.command == "migrate":
        return migrate(settings)
    if args.command == "simulate":
        from starter.simulate_cli import simulate_file

        return simulate_file(settings, args.scenario, args.histories)
    return check_catalog(args.path or settings.catalog_path)


def run(settings: Settings) -> int:
    from embedded.stack import LocalStack

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with LocalStack(settings) as endpoints:
        print(endpoints.describe(), flush=True)
        print("Up. Ctrl-C stops everything.", flush=True)
        stop.wait()
    print("Stopped.", flush=True)
    return 0


def migrate(settings: Settings) -> int:
    from store.migrate import upgrade

    if settings.database_url is None:
        print("DATABASE_URL is not set (the embedded database is migrated by `run`)", file=sys.stderr)
        return 2
    upgrade(settings.database_url)
    print("schema is at the latest revision")
    return 0


def check_catalog(path: object) -> int:
    from billing.catalog import DEFAULT_CATALOG_PATH, CatalogError, load_catalog

    try:
        catalog = load_catalog(path or DEFAULT_CATALOG_PATH)  # type: ignore[arg-type]
    except CatalogError as exc:
        print(f"catalogue refused: {exc}", file=sys.stderr)
        return 1
    for plan in catalog:
        prices = ", ".join(f"{i.value} {p}" for i, p in plan.prices.items())
        print(f"{plan.code:20} {plan.product.value:11} {prices}")
    return 0
