"""`python -m starter COMMAND`: the operator's entry points."""
import argparse
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

from pydantic import ValidationError
from pydantic_settings import SettingsError

from settings import Settings

if TYPE_CHECKING:
    import uvicorn
    from sqlalchemy.orm import Session, sessionmaker

    from adapters.stripe_gateway import StripeGateway
    from billing.catalog import Catalog
    from embedded.stack import Endpoints
    from starter.service import SubscriptionService


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m starter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_ = commands.add_parser("run", help="start the stack (embedded parts where unset), the worker and the API")
    run_.add_argument("--port", type=int, help="the HTTP API's port (default API_PORT, or a free one)")
    api = commands.add_parser("api", help="serve the HTTP API against the configured stack, or the running `run`")
    api.add_argument("--port", type=int, help="the HTTP API's port (default API_PORT, or a free one)")
    commands.add_parser("worker", help="run a worker against the configured servers (production shape)")
    commands.add_parser("migrate", help="bring DATABASE_URL's schema to the latest revision")
    sim = commands.add_parser("simulate", help="run a scenario through the real system; JSON on stdout")
    sim.add_argument("scenario", help="the scenario file (YAML)")
    sim.add_argument("--histories", help="also save every workflow history (JSON) in this folder")
    commands.add_parser("reconcile", help="compare invoices and payment attempts with Stripe; exit 1 on a mismatch")
    check = commands.add_parser("check-catalog", help="validate a catalogue file")
    check.add_argument("path", nargs="?", help="the catalogue (default: CATALOG_PATH or the shipped one)")
    firms = commands.add_parser("firms", help="firms and their API keys").add_subparsers(dest="action", required=True)
    create = firms.add_parser("create", help="create a firm; prints {id, api_key} (the key is shown once)")
    create.add_argument("--name", required=True)
    create.add_argument("--id", help="the firm's id (default: made from the name)")
    create.add_argument("--email", help="where the firm's notices are e-mailed")
    from starter.keys_cli import add_identity_options

    add_identity_options(create)  # --legal-name --siren --vat-number --address-line1 … (issue 11)
    update = firms.add_parser("update", help="change a firm's name, e-mail or legal identity (only the options "
                              "given; an empty value clears one); prints the firm")
    update.add_argument("firm_id")
    update.add_argument("--name")
    update.add_argument("--email", help="where the firm's notices are e-mailed")
    add_identity_options(update)
    new_key = firms.add_parser("new-key", help="a new API key for a firm; prints {api_key}")
    new_key.add_argument("firm_id")
    revoke = firms.add_parser("revoke-key", help="revoke a firm's keys (all, or the one with --prefix)")
    revoke.add_argument("firm_id")
    revoke.add_argument("--prefix", help="the key's first 12 characters")
    clients = commands.add_parser("clients", help="clients and their legal identity (the firms use the API)"
                                  ).add_subparsers(dest="action", required=True)
    new_client = clients.add_parser("create", help="create a client of a firm; prints the client")
    new_client.add_argument("--firm", required=True, help="the firm that manages it")
    new_client.add_argument("--name", required=True)
    new_client.add_argument("--external-id", dest="external_id", help="the firm's own reference for it")
    new_client.add_argument("--email", help="where the client's notices are e-mailed")
    add_identity_options(new_client)
    change_client = clients.add_parser("update", help="change a client's legal identity (only the options given; "
                                       "an empty value clears one); prints the client")
    change_client.add_argument("client_id")
    add_identity_options(change_client)
    commands.add_parser("operator-key", help="a new platform-operator API key; prints {api_key}")
    from starter.operator_cli import add_operator_commands

    add_operator_commands(commands)  # subscriptions list|show, invoices show
    from starter.importer import add_import_command

    add_import_command(commands)  # import FILE.csv
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:  # one sentence per setting, no traceback
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            print(f"{name}: {error['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    except SettingsError as exc:  # a list setting that is not JSON, e.g. DUNNING_RETRY_DAYS=3,6
        print(f"{exc}: list settings are JSON, e.g. DUNNING_RETRY_DAYS=[3,6,9]", file=sys.stderr)
        return 2
    if args.command == "run":
        return run(settings, args.port, worker=True)
    if args.command == "api":
        return serve_api(settings, args.port)
    if args.command == "worker":
        return run_worker(settings)
    if args.command == "migrate":
        return migrate(settings)
    if args.command == "reconcile":
        return reconcile(settings)
    if args.command == "simulate":
        from starter.simulate_cli import simulate_file

        return simulate_file(settings, args.scenario, args.histories)
    if args.command == "import":
        from starter.importer import import_command

        return import_command(settings, args)
    if args.command in ("subscriptions", "invoices"):
        from starter.operator_cli import operator_command

        return operator_command(settings, args)
    if args.command in ("firms", "clients", "operator-key"):
        from starter.keys_cli import keys_command

        return keys_command(settings, args)
    return check_catalog(args.path or settings.catalog_path)


def run(settings: Settings, port: int | None, *, worker: bool) -> int:
    """The product's main job on one machine: the stack, the worker, the HTTP API, demo data."""
    import asyncio

    from embedded.stack import LocalStack, forget_endpoints, remember_endpoints

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with LocalStack(settings) as endpoints:
        print(endpoints.describe(), flush=True)
        remember_endpoints(settings.data_dir, endpoints)  # `api` and the CLI find this stack
        try:
            asyncio.run(_serve(settings, endpoints, stop, port, worker=worker, demo=worker))
        finally:
            forget_endpoints(settings.data_dir)
    print("Stopped.", flush=True)
    return 0


def serve_api(settings: Settings, port: int | None) -> int:
    """The API alone: against the configured stack (its workers run elsewhere), or against the
    embedded stack a running `run` started; with nothing to join, a stack of its own as `run`."""
    import asyncio

    from embedded.stack import running_endpoints

    configured = settings.database_url and settings.temporal_address and (
        settings.stripe_api_key or settings.stripe_api_base)
    endpoints = None if configured else running_endpoints(settings.data_dir)
    if not configured and endpoints is None:
        print("no stack configured and no `run` up: starting the embedded stack, with a worker", flush=True)
        return run(settings, port, worker=True)
    if endpoints is None:
        from embedded.stack import Endpoints
        from embedded.stripe_server import LOCALSTRIPE_KEY

        assert settings.database_url and settings.temporal_address
        endpoints = Endpoints(settings.database_url, settings.temporal_address, None,
                              settings.stripe_api_key or LOCALSTRIPE_KEY, settings.stripe_api_base)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if configured:  # production: the port it was given, or fail (never a surprise port)
        port = port or settings.api_port
    try:
        asyncio.run(_serve(settings, endpoints, stop, port, worker=False, demo=False))
    except PortTaken as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


class PortTaken(Exception):
    """The API's port is in use."""


async def _serve(settings: Settings, endpoints: "Endpoints", stop: threading.Event, port: int | None,
                 *, worker: bool, demo: bool) -> None:
    import asyncio
    from contextlib import AsyncExitStack
    from urllib.parse import quote

    from adapters.stripe_gateway import StripeGateway
    from billing.catalog import DEFAULT_CATALOG_PATH, load_catalog
    from embedded.processes import free_port
    from observability.logs import configure_logging
    from observability.metrics import install_runtime
    from starter.demo import seed_demo
    from starter.service import SubscriptionService
    from store.db import make_engine, make_session_factory
    from worker import build_worker, connect, issuer_from

    configure_logging(settings.log_format, settings.log_level)
    metrics_address = settings.metrics_address or f"127.0.0.1:{free_port()}"
    if worker:
        install_runtime(metrics_address)  # the worker's /metrics: the SDK's and the product's counters
    else:
        install_runtime(None)
    client = await connect(endpoints.temporal_address, settings.temporal_namespace)
    tuning = settings.worker_tuning()
    sessions = make_session_factory(make_engine(endpoints.database_url, pool_size=tuning.database_connections,
                                                max_overflow=4))
    gateway = StripeGateway(endpoints.stripe_api_key, endpoints.stripe_api_base)
    catalog = load_catalog(settings.catalog_path or DEFAULT_CATALOG_PATH)
    async with AsyncExitStack() as running:
        if worker:
            await running.enter_async_context(
                build_worker(client, settings.task_queue, sessions, gateway, settings.minimum_charge, tuning,
                             issuer_from(settings, catalog)))
            running.enter_context(_send_mail(settings, sessions))
            print(f"Metrics    worker http://{metrics_address}/metrics", flush=True)
        service = SubscriptionService(client, sessions, catalog, gateway, settings.task_queue,
                                      settings.dunning_retry_days)
        if demo:
            card = "pm_card_visa" if endpoints.stripe_api_base is None else "4242424242424242"
            for line in await seed_demo(service, card):
                print(f"started  {line}", flush=True)
        if endpoints.temporal_ui_url:
            workflows = f"{endpoints.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows"
            query = quote('FirmId="cab-leroy" AND SubscriptionStatus="pending_cancel"')
            print(f"Workflows  {workflows}", flush=True)
            print(f"Filtered   {workflows}?query={query}", flush=True)
        api = await _start_api(settings, port, sessions, gateway, service, catalog)
        print(("Worker and API running." if worker else "API running.") + " Ctrl-C stops everything.", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        api.should_exit = True


async def _start_api(settings: Settings, port: int | None, sessions: "sessionmaker[Session]",
                     gateway: "StripeGateway", service: "SubscriptionService", catalog: "Catalog") -> "uvicorn.Server":
    """Serve the HTTP API in this process, on `port`, API_PORT, or a free port."""
    import asyncio

    import uvicorn

    from embedded.processes import free_port, port_is_free
    from starter.api import create_app
    from starter.portal import Portal

    wanted = port or settings.api_port
    chosen = wanted if port is not None or port_is_free(wanted) else free_port()
    app = create_app(sessions, gateway, settings.stripe_webhook_secret, service.payment_settled,
                     portal=Portal(sessions, catalog, service))
    # log_config=None: uvicorn's lines go through our logging (JSON lines), not its own handlers
    server = uvicorn.Server(uvicorn.Config(app, host=settings.api_host, port=chosen, log_level="warning",
                                           log_config=None))
    async def serve() -> None:
        try:
            await server.serve()
        except SystemExit:  # uvicorn's answer to a port it cannot bind (it logged why)
            pass

    serving = asyncio.get_running_loop().create_task(serve())
    while not server.started:
        if serving.done():
            raise PortTaken(f"the API cannot listen on {settings.api_host}:{chosen}: the port is taken "
                            "or the address is not this machine's")
        await asyncio.sleep(0.05)
    base = f"http://{settings.api_host}:{chosen}"
    print(f"HTTP API   {base}/v1  (docs {base}/docs, OpenAPI {base}/openapi.json, Stripe webhook POST "
          f"{base}/stripe/webhook)", flush=True)
    print(f"Metrics    API {base}/metrics", flush=True)
    print("API keys   python -m starter firms create --name NAME  |  python -m starter operator-key", flush=True)
    return server


@contextmanager
def _send_mail(settings: Settings, sessions: "sessionmaker[Session]") -> Iterator[None]:
    """The outbox's sender, to SMTP_URL; unset, to a local SMTP server that keeps each mail
    as a file in DATA_DIR/mail (nothing leaves the machine)."""
    import asyncio

    from embedded.mail_catcher import MailCatcher
    from notices.dispatcher import MailDispatcher, dispatch_forever
    from notices.smtp import SmtpServer

    with ExitStack() as stack:
        if settings.smtp_url:
            server = SmtpServer.from_url(settings.smtp_url)
            print(f"E-mail     sent through {server.describe()}", flush=True)
        else:
            catcher = stack.enter_context(MailCatcher(settings.data_dir / "mail"))
            server = SmtpServer.from_url(catcher.url)
            print(f"E-mail     caught by {catcher.url}, one .eml file a mail in {catcher.folder}", flush=True)
        task = asyncio.get_running_loop().create_task(
            dispatch_forever(MailDispatcher(sessions, server, settings.mail_from)))
        try:
            yield
        finally:
            task.cancel()


def run_worker(settings: Settings) -> int:
    """What the production image runs (Dockerfile, docker-compose.yml): `worker.py`'s main."""
    import asyncio

    import worker

    if (missing := worker.missing_settings(settings)) is not None:
        print(missing, file=sys.stderr)
        return 2
    asyncio.run(worker.main())
    return 0


def reconcile(settings: Settings) -> int:
    from adapters.stripe_gateway import StripeGateway
    from embedded.stack import EMBEDDED_DATABASE
    from starter.reconcile import find_mismatches, report
    from store.db import make_engine, make_session_factory

    if settings.stripe_api_key is None and settings.stripe_api_base is None:
        print("reconcile needs the Stripe the payments went to: set STRIPE_API_KEY, or STRIPE_API_BASE "
              "to the localstripe that `run` printed", file=sys.stderr)
        return 2
    url = settings.database_url
    if url is None:
        from embedded.postgres import EmbeddedPostgres

        url = EmbeddedPostgres(settings.data_dir / "postgres").url(EMBEDDED_DATABASE)
    gateway = StripeGateway(settings.stripe_api_key or "sk_test_localstripe", settings.stripe_api_base)
    mismatches, recorded, intents = find_mismatches(make_session_factory(make_engine(url)), gateway)
    print(report(mismatches, recorded, intents))
    return 1 if mismatches else 0


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
