"""Start what the settings leave unset (PostgreSQL, Temporal, Stripe) and stop it all cleanly.

    with LocalStack(Settings()) as stack:
        stack.database_url, stack.temporal_address, stack.stripe_api_base ...
"""
from contextlib import ExitStack
from dataclasses import dataclass

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
