"""R15 through the HTTP API: a firm sees and changes only the clients it manages. Every route,
called by firm A with firm B's ids, answers 404 exactly like an id that does not exist, and
changes nothing (every table compared before and after)."""
import asyncio
from datetime import UTC, datetime

from starter.simulate import SimulationParts
from tests.api.conftest import GOOD_CARD, Api, api_on


async def firm_b_with_history(api: Api) -> tuple[str, str]:
    """Firm B's client with a subscription and an invoice: (client id, invoice number)."""
    created = await api.call("cab-b", "POST", "/v1/clients", {"name": "Client de B", "card": GOOD_CARD})
    assert created.status_code == 201, created.text
    client = created.json()["id"]
    subscribed = await api.call("cab-b", "POST", f"/v1/clients/{client}/subscriptions",
                                {"plan": "essentiel", "interval": "monthly", "payer": "client"})
    assert subscribed.status_code == 201, subscribed.text
    await api.sim.settle()
    invoices = (await api.call("cab-b", "GET", f"/v1/clients/{client}/invoices")).json()["items"]
    return client, invoices[0]["number"]


def routes(client: str, number: str) -> list[tuple[str, str, object]]:
    base = f"/v1/clients/{client}"
    line = f"{base}/subscriptions/einvoicing"
    return [
        ("GET", base, None),
        ("GET", f"{base}/subscriptions", None),
        ("POST", f"{base}/subscriptions", {"plan": "paiements", "interval": "monthly", "payer": "client"}),
        ("POST", f"{line}/change-plan", {"plan": "standard"}),
        ("POST", f"{line}/change-plan/preview", {"plan": "standard"}),
        ("POST", f"{line}/switch-interval", {"interval": "annual"}),
        ("POST", f"{line}/cancel", None),
        ("POST", f"{line}/reactivate", None),
        ("POST", f"{line}/cancel-now", None),
        ("POST", f"{line}/stop-paying", None),
        ("POST", f"{line}/take-over", {"payer": "firm"}),
        ("PUT", f"{base}/card", {"card": GOOD_CARD}),
        ("GET", f"{base}/invoices", None),
        ("GET", f"/v1/invoices/{number}", None),
        ("GET", "/v1/firm/overview?firm_id=cab-b", None),
    ]


def test_firm_a_gets_404_on_every_route_with_firm_b_ids_and_changes_nothing(simulation_parts: SimulationParts) -> None:
    async def main() -> None:
        async with api_on(simulation_parts) as api:
            client, number = await firm_b_with_history(api)
            before = api.snapshot()
            for method, path, body in routes(client, number):
                as_a = await api.call("cab-a", method, path, body)
                missing = await api.call("cab-a", method, path.replace(client, "cli_doesnotexist")
                                         .replace(number, "F-99999999"), body)
                assert as_a.status_code == 404, (method, path, as_a.text)
                assert as_a.headers["content-type"] == "application/problem+json"
                if "overview" not in path:  # another firm's id reads exactly like a missing one
                    assert as_a.json()["detail"].replace(client, "?").replace(number, "?") == \
                        missing.json()["detail"].replace("cli_doesnotexist", "?").replace("F-99999999", "?"), path
            now = datetime.now(UTC).isoformat()
            usage = await api.call("cab-a", "POST", "/v1/usage-events", {"events": [
                {"event_id": "a-1", "client_id": client, "occurred_at": now, "documents": 3},
                {"event_id": "a-2", "client_id": "cli_doesnotexist", "occurred_at": now, "documents": 3}]})
            assert usage.status_code == 200
            theirs, missing_one = usage.json()["results"]
            assert theirs["status"] == missing_one["status"] == "refused"
            assert theirs["reason"].replace(client, "?").replace("a-1", "?") == \
                missing_one["reason"].replace("cli_doesnotexist", "?").replace("a-2", "?")
            listed = (await api.call("cab-a", "GET", "/v1/clients")).json()["items"]
            assert client not in [c["id"] for c in listed]
            await api.sim.settle()
            assert api.snapshot() == before
            # Firm B and the operator do see it.
            for who in ("cab-b", "operator"):
                assert (await api.call(who, "GET", f"/v1/clients/{client}")).status_code == 200
                assert (await api.call(who, "GET", f"/v1/invoices/{number}")).status_code == 200
    asyncio.run(main())


def test_no_key_or_a_bad_or_revoked_key_is_401_in_problem_json(simulation_parts: SimulationParts) -> None:
    async def main() -> None:
        async with api_on(simulation_parts) as api:
            for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
                answer = await api.http.get("/v1/plans", headers=headers)
                assert answer.status_code == 401
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.json()["detail"]
            from store.api_keys import revoke_keys
            with api.sim.sessions.begin() as session:
                assert revoke_keys(session, firm_id="cab-a") == 1
            assert (await api.call("cab-a", "GET", "/v1/plans")).status_code == 401
            assert (await api.call("cab-b", "GET", "/v1/plans")).status_code == 200
    asyncio.run(main())
