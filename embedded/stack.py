"""Start what the settings leave unset (PostgreSQL, Temporal, Stripe) and stop it all cleanly.

    with LocalStack(Settings()) as stack:
        stack.database_url, stack.temporal_address, stack.stripe_api_base ...
"""
import json
import socket
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

from embedded.postgres import EmbeddedPostgres, create_database
from embedded.stripe_server import LOCALSTRIPE_KEY, start_localstripe
from embedded.temporal import start_dev_server
from settings import Settings
from store.migrate import upgrade

EMBEDDED_DATABASE = "billing"


@dataclass
class Endpoints:
    database_url: str
    temporal_address: str
    temporal_ui_url: str | None
    stripe_api_key: str
    stripe_api_base: str | None

    def describe(self) -> str:
        return "\n".join([
            f"PostgreSQL   {self.database_url}",
            f"Temporal     {self.temporal_address}",
            f"Temporal UI  {self.temporal_ui_url or '(external server: see its own UI)'}",
            f"Stripe       {self.stripe_api_base or 'api.stripe.com (STRIPE_API_KEY)'}",
        ])


ENDPOINTS_FILE = "endpoints.json"


def remember_endpoints(data_dir: Path, endpoints: Endpoints) -> None:
    """Where the running stack is, for `api` and the CLI started beside `run`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / ENDPOINTS_FILE).write_text(json.dumps(asdict(endpoints)))


def forget_endpoints(data_dir: Path) -> None:
    (data_dir / ENDPOINTS_FILE).unlink(missing_ok=True)


def running_endpoints(data_dir: Path) -> Endpoints | None:
    """The stack a running `run` started, if its Temporal answers; else None."""
    try:
        endpoints = Endpoints(**json.loads((data_dir / ENDPOINTS_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    host, _, port = endpoints.temporal_address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return endpoints
    except (OSError, ValueError):
        return None


def database_url_for_cli(settings: Settings) -> str:
    """DATABASE_URL, else the embedded database `run` uses (started if need be, migrated)."""
    if settings.database_url:
        return settings.database_url
    running = running_endpoints(settings.data_dir)
    if running is not None:
        return running.database_url
    postgres = EmbeddedPostgres(settings.data_dir / "postgres")
    create_database(postgres.url(), EMBEDDED_DATABASE)
    url = postgres.url(EMBEDDED_DATABASE)
    upgrade(url)
    return url


class LocalStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._exit = ExitStack()

    def __enter__(self) -> Endpoints:
        try:
            return self._start()
        except BaseException:
            self._exit.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def _start(self) -> Endpoints:
        s = self.settings
        data = s.data_dir
        database_url = s.database_url
        if database_url is None:
            postgres = EmbeddedPostgres(data / "postgres")
            self._exit.callback(postgres.stop)
            create_database(postgres.url(), EMBEDDED_DATABASE)
            database_url = postgres.url(EMBEDDED_DATABASE)
        upgrade(database_url)

        temporal_address, ui_url = s.temporal_address or "", None
        if s.temporal_address is None:
            server = start_dev_server(data / "temporal", ui_port=s.temporal_ui_port)
            self._exit.callback(server.stop)
            temporal_address, ui_url = server.address, server.ui_url

        stripe_key, stripe_base = s.stripe_api_key or LOCALSTRIPE_KEY, s.stripe_api_base
        if s.stripe_api_key is None and s.stripe_api_base is None:
            local = start_localstripe(data / "logs")
            self._exit.callback(local.stop)
            stripe_base = local.api_base
        return Endpoints(database_url, temporal_address, ui_url, stripe_key, stripe_base)
