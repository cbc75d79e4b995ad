"""The HTTP API on the real parts: the app in this process (httpx's ASGI transport), the
real workflows and worker on Temporal's time-skipping server, PostgreSQL, localstripe."""
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
from sqlalchemy import text

from adapters.stripe_gateway import StripeGateway
from billing.catalog import Catalog, parse_catalog
from starter.api import create_app
from starter.portal import Portal
from starter.simulate import Simulation, SimulationParts, simulation
from store.api_keys import new_key
from store.models import Firm

CATALOG = parse_catalog([
    {"code": "essentiel", "product": "einvoicing", "name": "Essentiel",
     "prices": {"monthly": 1900, "annual": 19000}, "quota": {"monthly": 50, "annual": 600}, "overage": 25},
    {"code": "standard", "product": "einvoicing", "name": "Standard",
     "prices": {"monthly": 3900, "annual": 39000}, "quota": {"monthly": 200, "annual": 2400}, "overage": 19},
    {"code": "paiements", "product": "payments", "name": "Paiements",
     "prices": {"monthly": 900, "annual": 9000}, "quota": {"monthly": 0, "annual": 0}},
])
START = date(2025, 9, 1)
GOOD_CARD = "4242424242424242"


@dataclass
class Api:
    sim: Simulation
    http: httpx.AsyncClient
    keys: dict[str, str]  # "cab-a", "cab-b", "operator" -> API key

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    async def call(self, who: str, method: str, path: str, body: Any = None, **headers: str) -> httpx.Response:
        return await self.http.request(method, path, json=body, headers={**self.auth(who), **headers})

    def snapshot(self) -> dict[str, list[Any]]:
        """Every row of every table that a change could touch (for 'changes nothing')."""
        tables = ["clients", "subscriptions", "subscription_periods", "invoices", "invoice_lines",
                  "payment_attempts", "usage_events", "notifications", "line_reservations", "payment_customers"]
        with self.sim.sessions() as session:
            return {t: [json.dumps(list(r), default=str) for r in session.execute(text(f"select * from {t} order by 1"))]
                    for t in tables}


@asynccontextmanager
async def api_on(parts: SimulationParts, catalog: Catalog = CATALOG) -> AsyncIterator[Api]:
    async with simulation(catalog, parts, first_date=START) as sim:
        with sim.sessions.begin() as session:
            session.add_all([Firm(id="cab-a", name="Cabinet A"), Firm(id="cab-b", name="Cabinet B")])
            session.flush()
            keys = {"cab-a": new_key(session, firm_id="cab-a"), "cab-b": new_key(session, firm_id="cab-b"),
                    "operator": new_key(session, firm_id=None)}
        await sim.advance_to(START)
        gateway = StripeGateway(parts.stripe_api_key, parts.stripe_api_base)
        app = create_app(sim.sessions, gateway, None, portal=Portal(sim.sessions, catalog, sim.service))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            yield Api(sim, http, keys)
